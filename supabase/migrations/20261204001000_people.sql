-- A person, not a lead, is who we call.
--
-- Leads that share an E.164 phone or an email (case-folded) are one person (public.people,
-- leads.person_id, kept by the leads_assign_person trigger; a lead that ties two people together
-- merges them into the older). The call rules now hold per person:
--
-- - never two live calls to one person: a claim waits (wait_minutes.busy) while any of the
--   person's calls is being placed or is on the line;
-- - a booking by any of their leads ends every queued call of all of them: the other leads rest
--   in person_booked, and a lead stored later for that person goes there at its first claim;
-- - one of their leads at do_not_call makes every other one do_not_call at its claim;
-- - a person who answered a call is not called again before person_cooldown_hours have passed
--   (the lead waits, with a log row saying why);
-- - at most max_per_person_per_day calls that may have rung (counted calls: an attempt given
--   back for a provider failure does not count) to one person in any rolling 24 hours.
--
-- Locks, always in this order, so concurrent claims, bookings and fetches never deadlock on each
-- other: (1) the person's identity keys, transaction advisory locks on 'phone:<e164>' and
-- 'email:<lower(email)>' in sorted order (person_lock_keys: a booking and a fetch, before they
-- look a person up); (2) the people rows, in id order (person_lock: a claim and a booking); (3)
-- the lead rows. 20 concurrent claims for one person's 20 leads place exactly one call.

create table public.people (
    id uuid primary key default gen_random_uuid(),
    created_at timestamptz not null default now()
);

comment on table public.people is
    'One row per person: every lead sharing a phone or an email with another is the same person (leads.person_id). A person merged into another keeps its row, with no leads.';

alter table public.people enable row level security;
revoke all on public.people from public, anon, authenticated;
grant all on public.people to service_role;

alter table public.leads add column person_id uuid references public.people (id);
comment on column public.leads.person_id is
    'The person the lead is (the same phone or email as other leads); null while the lead has neither.';
create index leads_person on public.leads (person_id) where person_id is not null;

insert into public.lead_statuses (status, meaning) values
    ('person_booked', 'Another lead of the same person (the same phone or email) has booked a meeting: this one is not called.');
insert into public.lead_status_transitions (from_status, to_status) values
    ('fetched', 'person_booked'),
    ('call_queued', 'person_booked'),
    ('called', 'person_booked'),
    ('voicemail', 'person_booked'),
    ('no_answer', 'person_booked'),
    ('canceled', 'person_booked'),
    ('no_calling_hours', 'person_booked'),
    ('person_booked', 'booked'),
    ('person_booked', 'call_queued'),
    ('person_booked', 'do_not_call');

-- (1) The identity keys of a phone and an email, locked in sorted order until the transaction
-- ends: two transactions that may find or create the same person take them one after the other.
create function public.person_lock_keys(p_phone text, p_email text) returns void
language sql
set search_path = ''
as $$
    select pg_advisory_xact_lock(hashtextextended(k, 0))
    from (select k from unnest(array['phone:' || p_phone, 'email:' || lower(p_email)]) k
          where k is not null order by k) keys
$$;

