-- A lead that leaves fetch_pending still gets its answers.
--
-- Whether a Meta lead's answers are still to fetch was read from its status (fetch_pending). A
-- lead whose Graph fetch failed and that was then booked through Calendly (tied by utm_content)
-- left fetch_pending for booked, and no sweep nor `make retry` ever fetched it: a booked lead
-- with no name, email or phone. Now the answers are due while fetched_at is null (a Meta lead
-- whose fetch never succeeded), whatever the status; only a fetch_pending lead is queued for its
-- call when they come.

create index leads_answers_due on public.leads (next_fetch_at)
    where fetched_at is null and meta_leadgen_id is not null;
drop index public.leads_fetch_due;

-- meta_complete (20261204001000_people.sql): answers stored for any lead still without them;
-- the status moves (and the call is queued) only from fetch_pending.
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
        -- Answers still to fetch, whatever the lead's status (booked through Calendly while its
        -- fetch was failing, say): only a fetch_pending lead is also queued for its call.
        select * into v_row from public.leads l
        where l.id = v_lead_id and l.fetched_at is null and l.meta_leadgen_id is not null
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
                    status = case when l.status <> 'fetch_pending' then l.status
                                  when v_lead ->> 'phone' is not null then 'call_queued'
                                  else 'fetched' end,
                    next_call_at = case when l.status <> 'fetch_pending' then l.next_call_at
                                        when v_lead ->> 'phone' is not null then now() end,
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
                    'meta', 'lead.fetched', 'ok',
                    (v_item ->> 'message') || case when v_row.status <> 'fetch_pending'
                        then ' The lead is already ' || v_row.status
                             || ': its answers are stored, and no call is queued.'
                        else '' end,
                    v_row.meta_leadgen_id,
                    v_row.id, null, coalesce(v_item -> 'details', '{}'::jsonb),
                    public.int_or_null(v_item ->> 'duration_ms'));
                v_completed := v_completed + 1;
                if v_lead ->> 'phone' is not null and v_row.status = 'fetch_pending' then
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
                when v_next is null then ' No automatic retry: its answers stay unfetched.'
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

-- meta_claim_due (20261127000200_meta_leads.sql): every lead whose answers are due.
create or replace function public.meta_claim_due(p_limit integer default 50)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_claimed jsonb;
    v_remaining bigint;
begin
    with due as (
        select l.id from public.leads l
        where l.fetched_at is null and l.meta_leadgen_id is not null
          and l.next_fetch_at <= now()
        order by l.next_fetch_at
        limit greatest(p_limit, 0)
        for update skip locked
    ), claimed as (
        update public.leads l
        set next_fetch_at = public.queue_lease_until(public.meta_fetch_policy()),
            fetch_claimed_at = now(),
            fetch_attempts = l.fetch_attempts + 1
        from due where l.id = due.id
        returning l.id, l.meta_leadgen_id, l.fetch_attempts
    )
    select coalesce(jsonb_agg(jsonb_build_object(
               'lead_id', c.id, 'leadgen_id', c.meta_leadgen_id, 'attempt', c.fetch_attempts)),
           '[]'::jsonb)
    into v_claimed from claimed c;

    select count(*) into v_remaining from public.leads l
    where l.fetched_at is null and l.meta_leadgen_id is not null and l.next_fetch_at <= now();

    return jsonb_build_object('claimed', v_claimed, 'remaining', v_remaining);
end
$$;

-- meta_retry_pending (20261127000200_meta_leads.sql): every lead whose answers are still to
-- fetch, whatever its status.
create or replace function public.meta_retry_pending()
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_count integer;
begin
    update public.leads l set next_fetch_at = now()
    where l.fetched_at is null and l.meta_leadgen_id is not null
      and (l.next_fetch_at is null or l.next_fetch_at > now())
      and (l.fetch_claimed_at is null
           or l.fetch_claimed_at < now() - (public.meta_fetch_policy()).lease);
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform public.log_event(
            'meta', 'lead.retry_requested', 'ok',
            v_count || ' leads whose answers are still to fetch made due now by an operator; '
                || 'the sweep fetches them.',
            null, null, null, jsonb_build_object('leads', v_count));
    end if;
    return v_count;
end
$$;

-- meta_pending_summary (20261127000200_meta_leads.sql), for `make doctor`: every lead whose
-- answers are still to fetch.
create or replace function public.meta_pending_summary()
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'pending', count(*),
        'due', count(*) filter (where l.next_fetch_at <= now()),
        'credentials', count(*) filter (
            where l.fetch_error_class in ('auth', 'permission', 'config')),
        'parked', count(*) filter (where l.next_fetch_at is null))
    from public.leads l where l.fetched_at is null and l.meta_leadgen_id is not null
$$;
