-- meta_ingest looked up the lead of each duplicate change with a join that the planner made a
-- sequential scan of public.leads whenever its row estimate for the delivery's changes (100, for
-- any jsonb_array_elements) made hashing every lead look cheaper than 100 index probes: each
-- delivery then read every lead (3.3 ms at 20,000 leads, growing with the table). The lookup is
-- now a scalar subquery, one probe of the unique index on meta_leadgen_id per change, whatever
-- the table's size or statistics. Otherwise the function is unchanged
-- (20261127000200_meta_leads.sql documents it); `create or replace` keeps its grants.

create or replace function public.meta_ingest(
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
               -- A duplicate's lead, by its leadgen id: a scalar subquery, i.e. one probe of
               -- the unique index per change (as a join, or a lateral join that the planner
               -- flattens into one, it was planned as a scan of every lead, per delivery).
               coalesce(c.lead_id, (
                   select l.id from public.leads l where l.meta_leadgen_id = i.leadgen_id
               )) as lead_id
        from items i
        left join firsts f on f.ord = i.ord
        left join created c on c.leadgen_id = f.leadgen_id
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
