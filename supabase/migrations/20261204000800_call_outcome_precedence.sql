-- A recorded outcome is never downgraded, and a late event for an old attempt never reopens a
-- lead that is on another call.
--
-- ElevenLabs may send more than one event for a call (a post_call_transcription, then a
-- call_initiation_failure), in any order, and place_call's reconcile may record a give-up
-- (unknown) before the real webhook comes. call_record_outcome recorded whichever came last:
-- answered was overwritten by no_answer (summary and analysis wiped), voicemail then busy moved
-- the next call from the voicemail wait to the busy one. Now an event replaces the call's outcome
-- only when it ranks higher (call_outcome_rank), whatever the arrival order; every event is still
-- kept in webhook_events and logged. The lead is moved only by its latest call, or by a late
-- answer while it waits for its next call (the person answered: they are not called again).

-- How much an outcome says about the line: answered > voicemail > busy / no answer > failed >
-- unknown (0: no outcome yet).
create function public.call_outcome_rank(p_outcome text) returns integer
language sql
immutable
set search_path = ''
as $$
    select case p_outcome
        when 'answered' then 5
        when 'voicemail' then 4
        when 'busy' then 3
        when 'no_answer' then 3
        when 'failed' then 2
        when 'unknown' then 1
        else 0
    end
$$;

-- call_record_outcome: a post-call event, normalized by place_call (p_event as in
-- 20261127000400_calls.sql). Idempotent on conversation_id + type. Linked by conversation_id,
-- else to the lead's latest call without one (its start timed out). Returns {duplicate, call_id,
-- lead_id, outcome (the call's, after this event), kept (the event ranked no higher than the
-- recorded outcome), lead_status, next_call_at}.
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
        perform public.log_event(
            'elevenlabs', v_type, 'ignored',
            'A ' || v_type || ' for conversation ' || v_conversation || ' that matches no call '
                || 'placed by this project (a test call from the ElevenLabs dashboard?).',
            v_conversation, v_lead_id);
        return jsonb_build_object('duplicate', false, 'ignored', true);
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

revoke all on function public.call_outcome_rank(text) from public, anon, authenticated;
grant execute on function public.call_outcome_rank(text) to service_role;
