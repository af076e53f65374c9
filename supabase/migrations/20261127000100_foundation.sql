-- Foundation: the lead lifecycle, the shared queue rules, leads, webhook_events,
-- integration_logs and the operator's log writer.
--
-- Every table has RLS enabled and no policy: only service_role (which bypasses RLS) reads or
-- writes, and only through the functions below, called with supabase.rpc().

-- Why a call to a provider failed (lib/errors.py FailureClass holds the same values): the queues
-- retry every class with backoff except not_found and invalid, which no retry can fix.
create type public.failure_class as enum (
    'auth', 'permission', 'config', 'quota', 'throttled', 'transient', 'ambiguous',
    'malformed', 'not_found', 'invalid'
);

-- A failure class from text (a queue's JSON input); an unknown one counts as transient, so a
-- bug on our side delays a lead rather than dropping it.
create function public.failure_class_of(p_class text) returns public.failure_class
language sql immutable set search_path = '' as $$
    select case
        when p_class = any (enum_range(null::public.failure_class)::text[])
            then p_class::public.failure_class
        else 'transient'::public.failure_class
    end
$$;

-- Text from a JSON argument as a uuid or an integer; null when it is not one (a bad value in a
-- batch costs its own item, never the whole call).
create function public.uuid_or_null(p_value text) returns uuid
language sql immutable set search_path = '' as $$
    select case when p_value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                then p_value::uuid end
$$;

create function public.int_or_null(p_value text) returns integer
language sql immutable set search_path = '' as $$
    select case when p_value ~ '^-?[0-9]{1,9}$' then p_value::integer end
$$;

-- A work queue's numbers (the Graph fetch's, the call queue's …): how long a claim is reserved
-- for its claimer before a sweep may take it over, the first retry wait (doubling after each
-- attempt), the longest wait, and the attempts after which nothing is retried automatically.
create type public.queue_policy as (
    lease interval,
    first_retry interval,
    max_retry interval,
    max_attempts integer
);

-- Until when a claim made now is reserved for its claimer.
create function public.queue_lease_until(p_policy public.queue_policy) returns timestamptz
language sql stable set search_path = '' as $$
    select now() + p_policy.lease
$$;

-- When to retry after a failure of p_class at attempt p_attempts (1 = the first); null = never.
create function public.queue_retry_at(
    p_policy public.queue_policy, p_class public.failure_class, p_attempts integer
) returns timestamptz
language sql stable set search_path = '' as $$
    select case
        when p_class in ('not_found', 'invalid') or p_attempts >= p_policy.max_attempts then null
        else now() + least(
            p_policy.first_retry * power(2, least(greatest(p_attempts - 1, 0), 30)),
            p_policy.max_retry)
    end
$$;

-- The lead lifecycle. A lead enters as fetch_pending (Meta: answers not fetched yet), fetched
-- (answers known) or booked (a Calendly booking with no earlier lead); the transitions below are
-- the only status changes leads_guard_status lets through.
create table public.lead_statuses (
    status text primary key,
    meaning text not null
);

insert into public.lead_statuses (status, meaning) values
    ('fetch_pending', 'Received from Meta; its answers are being fetched from the Graph API.'),
    ('fetched', 'Answers known; no call queued (no valid phone, or calling is not set up).'),
    ('call_queued', 'A call is due (now, or at next_call_at).'),
    ('calling', 'The AI agent is on a call with the lead.'),
    ('called', 'The lead answered a call.'),
    ('voicemail', 'The last call reached voicemail.'),
    ('no_answer', 'The last call was not answered (busy, no answer, failed).'),
    ('booked', 'A meeting is booked.'),
    ('canceled', 'The booked meeting was canceled (not rescheduled).'),
    ('do_not_call', 'Never call this lead again.');

create table public.lead_status_transitions (
    from_status text not null references public.lead_statuses (status),
    to_status text not null references public.lead_statuses (status),
    primary key (from_status, to_status)
);

insert into public.lead_status_transitions (from_status, to_status)
select f, t from (values
    ('fetch_pending', array['fetched', 'call_queued', 'booked', 'do_not_call']),
    ('fetched', array['call_queued', 'booked', 'do_not_call']),
    -- call_queued -> called/voicemail/no_answer: the late outcome of an attempt whose start
    -- timed out (it may have gone through), after the lead was queued again.
    ('call_queued', array['calling', 'called', 'voicemail', 'no_answer', 'fetched', 'booked',
                          'do_not_call']),
    ('calling', array['called', 'voicemail', 'no_answer', 'call_queued', 'booked', 'do_not_call']),
    ('called', array['call_queued', 'booked', 'do_not_call']),
    ('voicemail', array['call_queued', 'booked', 'do_not_call']),
    ('no_answer', array['call_queued', 'booked', 'do_not_call']),
    ('booked', array['canceled', 'do_not_call']),
    ('canceled', array['booked', 'call_queued', 'do_not_call'])
) as allowed (f, targets), unnest(targets) as t;

comment on table public.lead_status_transitions is
    'The only status changes a lead may make (do_not_call is final); enforced by leads_guard_status.';

create table public.leads (
    id uuid primary key default gen_random_uuid(),
    source text not null
        constraint leads_source_known check (source in ('meta_lead_ads', 'calendly', 'manual')),
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
    status text not null references public.lead_statuses (status),
    fetch_attempts integer not null default 0,
    fetch_error_class public.failure_class,
    fetch_error_code text,
    fetch_error text,
    next_fetch_at timestamptz,
    submitted_at timestamptz,
    fetched_at timestamptz,
    fetch_claimed_at timestamptz,
    timezone text,
    call_attempts integer not null default 0,
    next_call_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint leads_meta_has_leadgen_id
        check (source <> 'meta_lead_ads' or meta_leadgen_id is not null)
);

comment on table public.leads is
    'One row per lead, whatever its source. A Meta lead is stored as fetch_pending the moment its webhook arrives and becomes fetched once its answers are read from the Graph API; lead_statuses lists every status.';
comment on column public.leads.answers is
    'Every answer of the form: field name -> value (a string, or a list for multi-value answers).';
comment on column public.leads.next_fetch_at is
    'When the sweep may (re)try the Graph fetch (while a fetch is claimed: when its lease ends); null = no automatic retry (see fetch_error).';
comment on column public.leads.timezone is
    'The lead''s time zone (from the phone number), for calling hours; null = CALL_DEFAULT_TIMEZONE.';
comment on column public.leads.next_call_at is
    'When the lead''s next call is due (status call_queued); null = no call planned.';
comment on column public.leads.fetch_claimed_at is
    'When the Graph fetch in flight was claimed; null when none is.';

create index leads_fetch_due on public.leads (next_fetch_at) where status = 'fetch_pending';
create index leads_call_due on public.leads (next_call_at) where status = 'call_queued';
create index leads_email on public.leads (lower(email)) where email is not null;
create index leads_phone on public.leads (phone) where phone is not null;
create index leads_created_at on public.leads (created_at desc);

create function public.touch_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
    new.updated_at := now();
    return new;
end $$;

create trigger leads_touch_updated_at before update on public.leads
    for each row execute function public.touch_updated_at();

-- Refuse a status change that lead_status_transitions does not list (SQLSTATE 23514: the API
-- answers 400, the transaction writes nothing).
create function public.leads_guard_status() returns trigger
language plpgsql set search_path = '' as $$
begin
    if new.status is distinct from old.status and not exists (
        select from public.lead_status_transitions t
        where t.from_status = old.status and t.to_status = new.status
    ) then
        raise exception 'lead % cannot go from % to %', old.id, old.status, new.status
            using errcode = '23514',
                  hint = 'public.lead_status_transitions lists the allowed status changes.';
    end if;
    return new;
end $$;

create trigger leads_guard_status before update of status on public.leads
    for each row execute function public.leads_guard_status();

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
    duration_ms integer,
    -- Refused requests are counted, not listed: one row per (provider, event, error_code, minute).
    occurrences integer not null default 1,
    bucket text constraint integration_logs_bucket unique
);

