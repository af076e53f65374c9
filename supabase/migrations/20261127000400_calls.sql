-- Outbound calls through ElevenLabs: the call rules.
--
-- A lead with a phone is queued (status call_queued, next_call_at) when its answers are stored.
-- place_call claims it (call_claim, or call_claim_due for the sweep: row locks, SKIP LOCKED), so
-- the immediate path and the sweep never call a lead twice; call_started records what ElevenLabs
-- answered; call_record_outcome records the post-call webhook and plans the next attempt.
--
-- The rules' numbers come from place_call's settings as p_rules:
--   {max_attempts, hours_start 'HH:MM', hours_end 'HH:MM', default_timezone,
--    wait_minutes: {voicemail, no_answer, busy, failed}}

create table public.calls (
    id uuid primary key default gen_random_uuid(),
    lead_id uuid not null references public.leads (id) on delete cascade,
    attempt integer not null,
    status text not null default 'placing'
        constraint calls_status_known
        check (status in ('placing', 'initiated', 'completed', 'failed', 'unknown')),
    to_number text not null constraint calls_to_number_e164 check (to_number ~ '^\+[1-9][0-9]{6,14}$'),
    conversation_id text constraint calls_conversation_once unique,
    call_sid text,
    requested_at timestamptz not null default now(),
    started_at timestamptz,
    ended_at timestamptz,
    duration_secs integer,
    outcome text constraint calls_outcome_known
        check (outcome in ('answered', 'voicemail', 'busy', 'no_answer', 'failed', 'unknown')),
    voicemail_missed boolean not null default false,
    termination_reason text,
    call_successful text,
    error_code text,
    message text,
    summary text,
    analysis jsonb,
    next_attempt_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint calls_attempt_once unique (lead_id, attempt)
);

comment on table public.calls is
    'One row per call attempt. status: placing (claimed, the request to ElevenLabs under way), initiated (ElevenLabs placed it), completed (the post-call webhook came), failed (it could not start), unknown (the request timed out: it may have gone through). outcome: what happened on the line.';

create index calls_lead on public.calls (lead_id, attempt desc);
-- The sweep looks for claims whose answer was never recorded on every run.
create index calls_placing on public.calls (requested_at) where status = 'placing';

create trigger calls_touch_updated_at before update on public.calls
    for each row execute function public.touch_updated_at();

alter table public.calls enable row level security;
revoke all on public.calls from public, anon, authenticated;
grant all on public.calls to service_role;

-- The start of the next calling window in p_timezone, from now (a lead outside calling hours is
-- scheduled for it, never dropped).
create function public.call_next_window(
    p_timezone text, p_start time, p_end time
) returns timestamptz
language sql
stable
set search_path = ''
as $$
    select case
        when (now() at time zone p_timezone)::time < p_start
            then ((now() at time zone p_timezone)::date + p_start) at time zone p_timezone
        else ((now() at time zone p_timezone)::date + 1 + p_start) at time zone p_timezone
    end
$$;

-- The lead's time zone if Postgres knows it, else the default, else UTC.
create function public.call_time_zone(p_timezone text, p_default text) returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_zone text;
begin
    foreach v_zone in array array[p_timezone, p_default] loop
        continue when v_zone is null;
        begin
            perform now() at time zone v_zone;
            return v_zone;
        exception when others then
            continue;
        end;
    end loop;
    return 'UTC';
end
$$;

