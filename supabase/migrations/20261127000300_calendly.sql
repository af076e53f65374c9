-- Calendly: every booking tied to its lead.
--
-- One delivery costs one round trip: calendly_record stores the event (idempotently), upserts
-- the appointment by its invitee URI, ties it to a lead (the lead id carried in the scheduling
-- link's utm_content, else the email, else the phone; else a new lead with source calendly) and
-- moves the lead along its lifecycle, all in one transaction.

create table public.appointments (
    id uuid primary key default gen_random_uuid(),
    lead_id uuid not null references public.leads (id) on delete cascade,
    calendly_invitee_uri text not null constraint appointments_invitee_once unique,
    calendly_event_uri text,
    status text not null default 'active'
        constraint appointments_status_known check (status in ('active', 'canceled')),
    rescheduled boolean not null default false,
    start_time timestamptz,
    end_time timestamptz,
    timezone text,
    invitee_name text,
    invitee_email text,
    invitee_phone text,
    event_name text,
    event_type text,
    location jsonb,
    cancel_url text,
    reschedule_url text,
    answers jsonb not null default '[]'::jsonb,
    tracking jsonb not null default '{}'::jsonb,
    matched_by text not null
        constraint appointments_matched_by_known
        check (matched_by in ('reschedule', 'tracking', 'email', 'phone', 'new_lead')),
    old_invitee_uri text,
    new_invitee_uri text,
    canceled_at timestamptz,
    cancel_reason text,
    canceled_by text,
    canceler_type text,
    no_show boolean not null default false,
    no_show_at timestamptz,
    booked_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

comment on table public.appointments is
    'One row per Calendly invitee (a booking). A reschedule cancels the old invitee (rescheduled = true) and books a new one; the lead stays booked.';
comment on column public.appointments.matched_by is
    'How the booking found its lead: reschedule (the lead of the booking it replaces), tracking (the lead id in utm_content), email, phone, or new_lead (no match: a lead with source calendly was created).';

create index appointments_lead on public.appointments (lead_id, start_time desc);
create index leads_email_recent on public.leads (lower(email), created_at desc)
    where email is not null;

create trigger appointments_touch_updated_at before update on public.appointments
    for each row execute function public.touch_updated_at();

alter table public.appointments enable row level security;
revoke all on public.appointments from public, anon, authenticated;
grant all on public.appointments to service_role;

-- The lead a booking belongs to: the lead of the booking it reschedules, else the lead id from
-- the link's tracking, else the most recent lead with the email (case-insensitive), else with the
-- phone (E.164). Null when none matches.
create function public.calendly_match_lead(
    p_old_invitee text, p_lead_id uuid, p_email text, p_phone text
)
returns table (lead_id uuid, matched_by text)
language sql
stable
set search_path = ''
as $$
    select m.id, m.how from (
        select a.lead_id as id, 'reschedule' as how, 0 as rank, a.created_at
        from public.appointments a
        where p_old_invitee is not null and a.calendly_invitee_uri = p_old_invitee
        union all
        select l.id, 'tracking', 1, l.created_at
        from public.leads l where p_lead_id is not null and l.id = p_lead_id
        union all
        select l.id, 'email', 2, l.created_at
        from public.leads l
        where p_email is not null and lower(l.email) = lower(p_email)
        union all
        select l.id, 'phone', 3, l.created_at
        from public.leads l where p_phone is not null and l.phone = p_phone
    ) m
    order by m.rank, m.created_at desc
    limit 1
$$;

-- Move a lead to booked or canceled when the lifecycle allows it; leave it as it is otherwise
-- (do_not_call stays do_not_call). Returns the lead's status afterwards.
create function public.calendly_settle_lead(p_lead_id uuid)
returns text
language plpgsql
set search_path = ''
as $$
declare
    v_status text;
    v_target text;
begin
    select l.status into v_status from public.leads l where l.id = p_lead_id for update;
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
        return v_target;
    end if;
    return v_status;
end
$$;

-- calendly_record: one Calendly event, normalized by calendly_webhook.
--   p_event: {event, external_id, invitee_uri, event_uri, status, rescheduled, old_invitee_uri,
--             new_invitee_uri, start_time, end_time, timezone, name, email, phone, event_name,
--             event_type, location, cancel_url, reschedule_url, answers, tracking, lead_id,
--             cancellation: {reason, canceled_by, canceler_type, created_at}, no_show_at,
--             created_at, payload}
-- Idempotent on (event, external_id): a redelivery answers {duplicate: true} and changes nothing.
-- Returns {duplicate, appointment_id, lead_id, matched_by, lead_status}.
create function public.calendly_record(p_event jsonb)
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
            perform pg_advisory_xact_lock(hashtextextended(
                'calendly-lead:' || coalesce(lower(p_event ->> 'email'), p_event ->> 'phone', ''), 0));
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

revoke all on function public.calendly_match_lead(text, uuid, text, text)
    from public, anon, authenticated;
revoke all on function public.calendly_settle_lead(uuid) from public, anon, authenticated;
revoke all on function public.calendly_record(jsonb) from public, anon, authenticated;
grant execute on function public.calendly_match_lead(text, uuid, text, text) to service_role;
grant execute on function public.calendly_settle_lead(uuid) to service_role;
grant execute on function public.calendly_record(jsonb) to service_role;

-- lead_trail: everything that happened to a lead, in time order, readable in Supabase Studio
-- (`select * from lead_trail where lead_id = '…' order by at`; `make logs LEAD=…`): every
-- integration_logs row that names it (received, fetched, calls, bookings …) and each of its
-- meetings at its scheduled time. The outbound-call work adds its calls here.
create view public.lead_trail with (security_invoker = true) as
    select g.lead_id, g.created_at as at, g.provider, g.event, g.status, g.error_code,
           g.message, g.details
    from public.integration_logs g
    where g.lead_id is not null
    union all
    select a.lead_id, a.start_time, 'calendly', 'meeting',
           case when a.status = 'active' and a.no_show then 'no_show' else a.status end,
           null,
           coalesce(a.event_name, 'A meeting') || ' (' || a.status
               || case when a.rescheduled then ', rescheduled' else '' end
               || case when a.no_show then ', no-show' else '' end || ')'
               || coalesce(' with ' || a.invitee_name, ''),
           jsonb_strip_nulls(jsonb_build_object('appointment_id', a.id,
                                                'end_time', a.end_time, 'timezone', a.timezone))
    from public.appointments a
    where a.start_time is not null;

comment on view public.lead_trail is
    'For one lead: its receipt, fetch, calls and appointments in time order (filter on lead_id, order by at).';

revoke all on public.lead_trail from public, anon, authenticated;
grant select on public.lead_trail to service_role;
