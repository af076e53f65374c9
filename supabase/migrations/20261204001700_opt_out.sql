-- Opt-outs honoured at once, for the person (issue 15, item 3): a callee who says on the call
-- that they do not want to be called again ("no me llames", "stop calling me"; place_call's
-- opt_out classifier quotes the sentence in the event's opt_out) makes every lead of their
-- person do_not_call, final, with the words quoted in the trail. do_not_call is final in the
-- lifecycle: call_claim refuses it and call_settle_lead leaves it as it is.
--
-- call_record_outcome is the text of 20261204001400_call_review_fixes.sql with the opt-out
-- applied before the outcome's rank is compared; nothing else changes.

create function public.call_opt_out(p_lead_id uuid, p_words text, p_conversation text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_person uuid := (select l.person_id from public.leads l where l.id = p_lead_id);
    v_marked integer;
begin
    update public.leads l set status = 'do_not_call', next_call_at = null
    where (l.id = p_lead_id or (v_person is not null and l.person_id = v_person))
      and l.status <> 'do_not_call';
    get diagnostics v_marked = row_count;
    perform public.log_event(
        'elevenlabs', 'lead.opted_out', 'ok',
        'The callee asked not to be called again: "' || left(p_words, 300) || '". '
            || case when v_marked > 0
                    then 'Every lead of the person (the same phone or email) is now do-not-call, '
                         || 'final (' || v_marked || ' marked).'
                    else 'The person was already do-not-call.' end,
        p_conversation, p_lead_id, null,
        jsonb_build_object('words', left(p_words, 300), 'marked', v_marked));
    return v_marked;
end
$$;

revoke all on function public.call_opt_out(uuid, text, text) from public, anon, authenticated;
grant execute on function public.call_opt_out(uuid, text, text) to service_role;

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

    -- An opt-out said on the call (place_call.opt_out) stops every call to the person at once,
    -- whatever the outcome's rank (a late or lower-ranked event still carries the callee's words).
    if nullif(p_event ->> 'opt_out', '') is not null then
        perform public.call_opt_out(v_call.lead_id, p_event ->> 'opt_out', v_conversation);
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
