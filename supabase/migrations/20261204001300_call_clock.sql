-- One clock for every call rule, which only the test stack can move.
--
-- The call rules compare times (calling hours, retry waits, the person's cooldown and daily cap,
-- the late-webhook reading, parked events' age). They now read public.clock_now() instead of
-- now(): now() plus the offset in public.test_clock, which is empty (zero) in production and
-- writable only by the database owner (no role the API uses may write it). `make soak-calls`
-- moves it forward to live several days in minutes. The functions below are the latest text of
-- each (the migration named beside it), with now() replaced by public.clock_now() and the call's
-- requested_at set from it.

create table public.test_clock (
    id boolean primary key default true constraint test_clock_one_row check (id),
    shift interval not null
);

comment on table public.test_clock is
    'How far the call rules'' clock (clock_now()) is ahead of now(): empty in production; only the test stack writes it.';

alter table public.test_clock enable row level security;
revoke all on public.test_clock from public, anon, authenticated, service_role;
grant select on public.test_clock to service_role;

-- now(), shifted by the test clock (zero unless a test moved it).
create function public.clock_now() returns timestamptz
language sql
stable
set search_path = ''
as $$
    select now() + coalesce((select c.shift from public.test_clock c), interval '0')
$$;

revoke all on function public.clock_now() from public, anon, authenticated;
grant execute on function public.clock_now() to service_role;

-- call_claim (20261204001000_people.sql), on clock_now().
create or replace function public.call_claim(p_lead_id uuid, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads;
    v_max integer := public.call_rule(p_rules, 'max_attempts')::integer;
    v_cooldown interval := make_interval(
        hours => public.call_rule(p_rules, 'person_cooldown_hours')::integer);
    v_cap integer := public.call_rule(p_rules, 'max_per_person_per_day')::integer;
    v_busy interval := make_interval(
        mins => public.call_rule(p_rules, 'wait_minutes.busy')::integer);
    v_other uuid;
    v_at timestamptz;
    v_window jsonb;
    v_next timestamptz;
    v_zones text;
    v_call_id uuid;
begin
    v_lead := public.person_lock(p_lead_id);  -- the person, then the lead
    if v_lead.id is null then
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
    if v_lead.next_call_at is null or v_lead.next_call_at > public.clock_now() then
        return jsonb_build_object('decision', 'not_due', 'lead_id', p_lead_id,
                                  'next_call_at', v_lead.next_call_at);
    end if;
    if v_lead.person_id is not null then
        -- Another lead of the person booked: this one rests.
        select l.id into v_other from public.leads l
        where l.person_id = v_lead.person_id and l.id <> p_lead_id and l.status = 'booked'
        limit 1;
        if found then
            update public.leads l set status = 'person_booked', next_call_at = null
            where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'lead.person_booked', 'ok',
                'Not called: the same person (the same phone or email) booked a meeting through '
                    || 'lead ' || v_other || '; this lead rests in person_booked.',
                null, p_lead_id, null, jsonb_build_object('booked_lead_id', v_other));
            return jsonb_build_object('decision', 'person_booked', 'lead_id', p_lead_id,
                                      'booked_lead_id', v_other);
        end if;
        -- Another lead of the person is do-not-call: so is this one.
        select l.id into v_other from public.leads l
        where l.person_id = v_lead.person_id and l.id <> p_lead_id and l.status = 'do_not_call'
        limit 1;
        if found then
            update public.leads l set status = 'do_not_call', next_call_at = null
            where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'lead.do_not_call', 'ok',
                'Not called, now or ever: the same person (the same phone or email) is '
                    || 'do-not-call through lead ' || v_other || '.',
                null, p_lead_id, null, jsonb_build_object('do_not_call_lead_id', v_other));
            return jsonb_build_object('decision', 'do_not_call', 'lead_id', p_lead_id);
        end if;
        -- Never two live calls to one person.
        select c.lead_id into v_other from public.calls c
        join public.leads l on l.id = c.lead_id
        where l.person_id = v_lead.person_id and c.status in ('placing', 'initiated')
          and c.outcome is null
        limit 1;
        if found then
            v_next := public.clock_now() + v_busy;
            update public.leads l set next_call_at = v_next where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.person_busy', 'ok',
                'Not called now: the same person (the same phone or email) is on a call for lead '
                    || v_other || '. Tried again at '
                    || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
                null, p_lead_id, null,
                jsonb_build_object('busy_lead_id', v_other, 'next_call_at', v_next));
            return jsonb_build_object('decision', 'person_in_progress', 'lead_id', p_lead_id,
                                      'next_call_at', v_next);
        end if;
        -- A person who answered is left alone for the cooldown.
        select max(coalesce(c.ended_at, c.started_at, c.requested_at)) into v_at
        from public.calls c join public.leads l on l.id = c.lead_id
        where l.person_id = v_lead.person_id and c.outcome = 'answered';
        if v_at > public.clock_now() - v_cooldown then
            v_next := v_at + v_cooldown;
            update public.leads l set next_call_at = v_next where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.person_cooldown', 'ok',
                'Not called yet: the same person (the same phone or email) answered a call at '
                    || to_char(v_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC; they are not called again before '
                    || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC (CALL_PERSON_COOLDOWN_HOURS).',
                null, p_lead_id, null, jsonb_build_object('answered_at', v_at,
                                                           'next_call_at', v_next));
            return jsonb_build_object('decision', 'person_cooldown', 'lead_id', p_lead_id,
                                      'next_call_at', v_next);
        end if;
        -- At most v_cap calls that may have rung in any rolling 24 hours, across their leads:
        -- the next one when the oldest of the last v_cap is 24 hours old.
        select c.requested_at into v_at
        from public.calls c join public.leads l on l.id = c.lead_id
        where l.person_id = v_lead.person_id and c.counted
          and c.requested_at > public.clock_now() - interval '24 hours'
        order by c.requested_at desc
        offset greatest(v_cap - 1, 0) limit 1;
        if found then
            v_next := v_at + interval '24 hours';
            update public.leads l set next_call_at = v_next where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.person_daily_cap', 'ok',
                'Not called yet: the same person (the same phone or email) had ' || v_cap
                    || ' calls in the last 24 hours (CALL_MAX_PER_PERSON_PER_DAY); the next one '
                    || 'is at ' || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC.',
                null, p_lead_id, null, jsonb_build_object('next_call_at', v_next));
            return jsonb_build_object('decision', 'person_daily_cap', 'lead_id', p_lead_id,
                                      'next_call_at', v_next);
        end if;
    end if;

    v_window := public.call_window(
        coalesce(nullif(v_lead.timezones, '{}'), array[v_lead.timezone]), p_rules, public.clock_now());
    if not (v_window ->> 'allowed')::boolean then
        v_next := (v_window ->> 'next_at')::timestamptz;
        v_zones := (select string_agg(z, ', ') from jsonb_array_elements_text(v_window -> 'zones') z);
        if v_next is null then
            update public.leads l set status = 'no_calling_hours', next_call_at = null
            where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.no_calling_hours', 'error',
                'Not called: the lead''s number may be in any of these time zones, which share no calling hours ('
                    || (v_window ->> 'hours') || ' in each): ' || v_zones || '. Call the lead by '
                    || 'hand, or set its time zones (leads.timezones) and queue it again.',
                null, p_lead_id, 'no_calling_hours', v_window);
            return jsonb_build_object('decision', 'no_calling_hours', 'lead_id', p_lead_id,
                                      'timezones', v_window -> 'zones');
        end if;
        update public.leads l set next_call_at = v_next where l.id = p_lead_id;
        perform public.log_event(
            'elevenlabs', 'call.scheduled', 'ok',
            'Outside calling hours (' || (v_window ->> 'hours') || ' in every zone the number '
                || 'may be in: ' || v_zones || '); the call is scheduled for '
                || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
            null, p_lead_id, null, v_window || jsonb_build_object('next_call_at', v_next));
        return jsonb_build_object('decision', 'outside_hours', 'lead_id', p_lead_id,
                                  'next_call_at', v_next, 'timezones', v_window -> 'zones');
    end if;

    insert into public.calls (lead_id, attempt, to_number, allowed_by, requested_at)
    values (p_lead_id, v_lead.call_attempts + 1, v_lead.phone, v_window - 'allowed' - 'next_at',
            public.clock_now())
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

