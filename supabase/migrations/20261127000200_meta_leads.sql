-- Meta Lead Ads: the data rules of meta_webhook and its sweep.
--
-- A delivery costs two round trips: meta_ingest (store the delivery and the fetch_pending lead,
-- claim the Graph fetch) before the Graph API is called, meta_complete after it. The sweep costs
-- two as well: meta_claim_due, then meta_complete.

-- The Graph fetch queue's numbers (public.queue_policy): a claim is reserved for 2 minutes
-- (the immediate path died, the instance was recycled … and the sweep takes over); retries
-- start 30 s apart, doubling, at most an hour apart, for 40 attempts (about a day and a half).
create function public.meta_fetch_policy() returns public.queue_policy
language sql immutable set search_path = '' as $$
    select row(interval '2 minutes', interval '30 seconds', interval '1 hour', 40)::public.queue_policy
$$;

-- meta_ingest: store each leadgen change of one delivery, idempotently on leadgen_id.
--   p_leads:   [{leadgen_id, page_id, form_id, ad_id, adgroup_id, created_time, payload,
--               warnings}] (warnings: values of the change that were unusable and replaced)
--   p_skipped: [{event, status, message, error_code, external_id, details}] changes not stored
--              (ignored fields, rejected items), logged in the same transaction.
--   p_claim_limit: how many new leads the caller fetches now; the others are due for the sweep.
-- Returns {to_fetch, deferred, duplicates}, each [{lead_id, leadgen_id}] in delivery order:
-- only the delivery that created a lead fetches it, so simultaneous duplicates cause one Graph
-- call. Set-based: a delivery of n changes costs a handful of statements, linear in n.
create function public.meta_ingest(
    p_leads jsonb, p_skipped jsonb default '[]'::jsonb, p_claim_limit integer default 1000
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_new_ids uuid[];
    v_new_leadgen_ids text[];
    v_limit integer := greatest(coalesce(p_claim_limit, 0), 0);
    v_result jsonb;
begin
    if exists (
        select from jsonb_array_elements(coalesce(p_leads, '[]'::jsonb)) i
        where coalesce(i.value ->> 'leadgen_id', '') = ''
    ) then
        raise exception 'meta_ingest: leadgen_id is required' using errcode = '22023';
    end if;

    -- The first change of each leadgen_id stores the delivery and the lead (due now).
    with items as (
        select i.ordinality as ord, i.value ->> 'leadgen_id' as leadgen_id, i.value as item
        from jsonb_array_elements(coalesce(p_leads, '[]'::jsonb)) with ordinality as i
    ), firsts as (
        select distinct on (leadgen_id) * from items order by leadgen_id, ord
    ), events as (
        insert into public.webhook_events (provider, event_type, external_id, payload)
        select 'meta', 'leadgen', f.leadgen_id, coalesce(f.item -> 'payload', f.item)
        from firsts f
        on conflict on constraint webhook_events_once do nothing
    ), inserted as (
        insert into public.leads as l
            (source, meta_leadgen_id, page_id, form_id, ad_id, adgroup_id, submitted_at,
             status, fetch_attempts, next_fetch_at)
        select 'meta_lead_ads', f.leadgen_id, f.item ->> 'page_id', f.item ->> 'form_id',
               f.item ->> 'ad_id', f.item ->> 'adgroup_id',
               to_timestamp((f.item ->> 'created_time')::double precision),
               'fetch_pending', 0, now()
        from firsts f
        on conflict (meta_leadgen_id) do nothing
        returning l.id, l.meta_leadgen_id
    )
    select array_agg(n.id order by f.ord), array_agg(n.meta_leadgen_id order by f.ord)
    into v_new_ids, v_new_leadgen_ids
    from inserted n join firsts f on f.leadgen_id = n.meta_leadgen_id;

    -- The first p_claim_limit new leads are fetched by the caller now.
    update public.leads l
    set fetch_attempts = 1, fetch_claimed_at = now(),
        next_fetch_at = public.queue_lease_until(public.meta_fetch_policy())
    where l.id = any ((coalesce(v_new_ids, '{}'))[1:v_limit]);

    with items as (
        select i.ordinality as ord, i.value ->> 'leadgen_id' as leadgen_id, i.value as item
        from jsonb_array_elements(coalesce(p_leads, '[]'::jsonb)) with ordinality as i
    ), created as (
        select c.lead_id, c.leadgen_id, c.rank
        from unnest(v_new_ids, v_new_leadgen_ids) with ordinality as c (lead_id, leadgen_id, rank)
    ), firsts as (
        select distinct on (leadgen_id) ord, leadgen_id from items order by leadgen_id, ord
    ), classified as (
        -- Each change: created (the first change of an id this call inserted) or a duplicate.
        select i.ord, i.leadgen_id, i.item, c.rank,
               coalesce(c.lead_id, l.id) as lead_id
        from items i
        left join firsts f on f.ord = i.ord
        left join created c on c.leadgen_id = f.leadgen_id
        left join public.leads l on c.lead_id is null and l.meta_leadgen_id = i.leadgen_id
    ), received as (
        insert into public.integration_logs
            (provider, event, status, message, external_id, lead_id, details)
        select 'meta', 'lead.received', 'ok',
               'Lead received from Meta (form ' || coalesce(x.item ->> 'form_id', '?')
                   || '); fetching its answers from the Graph API.'
                   || case when jsonb_array_length(coalesce(x.item -> 'warnings', '[]')) > 0
                      then ' Some values of the change were unusable and were replaced in the '
                           || 'stored delivery (details.warnings).'
                      else '' end,
               x.leadgen_id, x.lead_id,
               jsonb_strip_nulls(jsonb_build_object(
                   'page_id', x.item ->> 'page_id', 'form_id', x.item ->> 'form_id',
                   'ad_id', x.item ->> 'ad_id',
                   'warnings', nullif(x.item -> 'warnings', '[]'::jsonb)))
        from classified x where x.rank is not null order by x.ord
    ), duplicates as (
        insert into public.integration_logs
            (provider, event, status, message, external_id, lead_id)
        select 'meta', 'lead.received', 'duplicate',
               'Meta delivered leadgen_id ' || x.leadgen_id || ' again; it is already lead '
                   || x.lead_id || ', nothing changed.',
               x.leadgen_id, x.lead_id
        from classified x where x.rank is null order by x.ord
    ), skipped as (
        insert into public.integration_logs
            (provider, event, status, message, external_id, error_code, details)
        select 'meta', coalesce(s.value ->> 'event', 'webhook'),
               coalesce(s.value ->> 'status', 'ignored'),
               coalesce(s.value ->> 'message', 'Change ignored.'), s.value ->> 'external_id',
               s.value ->> 'error_code', coalesce(s.value -> 'details', '{}'::jsonb)
        from jsonb_array_elements(coalesce(p_skipped, '[]'::jsonb)) with ordinality as s
        order by s.ordinality
    )
    select jsonb_build_object(
        'to_fetch', coalesce(jsonb_agg(jsonb_build_object('lead_id', x.lead_id,
            'leadgen_id', x.leadgen_id) order by x.ord) filter (where x.rank <= v_limit),
            '[]'::jsonb),
        'deferred', coalesce(jsonb_agg(jsonb_build_object('lead_id', x.lead_id,
            'leadgen_id', x.leadgen_id) order by x.ord) filter (where x.rank > v_limit),
            '[]'::jsonb),
        'duplicates', coalesce(jsonb_agg(jsonb_build_object('lead_id', x.lead_id,
            'leadgen_id', x.leadgen_id) order by x.ord) filter (where x.rank is null),
            '[]'::jsonb))
    into v_result
    from classified x;

    return v_result;
end
$$;

-- meta_claim_due: claim up to p_limit fetch_pending leads whose retry time has come, for the
-- sweep. SKIP LOCKED + the lease make two sweeps (or a sweep and the immediate path) never
-- fetch the same lead at once. Returns {claimed: [{lead_id, leadgen_id, attempt}], remaining}.
create function public.meta_claim_due(p_limit integer default 50)
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
        where l.status = 'fetch_pending' and l.next_fetch_at <= now()
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
    where l.status = 'fetch_pending' and l.next_fetch_at <= now();

    return jsonb_build_object('claimed', v_claimed, 'remaining', v_remaining);
end
$$;

-- meta_complete: record the outcome of claimed Graph fetches.
--   success: {lead_id, ok: true, lead: {full_name, email, phone, answers, ad_id, adset_id,
--             campaign_id, ad_name, campaign_name, platform, is_organic, form_id}, message,
--             details, duration_ms}
--   failure: {lead_id, ok: false, error_class, error_code, message, details, duration_ms}
-- A lead that is no longer fetch_pending is left as it is. A completed lead with a phone is
-- queued for its call (status call_queued, due now) in the same transaction. Returns
-- {completed, failed, skipped, queued: [lead ids queued for a call]}.
create function public.meta_complete(p_results jsonb)
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

-- meta_retry_pending: make every fetch_pending lead due now (after an operator fixed a token or
-- a permission: `make retry`), parked ones included, except those whose fetch is in flight.
-- Returns how many were made due.
create function public.meta_retry_pending()
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_count integer;
begin
    update public.leads l set next_fetch_at = now()
    where l.status = 'fetch_pending'
      and (l.next_fetch_at is null or l.next_fetch_at > now())
      and (l.fetch_claimed_at is null
           or l.fetch_claimed_at < now() - (public.meta_fetch_policy()).lease);
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform public.log_event(
            'meta', 'lead.retry_requested', 'ok',
            v_count || ' fetch_pending leads made due now by an operator; the sweep fetches them.',
            null, null, null, jsonb_build_object('leads', v_count));
    end if;
    return v_count;
end
$$;

-- meta_pending_summary: what waits for a Graph fetch, for `make doctor`.
create function public.meta_pending_summary()
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
    from public.leads l where l.status = 'fetch_pending'
$$;

revoke all on function public.meta_pending_summary() from public, anon, authenticated;
grant execute on function public.meta_pending_summary() to service_role;
revoke all on function public.meta_retry_pending() from public, anon, authenticated;
grant execute on function public.meta_retry_pending() to service_role;
revoke all on function public.meta_fetch_policy() from public, anon, authenticated;
revoke all on function public.meta_ingest(jsonb, jsonb, integer) from public, anon, authenticated;
revoke all on function public.meta_claim_due(integer) from public, anon, authenticated;
revoke all on function public.meta_complete(jsonb) from public, anon, authenticated;
grant execute on function public.meta_ingest(jsonb, jsonb, integer) to service_role;
grant execute on function public.meta_claim_due(integer) to service_role;
grant execute on function public.meta_complete(jsonb) to service_role;
grant execute on function public.meta_fetch_policy() to service_role;