-- call_claim: claim the lead's call if the rules allow it now. Returns {decision, …}:
--   place (call_id, attempt, to_number, full_name, lead_id), or why not: not_found, no_phone,
--   booked, do_not_call, in_progress, not_queued (status), max_attempts, not_due (next_call_at),
--   outside_hours (next_call_at: the next window).
create function public.call_claim(p_lead_id uuid, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads;
    v_tz text;
    v_local time;
    v_start time := coalesce(p_rules ->> 'hours_start', '09:00')::time;
    v_end time := coalesce(p_rules ->> 'hours_end', '20:00')::time;
    v_max integer := coalesce((p_rules ->> 'max_attempts')::integer, 3);
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
    v_tz := public.call_time_zone(v_lead.timezone, p_rules ->> 'default_timezone');
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

-- call_claim_due: claim up to p_limit due calls for the sweep (SKIP LOCKED: never a lead that
-- another sweep or the immediate path holds). Returns {claimed: [place decisions], remaining}.
create function public.call_claim_due(p_limit integer, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_id uuid;
    v_call public.calls;
    v_decision jsonb;
    v_claimed jsonb := '[]'::jsonb;
begin
    -- A claim whose outcome place_call never recorded (its instance died mid-request): it may
    -- have been placed, so it counts, and the lead waits the retry wait before the next one.
    for v_call in
        select * from public.calls c
        where c.status = 'placing' and c.requested_at < now() - interval '2 minutes'
        for update skip locked
    loop
        perform public.call_started(v_call.id, jsonb_build_object(
            'ok', false, 'error_class', 'ambiguous', 'error_code', 'call_start_unrecorded',
            'message', 'place_call claimed this call but never recorded what ElevenLabs '
                || 'answered (the instance stopped mid-request?); it may have been placed.'),
            p_rules);
    end loop;

    for v_id in
        select l.id from public.leads l
        where l.status = 'call_queued' and l.next_call_at <= now()
        order by l.next_call_at
        limit greatest(p_limit, 0)
        for update skip locked
    loop
        v_decision := public.call_claim(v_id, p_rules);
        if v_decision ->> 'decision' = 'place' then
            v_claimed := v_claimed || jsonb_build_array(v_decision);
        end if;
    end loop;
    return jsonb_build_object(
        'claimed', v_claimed,
        'remaining', (select count(*) from public.leads l
                      where l.status = 'call_queued' and l.next_call_at <= now()));
end
$$;

-- When to try again after an outcome (null: no more attempts).
create function public.call_retry_at(p_outcome text, p_attempts integer, p_rules jsonb)
returns timestamptz
language sql
stable
set search_path = ''
as $$
    select case
        when p_attempts >= coalesce((p_rules ->> 'max_attempts')::integer, 3) then null
        else now() + make_interval(mins => coalesce(
            (p_rules -> 'wait_minutes' ->> case p_outcome
                when 'voicemail' then 'voicemail'
                when 'busy' then 'busy'
                when 'no_answer' then 'no_answer'
                else 'failed' end)::integer, 30))
    end
$$;

-- Move a lead after a call, unless something else moved it meanwhile (a booking, an opt-out).
create function public.call_settle_lead(
    p_lead_id uuid, p_outcome text, p_rules jsonb
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads;
    v_next timestamptz;
    v_target text;
begin
    select * into v_lead from public.leads l where l.id = p_lead_id for update;
    if v_lead.status not in ('calling', 'call_queued') then
        return jsonb_build_object('lead_status', v_lead.status);
    end if;
    if p_outcome = 'answered' then
        v_target := 'called';
    else
        v_next := public.call_retry_at(p_outcome, v_lead.call_attempts, p_rules);
        v_target := case when v_next is not null then 'call_queued'
                         when p_outcome = 'voicemail' then 'voicemail'
                         else 'no_answer' end;
    end if;
    update public.leads l set status = v_target, next_call_at = v_next where l.id = p_lead_id;
    return jsonb_build_object('lead_status', v_target, 'next_call_at', v_next);
end
$$;

-- What comes next after a call, for the log: the next attempt's time, or that there is none
-- (from call_settle_lead's answer).
create function public.call_next_text(p_settled jsonb) returns text
language sql
immutable
set search_path = ''
as $$
    select case
        when p_settled ->> 'next_call_at' is not null then
            ' Next attempt at ' || to_char((p_settled ->> 'next_call_at')::timestamptz
                at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.'
        else ' No more attempts (lead ' || (p_settled ->> 'lead_status') || ').'
    end
$$;

-- call_started: what ElevenLabs answered to the outbound-call request.
--   p_result: {ok: true, conversation_id, call_sid, message}
--          or {ok: false, error_class, error_code, message, details}
-- A failure that is not the lead's (an outage, a throttle, a setting, the key, credits) does not
-- count as an attempt; ElevenLabs refusing the call (invalid) does, and so does a timeout
-- (ambiguous: it may have gone through), after which the lead is not called again before the
-- retry wait.
create function public.call_started(p_call_id uuid, p_result jsonb, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_call public.calls;
    v_class text := p_result ->> 'error_class';
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
        ended_at = now(),
        error_code = left(p_result ->> 'error_code', 100),
        message = left(p_result ->> 'message', 2000)
    where c.id = p_call_id;
    if v_class in ('transient', 'throttled', 'config', 'auth', 'permission', 'quota') then
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
            'call_id', p_call_id, 'attempt', v_call.attempt, 'error_class', v_class));
    return jsonb_build_object('recorded', true) || v_settled;
end
$$;

-- call_record_outcome: a post-call webhook, normalized by place_call.
--   p_event: {type, conversation_id, lead_id, outcome, status, started_at, duration_secs,
--             termination_reason, call_successful, summary, analysis, voicemail_missed,
--             greeting, phrase, message, payload}
-- Idempotent on conversation_id + type. Linked by conversation_id, else to the lead's latest
-- attempt without one (its start timed out). Returns {duplicate, call_id, lead_id, outcome,
-- lead_status, next_call_at}.
create function public.call_record_outcome(p_event jsonb, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_type text := p_event ->> 'type';
    v_conversation text := p_event ->> 'conversation_id';
    v_lead_id uuid := public.uuid_or_null(p_event ->> 'lead_id');
    v_outcome text := p_event ->> 'outcome';
    v_event_id bigint;
    v_call public.calls;
    v_settled jsonb;
    v_message text;
begin
    insert into public.webhook_events (provider, event_type, external_id, payload)
    values ('elevenlabs', v_type, v_conversation, coalesce(p_event -> 'payload', '{}'::jsonb))
    on conflict on constraint webhook_events_once do nothing
    returning id into v_event_id;
    if v_event_id is null then
        perform public.log_event(
            'elevenlabs', v_type, 'duplicate',
            'ElevenLabs delivered ' || v_type || ' for conversation ' || v_conversation
                || ' again; nothing changed.', v_conversation, v_lead_id);
        return jsonb_build_object('duplicate', true);
    end if;

    select * into v_call from public.calls c where c.conversation_id = v_conversation for update;
    if not found and v_lead_id is not null then
        select * into v_call from public.calls c
        where c.lead_id = v_lead_id and c.conversation_id is null
          and c.status in ('placing', 'initiated', 'unknown')
        order by c.attempt desc limit 1
        for update;
    end if;
    if v_call.id is null then
        perform public.log_event(
            'elevenlabs', v_type, 'ignored',
            'A ' || v_type || ' for conversation ' || v_conversation || ' that matches no call '
                || 'placed by this project (a test call from the ElevenLabs dashboard?).',
            v_conversation,
            (select l.id from public.leads l where l.id = v_lead_id));
        return jsonb_build_object('duplicate', false, 'ignored', true);
    end if;

    update public.calls c set
        status = 'completed',
        conversation_id = coalesce(c.conversation_id, v_conversation),
        outcome = v_outcome,
        started_at = coalesce((p_event ->> 'started_at')::timestamptz, c.started_at),
        ended_at = now(),
        duration_secs = public.int_or_null(p_event ->> 'duration_secs'),
        termination_reason = left(p_event ->> 'termination_reason', 500),
        call_successful = left(p_event ->> 'call_successful', 20),
        summary = left(p_event ->> 'summary', 5000),
        analysis = p_event -> 'analysis',
        voicemail_missed = coalesce((p_event ->> 'voicemail_missed')::boolean, false),
        error_code = case when (p_event ->> 'voicemail_missed')::boolean then 'voicemail_missed'
                          else c.error_code end,
        message = left(p_event ->> 'message', 2000)
    where c.id = v_call.id
    returning c.* into v_call;

    v_settled := public.call_settle_lead(v_call.lead_id, v_outcome, p_rules);
    update public.calls c set next_attempt_at = (v_settled ->> 'next_call_at')::timestamptz
    where c.id = v_call.id;

    v_message := coalesce(p_event ->> 'message', 'Call ' || v_outcome || '.')
        || case when v_outcome = 'answered' then '' else public.call_next_text(v_settled) end;
    perform public.log_event(
        'elevenlabs', 'call.' || v_outcome,
        case when v_call.voicemail_missed then 'error' else 'ok' end,
        v_message, v_conversation, v_call.lead_id,
        case when v_call.voicemail_missed then 'voicemail_missed' end,
        jsonb_strip_nulls(jsonb_build_object(
            'call_id', v_call.id, 'attempt', v_call.attempt,
            'duration_secs', v_call.duration_secs, 'call_successful', v_call.call_successful,
            'greeting', p_event ->> 'greeting', 'phrase', p_event ->> 'phrase')));
    return jsonb_build_object('duplicate', false, 'call_id', v_call.id,
                              'lead_id', v_call.lead_id, 'outcome', v_outcome) || v_settled;
end
$$;

revoke all on function public.call_next_window(text, time, time) from public, anon, authenticated;
revoke all on function public.call_time_zone(text, text) from public, anon, authenticated;
revoke all on function public.call_claim(uuid, jsonb) from public, anon, authenticated;
revoke all on function public.call_claim_due(integer, jsonb) from public, anon, authenticated;
revoke all on function public.call_retry_at(text, integer, jsonb) from public, anon, authenticated;
revoke all on function public.call_settle_lead(uuid, text, jsonb) from public, anon, authenticated;
revoke all on function public.call_next_text(jsonb) from public, anon, authenticated;
revoke all on function public.call_started(uuid, jsonb, jsonb) from public, anon, authenticated;
revoke all on function public.call_record_outcome(jsonb, jsonb) from public, anon, authenticated;
grant execute on function public.call_next_window(text, time, time) to service_role;
grant execute on function public.call_time_zone(text, text) to service_role;
grant execute on function public.call_claim(uuid, jsonb) to service_role;
grant execute on function public.call_claim_due(integer, jsonb) to service_role;
grant execute on function public.call_retry_at(text, integer, jsonb) to service_role;
grant execute on function public.call_settle_lead(uuid, text, jsonb) to service_role;
grant execute on function public.call_next_text(jsonb) to service_role;
grant execute on function public.call_started(uuid, jsonb, jsonb) to service_role;
grant execute on function public.call_record_outcome(jsonb, jsonb) to service_role;
