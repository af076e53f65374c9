-- Missed leads recovered (issue 17, part 2).
--
-- How a lead arrived is recorded apart from its source: leads.arrived_via is null for a lead its
-- source's webhook brought (or the operator inserted), 'backfill' for `make backfill`, and
-- 'recovery' for the sweep's daily recovery. Both store what they find through meta_ingest and
-- meta_complete, the webhook's own SQL (idempotent on the leadgen id), inside meta_recover,
-- which sets the transaction's stl.arrived_via for the column's default and writes one
-- lead.recovered row per lead the webhook never brought.
--
-- A lead older than CALL_MAX_LEAD_AGE_HOURS (p_rules max_lead_age_hours) is not called
-- automatically: call_claim sets it too_old. call_claim is the text of
-- 20261204002000_rules_by_place.sql with that check added before the attempt cap.
--
-- The daily recovery is a claimed, resumable job: one row per page (meta_recovery_jobs), its
-- forms and each form's cursor in state, leased by the sweep that works it and saved after every
-- page of leads, so a sweep that runs out of time or dies leaves the next one where it stopped.

alter table public.leads add column arrived_via text
    default nullif(current_setting('stl.arrived_via', true), '')
    constraint leads_arrived_via_known check (arrived_via in ('backfill', 'recovery'));
comment on column public.leads.arrived_via is
    'How the lead arrived when not by its source''s webhook: backfill (make backfill) or recovery (the sweep''s daily recovery of the last 48 hours); null: the webhook (or an operator insert).';

insert into public.lead_statuses (status, meaning) values
    ('too_old', 'Older than CALL_MAX_LEAD_AGE_HOURS when its call came due: not called automatically.');
insert into public.lead_status_transitions (from_status, to_status) values
    ('call_queued', 'too_old'),
    ('too_old', 'call_queued'),
    ('too_old', 'booked'),
    ('too_old', 'person_booked'),
    ('too_old', 'do_not_call');

-- Which of p_ids are leads already (so a backfill stores only what is new).
create function public.meta_known_leadgen_ids(p_ids jsonb)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select coalesce(jsonb_agg(l.meta_leadgen_id), '[]'::jsonb)
    from public.leads l
    where l.meta_leadgen_id in (select jsonb_array_elements_text(coalesce(p_ids, '[]'::jsonb)))
$$;

