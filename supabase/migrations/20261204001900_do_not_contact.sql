-- The internal do-not-call list (issue 15, item 3): phone numbers and email addresses nobody is
-- called at, whichever lead carries them. Every claim checks it (call_claim), an opt-out said on
-- a call adds the person's every phone and email to it (call_opt_out), and the operator manages
-- it with `make dnc` (dnc_add, dnc_remove). Entries are never deleted: a removal is stamped
-- (removed_at, removed_reason) and logged; it lets future leads of that phone or email be
-- called, while a lead already marked do_not_call stays so (do_not_call is final).
--
-- This replaces call_claim's "another lead of the person is do_not_call" check, which made a
-- removal impossible: the person's old do_not_call lead would block every new lead for ever.
-- A lead that becomes do_not_call by any other means (by hand, in Studio) puts its phone and
-- email on the list (source lead), as the old check would have honoured it for the person; leads
-- already do_not_call are copied into the list (source backfill), so nobody who was do-not-call
-- before this migration becomes callable.
--
-- call_claim is the text of 20261204001800_consent.sql with the list checked after the phone
-- check and the person do_not_call check removed; call_opt_out is the text of
-- 20261204001700_opt_out.sql adding the person's keys to the list.

create table public.do_not_contact (
    id bigint generated always as identity primary key,
    kind text not null constraint do_not_contact_kind_known check (kind in ('phone', 'email')),
    value text not null,
    reason text not null,
    source text not null
        constraint do_not_contact_source_known check (source in ('operator', 'call', 'lead', 'backfill')),
    lead_id uuid references public.leads (id) on delete restrict,
    added_at timestamptz not null default now(),
    removed_at timestamptz,
    removed_reason text,
    constraint do_not_contact_phone_e164
        check (kind <> 'phone' or value ~ '^\+[1-9][0-9]{6,14}$'),
    constraint do_not_contact_email_lower
        check (kind <> 'email' or (value = lower(value) and value like '%_@_%')),
    constraint do_not_contact_bounded check (length(value) <= 320 and length(reason) <= 1000),
    constraint do_not_contact_removed_with_reason
        check ((removed_at is null) = (removed_reason is null))
);

comment on table public.do_not_contact is
    'The internal do-not-call list: a phone (E.164) or an email (lower case) nobody is called at. source: operator (make dnc ADD), call (the person said so on a call), lead (a lead was marked do_not_call by other means, by hand say), backfill (a lead that was do_not_call before the list existed). Never deleted: removed_at and removed_reason say when and why an entry stopped applying (make dnc REMOVE).';

-- One active entry per phone or email: what every claim looks up.
create unique index do_not_contact_active on public.do_not_contact (kind, value)
    where removed_at is null;

create function public.do_not_contact_guard() returns trigger
language plpgsql set search_path = '' as $$
begin
    if tg_op = 'UPDATE' and old.removed_at is null and new.removed_at is not null
       and (new.id, new.kind, new.value, new.reason, new.source, new.lead_id, new.added_at)
           is not distinct from
           (old.id, old.kind, old.value, old.reason, old.source, old.lead_id, old.added_at) then
        return new;  -- the one change allowed: a removal, stamped once
    end if;
    raise exception 'do_not_contact entries are never deleted or rewritten: % refused', tg_op
        using errcode = '42501',
              hint = 'make dnc REMOVE=<phone or email> REASON=… stamps a removal.';
end $$;

create trigger do_not_contact_guard before update or delete on public.do_not_contact
    for each row execute function public.do_not_contact_guard();
create trigger do_not_contact_no_truncate before truncate on public.do_not_contact
    for each statement execute function public.consents_append_only();

alter table public.do_not_contact enable row level security;
revoke all on public.do_not_contact from public, anon, authenticated;
grant select, insert, update on public.do_not_contact to service_role;
revoke all on function public.do_not_contact_guard() from public, anon, authenticated;

-- Everyone who was do-not-call stays so.
insert into public.do_not_contact (kind, value, reason, source, lead_id)
select distinct on (k.kind, k.value) k.kind, k.value,
       'Lead ' || k.lead_id || ' was do-not-call before the list existed.', 'backfill', k.lead_id
from (select 'phone' as kind, l.phone as value, l.id as lead_id, l.created_at
      from public.leads l where l.status = 'do_not_call' and l.phone is not null
      union all
      select 'email', lower(l.email), l.id, l.created_at
      from public.leads l
      where l.status = 'do_not_call' and l.email like '%_@_%' and length(l.email) <= 320) k
order by k.kind, k.value, k.created_at;