-- call_claim_due (20261204001200_parked_events.sql), on clock_now().
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
                      'wait_minutes.failed', 'person_cooldown_hours',
                      'max_per_person_per_day']) k;

    -- Parked events whose call never came (test calls from the dashboard), after a week.
    delete from public.parked_events p where p.received_at < public.clock_now() - interval '7 days';

    -- A claim whose outcome place_call never recorded (its instance died mid-request): it may
    -- have been placed, so it counts, and the lead waits the retry wait before the next one.
    for v_call in
        select * from public.calls c
        where c.status = 'placing' and c.requested_at < public.clock_now() - interval '2 minutes'
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
        where l.status = 'call_queued' and l.next_call_at <= public.clock_now()
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
            update public.leads l set next_call_at = public.clock_now() + v_wait where l.id = v_id;
            perform public.log_event(
                'elevenlabs', 'call.claim_failed', 'error',
                'Could not claim the lead''s call (' || v_state || ': ' || left(v_error, 300)
                    || '); the sweep tries again at '
                    || to_char((public.clock_now() + v_wait) at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
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
                      where l.status = 'call_queued' and l.next_call_at <= public.clock_now()));
end
$$;

-- call_started (20261204001200_parked_events.sql), on clock_now().
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
    v_parked public.parked_events;