-- The person of a lead with this phone and email: the person of every other lead sharing one of
-- them, and p_current (the lead's own), merged into the oldest; a new person when none. Takes
-- the identity keys first.
create function public.person_of(p_lead_id uuid, p_phone text, p_email text, p_current uuid)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
    v_people uuid[];
    v_keep uuid;
begin
    if p_phone is null and p_email is null then
        return p_current;
    end if;
    perform public.person_lock_keys(p_phone, p_email);
    select array_agg(distinct x.person_id) into v_people from (
        select l.person_id from public.leads l
        where p_phone is not null and l.phone = p_phone and l.person_id is not null
          and l.id <> p_lead_id
        union all
        select l.person_id from public.leads l
        where p_email is not null and lower(l.email) = lower(p_email) and l.person_id is not null
          and l.id <> p_lead_id
        union all
        select p_current where p_current is not null
    ) x;
    if v_people is null then
        insert into public.people default values returning id into v_keep;
        return v_keep;
    end if;
    select p.id into v_keep from public.people p where p.id = any (v_people)
    order by p.created_at, p.id limit 1;
    if cardinality(v_people) > 1 then
        -- (2) the people rows, in id order, then their leads.
        perform from public.people p where p.id = any (v_people) order by p.id for update;
        update public.leads l set person_id = v_keep
        where l.person_id = any (v_people) and l.person_id <> v_keep and l.id <> p_lead_id;
    end if;
    return v_keep;
end
$$;

create function public.leads_assign_person() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.person_id := public.person_of(new.id, new.phone, new.email, new.person_id);
    return new;
end
$$;

create trigger leads_assign_person before insert or update of phone, email on public.leads
    for each row execute function public.leads_assign_person();

-- The leads stored before people existed, oldest first.
do $$
declare
    v_lead record;
begin
    for v_lead in
        select l.id, l.phone, l.email from public.leads l
        where l.phone is not null or l.email is not null order by l.created_at, l.id
    loop
        update public.leads l
        set person_id = public.person_of(v_lead.id, v_lead.phone, v_lead.email, l.person_id)
        where l.id = v_lead.id;
    end loop;
end
$$;

-- (2) then (3): lock the lead's person (if it has one), then the lead; the lead row, or nothing
-- when there is no such lead. A merge that moved the lead to another person meanwhile is a
-- serialization failure (40001), which the caller (lib/db.py) tries again.
create function public.person_lock(p_lead_id uuid) returns public.leads
language plpgsql
set search_path = ''
as $$
declare
    v_person uuid := (select l.person_id from public.leads l where l.id = p_lead_id);
    v_lead public.leads;
begin
    if v_person is not null then
        perform from public.people p where p.id = v_person for update;
    end if;
    select * into v_lead from public.leads l where l.id = p_lead_id for update;
    if found and v_lead.person_id is distinct from v_person then
        raise exception 'lead % moved to another person while it was being locked', p_lead_id
            using errcode = '40001';
    end if;
    return v_lead;
end
$$;

-- Move a lead to booked or canceled when the lifecycle allows it (as before), the person first;
-- once booked, every other lead of the person that could still be called rests in person_booked
-- (a queued call is dropped), each with a log row.
create or replace function public.calendly_settle_lead(p_lead_id uuid)
returns text
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads := public.person_lock(p_lead_id);
    v_status text := v_lead.status;
    v_target text;
begin
    -- Booked while any appointment is active, or while a reschedule's new one is on its way.
    v_target := case
        when exists (select from public.appointments a
                     where a.lead_id = p_lead_id and a.status = 'active') then 'booked'
        when exists (select from public.appointments a
                     where a.lead_id = p_lead_id and a.rescheduled
                       and a.new_invitee_uri is not null
                       and not exists (select from public.appointments n
                                       where n.calendly_invitee_uri = a.new_invitee_uri))
            then 'booked'
        else 'canceled'
    end;
    if v_target is distinct from v_status and exists (
        select from public.lead_status_transitions t
        where t.from_status = v_status and t.to_status = v_target
    ) then
        -- Booked: nobody is called after booking (a queued call is dropped).
        update public.leads l
        set status = v_target,
            next_call_at = case when v_target = 'booked' then null else l.next_call_at end
        where l.id = p_lead_id;
        v_status := v_target;
    end if;
    if v_status = 'booked' and v_lead.person_id is not null then
        with moved as (
            update public.leads l set status = 'person_booked', next_call_at = null
            where l.person_id = v_lead.person_id and l.id <> p_lead_id
              and l.status in ('fetched', 'call_queued', 'called', 'voicemail', 'no_answer',
                               'canceled', 'no_calling_hours')
            returning l.id
        )
        insert into public.integration_logs (provider, event, status, message, lead_id, details)
        select 'calendly', 'lead.person_booked', 'ok',
               'The same person (the same phone or email) booked a meeting through lead '
                   || p_lead_id || ': this lead is not called (person_booked).',
               m.id, jsonb_build_object('booked_lead_id', p_lead_id)
        from moved m;
    end if;
    return v_status;
end
$$;

-- call_claim: claim the lead's call if the rules allow it now (20261204000900_call_zones.sql),
-- the person first: person_booked, do_not_call (the person's), person_in_progress (next_call_at:
-- wait_minutes.busy from now), person_cooldown and person_daily_cap (next_call_at: when they end).
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
    if v_lead.next_call_at is null or v_lead.next_call_at > now() then
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
            v_next := now() + v_busy;
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
        if v_at > now() - v_cooldown then
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
          and c.requested_at > now() - interval '24 hours'
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
        coalesce(nullif(v_lead.timezones, '{}'), array[v_lead.timezone]), p_rules, now());
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

    insert into public.calls (lead_id, attempt, to_number, allowed_by)
    values (p_lead_id, v_lead.call_attempts + 1, v_lead.phone, v_window - 'allowed' - 'next_at')
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

