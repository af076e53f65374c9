-- Night is night in every zone a number may be in.
--
-- A number whose prefix spans several time zones (every Spanish mobile: the peninsula and the
-- Canaries; +351, +61, the multi-zone +1 prefixes) had no time zone, and its call was judged in
-- CALL_DEFAULT_TIMEZONE (New York): a +34 6… lead was called at 02:58 Madrid time. Now a lead
-- keeps every zone its number may be in (leads.timezones, from meta_webhook's phone parsing), and
-- a call is allowed only when the time is within calling hours in each of them (call_window);
-- CALL_DEFAULT_TIMEZONE is for numbers that give no zone at all. A number whose zones share no
-- calling hours (a toll-free +1 8xx spans Guam to Pago Pago) rests in no_calling_hours, with a
-- log row, instead of being rescheduled for ever. Calling hours must be a daytime window, start
-- before end (place_call refuses others by name): overnight windows are not supported.
-- Each placed call records the zones and the local times that allowed it (calls.allowed_by).

alter table public.leads add column timezones text[];
comment on column public.leads.timezones is
    'Every IANA time zone the lead''s phone number may be in (from its prefix), for calling hours; null or empty: timezone, else CALL_DEFAULT_TIMEZONE.';

alter table public.calls add column allowed_by jsonb;
comment on column public.calls.allowed_by is
    'Why the call was allowed when it was claimed: the calling hours, and the local time in every zone the number may be in.';

insert into public.lead_statuses (status, meaning) values
    ('no_calling_hours', 'The phone number may be in time zones that share no calling hours (a toll-free number, say): it is never called automatically.');
insert into public.lead_status_transitions (from_status, to_status) values
    ('call_queued', 'no_calling_hours'),
    ('no_calling_hours', 'call_queued'),
    ('no_calling_hours', 'booked'),
    ('no_calling_hours', 'do_not_call');

-- call_window: whether p_at is within calling hours (p_rules hours_start, hours_end: start before
-- end, end may be 24:00) in every zone of p_zones, and if not, the first moment after p_at when
-- it is (null: the zones share no calling hours). Zones Postgres does not know are skipped; no
-- known zone: p_rules default_timezone. The one place calling hours are decided: rules by place
-- (a state's own window) extend it. Returns {allowed, next_at, zones, hours, local}.
create function public.call_window(p_zones text[], p_rules jsonb, p_at timestamptz)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_start time := public.call_rule(p_rules, 'hours_start')::time;
    v_end time := public.call_rule(p_rules, 'hours_end')::time;
    v_zones text[] := '{}';
    v_zone text;
    v_allowed boolean;
    v_next timestamptz;
begin
    foreach v_zone in array coalesce(p_zones, '{}') loop
        continue when v_zone is null or v_zone = any (v_zones);
        begin
            perform p_at at time zone v_zone;
            v_zones := v_zones || v_zone;
        exception when others then
            continue;  -- a zone Postgres does not know
        end;
    end loop;
    if cardinality(v_zones) = 0 then
        v_zone := public.call_rule(p_rules, 'default_timezone');
        begin
            perform p_at at time zone v_zone;
            v_zones := array[v_zone];
        exception when others then
            v_zones := array['UTC'];
        end;
    end if;

    select bool_and((p_at at time zone z)::time >= v_start and (p_at at time zone z)::time < v_end)
    into v_allowed
    from unnest(v_zones) z;
    if not v_allowed then
        -- The common window, if any, opens when the last of the zones opens: the earliest
        -- opening (in any zone, over the next 8 days) at which every zone is within hours.
        select min(c.opens) into v_next
        from (select ((((p_at at time zone z)::date + d) + v_start) at time zone z) as opens
              from unnest(v_zones) z, generate_series(0, 8) d) c
        where c.opens > p_at
          and not exists (
              select from unnest(v_zones) z
              where not ((c.opens at time zone z)::time >= v_start
                         and (c.opens at time zone z)::time < v_end));
    end if;
    return jsonb_build_object(
        'allowed', v_allowed, 'next_at', v_next, 'zones', to_jsonb(v_zones),
        'hours', to_char(v_start, 'HH24:MI') || '–' || case when v_end = '24:00' then '24:00'
                                                            else to_char(v_end, 'HH24:MI') end,
        'local', (select jsonb_object_agg(z, to_char(p_at at time zone z, 'YYYY-MM-DD HH24:MI'))
                  from unnest(v_zones) z));
end
$$;

-- call_claim: claim the lead's call if the rules allow it now (20261204000700_call_ledger.sql),
-- its calling hours decided by call_window over every zone of the number: outside_hours
-- (next_call_at: when the zones' common window opens) or no_calling_hours (no common window:
-- the lead rests in no_calling_hours).
create or replace function public.call_claim(p_lead_id uuid, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads;
    v_max integer := public.call_rule(p_rules, 'max_attempts')::integer;
    v_window jsonb;
    v_next timestamptz;
    v_zones text;
    v_call_id uuid;
begin
    select * into v_lead from public.leads l where l.id = p_lead_id for update;
    if not found then
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

-- meta_complete (20261127000200_meta_leads.sql), now storing every time zone of the lead's number
-- (lead.timezones) beside the single one (lead.timezone, set only when the number has one).
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

revoke all on function public.call_window(text[], jsonb, timestamptz)
    from public, anon, authenticated;
grant execute on function public.call_window(text[], jsonb, timestamptz) to service_role;
