-- Fixes from a review of the call path (the functions below are the latest text of each, from
-- the migration named beside it, with these changes):
--
-- - call_claim: a call whose start timed out (status unknown: it may be ringing) is live for
--   the person during the retry wait its own lead keeps (wait_minutes.failed), so another lead
--   of the same person is not dialled on top of it.
-- - call_claim_due: the due leads are read without row locks; call_claim takes the person's
--   and the lead's, in that order (locking the leads first deadlocked with the immediate path).
--   Parked events' age is measured in real time, as received_at is.
-- - call_record_outcome and calendly_record: the conversation's (the invitee's) advisory lock is
--   taken before the webhook_events key, as when a parked event is replayed with it held.
-- - meta_complete: every item's identity keys at once, in one sorted order.
-- - calendly_record: a lead booked before its answers came takes the invitee's email and phone
--   where it has none, so the booking reaches every lead of the person; an undated no-show never
--   overrides a dated one.

-- call_claim (20261204001300_call_clock.sql).
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
        where l.person_id = v_lead.person_id
          and ((c.status in ('placing', 'initiated') and c.outcome is null)
               -- Its start timed out (or came back without a conversation id): it may be
               -- ringing, so it is live for the retry wait its own lead keeps too.
               or (c.status = 'unknown' and c.requested_at > public.clock_now()
                   - make_interval(mins => public.call_rule(p_rules, 'wait_minutes.failed')::integer)))
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

-- call_claim_due (20261204001300_call_clock.sql).
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
    delete from public.parked_events p where p.received_at < now() - interval '7 days';

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

-- call_record_outcome (20261204001300_call_clock.sql).
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
    -- One conversation's events and its call_started one after the other, the lock taken before
    -- anything else (call_started holds it when it replays parked events through this function).
    perform pg_advisory_xact_lock(hashtextextended('conversation:' || v_conversation, 0));
    insert into public.webhook_events (provider, event_type, external_id, payload)
    values ('elevenlabs', v_type, v_conversation, coalesce(p_event -> 'payload', '{}'::jsonb))
    on conflict on constraint webhook_events_once do nothing
    returning id into v_event_id;
    -- The lead id an event carries is the caller's claim: logged only when such a lead exists.
    v_lead_id := (select l.id from public.leads l where l.id = v_lead_id);
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

