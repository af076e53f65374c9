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
--   p_leads:   [{leadgen_id, page_id, form_id, ad_id, adgroup_id, created_time, payload}]
--   p_skipped: [{event, status, message, error_code, external_id, details}] changes not stored
--              (ignored fields, rejected items), logged in the same transaction.
--   p_claim_limit: how many new leads the caller fetches now; the others are due for the sweep.
-- Returns {to_fetch, deferred, duplicates}, each [{lead_id, leadgen_id}]: only the delivery
-- that created a lead fetches it, so simultaneous duplicates cause one Graph call.
create function public.meta_ingest(
    p_leads jsonb, p_skipped jsonb default '[]'::jsonb, p_claim_limit integer default 1000
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_item jsonb;
    v_leadgen_id text;
    v_lead_id uuid;
    v_to_fetch jsonb := '[]'::jsonb;
    v_deferred jsonb := '[]'::jsonb;
    v_claim boolean;
    v_duplicates jsonb := '[]'::jsonb;
begin
    for v_item in select value from jsonb_array_elements(coalesce(p_leads, '[]'::jsonb)) loop
        v_leadgen_id := v_item ->> 'leadgen_id';
        if coalesce(v_leadgen_id, '') = '' then
            raise exception 'meta_ingest: leadgen_id is required' using errcode = '22023';
        end if;

        insert into public.webhook_events (provider, event_type, external_id, payload)
        values ('meta', 'leadgen', v_leadgen_id, coalesce(v_item -> 'payload', v_item))
        on conflict on constraint webhook_events_once do nothing;

        v_lead_id := null;
        v_claim := jsonb_array_length(v_to_fetch) < p_claim_limit;
        insert into public.leads as l
            (source, meta_leadgen_id, page_id, form_id, ad_id, adgroup_id, submitted_at,
             status, fetch_attempts, next_fetch_at)
        values
            ('meta_lead_ads', v_leadgen_id, v_item ->> 'page_id', v_item ->> 'form_id',
             v_item ->> 'ad_id', v_item ->> 'adgroup_id',
             to_timestamp((v_item ->> 'created_time')::double precision),
             'fetch_pending', case when v_claim then 1 else 0 end,
             case when v_claim then public.queue_lease_until(public.meta_fetch_policy())
                  else now() end)
        on conflict (meta_leadgen_id) do nothing
        returning l.id into v_lead_id;

        if v_lead_id is null then
            select l.id into v_lead_id from public.leads l where l.meta_leadgen_id = v_leadgen_id;
            v_duplicates := v_duplicates
                || jsonb_build_object('lead_id', v_lead_id, 'leadgen_id', v_leadgen_id);
            perform public.log_event(
                'meta', 'lead.received', 'duplicate',
                'Meta delivered leadgen_id ' || v_leadgen_id || ' again; it is already lead '
                    || v_lead_id || ', nothing changed.',
                v_leadgen_id, v_lead_id);
        else
            if v_claim then
                v_to_fetch := v_to_fetch
                    || jsonb_build_object('lead_id', v_lead_id, 'leadgen_id', v_leadgen_id);
            else
                v_deferred := v_deferred
                    || jsonb_build_object('lead_id', v_lead_id, 'leadgen_id', v_leadgen_id);
            end if;
            perform public.log_event(
                'meta', 'lead.received', 'ok',
                'Lead received from Meta (form ' || coalesce(v_item ->> 'form_id', '?')
                    || '); fetching its answers from the Graph API.',
                v_leadgen_id, v_lead_id, null,
                jsonb_strip_nulls(jsonb_build_object(
                    'page_id', v_item ->> 'page_id', 'form_id', v_item ->> 'form_id',
                    'ad_id', v_item ->> 'ad_id')));
        end if;
    end loop;

    for v_item in select value from jsonb_array_elements(coalesce(p_skipped, '[]'::jsonb)) loop
        perform public.log_event(
            'meta', coalesce(v_item ->> 'event', 'webhook'), coalesce(v_item ->> 'status', 'ignored'),
            coalesce(v_item ->> 'message', 'Change ignored.'), v_item ->> 'external_id', null,
            v_item ->> 'error_code', coalesce(v_item -> 'details', '{}'::jsonb));
    end loop;

    return jsonb_build_object('to_fetch', v_to_fetch, 'deferred', v_deferred,
                              'duplicates', v_duplicates);
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
-- A lead that is no longer fetch_pending is left as it is. Returns {completed, failed, skipped}.
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
    v_completed integer := 0;
    v_failed integer := 0;
    v_skipped integer := 0;
begin
    for v_item in select value from jsonb_array_elements(coalesce(p_results, '[]'::jsonb)) loop
        select * into v_row from public.leads l
        where l.id = (v_item ->> 'lead_id')::uuid and l.status = 'fetch_pending'
        for update;
        if not found then
            v_skipped := v_skipped + 1;
            continue;
        end if;

        if (v_item ->> 'ok')::boolean then
            v_lead := coalesce(v_item -> 'lead', '{}'::jsonb);
            update public.leads l set
                status = 'fetched',
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
                next_fetch_at = null
            where l.id = v_row.id;
            v_completed := v_completed + 1;
            perform public.log_event(
                'meta', 'lead.fetched', 'ok', v_item ->> 'message', v_row.meta_leadgen_id,
                v_row.id, null, coalesce(v_item -> 'details', '{}'::jsonb),
                (v_item ->> 'duration_ms')::integer);
        else
            v_class := public.failure_class_of(v_item ->> 'error_class');
            v_next := public.queue_retry_at(public.meta_fetch_policy(), v_class,
                                            v_row.fetch_attempts);
            update public.leads l set
                fetch_error_class = v_class,
                fetch_error_code = v_item ->> 'error_code',
                fetch_error = v_item ->> 'message',
                next_fetch_at = v_next
            where l.id = v_row.id;
            v_failed := v_failed + 1;
            perform public.log_event(
                'meta', 'lead.fetch_failed', 'error',
                (v_item ->> 'message') || case
                    when v_next is null then ' No automatic retry: the lead stays fetch_pending.'
                    else ' The sweep retries after ' || to_char(v_next at time zone 'UTC',
                        'YYYY-MM-DD HH24:MI:SS') || ' UTC (attempt ' || v_row.fetch_attempts || ').'
                end,
                v_row.meta_leadgen_id, v_row.id, v_item ->> 'error_code',
                coalesce(v_item -> 'details', '{}'::jsonb)
                    || jsonb_build_object('error_class', v_class,
                                          'attempt', v_row.fetch_attempts,
                                          'next_fetch_at', v_next),
                (v_item ->> 'duration_ms')::integer);
        end if;
    end loop;

    return jsonb_build_object('completed', v_completed, 'failed', v_failed, 'skipped', v_skipped);
end
$$;

revoke all on function public.meta_fetch_policy() from public, anon, authenticated;
revoke all on function public.meta_ingest(jsonb, jsonb, integer) from public, anon, authenticated;
revoke all on function public.meta_claim_due(integer) from public, anon, authenticated;
revoke all on function public.meta_complete(jsonb) from public, anon, authenticated;
grant execute on function public.meta_ingest(jsonb, jsonb, integer) to service_role;
grant execute on function public.meta_claim_due(integer) to service_role;
grant execute on function public.meta_complete(jsonb) to service_role;
grant execute on function public.meta_fetch_policy() to service_role;