begin
    if p_result ->> 'conversation_id' is not null then
        -- The conversation's lock before the call's row, as call_record_outcome takes them.
        perform pg_advisory_xact_lock(
            hashtextextended('conversation:' || (p_result ->> 'conversation_id'), 0));
    end if;
    select * into v_call from public.calls c where c.id = p_call_id for update;
    if not found or v_call.status <> 'placing' then
        return jsonb_build_object('recorded', false);
    end if;
    if (p_result ->> 'ok')::boolean is true then
        update public.calls c set
            status = 'initiated', started_at = public.clock_now(),
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
        -- Events of this conversation that came first, in the order they came.
        for v_parked in
            select * from public.parked_events p
            where p.provider = 'elevenlabs' and p.key = p_result ->> 'conversation_id'
            order by p.id
        loop
            delete from public.parked_events p where p.id = v_parked.id;
            perform public.call_record_outcome(v_parked.event, p_rules);
        end loop;
        return jsonb_build_object('recorded', true, 'lead_status',
                                  (select l.status from public.leads l where l.id = v_call.lead_id));
    end if;

    update public.calls c set
        status = case when v_class = 'ambiguous' then 'unknown' else 'failed' end,
        outcome = case when v_class = 'ambiguous' then 'unknown' else 'failed' end,
        counted = not coalesce(v_given_back, false),
        ended_at = public.clock_now(),
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

-- call_record_outcome (20261204001200_parked_events.sql), on clock_now().
create or replace function public.call_record_outcome(p_event jsonb, p_rules jsonb)
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
    v_lead_status text;
    v_settled jsonb;
    v_message text;
begin
    insert into public.webhook_events (provider, event_type, external_id, payload)
    values ('elevenlabs', v_type, v_conversation, coalesce(p_event -> 'payload', '{}'::jsonb))
    on conflict on constraint webhook_events_once do nothing
    returning id into v_event_id;
    -- The lead id an event carries is the caller's claim: logged only when such a lead exists.
    v_lead_id := (select l.id from public.leads l where l.id = v_lead_id);
    -- One conversation's events and its call_started one after the other (call_started takes
    -- this lock too, before the call's row), so an event is parked or applied, never lost.
    perform pg_advisory_xact_lock(hashtextextended('conversation:' || v_conversation, 0));
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
        order by c.requested_at desc limit 1
        for update;
    end if;
    if v_call.id is null then
        -- Before what it refers to (call_started has not stored the conversation id yet): kept
        -- aside, not recorded, and applied when its call is (a redelivery is parked again).
        delete from public.webhook_events w where w.id = v_event_id;
        insert into public.parked_events (provider, key, event_type, external_id, event)
        values ('elevenlabs', v_conversation, v_type, v_conversation, p_event)
        on conflict on constraint parked_events_once do nothing;
        perform public.log_event(
            'elevenlabs', v_type, 'ok',
            'A ' || v_type || ' for conversation ' || v_conversation || ', which matches no call '
                || 'yet: kept aside and applied when place_call records that call. (A test call '
                || 'from the ElevenLabs dashboard never matches; such events are dropped after '
                || '7 days.)',
            v_conversation, v_lead_id);
        return jsonb_build_object('duplicate', false, 'parked', true);
    end if;

    if public.call_outcome_rank(v_outcome) <= public.call_outcome_rank(v_call.outcome) then
        update public.calls c set conversation_id = coalesce(c.conversation_id, v_conversation)
        where c.id = v_call.id;
        perform public.log_event(
            'elevenlabs', v_type, 'ok',
            'ElevenLabs sent ' || v_type || ' (' || coalesce(v_outcome, 'no outcome')
                || ') for call ' || v_call.attempt || ' after its outcome was recorded as '
                || coalesce(v_call.outcome, 'none') || ', which ranks higher (answered > voicemail > busy, no '
                || 'answer > failed > unknown): the call stays '
                || coalesce(v_call.outcome, 'without one') || ' and the lead is not moved.',
            v_conversation, v_call.lead_id, null,
            jsonb_build_object('call_id', v_call.id, 'attempt', v_call.attempt,
                               'outcome_sent', v_outcome, 'outcome_kept', v_call.outcome));
        return jsonb_build_object('duplicate', false, 'kept', true, 'call_id', v_call.id,
                                  'lead_id', v_call.lead_id, 'outcome', v_call.outcome);
    end if;

    update public.calls c set
        status = 'completed',
        conversation_id = coalesce(c.conversation_id, v_conversation),
        outcome = v_outcome,
        started_at = coalesce((p_event ->> 'started_at')::timestamptz, c.started_at),
        ended_at = public.clock_now(),
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

    select l.status into v_lead_status from public.leads l where l.id = v_call.lead_id;
    if not exists (
        select from public.calls c
        where c.lead_id = v_call.lead_id and c.id <> v_call.id
          and c.requested_at > v_call.requested_at
    ) or (v_outcome = 'answered' and v_lead_status = 'call_queued') then
        v_settled := public.call_settle_lead(v_call.lead_id, v_outcome, p_rules);
        update public.calls c set next_attempt_at = (v_settled ->> 'next_call_at')::timestamptz
        where c.id = v_call.id;
        v_message := coalesce(p_event ->> 'message', 'Call ' || v_outcome || '.')
            || case when v_outcome = 'answered' then '' else public.call_next_text(v_settled) end;
    else
        -- An old attempt's late event: the lead has had a call since, which decides what next.
        v_settled := jsonb_build_object('lead_status', v_lead_status);
        v_message := coalesce(p_event ->> 'message', 'Call ' || v_outcome || '.')
            || ' (A late outcome of call ' || v_call.attempt || '; the lead has had a later '
            || 'call, which decides its next one: the lead is left ' || v_lead_status || '.)';
    end if;

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