-- call_claim_due (20261204000700_call_ledger.sql), checking the person rules too.
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

-- meta_complete (20261204000900_call_zones.sql), taking the person's identity keys before it
-- locks the lead.
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
    for v_item in select value from jsonb_array_elements(coalesce(p_results, '[]'::jsonb)) loop
        -- The id into a variable first: the lookup is then by primary key whatever plan
        -- PL/pgSQL caches (a generic plan once scanned every pending lead).
        v_lead_id := public.uuid_or_null(v_item ->> 'lead_id');
        -- (1) the person's identity keys before the lead (a booking takes them in that order).
        perform public.person_lock_keys(nullif(v_item -> 'lead' ->> 'phone', ''),
                                        nullif(v_item -> 'lead' ->> 'email', ''));
        select * into v_row from public.leads l
        where l.id = v_lead_id and l.status = 'fetch_pending'
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
                    status = case when v_lead ->> 'phone' is not null then 'call_queued'
                                  else 'fetched' end,
                    next_call_at = case when v_lead ->> 'phone' is not null then now() end,
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
                    'meta', 'lead.fetched', 'ok', v_item ->> 'message', v_row.meta_leadgen_id,
                    v_row.id, null, coalesce(v_item -> 'details', '{}'::jsonb),
                    public.int_or_null(v_item ->> 'duration_ms'));
                v_completed := v_completed + 1;
                if v_lead ->> 'phone' is not null then
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
                when v_next is null then ' No automatic retry: the lead stays fetch_pending.'
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

-- calendly_record (20261127000300_calendly.sql), locking in the documented order: the
-- invitee's identity keys (both phone and email, where it used the first of them), then the
-- matched lead's person and the lead, before the appointment refers to the lead. Two bookings of
-- one person, or tied to one lead, no longer deadlock.
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
    elsif v_kind in ('invitee_no_show.created', 'invitee_no_show.deleted') then
        if v_appointment.id is null then
            perform public.log_event(
                'calendly', v_kind, 'ignored',
                'A no-show for an invitee this project never saw booked (' || v_invitee
                    || '); nothing to mark.',
                v_invitee);
            return jsonb_build_object('duplicate', false, 'ignored', true);
        end if;
        update public.appointments a set
            no_show = (v_kind = 'invitee_no_show.created'),
            no_show_at = case when v_kind = 'invitee_no_show.created'
                              then coalesce((p_event ->> 'no_show_at')::timestamptz, now()) end
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

revoke all on function public.person_lock_keys(text, text) from public, anon, authenticated;
revoke all on function public.person_of(uuid, text, text, uuid) from public, anon, authenticated;
revoke all on function public.person_lock(uuid) from public, anon, authenticated;
grant execute on function public.person_lock_keys(text, text) to service_role;
grant execute on function public.person_of(uuid, text, text, uuid) to service_role;
grant execute on function public.person_lock(uuid) to service_role;