comment on table public.integration_logs is
    'What happened, for the operator: message says what to do when status is error or rejected.';
comment on column public.integration_logs.occurrences is
    'How many refused requests this row stands for (log_refused): strangers cannot grow the table by sending more.';

create index integration_logs_provider_status_latest
    on public.integration_logs (provider, status, created_at desc);
create index integration_logs_latest on public.integration_logs (created_at desc);
create index integration_logs_lead on public.integration_logs (lead_id) where lead_id is not null;
create index integration_logs_external_id on public.integration_logs (external_id)
    where external_id is not null;

alter table public.lead_statuses enable row level security;
alter table public.lead_status_transitions enable row level security;
alter table public.leads enable row level security;
alter table public.webhook_events enable row level security;
alter table public.integration_logs enable row level security;

revoke all on public.lead_statuses, public.lead_status_transitions, public.leads,
    public.webhook_events, public.integration_logs
    from public, anon, authenticated;
grant all on public.leads, public.webhook_events, public.integration_logs to service_role;
grant select on public.lead_statuses, public.lead_status_transitions to service_role;
revoke all on function public.touch_updated_at() from public, anon, authenticated;
revoke all on function public.leads_guard_status() from public, anon, authenticated;
revoke all on function public.failure_class_of(text) from public, anon, authenticated;
revoke all on function public.uuid_or_null(text) from public, anon, authenticated;
revoke all on function public.int_or_null(text) from public, anon, authenticated;
grant execute on function public.uuid_or_null(text) to service_role;
grant execute on function public.int_or_null(text) to service_role;
revoke all on function public.queue_lease_until(public.queue_policy)
    from public, anon, authenticated;
