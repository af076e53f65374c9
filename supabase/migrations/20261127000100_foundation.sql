-- Foundation: leads, webhook_events, integration_logs and the operator's log writer.
--
-- Every table has RLS enabled and no policy: only service_role (which bypasses RLS) reads or
-- writes, and only through the functions below, called with supabase.rpc().

create table public.leads (
    id uuid primary key default gen_random_uuid(),
    source text not null default 'meta_lead_ads',
    meta_leadgen_id text unique,
    page_id text,
    form_id text,
    ad_id text,
    adgroup_id text,
    adset_id text,
    campaign_id text,
    ad_name text,
    campaign_name text,
    platform text,
    is_organic boolean,
    full_name text,
    email text,
    phone text constraint leads_phone_e164 check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    answers jsonb not null default '{}'::jsonb,
    status text not null default 'fetch_pending'
        constraint leads_status_known check (status in ('fetch_pending', 'new')),
    fetch_attempts integer not null default 0,
    fetch_error_code text,
    fetch_error text,
    next_fetch_at timestamptz,
    submitted_at timestamptz,
    fetched_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

comment on table public.leads is
    'One row per lead. A Meta lead is stored as fetch_pending the moment its webhook arrives and becomes new once its answers are fetched from the Graph API.';
comment on column public.leads.answers is
    'Every answer of the form: field name -> value (a string, or a list for multi-value answers).';
comment on column public.leads.next_fetch_at is
    'When the sweep may (re)try the Graph fetch; null = no automatic retry (see fetch_error).';

create index leads_fetch_due on public.leads (next_fetch_at) where status = 'fetch_pending';
create index leads_email on public.leads (lower(email)) where email is not null;
create index leads_phone on public.leads (phone) where phone is not null;
create index leads_created_at on public.leads (created_at desc);

create function public.touch_updated_at() returns trigger
language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end $$;

create trigger leads_touch_updated_at before update on public.leads
    for each row execute function public.touch_updated_at();

create table public.webhook_events (
    id bigint generated always as identity primary key,
    received_at timestamptz not null default now(),
    provider text not null,
    event_type text not null,
    external_id text not null,
    payload jsonb not null,
    constraint webhook_events_once unique (provider, event_type, external_id)
);

comment on table public.webhook_events is
    'Every accepted delivery, once: the provider''s own id is the idempotency key.';

create table public.integration_logs (
    id bigint generated always as identity primary key,
    created_at timestamptz not null default now(),
    provider text not null,
    event text not null,
    status text not null
        constraint integration_logs_status_known
        check (status in ('ok', 'error', 'rejected', 'ignored', 'duplicate')),
    external_id text,
    lead_id uuid references public.leads (id) on delete set null,
    error_code text,
    message text not null,
    details jsonb not null default '{}'::jsonb,
    duration_ms integer
);

comment on table public.integration_logs is
    'What happened, for the operator: message says what to do when status is error or rejected.';

create index integration_logs_provider_status_latest
    on public.integration_logs (provider, status, created_at desc);
create index integration_logs_latest on public.integration_logs (created_at desc);
create index integration_logs_lead on public.integration_logs (lead_id) where lead_id is not null;
create index integration_logs_external_id on public.integration_logs (external_id)
    where external_id is not null;

alter table public.leads enable row level security;
alter table public.webhook_events enable row level security;
alter table public.integration_logs enable row level security;

revoke all on public.leads, public.webhook_events, public.integration_logs
    from public, anon, authenticated;
grant all on public.leads, public.webhook_events, public.integration_logs to service_role;
revoke all on function public.touch_updated_at() from public, anon, authenticated;

-- log_event: one row in integration_logs; returns its id.
create function public.log_event(
    p_provider text,
    p_event text,
    p_status text,
    p_message text,
    p_external_id text default null,
    p_lead_id uuid default null,
    p_error_code text default null,
    p_details jsonb default '{}'::jsonb,
    p_duration_ms integer default null
) returns bigint
language sql
set search_path = ''
as $$
    insert into public.integration_logs
        (provider, event, status, message, external_id, lead_id, error_code, details, duration_ms)
    values
        (p_provider, p_event, p_status, p_message, p_external_id, p_lead_id, p_error_code,
         coalesce(p_details, '{}'::jsonb), p_duration_ms)
    returning id;
$$;

revoke all on function public.log_event(text, text, text, text, text, uuid, text, jsonb, integer)
    from public, anon, authenticated;
grant execute on function public.log_event(text, text, text, text, text, uuid, text, jsonb, integer)
    to service_role;