-- call_retry_at (20261204000700_call_ledger.sql), on clock_now().
create or replace function public.call_retry_at(p_outcome text, p_attempts integer, p_rules jsonb)
returns timestamptz
language sql
stable
set search_path = ''
as $$
    select case
        when p_attempts >= public.call_rule(p_rules, 'max_attempts')::integer then null
        else public.clock_now() + make_interval(mins => public.call_rule(p_rules, 'wait_minutes.' || case
                when p_outcome in ('voicemail', 'busy', 'no_answer') then p_outcome
                else 'failed' end)::integer)
    end
$$;

-- call_claim_unreported (20261128000500_call_reconcile.sql), on clock_now().
create or replace function public.call_claim_unreported(
    p_limit integer, p_after_minutes integer, p_give_up_minutes integer
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_claimed jsonb;
begin
    with due as (
        select c.id from public.calls c
        where c.status = 'initiated' and c.outcome is null and c.conversation_id is not null
          and c.started_at <= public.clock_now() - make_interval(mins => greatest(p_after_minutes, 0))
          and (c.reconcile_at is null or c.reconcile_at <= public.clock_now())
        order by c.started_at
        limit greatest(p_limit, 0)
        for update skip locked
    ), claimed as (
        update public.calls c set
            reconcile_checks = c.reconcile_checks + 1,
            reconcile_at = public.clock_now() + public.call_reconcile_wait(c.reconcile_checks + 1)
        from due
        where c.id = due.id
        returning c.id, c.lead_id, c.attempt, c.conversation_id, c.started_at, c.reconcile_checks
    )
    select coalesce(jsonb_agg(jsonb_build_object(
               'call_id', claimed.id, 'lead_id', claimed.lead_id, 'attempt', claimed.attempt,
               'conversation_id', claimed.conversation_id, 'started_at', claimed.started_at,
               'checks', claimed.reconcile_checks,
               'give_up', claimed.started_at
                   <= public.clock_now() - make_interval(mins => greatest(p_give_up_minutes, 0)))
               order by claimed.started_at), '[]'::jsonb)
    into v_claimed
    from claimed;
    return jsonb_build_object(
        'claimed', v_claimed,
        'remaining', (select count(*) from public.calls c
                      where c.status = 'initiated' and c.outcome is null
                        and c.conversation_id is not null
                        and c.started_at
                            <= public.clock_now() - make_interval(mins => greatest(p_after_minutes, 0))
                        and (c.reconcile_at is null or c.reconcile_at <= public.clock_now())));
end
$$;

