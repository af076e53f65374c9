-- A booking's invitee is the person.
--
-- A booking matched by email to a lead with another phone left the invitee's phone unattached:
-- another lead with that phone (already stored, or stored later) was still called after the
-- person booked. Now the invitee's phone and email join the booked lead's person
-- (calendly_settle_lead), and person_of counts every appointment's invitee phone and email as the
-- person of its lead, so a lead stored later with them is that person too.

create index appointments_invitee_phone on public.appointments (invitee_phone)
    where invitee_phone is not null;
create index appointments_invitee_email on public.appointments (lower(invitee_email))
    where invitee_email is not null;

-- person_of (20261204001000_people.sql), counting appointments' invitees.
create or replace function public.person_of(p_lead_id uuid, p_phone text, p_email text, p_current uuid)
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
        -- A booking's invitee is the booked lead's person: their phone and email count too.
        select l.person_id from public.appointments a
        join public.leads l on l.id = a.lead_id
        where p_phone is not null and a.invitee_phone = p_phone and l.person_id is not null
          and l.id <> p_lead_id
        union all
        select l.person_id from public.appointments a
        join public.leads l on l.id = a.lead_id
        where p_email is not null and lower(a.invitee_email) = lower(p_email)
          and l.person_id is not null and l.id <> p_lead_id
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

-- calendly_settle_lead (20261204001000_people.sql), joining the invitee's phone and email to
-- the booked lead's person before the other leads of the person rest in person_booked.
create or replace function public.calendly_settle_lead(p_lead_id uuid)
returns text
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads := public.person_lock(p_lead_id);
    v_status text := v_lead.status;
    v_target text;
    v_phone text;
    v_email text;
    v_person uuid;
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
    if v_status = 'booked' then
        -- The invitee's phone and email are the person's too (a booking matched by email to a
        -- lead with another phone): every lead with either is theirs.
        select a.invitee_phone, a.invitee_email into v_phone, v_email
        from public.appointments a
        where a.lead_id = p_lead_id and a.status = 'active'
        order by a.created_at desc limit 1;
        if v_phone is not null or v_email is not null then
            v_person := public.person_of(p_lead_id, v_phone, v_email, v_lead.person_id);
            if v_person is distinct from v_lead.person_id then
                update public.leads l set person_id = v_person where l.id = p_lead_id;
                v_lead.person_id := v_person;
            end if;
        end if;
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