-- Store leads found by listing a form (p_via: backfill or recovery) through meta_ingest, all of
-- them claimed for the caller, which completes them with the node it already has
-- (meta_complete: no second fetch). One lead.recovered row per lead created here.
create function public.meta_recover(p_leads jsonb, p_via text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_result jsonb;
begin
    if p_via not in ('backfill', 'recovery') then
        raise exception 'meta_recover: p_via % is neither backfill nor recovery', p_via
            using errcode = '22023';
    end if;
    perform set_config('stl.arrived_via', p_via, true);
    v_result := public.meta_ingest(p_leads, '[]'::jsonb, 1000);
    perform set_config('stl.arrived_via', '', true);
    perform public.log_event(
        'meta', 'lead.recovered', 'ok',
        'The webhook never brought this lead: ' || case p_via
            when 'backfill' then '`make backfill` found it'
            else 'the daily recovery found it' end
            || ' in its form''s leads (created ' || coalesce(
                to_char(to_timestamp((i.value ->> 'created_time')::double precision)
                        at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC', '?')
            || '). If this happens often, check the Page subscription with `make doctor`.',
        t.value ->> 'leadgen_id', (t.value ->> 'lead_id')::uuid, null,
        jsonb_build_object('via', p_via, 'form_id', i.value ->> 'form_id'))
    from jsonb_array_elements(v_result -> 'to_fetch') t
    join jsonb_array_elements(p_leads) i on i.value ->> 'leadgen_id' = t.value ->> 'leadgen_id';
    return v_result;
end
$$;

create table public.meta_recovery_jobs (
    page_id text primary key,
    -- {"since": unix, "forms": [{"id", "after", "done"}], "found", "new"}
    state jsonb,
    started_at timestamptz,
    finished_at timestamptz,
    lease_until timestamptz,
    last_error text constraint meta_recovery_error_bounded check (length(last_error) <= 2000)
);
comment on table public.meta_recovery_jobs is
    'The sweep''s daily recovery of missed Meta leads, one row per page: its forms and their cursors (state), leased while a sweep works it, finished_at once every form is read.';

alter table public.meta_recovery_jobs enable row level security;
revoke all on public.meta_recovery_jobs from public, anon, authenticated;
grant select, insert, update, delete on public.meta_recovery_jobs to service_role;

-- The pages whose recovery is due now, for the sweep every minute (cheap: the jobs table, and
-- the last day's leads for a page without a job yet): a job never run, unfinished with its lease
-- run out, or finished p_every_hours ago. A page keeps its job once it has one, so one that stops
-- sending anything (uninstalled, cut off in Leads Access Manager) is still recovered.
create function public.meta_recovery_due(p_every_hours integer)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select coalesce(jsonb_agg(p.page_id order by p.page_id), '[]'::jsonb)
    from (
        select j.page_id from public.meta_recovery_jobs j
        where (j.lease_until is null or j.lease_until <= now())
          and (j.finished_at is null
               or j.finished_at < now() - make_interval(hours => p_every_hours))
        union
        select distinct l.page_id from public.leads l
        where l.created_at > now() - interval '1 day'
          and l.source = 'meta_lead_ads' and l.page_id is not null
          and not exists (select from public.meta_recovery_jobs j where j.page_id = l.page_id)
    ) p
$$;

-- The page's job when it is due (never run, or finished p_every_hours ago: a new run from
-- p_since_hours ago) or was left unfinished by a sweep whose lease ran out; null otherwise.
-- Leased for p_lease_seconds, so two sweeps never work it at once.
create function public.meta_recovery_claim(
    p_page_id text, p_every_hours integer, p_since_hours integer, p_lease_seconds integer
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_job public.meta_recovery_jobs;
begin
    insert into public.meta_recovery_jobs (page_id) values (p_page_id)
    on conflict (page_id) do nothing;
    select * into v_job from public.meta_recovery_jobs j where j.page_id = p_page_id
    for update skip locked;
    if not found or v_job.lease_until > now() then
        return null;
    end if;
    -- A new run when the last finished p_every_hours ago, or has not finished in that long (a
    -- form that kept failing). It reads from p_since_hours ago, or from where the last run
    -- started if that is earlier (a late run leaves no gap), at most 30 days back.
    if v_job.state is null
       or (v_job.finished_at is not null
           and v_job.finished_at < now() - make_interval(hours => p_every_hours))
       or (v_job.finished_at is null
           and v_job.started_at < now() - make_interval(hours => p_every_hours)) then
        v_job.state := jsonb_build_object(
            'since', extract(epoch from greatest(
                least(now() - make_interval(hours => p_since_hours),
                      coalesce(v_job.started_at, now())),
                now() - interval '30 days'))::bigint,
            'forms', null, 'found', 0, 'new', 0);
        v_job.started_at := now();
        v_job.finished_at := null;
    elsif v_job.finished_at is not null then
        return null;  -- finished, not due yet
    end if;
    update public.meta_recovery_jobs j
    set state = v_job.state, started_at = v_job.started_at, finished_at = null,
        lease_until = now() + make_interval(secs => p_lease_seconds)
    where j.page_id = p_page_id;
    return jsonb_build_object('page_id', p_page_id, 'state', v_job.state,
                              'started_at', v_job.started_at);
end
$$;

-- Progress of the page's job (its state after a page of leads); p_finished ends the run.
create function public.meta_recovery_save(
    p_page_id text, p_state jsonb, p_finished boolean, p_error text default null
) returns void
language sql
set search_path = ''
as $$
    update public.meta_recovery_jobs j
    set state = p_state,
        finished_at = case when p_finished then now() end,
        -- A failure keeps the lease: the next try is after it, not at the next minute.
        lease_until = case when p_finished then null else j.lease_until end,
        last_error = left(p_error, 2000)
    where j.page_id = p_page_id
$$;

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
    v_policy text := public.call_rule(p_rules, 'consent');
    v_consent jsonb;
    v_asked boolean;
    v_dnc public.do_not_contact;
    v_places text[];
    v_capped text;
    v_max_age interval := make_interval(
        hours => public.call_rule(p_rules, 'max_lead_age_hours')::integer);
begin
    perform public.call_rule(p_rules, 'consent_checkboxes');
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
    -- The places of the number (CALL_PLACE_RULES): their windows, holidays and per-person caps.
    v_places := case when public.call_rule(p_rules, 'place_rules')::boolean
                     then public.phone_places(v_lead.phone) else '{}'::text[] end;
    perform public.call_rule(p_rules, 'holidays');
    select r.place into v_capped
    from public.call_place_rules r
    where r.place = any (v_places) and r.max_per_person_per_day < v_cap
    order by r.max_per_person_per_day, r.place limit 1;
    if v_capped is not null then
        v_cap := (select r.max_per_person_per_day from public.call_place_rules r
                  where r.place = v_capped);
    end if;
    -- The do-not-call list, for this lead's phone and email, whoever they belong to.
    v_dnc := public.dnc_person_entry(p_lead_id);
    if v_dnc.id is not null then
        update public.leads l set status = 'do_not_call', next_call_at = null
        where l.id = p_lead_id;
        perform public.log_event(
            'elevenlabs', 'lead.do_not_call', 'ok',
            'Not called, now or ever: its ' || v_dnc.kind || ' ' || v_dnc.value
                || ' is on the do-not-call list since '
                || to_char(v_dnc.added_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC ('
                || v_dnc.source || ': ' || left(v_dnc.reason, 300) || ').',
            null, p_lead_id, null, jsonb_build_object('dnc_id', v_dnc.id, 'kind', v_dnc.kind));
        return public.call_decided(jsonb_build_object('decision', 'do_not_call', 'lead_id', p_lead_id,
                                  'dnc_id', v_dnc.id));
    end if;
    -- Consent (CALL_CONSENT): required places no call without it; recorded keeps what there is.
    if v_policy not in ('required', 'recorded', 'off') then
        raise exception 'CALL_CONSENT % is none of required, recorded, off', v_policy
            using errcode = '22023';
    end if;
    if v_policy <> 'off' then
        v_consent := coalesce(public.lead_consent(p_lead_id, p_rules), jsonb_build_object('id', null))
            || jsonb_build_object('policy', v_policy);
        if v_policy = 'required' and v_consent ->> 'id' is null then
            v_asked := exists (select from public.consents c where c.lead_id = p_lead_id);
            update public.leads l set status = 'no_consent', next_call_at = null
            where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.no_consent', case when v_asked then 'ok' else 'error' end,
                public.no_consent_text(v_lead, p_rules), v_lead.form_id, p_lead_id,
                case when v_asked then null else 'no_consent' end,
                jsonb_build_object('form_id', v_lead.form_id, 'policy', v_policy,
                                   'consent_checkboxes', p_rules -> 'consent_checkboxes'));
            return public.call_decided(jsonb_build_object('decision', 'no_consent', 'lead_id', p_lead_id,
                                      'form_id', v_lead.form_id));
        end if;
    end if;
    -- Too old to call automatically (CALL_MAX_LEAD_AGE_HOURS, from the lead's creation at its
    -- source): a lead recovered days late, or still queued after days of retries, rests. Its
    -- age is on the clock its times were written by (now(), Meta's created_time): the call
    -- rules' test clock (clock_now) moves calling hours, not the leads' ages.
    if coalesce(v_lead.submitted_at, v_lead.created_at) < now() - v_max_age then
        update public.leads l set status = 'too_old', next_call_at = null where l.id = p_lead_id;
        perform public.log_event(
            'elevenlabs', 'call.too_old', 'ok',
            'Not called automatically: the lead came '
                || to_char(coalesce(v_lead.submitted_at, v_lead.created_at) at time zone 'UTC',
                           'YYYY-MM-DD HH24:MI')
                || ' UTC, more than CALL_MAX_LEAD_AGE_HOURS ('
                || public.call_rule(p_rules, 'max_lead_age_hours')
                || ') ago; it rests in too_old. Call it by hand if it is still wanted.',
            null, p_lead_id, null,
            jsonb_build_object('max_lead_age_hours', public.call_rule(p_rules, 'max_lead_age_hours')));
        return public.call_decided(jsonb_build_object('decision', 'too_old', 'lead_id', p_lead_id));
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
                    || ' calls in the last 24 hours ('
                    || coalesce('the limit of ' || v_capped || ', call_place_rules',
                                'CALL_MAX_PER_PERSON_PER_DAY')
                    || '); the next one '
                    || 'is at ' || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC.',
                null, p_lead_id, null, jsonb_build_object('next_call_at', v_next, 'cap', v_cap,
                                                           'cap_place', v_capped));
            return public.call_decided(jsonb_build_object('decision', 'person_daily_cap', 'lead_id', p_lead_id,
                                      'next_call_at', v_next));
        end if;
    end if;

    v_window := public.call_window(
        coalesce(nullif(v_lead.timezones, '{}'), array[v_lead.timezone]), p_rules, public.clock_now(),
        v_places);
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
            'Outside calling hours (' || (v_window ->> 'hours') || ' in the zones the number '
                || 'may be in: ' || v_zones
                || coalesce('; the rules of ' || nullif(array_to_string(v_places, ', '), ''), '')
                || '); the call is scheduled for '
                || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
            null, p_lead_id, null, v_window || jsonb_build_object('next_call_at', v_next));
        return public.call_decided(jsonb_build_object('decision', 'outside_hours', 'lead_id', p_lead_id,
                                  'next_call_at', v_next, 'timezones', v_window -> 'zones'));
    end if;

    insert into public.calls (lead_id, attempt, to_number, allowed_by, requested_at, consent)
    values (p_lead_id, v_lead.call_attempts + 1, v_lead.phone, v_window - 'allowed' - 'next_at',
            public.clock_now(), v_consent)
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

revoke all on function public.meta_known_leadgen_ids(jsonb), public.meta_recover(jsonb, text),
    public.meta_recovery_due(integer),
    public.meta_recovery_claim(text, integer, integer, integer),
    public.meta_recovery_save(text, jsonb, boolean, text)
    from public, anon, authenticated;
grant execute on function public.meta_known_leadgen_ids(jsonb), public.meta_recover(jsonb, text),
    public.meta_recovery_due(integer),
    public.meta_recovery_claim(text, integer, integer, integer),
    public.meta_recovery_save(text, jsonb, boolean, text)
    to service_role;