-- meta_complete (20261204001100_answers_whatever_the_status.sql).
create or replace function public.meta_complete(p_results jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_item jsonb;
    v_lead jsonb;
    v_row public.leads;
    v_next timestamptz;
    v_class public.failure_class;
    v_state text;
    v_error text;
    v_completed integer := 0;
    v_failed integer := 0;
    v_skipped integer := 0;
    v_queued jsonb := '[]'::jsonb;
    v_lead_id uuid;
begin
    -- (1) Every item's identity keys at once, in one sorted order: two batches sharing people
    -- never hold each other's keys (taken item by item they could).
    perform pg_advisory_xact_lock(hashtextextended(k.key, 0))
    from (select distinct key from (
              select 'phone:' || nullif(i.value -> 'lead' ->> 'phone', '') as key
              from jsonb_array_elements(coalesce(p_results, '[]'::jsonb)) i
              union all
              select 'email:' || lower(nullif(i.value -> 'lead' ->> 'email', ''))
              from jsonb_array_elements(coalesce(p_results, '[]'::jsonb)) i) all_keys
          where key is not null order by key) k;
    for v_item in select value from jsonb_array_elements(coalesce(p_results, '[]'::jsonb)) loop
        -- The id into a variable first: the lookup is then by primary key whatever plan
        -- PL/pgSQL caches (a generic plan once scanned every pending lead).
        v_lead_id := public.uuid_or_null(v_item ->> 'lead_id');
        -- (1) the person's identity keys before the lead (a booking takes them in that order).
        perform public.person_lock_keys(nullif(v_item -> 'lead' ->> 'phone', ''),
                                        nullif(v_item -> 'lead' ->> 'email', ''));
        -- Answers still to fetch, whatever the lead's status (booked through Calendly while its
        -- fetch was failing, say): only a fetch_pending lead is also queued for its call.
        select * into v_row from public.leads l
        where l.id = v_lead_id and l.fetched_at is null and l.meta_leadgen_id is not null
        for update;
        if not found then
            v_skipped := v_skipped + 1;
            continue;
        end if;

        if (v_item ->> 'ok')::boolean is true then
            -- One lead's answers that cannot be stored fail that lead only (a subtransaction).
            begin
                v_lead := coalesce(v_item -> 'lead', '{}'::jsonb);
                -- A lead with a phone is queued for its call in the same transaction.
                update public.leads l set
                    status = case when l.status <> 'fetch_pending' then l.status
                                  when v_lead ->> 'phone' is not null then 'call_queued'
                                  else 'fetched' end,
                    next_call_at = case when l.status <> 'fetch_pending' then l.next_call_at
                                        when v_lead ->> 'phone' is not null then now() end,
                    timezone = v_lead ->> 'timezone',
                    timezones = (select array_agg(z.value order by z.ordinality)
                                 from jsonb_array_elements_text(v_lead -> 'timezones')
                                      with ordinality z),
                    full_name = v_lead ->> 'full_name',
                    email = v_lead ->> 'email',
                    phone = v_lead ->> 'phone',
                    answers = coalesce(v_lead -> 'answers', '{}'::jsonb),
                    form_id = coalesce(v_lead ->> 'form_id', l.form_id),
                    ad_id = coalesce(v_lead ->> 'ad_id', l.ad_id),
                    adset_id = coalesce(v_lead ->> 'adset_id', l.adset_id),
                    campaign_id = coalesce(v_lead ->> 'campaign_id', l.campaign_id),
                    ad_name = coalesce(v_lead ->> 'ad_name', l.ad_name),
                    campaign_name = coalesce(v_lead ->> 'campaign_name', l.campaign_name),
                    platform = coalesce(v_lead ->> 'platform', l.platform),
                    is_organic = coalesce((v_lead ->> 'is_organic')::boolean, l.is_organic),
                    fetched_at = now(),
                    fetch_error_class = null,
                    fetch_error_code = null,
                    fetch_error = null,
                    fetch_claimed_at = null,
                    next_fetch_at = null
                where l.id = v_row.id;
                perform public.log_event(
                    'meta', 'lead.fetched', 'ok',
                    (v_item ->> 'message') || case when v_row.status <> 'fetch_pending'
                        then ' The lead is already ' || v_row.status
                             || ': its answers are stored, and no call is queued.'
                        else '' end,
                    v_row.meta_leadgen_id,
                    v_row.id, null, coalesce(v_item -> 'details', '{}'::jsonb),
                    public.int_or_null(v_item ->> 'duration_ms'));
                v_completed := v_completed + 1;
                if v_lead ->> 'phone' is not null and v_row.status = 'fetch_pending' then
                    v_queued := v_queued || to_jsonb(v_row.id);
                end if;
                continue;
            exception when others then
                get stacked diagnostics v_state = returned_sqlstate, v_error = message_text;
                v_item := jsonb_build_object(
                    'ok', false, 'error_class', 'malformed', 'error_code', 'lead_store_failed',
                    'message', 'The answers fetched from the Graph API could not be stored ('
                        || v_state || ': ' || left(v_error, 300) || ').',
                    'details', jsonb_build_object('sqlstate', v_state),
                    'duration_ms', v_item -> 'duration_ms');
            end;
        end if;

        v_class := public.failure_class_of(v_item ->> 'error_class');
        v_next := public.queue_retry_at(public.meta_fetch_policy(), v_class,
                                        v_row.fetch_attempts);
        update public.leads l set
            fetch_error_class = v_class,
            fetch_error_code = left(v_item ->> 'error_code', 100),
            fetch_error = left(v_item ->> 'message', 2000),
            fetch_claimed_at = null,
            next_fetch_at = v_next
        where l.id = v_row.id;
        v_failed := v_failed + 1;
        perform public.log_event(
            'meta', 'lead.fetch_failed', 'error',
            left(v_item ->> 'message', 2000) || case
                when v_next is null then ' No automatic retry: its answers stay unfetched.'
                else ' The sweep retries after ' || to_char(v_next at time zone 'UTC',
                    'YYYY-MM-DD HH24:MI:SS') || ' UTC (attempt ' || v_row.fetch_attempts || ').'
            end,
            v_row.meta_leadgen_id, v_row.id, left(v_item ->> 'error_code', 100),
            coalesce(v_item -> 'details', '{}'::jsonb)
                || jsonb_build_object('error_class', v_class,
                                      'attempt', v_row.fetch_attempts,
                                      'next_fetch_at', v_next),
            public.int_or_null(v_item ->> 'duration_ms'));
    end loop;

    return jsonb_build_object('completed', v_completed, 'failed', v_failed, 'skipped', v_skipped,
                              'queued', v_queued);