revoke all on function public.queue_retry_at(public.queue_policy, public.failure_class, integer)
    from public, anon, authenticated;
grant execute on function public.failure_class_of(text) to service_role;
grant execute on function public.queue_lease_until(public.queue_policy) to service_role;
grant execute on function public.queue_retry_at(public.queue_policy, public.failure_class, integer)
    to service_role;

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

-- log_refused: a refused request (bad signature, unknown route, missing setting …), counted in
-- one row per provider, event, error code and minute, so that whatever strangers send, the table
-- grows by a bounded number of rows a minute. The row keeps the first request's time, the count,
-- the last message and the last few trace ids; each request's own line is in the function's log.
create function public.log_refused(
    p_provider text,
    p_event text,
    p_status text,
    p_error_code text,
    p_message text,
    p_details jsonb default '{}'::jsonb,
    p_trace_id text default null
) returns bigint
language plpgsql
set search_path = ''
as $$
declare
    v_minute timestamptz := date_trunc('minute', now());
    v_code text := left(coalesce(p_error_code, 'unknown'), 80);
    v_trace jsonb := case when p_trace_id is null then '[]'::jsonb
                          else jsonb_build_array(left(p_trace_id, 64)) end;
    v_id bigint;
begin
    insert into public.integration_logs as g
        (provider, event, status, error_code, message, details, occurrences, bucket)
    values (
        left(p_provider, 40), left(p_event, 80), p_status, v_code,
        '1 request refused with ' || v_code || ' in the minute from '
            || to_char(v_minute at time zone 'UTC', 'HH24:MI') || ' UTC: ' || left(p_message, 500),
        coalesce(p_details, '{}'::jsonb) || jsonb_build_object('trace_ids', v_trace),
        1,
        concat_ws('|', left(p_provider, 40), left(p_event, 80), v_code,
                  to_char(v_minute at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI')))
    on conflict on constraint integration_logs_bucket do update set
        occurrences = g.occurrences + 1,
        message = (g.occurrences + 1) || ' requests refused with ' || v_code
            || ' in the minute from ' || to_char(v_minute at time zone 'UTC', 'HH24:MI')
            || ' UTC; the last: ' || left(p_message, 500),
        -- The last 10 trace ids, newest last.
        details = coalesce(p_details, '{}'::jsonb) || jsonb_build_object('trace_ids', (
            select coalesce(jsonb_agg(t.value order by t.n), '[]'::jsonb)
            from (
                select value, n from jsonb_array_elements(
                    coalesce(g.details -> 'trace_ids', '[]'::jsonb) || v_trace
                ) with ordinality as a (value, n)
                order by n desc limit 10
            ) t))
    returning g.id into v_id;
    return v_id;
end
$$;

revoke all on function public.log_refused(text, text, text, text, text, jsonb, text)
    from public, anon, authenticated;
grant execute on function public.log_refused(text, text, text, text, text, jsonb, text)
    to service_role;

revoke all on function public.log_event(text, text, text, text, text, uuid, text, jsonb, integer)
    from public, anon, authenticated;
grant execute on function public.log_event(text, text, text, text, text, uuid, text, jsonb, integer)
    to service_role;
