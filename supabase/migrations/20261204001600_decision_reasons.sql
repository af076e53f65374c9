-- One home per rule: call_claim's decisions carry their own reason text (it was a Python table
-- mirroring the decision strings, calling.REASONS). call_decided adds `reason` to a decision:
-- the one place the operator-facing words of each decision live. A decision that is a lead's
-- status with no words of its own (called, voicemail …) is its own reason.
--
-- call_claim is the text of 20261204001400_call_review_fixes.sql with each returned decision
-- passed through call_decided; nothing else changes.

create or replace function public.call_decided(p_result jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
    select p_result || jsonb_build_object('reason', case p_result ->> 'decision'
        when 'not_found' then 'no such lead'
        when 'no_phone' then 'the lead has no valid phone number'
        when 'booked' then 'the lead has booked a meeting: nobody is called after booking'
        when 'do_not_call' then 'the lead is marked do-not-call'
        when 'in_progress' then 'a call to the lead is already in progress'
        when 'not_queued' then 'no call is queued for the lead'
        when 'max_attempts' then 'the lead was called the maximum number of times (CALL_MAX_ATTEMPTS)'
        when 'not_due' then 'the lead''s next call is not due yet'
        when 'outside_hours' then 'outside calling hours in a time zone the lead''s number may be in: scheduled for when they are within hours in every one'
        when 'no_calling_hours' then 'the time zones the lead''s number may be in share no calling hours: the lead is not called automatically'
        when 'person_booked' then 'the same person (the same phone or email) booked through another lead'
        when 'person_in_progress' then 'the same person is on a call for another lead: tried again later'
        when 'person_cooldown' then 'the same person answered a call recently (CALL_PERSON_COOLDOWN_HOURS)'
        when 'person_daily_cap' then 'the same person had the most calls a day allows (CALL_MAX_PER_PERSON_PER_DAY)'
        when 'place' then 'placed'
        else p_result ->> 'decision'
    end);
$$;

revoke all on function public.call_decided(jsonb) from public, anon, authenticated;
grant execute on function public.call_decided(jsonb) to service_role;

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
        return public.call_decided(jsonb_build_object('decision', 'not_found', 'lead_id', p_lead_id));
    end if;
    if v_lead.status in ('booked', 'do_not_call') then
        return public.call_decided(jsonb_build_object('decision', v_lead.status, 'lead_id', p_lead_id));
    end if;
    if v_lead.status = 'calling' or exists (
        select from public.calls c where c.lead_id = p_lead_id and c.status = 'placing'
    ) then
        return public.call_decided(jsonb_build_object('decision', 'in_progress', 'lead_id', p_lead_id));
    end if;
    if v_lead.status <> 'call_queued' then
        return public.call_decided(jsonb_build_object('decision', 'not_queued', 'lead_id', p_lead_id,
                                  'status', v_lead.status));
    end if;
    if v_lead.phone is null then
        update public.leads l set status = 'fetched', next_call_at = null where l.id = p_lead_id;
        return public.call_decided(jsonb_build_object('decision', 'no_phone', 'lead_id', p_lead_id));
    end if;
    if v_lead.call_attempts >= v_max then
        update public.leads l set status = 'no_answer', next_call_at = null
        where l.id = p_lead_id;
        return public.call_decided(jsonb_build_object('decision', 'max_attempts', 'lead_id', p_lead_id,
                                  'attempts', v_lead.call_attempts));
    end if;
    if v_lead.next_call_at is null or v_lead.next_call_at > public.clock_now() then
        return public.call_decided(jsonb_build_object('decision', 'not_due', 'lead_id', p_lead_id,
                                  'next_call_at', v_lead.next_call_at));
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
            return public.call_decided(jsonb_build_object('decision', 'person_booked', 'lead_id', p_lead_id,
                                      'booked_lead_id', v_other));
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
            return public.call_decided(jsonb_build_object('decision', 'do_not_call', 'lead_id', p_lead_id));
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
            return public.call_decided(jsonb_build_object('decision', 'person_in_progress', 'lead_id', p_lead_id,
                                      'next_call_at', v_next));
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
            return public.call_decided(jsonb_build_object('decision', 'person_cooldown', 'lead_id', p_lead_id,
                                      'next_call_at', v_next));
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
            return public.call_decided(jsonb_build_object('decision', 'person_daily_cap', 'lead_id', p_lead_id,
                                      'next_call_at', v_next));
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
            return public.call_decided(jsonb_build_object('decision', 'no_calling_hours', 'lead_id', p_lead_id,
                                      'timezones', v_window -> 'zones'));
        end if;
        update public.leads l set next_call_at = v_next where l.id = p_lead_id;
        perform public.log_event(
            'elevenlabs', 'call.scheduled', 'ok',
            'Outside calling hours (' || (v_window ->> 'hours') || ' in every zone the number '
                || 'may be in: ' || v_zones || '); the call is scheduled for '
                || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
            null, p_lead_id, null, v_window || jsonb_build_object('next_call_at', v_next));
        return public.call_decided(jsonb_build_object('decision', 'outside_hours', 'lead_id', p_lead_id,
                                  'next_call_at', v_next, 'timezones', v_window -> 'zones'));
    end if;

    insert into public.calls (lead_id, attempt, to_number, allowed_by, requested_at)
    values (p_lead_id, v_lead.call_attempts + 1, v_lead.phone, v_window - 'allowed' - 'next_at',
            public.clock_now())
    returning id into v_call_id;
    update public.leads l set status = 'calling', call_attempts = l.call_attempts + 1,
                              next_call_at = null
    where l.id = p_lead_id;
    return public.call_decided(jsonb_build_object(
        'decision', 'place', 'lead_id', p_lead_id, 'call_id', v_call_id,
        'attempt', v_lead.call_attempts + 1, 'to_number', v_lead.phone,
        'full_name', v_lead.full_name));
end
$$;
