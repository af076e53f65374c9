-- The call ledger: one bad attempt never stops the queue.
--
-- A call that failed for a reason that is not the lead's (an ElevenLabs outage, a throttle, a
-- missing setting, the key, credits) gives its attempt back (call_started), so the next claim
-- numbers its call as the same attempt. With one unique (lead_id, attempt) that insert failed
-- with 23505 for that lead for ever, and since the sweep claimed every due lead in one loop, in
-- one transaction, every sweep failed. Now:
--
-- - calls.counted says whether a call used one of the lead's attempts; an attempt is unique only
--   among counted calls, so a given-back call stays in the ledger as a row of its own;
-- - the sweep claims each lead in a subtransaction of its own: a lead whose claim fails costs
--   only itself (a log row, and it waits CALL_WAIT_FAILED_MINUTES before the sweep tries it
--   again, so it cannot hold the head of the queue), the other leads are placed;
-- - every number comes from p_rules (call_rule raises 22023 naming a missing one): the defaults
--   live only in place_call's settings.

alter table public.calls add column counted boolean not null default true;

comment on column public.calls.counted is
    'Whether the call used one of the lead''s attempts (CALL_MAX_ATTEMPTS). false: it failed for a reason that is not the lead''s (an outage, a throttle, a setting, the key, credits) and the attempt was given back; the next call has the same attempt number.';

-- Calls whose attempt was given back before this column existed: call_started logged each one's
-- class (call.failed, details.error_class).
update public.calls c set counted = false
from public.integration_logs i
where c.status = 'failed'
  and i.provider = 'elevenlabs' and i.event = 'call.failed'
  and i.details ->> 'call_id' = c.id::text
  and i.details ->> 'error_class'
      in ('transient', 'throttled', 'config', 'auth', 'permission', 'quota');

alter table public.calls drop constraint calls_attempt_once;
create unique index calls_attempt_once on public.calls (lead_id, attempt) where counted;

-- One call rule from p_rules, by key or dotted path ('wait_minutes.busy'); raises 22023 when it
-- is missing (place_call passes every rule from its settings: SQL keeps no defaults of its own).
create function public.call_rule(p_rules jsonb, p_key text) returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_value text := p_rules #>> string_to_array(p_key, '.');
begin
    if v_value is null then
        raise exception 'call rule % is missing from p_rules', p_key
            using errcode = '22023',
                  hint = 'place_call builds p_rules from its settings (calling.rules).';
    end if;
    return v_value;
end
$$;

-- When to try again after an outcome (null: no more attempts).
create or replace function public.call_retry_at(p_outcome text, p_attempts integer, p_rules jsonb)
returns timestamptz
language sql
stable
set search_path = ''
as $$
    select case
        when p_attempts >= public.call_rule(p_rules, 'max_attempts')::integer then null
        else now() + make_interval(mins => public.call_rule(p_rules, 'wait_minutes.' || case
                when p_outcome in ('voicemail', 'busy', 'no_answer') then p_outcome
                else 'failed' end)::integer)
    end
$$;

