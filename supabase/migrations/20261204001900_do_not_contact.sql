-- The internal do-not-call list (issue 15, item 3): phone numbers and email addresses nobody is
-- called at, whichever lead carries them. Every claim checks it for every phone and email of the
-- lead's person (dnc_person_entry: leads sharing a phone or an email), an opt-out said on
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
-- call_opt_out is the text of 20261204001700_opt_out.sql adding the person's keys to the list.
-- call_claim's check is in 20261204002000_rules_by_place.sql.

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
    after insert on public.leads
    for each row when (new.status = 'do_not_call')
    execute function public.leads_list_do_not_call();
-- Only a change into do_not_call: an update that leaves it so (meta_complete writes the status
-- back as it was) never lists again what the operator removed.
create trigger leads_list_do_not_call_update
    after update of status on public.leads
    for each row when (new.status = 'do_not_call' and old.status <> 'do_not_call')
    execute function public.leads_list_do_not_call();

revoke all on function public.leads_list_do_not_call() from public, anon, authenticated;
-- The active entry that forbids calling the person of lead p_lead_id: one for any phone or email
-- of any lead of that person (the same phone or email), as the person check it replaces did.
create function public.dnc_person_entry(p_lead_id uuid)
returns public.do_not_contact
language sql
stable
set search_path = ''
as $$
    with person as (
        select l.phone, lower(l.email) as email from public.leads l
        where l.id = p_lead_id
           or l.person_id = (select m.person_id from public.leads m where m.id = p_lead_id)
    )
    select d.* from public.do_not_contact d
    where d.removed_at is null
      and ((d.kind = 'phone' and d.value in (select p.phone from person p where p.phone is not null))
           or (d.kind = 'email' and d.value in (select p.email from person p where p.email is not null)))
    order by d.id
    limit 1;
$$;

revoke all on function public.dnc_person_entry(uuid) from public, anon, authenticated;
grant execute on function public.dnc_person_entry(uuid) to service_role;
revoke all on function public.dnc_entry(text, text) from public, anon, authenticated;
grant execute on function public.dnc_entry(text, text) to service_role;

create or replace function public.call_opt_out(p_lead_id uuid, p_words text, p_conversation text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_person uuid;
    v_marked integer;
begin
    -- The person's lock first, as call_claim takes it: a claim of another lead of the person
    -- waits for this opt-out, then sees the list.
    perform public.person_lock(p_lead_id);
    v_person := (select l.person_id from public.leads l where l.id = p_lead_id);
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

-- call_claim's check of the list (after the phone check, replacing the person do_not_call check) is
-- written with the rest of the claim in 20261204002000_rules_by_place.sql: one text of call_claim
-- for these three migrations, applied together.
