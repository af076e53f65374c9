-- Outcomes back to Meta (issue 17, part 1): Meta's Conversions API for CRM ("Conversion Leads")
-- learns which leads become customers when the CRM sends each lead's stages back. This is the
-- outbox of those stage events: one row per lead and stage, written by triggers in the same
-- transaction as the stage change itself, sent by meta_webhook's sweep in batches.
--
-- Stages (their event_name is META_STAGE_<STAGE>, read when sent):
--   received   a Meta lead is stored (webhook or backfill); event_time = when we stored it
--   called     the lead answered a call (status into called)
--   booked     a Calendly booking is tied to the lead (an appointment row is created)
--   attended   inferred by the sweep: the meeting ended META_ATTENDED_GRACE_HOURS ago, still
--              active and not marked a no-show (Calendly sends no "attended"); event_time = end
--   no_show    the booking was marked a no-show in Calendly
-- Only leads with a leadgen id (Meta's lead_id) have stages: a Calendly-only lead has none.
-- Each is sent once (event_id is Meta's deduplication key, so a batch sent again after a lost
-- answer or a crashed sweep is deduplicated by Meta), in order within a lead (a stage waits
-- while an earlier stage of its lead is waiting for a retry or in flight), and an event older
-- than Meta's 7 days is parked with a log row instead of being sent.

create table public.meta_conversions (
    id bigint generated always as identity primary key,
    lead_id uuid not null references public.leads (id) on delete cascade,
    leadgen_id text not null,
    stage text not null
        constraint meta_conversions_stage_known
        check (stage in ('received', 'called', 'booked', 'attended', 'no_show')),
    rank smallint not null,
    event_time timestamptz not null,
    event_id text not null constraint meta_conversions_event_id_once unique,
    status text not null default 'pending'
        constraint meta_conversions_status_known
        check (status in ('pending', 'sending', 'sent', 'parked')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    lease_until timestamptz,
    last_error text constraint meta_conversions_error_bounded check (length(last_error) <= 2000),
    sent_at timestamptz,
    parked_at timestamptz,
    -- Events Manager's Test events code this lead's stages go to (`make send-test-event
    -- ARGS="--test-event-code …"`), else META_TEST_EVENT_CODE, else none.
    test_event_code text constraint meta_conversions_code_bounded check (length(test_event_code) <= 64),
    created_at timestamptz not null default now(),
    constraint meta_conversions_once unique (lead_id, stage)
);

-- Test leads the operator sent (`make send-test-event --test-event-code`): their stages go to
-- Test events, marked before the lead exists so that no stage of it is ever sent live.
create table public.meta_test_leads (
    leadgen_id text primary key constraint meta_test_leads_id_bounded check (length(leadgen_id) <= 64),
    test_event_code text not null
        constraint meta_test_leads_code_bounded check (length(test_event_code) between 1 and 64),
    created_at timestamptz not null default now()
);

alter table public.meta_test_leads enable row level security;
revoke all on public.meta_test_leads from public, anon, authenticated;
grant select, insert, update, delete on public.meta_test_leads to service_role;

comment on table public.meta_conversions is
    'The outbox of lead stages sent to Meta''s Conversions API (Conversion Leads): one row per lead and stage, written in the stage change''s transaction, sent once by meta_webhook''s sweep.';

create index meta_conversions_due on public.meta_conversions (next_attempt_at, rank)
    where status in ('pending', 'sending');
-- What the sweep looks for every minute, by index: stages too old to send, meetings just ended.
create index meta_conversions_unsent_age on public.meta_conversions (event_time)
    where status in ('pending', 'sending');
create index appointments_ended on public.appointments (end_time)
    where status = 'active' and not no_show;

alter table public.meta_conversions enable row level security;
revoke all on public.meta_conversions from public, anon, authenticated;
grant select, insert, update, delete on public.meta_conversions to service_role;

create function public.meta_conversion_add(p_lead_id uuid, p_stage text, p_at timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_lead record;
    v_rank smallint;
    v_code text;
begin
    select l.id, l.meta_leadgen_id, l.created_at into v_lead
    from public.leads l where l.id = p_lead_id;
    if v_lead.meta_leadgen_id is null then
        return;  -- not a Meta lead: Meta has no lead_id to match it to
    end if;
    v_code := (select t.test_event_code from public.meta_test_leads t
               where t.leadgen_id = v_lead.meta_leadgen_id);
    -- Every stage after the first comes after it: the first is written if it is missing (a lead
    -- stored before this outbox existed).
    insert into public.meta_conversions (lead_id, leadgen_id, stage, rank, event_time, event_id,
                                         test_event_code)
    values (v_lead.id, v_lead.meta_leadgen_id, 'received', 1, v_lead.created_at,
            'stl-' || v_lead.meta_leadgen_id || '-received', v_code)
    on conflict do nothing;  -- whichever row is there: a stage change never fails for it
    if p_stage = 'received' then
        return;
    end if;
    v_rank := case p_stage when 'called' then 2 when 'booked' then 3 else 4 end;
    insert into public.meta_conversions (lead_id, leadgen_id, stage, rank, event_time, event_id,
                                         test_event_code)
    values (v_lead.id, v_lead.meta_leadgen_id, p_stage, v_rank,
            greatest(coalesce(p_at, now()), v_lead.created_at),
            'stl-' || v_lead.meta_leadgen_id || '-' || p_stage, v_code)
    on conflict do nothing;  -- whichever row is there: a stage change never fails for it
end
$$;

create function public.meta_conversions_from_leads() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.meta_leadgen_id is null then
        return null;
    end if;
    if tg_op = 'INSERT' then
        perform public.meta_conversion_add(new.id, 'received', new.created_at);
    elsif new.status = 'called' and old.status is distinct from 'called' then
        perform public.meta_conversion_add(new.id, 'called', now());
    end if;
    return null;
end
$$;

create trigger leads_meta_conversions
after insert or update of status on public.leads
for each row execute function public.meta_conversions_from_leads();

create function public.meta_conversions_from_appointments() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_op = 'INSERT' and new.status = 'active' then
        perform public.meta_conversion_add(new.lead_id, 'booked', new.created_at);
    elsif tg_op = 'UPDATE' and new.no_show and not old.no_show then
        perform public.meta_conversion_add(new.lead_id, 'no_show', coalesce(new.no_show_at, now()));
    end if;
    return null;
end
$$;

create trigger appointments_meta_conversions
after insert or update of no_show on public.appointments
for each row execute function public.meta_conversions_from_appointments();

-- The sweep's work, in one round trip: infer "attended", park what is too old to send, claim a
-- batch (rows locked, SKIP LOCKED, a lease: two sweeps never send the same event at once; a
-- crashed sweep's lease runs out and the batch is sent again, which Meta deduplicates).
create function public.meta_conversions_claim(
    p_limit integer, p_lease_seconds integer, p_attended_grace_hours integer
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_now timestamptz := now();
    v_attended integer;
    v_parked integer;
    v_claimed jsonb;
begin
    -- One claim at a time: a claim that is not yet committed must hold back the later stages of
    -- its leads from a concurrent sweep (which would see its rows as still pending).
    perform pg_advisory_xact_lock(hashtext('public.meta_conversions_claim'));
    with ended as (
        select a.lead_id, a.end_time
        from public.appointments a
        join public.leads l on l.id = a.lead_id and l.meta_leadgen_id is not null
        where a.status = 'active' and not a.no_show
          and a.end_time < v_now - make_interval(hours => p_attended_grace_hours)
          and a.end_time > v_now - interval '7 days'
          and not exists (select 1 from public.meta_conversions c
                          where c.lead_id = a.lead_id and c.stage in ('attended', 'no_show'))
        order by a.end_time
        limit 500
    )
    select count(*) into v_attended
    from ended, lateral public.meta_conversion_add(ended.lead_id, 'attended', ended.end_time);

    with expired as (
        update public.meta_conversions c
        set status = 'parked', lease_until = null, parked_at = now(),
            last_error = 'older than 7 days: Meta accepts no event older than that'
        where c.id in (select e.id from public.meta_conversions e
                       where e.status in ('pending', 'sending')
                         and e.event_time < v_now - interval '7 days'
                       order by e.id limit 500
                       for update skip locked)
        returning c.lead_id, c.leadgen_id, c.stage, c.event_time
    )
    select count(public.log_event(
        'meta', 'conversion.parked', 'error',
        format('The %s stage of lead %s was never sent to Meta and is now older than 7 days, '
               'which Meta refuses: it is parked. If stages stay unsent, check META_DATASET_ID '
               'and its token with `make doctor`.', x.stage, x.leadgen_id),
        x.leadgen_id, x.lead_id, 'conversion_expired',
        jsonb_build_object('stage', x.stage, 'event_time', x.event_time)))
    into v_parked
    from expired x;

    with ready as (
        select c.id from public.meta_conversions c
        where ((c.status = 'pending' and c.next_attempt_at <= v_now)
               or (c.status = 'sending' and c.lease_until < v_now))
          and not exists (
              select 1 from public.meta_conversions e
              where e.lead_id = c.lead_id and e.rank < c.rank
                and ((e.status = 'sending' and e.lease_until >= v_now)
                     or (e.status = 'pending' and e.next_attempt_at > v_now)))
        order by c.rank, c.next_attempt_at, c.id
        limit greatest(p_limit, 0)
        for update skip locked
    ), claimed as (
        update public.meta_conversions c
        set status = 'sending', attempts = c.attempts + 1,
            lease_until = v_now + make_interval(secs => p_lease_seconds)
        from ready where c.id = ready.id
        returning c.id, c.lead_id, c.leadgen_id, c.stage, c.rank, c.event_time, c.event_id,
                  c.attempts, c.test_event_code
    )
    select coalesce(jsonb_agg(jsonb_build_object(
               'id', id, 'lead_id', lead_id, 'leadgen_id', leadgen_id, 'stage', stage,
               'event_time', extract(epoch from event_time)::bigint, 'event_id', event_id,
               'attempts', attempts, 'test_event_code', test_event_code)
               order by lead_id, rank), '[]'::jsonb)
    into v_claimed
    from claimed;

    return jsonb_build_object('claimed', v_claimed, 'attended', v_attended, 'parked', v_parked);
end
$$;

-- What the sweep learnt: p_sent ({id, attempts}) were accepted; each of p_failed ({id, attempts,
-- error, code, park}); a row claimed again since (its attempts moved on) is left to that claim;
-- waits for a retry (1, 2, 4 … 64 minutes) or, with park (Meta refused that very event), is
-- parked with a log row naming it.
create function public.meta_conversions_done(p_sent jsonb, p_failed jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_sent integer;
    v_retry integer;
    v_parked integer;
begin
    update public.meta_conversions c
    set status = 'sent', sent_at = now(), lease_until = null, last_error = null
    from jsonb_array_elements(coalesce(p_sent, '[]'::jsonb)) x
    where c.id = (x ->> 'id')::bigint and c.attempts = (x ->> 'attempts')::integer
      and c.status = 'sending';
    get diagnostics v_sent = row_count;

    with failed as (
        select (f ->> 'id')::bigint as id, (f ->> 'attempts')::integer as attempts,
               left(coalesce(f ->> 'error', ''), 2000) as error,
               left(coalesce(f ->> 'code', ''), 64) as code,
               coalesce((f ->> 'park')::boolean, false) as park
        from jsonb_array_elements(coalesce(p_failed, '[]'::jsonb)) f
    ), retried as (
        update public.meta_conversions c
        set status = 'pending', lease_until = null, last_error = failed.error,
            next_attempt_at = now() + interval '1 minute'
                * power(2, least(greatest(c.attempts - 1, 0), 6))
        from failed
        where c.id = failed.id and c.attempts = failed.attempts and c.status = 'sending'
          and not failed.park
        returning c.id
    )
    select count(*) into v_retry from retried;
    if v_retry > 0 then
        -- One row per sweep that could not send, naming the first reason.
        perform public.log_event(
            'meta', 'conversion.failed', 'error',
            format('%s lead stage(s) could not be sent to Meta and are retried with backoff: %s. '
                   'Check META_DATASET_ID and its token (META_CONVERSIONS_TOKEN, else '
                   'META_ACCESS_TOKEN) with `make doctor`.', v_retry,
                   (select left(f ->> 'error', 500) from jsonb_array_elements(p_failed) f
                    where not coalesce((f ->> 'park')::boolean, false) limit 1)),
            null, null,
            (select left(f ->> 'code', 64) from jsonb_array_elements(p_failed) f
             where not coalesce((f ->> 'park')::boolean, false) limit 1),
            jsonb_build_object('events', v_retry));
    end if;

    with failed as (
        select (f ->> 'id')::bigint as id, (f ->> 'attempts')::integer as attempts,
               left(coalesce(f ->> 'error', ''), 2000) as error,
               left(coalesce(f ->> 'code', ''), 64) as code
        from jsonb_array_elements(coalesce(p_failed, '[]'::jsonb)) f
        where coalesce((f ->> 'park')::boolean, false)
    ), parked as (
        update public.meta_conversions c
        set status = 'parked', lease_until = null, parked_at = now(), last_error = failed.error
        from failed
        where c.id = failed.id and c.attempts = failed.attempts and c.status = 'sending'
        returning c.lead_id, c.leadgen_id, c.stage, failed.error, failed.code
    )
    select count(public.log_event(
        'meta', 'conversion.parked', 'error',
        format('Meta refused the %s stage of lead %s, so it is parked (the rest of its batch '
               'was sent): %s', p.stage, p.leadgen_id, p.error),
        p.leadgen_id, p.lead_id, nullif(p.code, ''), jsonb_build_object('stage', p.stage)))
    into v_parked
    from parked p;

    return jsonb_build_object('sent', v_sent, 'retry', v_retry, 'parked', v_parked);
end
$$;

-- With META_DATASET_ID unset nothing is sent: the stages Meta would refuse anyway (older than 7
-- days) are deleted, quietly and a batch at a time, so the outbox stays a week deep.
create function public.meta_conversions_drop_expired(p_limit integer)
returns integer
language sql
set search_path = ''
as $$
    with gone as (
        delete from public.meta_conversions c
        where c.id in (select e.id from public.meta_conversions e
                       where e.status = 'pending' and e.event_time < now() - interval '7 days'
                       order by e.id limit greatest(p_limit, 0))
        returning 1
    )
    select count(*)::integer from gone
$$;

-- For `make doctor` and `make status`: what waits, since when, and the last upload.
create function public.meta_conversions_summary()
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'waiting', count(*) filter (where c.status in ('pending', 'sending')),
        'oldest_waiting', min(c.created_at) filter (where c.status in ('pending', 'sending')),
        'last_sent_at', max(c.sent_at),
        'sent_24h', count(*) filter (where c.sent_at > now() - interval '24 hours'),
        'parked_24h', count(*) filter (where c.status = 'parked'
                                        and c.parked_at > now() - interval '24 hours'))
    from public.meta_conversions c
$$;

revoke all on function public.meta_conversions_summary(),
    public.meta_conversions_drop_expired(integer) from public, anon, authenticated;
grant execute on function public.meta_conversions_summary(),
    public.meta_conversions_drop_expired(integer) to service_role;

revoke all on function public.meta_conversion_add(uuid, text, timestamptz),
    public.meta_conversions_from_leads(), public.meta_conversions_from_appointments(),
    public.meta_conversions_claim(integer, integer, integer),
    public.meta_conversions_done(jsonb, jsonb)
    from public, anon, authenticated;
-- The triggers run as the role that changed the row (service_role): it may add a stage.
grant execute on function public.meta_conversion_add(uuid, text, timestamptz),
    public.meta_conversions_claim(integer, integer, integer),
    public.meta_conversions_done(jsonb, jsonb)
    to service_role;

-- Leads stored before this outbox: their first stage is not sent (it would be older than Meta's
-- 7 days for most, and a lead's stages start with its first); later stages write it.