-- call_claim: claim the lead's call if the rules allow it now (unchanged decisions; see
-- 20261127000400_calls.sql), its numbers read with call_rule.
create or replace function public.call_claim(p_lead_id uuid, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads;
    v_tz text;
    v_local time;
    v_start time := public.call_rule(p_rules, 'hours_start')::time;
    v_end time := public.call_rule(p_rules, 'hours_end')::time;
    v_max integer := public.call_rule(p_rules, 'max_attempts')::integer;
    v_default_tz text := public.call_rule(p_rules, 'default_timezone');
    v_next timestamptz;
    v_call_id uuid;
begin
    select * into v_lead from public.leads l where l.id = p_lead_id for update;
    if not found then
        return jsonb_build_object('decision', 'not_found', 'lead_id', p_lead_id);
    end if;
    if v_lead.status in ('booked', 'do_not_call') then
        return jsonb_build_object('decision', v_lead.status, 'lead_id', p_lead_id);
    end if;
    if v_lead.status = 'calling' or exists (
        select from public.calls c where c.lead_id = p_lead_id and c.status = 'placing'
    ) then
        return jsonb_build_object('decision', 'in_progress', 'lead_id', p_lead_id);
    end if;
    if v_lead.status <> 'call_queued' then
        return jsonb_build_object('decision', 'not_queued', 'lead_id', p_lead_id,
                                  'status', v_lead.status);
    end if;
    if v_lead.phone is null then
        update public.leads l set status = 'fetched', next_call_at = null where l.id = p_lead_id;
        return jsonb_build_object('decision', 'no_phone', 'lead_id', p_lead_id);
    end if;
    if v_lead.call_attempts >= v_max then
        update public.leads l set status = 'no_answer', next_call_at = null
        where l.id = p_lead_id;
        return jsonb_build_object('decision', 'max_attempts', 'lead_id', p_lead_id,
                                  'attempts', v_lead.call_attempts);
    end if;
    if v_lead.next_call_at is null or v_lead.next_call_at > now() then
        return jsonb_build_object('decision', 'not_due', 'lead_id', p_lead_id,
                                  'next_call_at', v_lead.next_call_at);
    end if;
    v_tz := public.call_time_zone(v_lead.timezone, v_default_tz);
    v_local := (now() at time zone v_tz)::time;
    if not (v_local >= v_start and v_local < v_end) then
        v_next := public.call_next_window(v_tz, v_start, v_end);
        update public.leads l set next_call_at = v_next where l.id = p_lead_id;
        perform public.log_event(
            'elevenlabs', 'call.scheduled', 'ok',
            'Outside calling hours (' || to_char(v_start, 'HH24:MI') || '–'
                || to_char(v_end, 'HH24:MI') || ' in ' || v_tz || '); the call is scheduled for '
                || to_char(v_next at time zone v_tz, 'YYYY-MM-DD HH24:MI') || ' there.',
            null, p_lead_id, null, jsonb_build_object('next_call_at', v_next, 'timezone', v_tz));
        return jsonb_build_object('decision', 'outside_hours', 'lead_id', p_lead_id,
                                  'next_call_at', v_next, 'timezone', v_tz);
    end if;

    insert into public.calls (lead_id, attempt, to_number)
    values (p_lead_id, v_lead.call_attempts + 1, v_lead.phone)
    returning id into v_call_id;
    update public.leads l set status = 'calling', call_attempts = l.call_attempts + 1,
                              next_call_at = null
    where l.id = p_lead_id;
    return jsonb_build_object(
        'decision', 'place', 'lead_id', p_lead_id, 'call_id', v_call_id,
        'attempt', v_lead.call_attempts + 1, 'to_number', v_lead.phone,
        'full_name', v_lead.full_name);
end
$$;

-- call_started: as before (20261127000400_calls.sql), and a given-back attempt's call is marked
-- counted = false, so the next claim's call (the same attempt number) does not collide with it.
create or replace function public.call_started(p_call_id uuid, p_result jsonb, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_call public.calls;
    v_class text := p_result ->> 'error_class';
    v_given_back boolean := v_class in ('transient', 'throttled', 'config', 'auth',
                                        'permission', 'quota');
    v_settled jsonb;
begin
    select * into v_call from public.calls c where c.id = p_call_id for update;
    if not found or v_call.status <> 'placing' then
        return jsonb_build_object('recorded', false);
    end if;
    if (p_result ->> 'ok')::boolean is true then
        update public.calls c set
            status = 'initiated', started_at = now(),
            conversation_id = p_result ->> 'conversation_id',
            call_sid = p_result ->> 'call_sid',
            message = left(p_result ->> 'message', 500)
        where c.id = p_call_id;
        perform public.log_event(
            'elevenlabs', 'call.initiated', 'ok',
            'Call ' || v_call.attempt || ' placed through ElevenLabs (conversation '
                || coalesce(p_result ->> 'conversation_id', '?') || ').',
            p_result ->> 'conversation_id', v_call.lead_id, null,
            jsonb_strip_nulls(jsonb_build_object('call_id', p_call_id, 'attempt', v_call.attempt,
                                                 'call_sid', p_result ->> 'call_sid')));
        return jsonb_build_object('recorded', true, 'lead_status', 'calling');
    end if;

    update public.calls c set
        status = case when v_class = 'ambiguous' then 'unknown' else 'failed' end,
        outcome = case when v_class = 'ambiguous' then 'unknown' else 'failed' end,
        counted = not coalesce(v_given_back, false),
        ended_at = now(),
        error_code = left(p_result ->> 'error_code', 100),
        message = left(p_result ->> 'message', 2000)
    where c.id = p_call_id;
    if v_given_back then
        -- Nothing happened on the line, and the lead is not the problem (an outage, a setting,
        -- the key, credits): give the attempt back, retry after the failed wait.
        update public.leads l set call_attempts = l.call_attempts - 1 where l.id = v_call.lead_id;
    end if;
    v_settled := public.call_settle_lead(
        v_call.lead_id, case when v_class = 'ambiguous' then 'unknown' else 'failed' end, p_rules);
    update public.calls c set next_attempt_at = (v_settled ->> 'next_call_at')::timestamptz
    where c.id = p_call_id;
    perform public.log_event(
        'elevenlabs', 'call.failed', 'error',
        left(p_result ->> 'message', 2000) || public.call_next_text(v_settled),
        null, v_call.lead_id, left(p_result ->> 'error_code', 100),
        coalesce(p_result -> 'details', '{}'::jsonb) || jsonb_build_object(
            'call_id', p_call_id, 'attempt', v_call.attempt, 'error_class', v_class,
            'attempt_given_back', coalesce(v_given_back, false)));
    return jsonb_build_object('recorded', true) || v_settled;
end
$$;

-- call_claim_due: claim up to p_limit due calls for the sweep (SKIP LOCKED: never a lead that
-- another sweep or the immediate path holds). Each claim, and each recovery of a claim whose
-- answer was never recorded, runs in a subtransaction of its own: one that fails is logged
-- (call.claim_failed, with its SQLSTATE) and its lead waits wait_minutes.failed, and the others
-- go on. Returns {claimed: [place decisions], failed: n, remaining}.
create or replace function public.call_claim_due(p_limit integer, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_id uuid;
    v_call public.calls;
    v_decision jsonb;
    v_claimed jsonb := '[]'::jsonb;
    v_failed integer := 0;
    v_wait interval := make_interval(
        mins => public.call_rule(p_rules, 'wait_minutes.failed')::integer);
    v_state text;
    v_error text;
begin
    -- Every rule is checked once here, so a missing one fails the sweep by name rather than
    -- each lead alone.
    perform public.call_rule(p_rules, k)
    from unnest(array['max_attempts', 'hours_start', 'hours_end', 'default_timezone',
                      'wait_minutes.voicemail', 'wait_minutes.no_answer', 'wait_minutes.busy',
                      'wait_minutes.failed']) k;

    -- A claim whose outcome place_call never recorded (its instance died mid-request): it may
    -- have been placed, so it counts, and the lead waits the retry wait before the next one.
    for v_call in
        select * from public.calls c
        where c.status = 'placing' and c.requested_at < now() - interval '2 minutes'
        for update skip locked
    loop
        begin
            perform public.call_started(v_call.id, jsonb_build_object(
                'ok', false, 'error_class', 'ambiguous', 'error_code', 'call_start_unrecorded',
                'message', 'place_call claimed this call but never recorded what ElevenLabs '
                    || 'answered (the instance stopped mid-request?); it may have been placed.'),
                p_rules);
        exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_error = message_text;
            v_failed := v_failed + 1;
            perform public.log_event(
                'elevenlabs', 'call.claim_failed', 'error',
                'Could not record that call ' || v_call.attempt || ' was never answered ('
                    || v_state || ': ' || left(v_error, 300) || '); the next sweep tries again. '
                    || 'Other calls are not affected.',
                null, v_call.lead_id, 'call_claim_failed',
                jsonb_build_object('call_id', v_call.id, 'sqlstate', v_state));
        end;
    end loop;

    for v_id in
        select l.id from public.leads l
        where l.status = 'call_queued' and l.next_call_at <= now()
        order by l.next_call_at
        limit greatest(p_limit, 0)
        for update skip locked
    loop
        begin
            v_decision := public.call_claim(v_id, p_rules);
        exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_error = message_text;
            v_failed := v_failed + 1;
            v_decision := null;
            -- Behind the rest of the queue, so a lead that cannot be claimed never holds it.
            update public.leads l set next_call_at = now() + v_wait where l.id = v_id;
            perform public.log_event(
                'elevenlabs', 'call.claim_failed', 'error',
                'Could not claim the lead''s call (' || v_state || ': ' || left(v_error, 300)
                    || '); the sweep tries again at '
                    || to_char((now() + v_wait) at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC. Other leads are not affected; `make logs LEAD=<id>` shows its trail.',
                null, v_id, 'call_claim_failed', jsonb_build_object('sqlstate', v_state));
        end;
        if v_decision ->> 'decision' = 'place' then
            v_claimed := v_claimed || jsonb_build_array(v_decision);
        end if;
    end loop;
    return jsonb_build_object(
        'claimed', v_claimed,
        'failed', v_failed,
        'remaining', (select count(*) from public.leads l
                      where l.status = 'call_queued' and l.next_call_at <= now()));
end
$$;

revoke all on function public.call_rule(jsonb, text) from public, anon, authenticated;
grant execute on function public.call_rule(jsonb, text) to service_role;