-- Add a phone or an email (already normalised: E.164, lower case) to the list; an active entry
-- for it is kept as it is. Returns {added, id, entry}.
create function public.dnc_add(p_kind text, p_value text, p_reason text, p_source text,
                               p_lead_id uuid default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_id bigint;
    v_existing public.do_not_contact;
begin
    insert into public.do_not_contact (kind, value, reason, source, lead_id)
    values (p_kind, p_value, left(coalesce(nullif(btrim(p_reason), ''), 'no reason given'), 1000),
            p_source, p_lead_id)
    on conflict (kind, value) where removed_at is null do nothing
    returning id into v_id;
    if v_id is null then
        select * into v_existing from public.do_not_contact d
        where d.kind = p_kind and d.value = p_value and d.removed_at is null;
        return jsonb_build_object('added', false, 'id', v_existing.id,
                                  'since', v_existing.added_at, 'reason', v_existing.reason);
    end if;
    perform public.log_event(
        case when p_source = 'call' then 'elevenlabs' else 'operator' end, 'dnc.added', 'ok',
        'On the do-not-call list from now on: ' || p_kind || ' ' || p_value || ' ('
            || p_source || ': ' || left(coalesce(nullif(btrim(p_reason), ''), 'no reason given'), 300)
            || '). No lead with it is called.',
        null, p_lead_id, null, jsonb_build_object('dnc_id', v_id, 'kind', p_kind));
    return jsonb_build_object('added', true, 'id', v_id);
end
$$;

-- Stop an entry applying (stamped, never deleted): future leads of that phone or email may be
-- called; leads already do_not_call stay so. Returns the number of entries removed (0 or 1).
create function public.dnc_remove(p_kind text, p_value text, p_reason text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_id bigint;
    v_marked integer;
begin
    if nullif(btrim(p_reason), '') is null then
        raise exception 'a removal from the do-not-call list needs its reason'
            using errcode = '22023', hint = 'make dnc REMOVE=<phone or email> REASON=…';
    end if;
    update public.do_not_contact d
    set removed_at = now(), removed_reason = left(btrim(p_reason), 1000)
    where d.kind = p_kind and d.value = p_value and d.removed_at is null
    returning d.id into v_id;
    if v_id is null then
        return 0;
    end if;
    select count(*) into v_marked from public.leads l
    where l.status = 'do_not_call'
      and ((p_kind = 'phone' and l.phone = p_value) or (p_kind = 'email' and lower(l.email) = p_value));
    perform public.log_event(
        'operator', 'dnc.removed', 'ok',
        'Removed from the do-not-call list: ' || p_kind || ' ' || p_value || ' (reason: '
            || left(btrim(p_reason), 300) || '). Future leads with it may be called; the '
            || v_marked || ' lead(s) already do-not-call stay so.',
        null, null, null, jsonb_build_object('dnc_id', v_id, 'kind', p_kind,
                                             'reason', left(btrim(p_reason), 300)));
    return 1;
end
$$;

revoke all on function public.dnc_add(text, text, text, text, uuid) from public, anon, authenticated;
revoke all on function public.dnc_remove(text, text, text) from public, anon, authenticated;
grant execute on function public.dnc_add(text, text, text, text, uuid) to service_role;
grant execute on function public.dnc_remove(text, text, text) to service_role;

-- The active entry that forbids calling a lead with this phone or email, if any.
create function public.dnc_entry(p_phone text, p_email text)
returns public.do_not_contact
language sql
stable
set search_path = ''
as $$
    select d.* from public.do_not_contact d
    where d.removed_at is null
      and ((d.kind = 'phone' and d.value = p_phone)
           or (d.kind = 'email' and d.value = lower(p_email)))
    order by d.id
    limit 1;
$$;

-- A lead marked do_not_call by other means (by hand) lists its phone and email; one marked
-- because of the list (an opt-out lists the person first, a claim finds an entry) adds nothing.
create function public.leads_list_do_not_call() returns trigger
language plpgsql set search_path = '' as $$
begin
    if (public.dnc_entry(new.phone, new.email)).id is not null then
        return null;  -- marked because of the list (a claim, an opt-out): nothing to add
    end if;
    perform public.dnc_add(k.kind, k.value, 'Lead ' || new.id || ' was marked do-not-call.',
                           'lead', new.id)
    from (select 'phone' as kind, new.phone as value where new.phone is not null
          union all
          select 'email', lower(new.email)
          where new.email like '%_@_%' and length(new.email) <= 320) k;
    return null;
end $$;

create trigger leads_list_do_not_call
    after insert or update of status on public.leads
    for each row when (new.status = 'do_not_call')
    execute function public.leads_list_do_not_call();

revoke all on function public.leads_list_do_not_call() from public, anon, authenticated;
revoke all on function public.dnc_entry(text, text) from public, anon, authenticated;
grant execute on function public.dnc_entry(text, text) to service_role;

create or replace function public.call_opt_out(p_lead_id uuid, p_words text, p_conversation text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_person uuid := (select l.person_id from public.leads l where l.id = p_lead_id);
    v_marked integer;
begin
    -- Every phone and email of the person on the list: a lead they fill in later is not called.
    perform public.dnc_add(k.kind, k.value, 'Said on call ' || coalesce(p_conversation, '?')
                                            || ': "' || left(p_words, 300) || '"',
                           'call', p_lead_id)
    from (select distinct 'phone' as kind, l.phone as value from public.leads l
          where (l.id = p_lead_id or (v_person is not null and l.person_id = v_person))
            and l.phone is not null
          union
          select distinct 'email', lower(l.email) from public.leads l
          where (l.id = p_lead_id or (v_person is not null and l.person_id = v_person))
            and l.email like '%_@_%' and length(l.email) <= 320) k;
    update public.leads l set status = 'do_not_call', next_call_at = null
    where (l.id = p_lead_id or (v_person is not null and l.person_id = v_person))
      and l.status <> 'do_not_call';
    get diagnostics v_marked = row_count;
    perform public.log_event(
        'elevenlabs', 'lead.opted_out', 'ok',
        'The callee asked not to be called again: "' || left(p_words, 300) || '". '
            || case when v_marked > 0
                    then 'Every lead of the person (the same phone or email) is now do-not-call, '
                         || 'final (' || v_marked || ' marked), and their phone and email are on '
                         || 'the do-not-call list.'
                    else 'The person was already do-not-call.' end,
        p_conversation, p_lead_id, null,
        jsonb_build_object('words', left(p_words, 300), 'marked', v_marked));
    return v_marked;
end
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
    -- The do-not-call list, for this lead's phone and email, whoever they belong to.
    v_dnc := public.dnc_entry(v_lead.phone, v_lead.email);
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