end
$$;

-- calendly_record (20261204001200_parked_events.sql).
create or replace function public.calendly_record(p_event jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_kind text := p_event ->> 'event';
    v_invitee text := p_event ->> 'invitee_uri';
    v_event_id bigint;
    v_appointment public.appointments;
    v_lead_id uuid;
    v_matched text;
    v_status text;
    v_message text;
    v_parked public.parked_events;
begin
    if coalesce(v_invitee, '') = '' or coalesce(p_event ->> 'external_id', '') = '' then
        raise exception 'calendly_record: invitee_uri and external_id are required'
            using errcode = '22023';
    end if;

    -- Every event of one invitee one after the other (created and canceled may arrive together),
    -- the lock taken first: a parked no-show is replayed with it held.
    perform pg_advisory_xact_lock(hashtextextended('calendly:' || v_invitee, 0));
    insert into public.webhook_events (provider, event_type, external_id, payload)
    values ('calendly', v_kind, p_event ->> 'external_id', coalesce(p_event -> 'payload', '{}'))
    on conflict on constraint webhook_events_once do nothing
    returning id into v_event_id;
    if v_event_id is null then
        select a.* into v_appointment from public.appointments a
        where a.calendly_invitee_uri = v_invitee;
        perform public.log_event(
            'calendly', v_kind, 'duplicate',
            'Calendly delivered ' || v_kind || ' for ' || v_invitee || ' again; nothing changed.',
            v_invitee, v_appointment.lead_id);
        return jsonb_build_object('duplicate', true, 'appointment_id', v_appointment.id,
                                  'lead_id', v_appointment.lead_id);
    end if;

    select a.* into v_appointment from public.appointments a
    where a.calendly_invitee_uri = v_invitee for update;

    if v_kind in ('invitee.created', 'invitee.canceled') then
        if v_appointment.id is null then
            -- Two bookings of one person at once must find (or create) the same lead.
            perform public.person_lock_keys(nullif(p_event ->> 'phone', ''),
                                            nullif(p_event ->> 'email', ''));
            select m.lead_id, m.matched_by into v_lead_id, v_matched
            from public.calendly_match_lead(nullif(p_event ->> 'old_invitee_uri', ''),
                                            public.uuid_or_null(p_event ->> 'lead_id'),
                                            nullif(p_event ->> 'email', ''),
                                            nullif(p_event ->> 'phone', '')) m;
            if v_lead_id is null then
                insert into public.leads (source, status, full_name, email, phone, answers)
                values ('calendly', 'booked', p_event ->> 'name', lower(p_event ->> 'email'),
                        p_event ->> 'phone',
                        jsonb_build_object('calendly_questions',
                                           coalesce(p_event -> 'answers', '[]'::jsonb)))
                returning id into v_lead_id;
                v_matched := 'new_lead';
            end if;
            -- (2) and (3): the person, then the lead, before the appointment refers to it.
            perform public.person_lock(v_lead_id);
            -- A lead booked before its answers came (tied by utm_content) is the invitee: it
            -- takes their email and phone, so it joins their person and the booking ends the
            -- queued calls of every lead of theirs.
            update public.leads l set
                email = coalesce(l.email, lower(nullif(p_event ->> 'email', ''))),
                phone = coalesce(l.phone, nullif(p_event ->> 'phone', ''))
            where l.id = v_lead_id and (l.email is null or l.phone is null)
              and (nullif(p_event ->> 'email', '') is not null
                   or nullif(p_event ->> 'phone', '') is not null);
            insert into public.appointments as a
                (lead_id, calendly_invitee_uri, matched_by, status)
            values (v_lead_id, v_invitee, v_matched, 'active')
            returning a.* into v_appointment;
        end if;

        update public.appointments a set
            calendly_event_uri = coalesce(p_event ->> 'event_uri', a.calendly_event_uri),
            start_time = coalesce((p_event ->> 'start_time')::timestamptz, a.start_time),
            end_time = coalesce((p_event ->> 'end_time')::timestamptz, a.end_time),
            timezone = coalesce(p_event ->> 'timezone', a.timezone),
            invitee_name = coalesce(p_event ->> 'name', a.invitee_name),
            invitee_email = coalesce(lower(p_event ->> 'email'), a.invitee_email),
            invitee_phone = coalesce(p_event ->> 'phone', a.invitee_phone),
            event_name = coalesce(p_event ->> 'event_name', a.event_name),
            event_type = coalesce(p_event ->> 'event_type', a.event_type),
            location = coalesce(p_event -> 'location', a.location),
            cancel_url = coalesce(p_event ->> 'cancel_url', a.cancel_url),
            reschedule_url = coalesce(p_event ->> 'reschedule_url', a.reschedule_url),
            answers = coalesce(p_event -> 'answers', a.answers),
            tracking = coalesce(p_event -> 'tracking', a.tracking),
            old_invitee_uri = coalesce(p_event ->> 'old_invitee_uri', a.old_invitee_uri),
            new_invitee_uri = coalesce(p_event ->> 'new_invitee_uri', a.new_invitee_uri),
            booked_at = coalesce(a.booked_at, case when v_kind = 'invitee.created'
                                              then (p_event ->> 'created_at')::timestamptz end),
            -- A cancel that arrived first wins over a late created: never reactivated.
            status = case when v_kind = 'invitee.canceled' then 'canceled' else a.status end,
            rescheduled = a.rescheduled or (v_kind = 'invitee.canceled'
                                            and coalesce((p_event ->> 'rescheduled')::boolean,
                                                         false)),
            canceled_at = case when v_kind = 'invitee.canceled'
                then coalesce((p_event -> 'cancellation' ->> 'created_at')::timestamptz, now())
                else a.canceled_at end,
            cancel_reason = case when v_kind = 'invitee.canceled'
                then p_event -> 'cancellation' ->> 'reason' else a.cancel_reason end,
            canceled_by = case when v_kind = 'invitee.canceled'
                then p_event -> 'cancellation' ->> 'canceled_by' else a.canceled_by end,
            canceler_type = case when v_kind = 'invitee.canceled'
                then p_event -> 'cancellation' ->> 'canceler_type' else a.canceler_type end
        where a.id = v_appointment.id
        returning a.* into v_appointment;
        v_status := public.calendly_settle_lead(v_appointment.lead_id);

        v_message := case
            when v_kind = 'invitee.created' then
                'Booked ' || coalesce(v_appointment.event_name, 'a meeting')
                || coalesce(' for ' || to_char(v_appointment.start_time at time zone 'UTC',
                                               'YYYY-MM-DD HH24:MI') || ' UTC', '')
                || case v_appointment.matched_by
                       when 'new_lead' then '; no lead matched, so a new lead (source calendly) was created'
                       else '; tied to the lead by ' || v_appointment.matched_by end
                || '. Lead status: ' || v_status || '.'
            when v_appointment.rescheduled then
                'Rescheduled by ' || coalesce(v_appointment.canceler_type, 'someone')
                || ': the old time was canceled and a new booking follows; the lead stays '
                || v_status || '.'
            else
                'Canceled by ' || coalesce(v_appointment.canceler_type, 'someone')
                || coalesce(' (' || v_appointment.canceled_by || ')', '')
                || coalesce(': ' || nullif(v_appointment.cancel_reason, ''), '')
                || '. Lead status: ' || v_status || '.'
        end;
        perform public.log_event(
            'calendly',
            case when v_kind = 'invitee.created' then 'appointment.booked'
                 when v_appointment.rescheduled then 'appointment.rescheduled'
                 else 'appointment.canceled' end,
            'ok', v_message, v_invitee, v_appointment.lead_id, null,
            jsonb_strip_nulls(jsonb_build_object(
                'appointment_id', v_appointment.id, 'matched_by', v_appointment.matched_by,
                'start_time', v_appointment.start_time, 'lead_status', v_status)));
        -- No-show marks that came before the booking, in their own time order.
        for v_parked in
            select * from public.parked_events p
            where p.provider = 'calendly' and p.key = v_invitee
            order by (p.event ->> 'created_at')::timestamptz nulls first, p.id
        loop
            delete from public.parked_events p where p.id = v_parked.id;
            perform public.calendly_record(v_parked.event);
        end loop;
    elsif v_kind in ('invitee_no_show.created', 'invitee_no_show.deleted') then
        if v_appointment.id is null then
            -- Before its booking: kept aside and applied when the booking comes.
            delete from public.webhook_events w where w.id = v_event_id;
            insert into public.parked_events (provider, key, event_type, external_id, event)
            values ('calendly', v_invitee, v_kind, p_event ->> 'external_id', p_event)
            on conflict on constraint parked_events_once do nothing;
            perform public.log_event(
                'calendly', v_kind, 'ok',
                'A no-show mark for an invitee whose booking has not arrived yet (' || v_invitee
                    || '): kept aside and applied when it does.',
                v_invitee);
            return jsonb_build_object('duplicate', false, 'parked', true);
        end if;
        -- Marks follow the events' own time, not their arrival: an older one changes nothing.
        if coalesce((p_event ->> 'created_at')::timestamptz, '-infinity')
           < v_appointment.no_show_marked_at then
            perform public.log_event(
                'calendly', v_kind, 'ignored',
                'An older no-show ' || case when v_kind = 'invitee_no_show.created'
                    then 'mark' else 'removal' end || ' arrived after a newer one; the newer '
                    || 'stands (no-show: ' || v_appointment.no_show || ').',
                v_invitee, v_appointment.lead_id);
            return jsonb_build_object('duplicate', false, 'ignored', true,
                                      'appointment_id', v_appointment.id,
                                      'lead_id', v_appointment.lead_id);
        end if;
        update public.appointments a set
            no_show = (v_kind = 'invitee_no_show.created'),
            no_show_at = case when v_kind = 'invitee_no_show.created'
                              then coalesce((p_event ->> 'no_show_at')::timestamptz, now()) end,
            no_show_marked_at = coalesce((p_event ->> 'created_at')::timestamptz, now())
        where a.id = v_appointment.id
        returning a.* into v_appointment;
        perform public.log_event(
            'calendly',
            case when v_appointment.no_show then 'appointment.no_show' else 'appointment.no_show_undone' end,
            'ok',
            case when v_appointment.no_show then 'Marked as a no-show in Calendly.'
                 else 'The no-show mark was removed in Calendly.' end,
            v_invitee, v_appointment.lead_id, null,
            jsonb_build_object('appointment_id', v_appointment.id));
    else
        raise exception 'calendly_record: unknown event %', v_kind using errcode = '22023';
    end if;

    return jsonb_build_object(
        'duplicate', false, 'appointment_id', v_appointment.id, 'lead_id', v_appointment.lead_id,
        'matched_by', v_appointment.matched_by,
        'lead_status', (select l.status from public.leads l where l.id = v_appointment.lead_id));
end
$$;

