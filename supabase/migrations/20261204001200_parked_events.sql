-- Events that arrive before what they refer to are not lost.
--
-- A call_initiation_failure (with no lead id) can arrive before call_started stored its
-- conversation id, and a Calendly no-show before its booking: both were ignored, and their
-- redelivery was a duplicate, so the event was lost. Now such an event is parked (not recorded:
-- its webhook_events row is removed, so a redelivery parks it again rather than being a
-- duplicate) and applied when its call or booking is recorded. No-show marks follow the events'
-- created_at, not their arrival order.

create table public.parked_events (
    id bigint generated always as identity primary key,
    provider text not null,
    -- What the event waits for: a conversation id (elevenlabs), an invitee uri (calendly).
    key text not null,
    event_type text not null,
    external_id text not null,
    event jsonb not null,
    received_at timestamptz not null default now(),
    constraint parked_events_once unique (provider, event_type, external_id)
);

comment on table public.parked_events is
    'Provider events that came before what they refer to (a call not recorded yet, a booking not arrived yet), as the function would record them; applied, and removed, when it comes. Dropped after 7 days.';

create index parked_events_key on public.parked_events (provider, key);
create index parked_events_received on public.parked_events (received_at);

alter table public.parked_events enable row level security;
revoke all on public.parked_events from public, anon, authenticated;
grant all on public.parked_events to service_role;

alter table public.appointments add column no_show_marked_at timestamptz;
comment on column public.appointments.no_show_marked_at is
    'When Calendly created the no-show event (mark or removal) now in force: an older one arriving later changes nothing.';

-- call_record_outcome (20261204000800_call_outcome_precedence.sql): an event that matches no
-- call yet is parked (parked_events) instead of ignored, and applied by call_started when the
-- call's conversation id is recorded. Returns {parked: true} for such an event.
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

-- call_started (20261204000700_call_ledger.sql): once the call's conversation id is recorded,
-- the events of that conversation that arrived first (parked_events) are applied.
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

-- call_claim_due (20261204001000_people.sql), dropping parked events older than a week.
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

-- calendly_record (20261204001000_people.sql): a no-show before its booking is parked and
-- applied when the booking comes; no-show marks follow the events' created_at.
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

    -- Serialize every event of one invitee (created and canceled may arrive together).
    perform pg_advisory_xact_lock(hashtextextended('calendly:' || v_invitee, 0));
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
        if (p_event ->> 'created_at')::timestamptz < v_appointment.no_show_marked_at then
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
