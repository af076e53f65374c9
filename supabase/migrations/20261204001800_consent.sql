-- Consent on record (issue 15, items 1 and 2). The product calls people with an AI voice: in the
-- US that needs their prior express written consent (FCC 24-17, 47 CFR 64.1200), in Spain their
-- prior consent (LGTel 11/2022 art. 66). Meta Instant Forms carry a custom disclaimer with
-- checkboxes; each lead returns which ones the person checked (custom_disclaimer_responses), and
-- the form holds the text shown (legal_content). docs/LAWFUL_CALLING.md has the sources.
--
-- * lead_forms: each form's legal content, read once from the Graph API (a published Instant
--   Form cannot be edited, so the text never changes under its id).
-- * consents: append-only, one row per checkbox answer (or consent recorded by hand): whether it
--   was checked, whether the form pre-checked it, the text as shown, when, the raw evidence.
--   Nothing updates or deletes a row (a trigger refuses), and a lead with consents cannot be
--   deleted.
-- * call_claim checks the policy, p_rules consent (CALL_CONSENT): required (the default) places
--   no call without a checked box the form did not pre-check (of CALL_CONSENT_CHECKBOXES, any
--   when empty); the lead rests in no_consent with a log row naming the form and what to add.
--   recorded places the call whatever the form says; off does not look. Under required and
--   recorded each call keeps the consent it was placed under (calls.consent), or its absence.
--
-- meta_complete is the text of 20261204001400_call_review_fixes.sql storing the form and the
-- consents with the answers. call_claim's check is in 20261204002000_rules_by_place.sql.

create table public.lead_forms (
    form_id text primary key,
    name text,
    status text,
    locale text,
    legal_content jsonb,
    read_at timestamptz not null default now()
);

comment on table public.lead_forms is
    'Meta Instant Forms as read from the Graph API (GET /{form-id}): their custom disclaimer, the text each consent was given under.';

create table public.consents (
    id bigint generated always as identity primary key,
    lead_id uuid not null references public.leads (id) on delete restrict,
    source text not null constraint consents_source_known check (source in ('meta_form', 'manual')),
    form_id text,
    checkbox_key text,
    checkbox_text text,
    is_checked boolean not null,
    checked_by_default boolean,
    disclaimer text,
    given_at timestamptz,
    recorded_at timestamptz not null default now(),
    evidence jsonb not null default '{}'::jsonb
);

comment on table public.consents is
    'Append-only: every consent answer of a lead. meta_form: a checkbox of the form''s custom disclaimer (checkbox_key), checked or not, pre-checked by the form or not (a pre-checked box is never consent), with the disclaimer as shown and the raw answer in evidence. manual: consent recorded by the operator, evidence saying where it was given.';
comment on column public.consents.given_at is
    'When the person gave (or withheld) it: the form''s submission time at Meta.';

create index consents_lead on public.consents (lead_id);

create function public.consents_append_only() returns trigger
language plpgsql set search_path = '' as $$
begin
    raise exception '% is append-only: % refused', tg_table_name, tg_op
        using errcode = '42501',
              hint = 'Record a new consent row instead (evidence says why).';
end $$;

create trigger consents_append_only before update or delete on public.consents
    for each row execute function public.consents_append_only();
create trigger consents_no_truncate before truncate on public.consents
    for each statement execute function public.consents_append_only();

alter table public.lead_forms enable row level security;
alter table public.consents enable row level security;
revoke all on public.lead_forms, public.consents from public, anon, authenticated;
grant select, insert, update on public.lead_forms to service_role;
grant select, insert on public.consents to service_role;
revoke all on function public.consents_append_only() from public, anon, authenticated;

alter table public.calls add column consent jsonb;
comment on column public.calls.consent is
    'The consent the call was placed under (CALL_CONSENT required or recorded): the consents row, its checkbox and when it was given; {"id": null} when recorded found none; null under off.';

insert into public.lead_statuses (status, meaning) values
    ('no_consent', 'No checked consent checkbox on record (CALL_CONSENT=required): the lead is not called.');
insert into public.lead_status_transitions (from_status, to_status) values
    ('call_queued', 'no_consent'),
    ('no_consent', 'call_queued'),
    ('no_consent', 'booked'),
    ('no_consent', 'person_booked'),
    ('no_consent', 'do_not_call');

-- The consent a lead's call may be placed under (p_rules consent_checkboxes: the keys that mean
-- consent; empty: any), the latest first: a checked box the form did not pre-check, or a
-- consent recorded by hand. Null: none.
create function public.lead_consent(p_lead_id uuid, p_rules jsonb)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object('id', c.id, 'source', c.source, 'form_id', c.form_id,
                              'checkbox_key', c.checkbox_key, 'given_at', c.given_at)
    from public.consents c
    where c.lead_id = p_lead_id and c.is_checked
      and (c.source = 'manual'
           or (c.checked_by_default is false
               and (jsonb_array_length(coalesce(p_rules -> 'consent_checkboxes', '[]')) = 0
                    or p_rules -> 'consent_checkboxes' ? c.checkbox_key)))
    order by c.id desc
    limit 1;
$$;

revoke all on function public.lead_consent(uuid, jsonb) from public, anon, authenticated;
grant execute on function public.lead_consent(uuid, jsonb) to service_role;

-- What a lead without consent needs, for the operator: which form, what it lacks.
create function public.no_consent_text(p_lead public.leads, p_rules jsonb)
returns text
language sql
stable
set search_path = ''
as $$
    select 'Not called: no checked consent checkbox on record for this lead (CALL_CONSENT=required; '
        || 'an AI call needs the person''s prior consent). '
        || case
            when exists (select from public.consents c where c.lead_id = p_lead.id)
                then 'The person did not check the consent box'
                     || case when jsonb_array_length(coalesce(p_rules -> 'consent_checkboxes', '[]')) > 0
                             then ' (CALL_CONSENT_CHECKBOXES: ' || (p_rules ->> 'consent_checkboxes') || ')'
                             else '' end
                     || ', or the form pre-checked it, which is never consent: the lead rests in no_consent.'
            when p_lead.form_id is not null
                then 'Form ' || p_lead.form_id
                     || coalesce(' (' || (select f.name from public.lead_forms f
                                          where f.form_id = p_lead.form_id) || ')', '')
                     || ' asks for no consent: in Meta Ads Manager, duplicate the form and add to its '
                     || 'custom disclaimer a checkbox, not pre-checked, saying the person agrees to be '
                     || 'called by an AI assistant on behalf of the business'
                     || case when jsonb_array_length(coalesce(p_rules -> 'consent_checkboxes', '[]')) > 0
                             then ', with one of the keys of CALL_CONSENT_CHECKBOXES ('
                                  || (p_rules ->> 'consent_checkboxes') || ')'
                             else '' end
                     || '; then use the new form in the ads.'
            else 'The lead came from a source that records no consent (' || p_lead.source
                 || '): record the consent it was given in public.consents (source manual, '
                 || 'evidence saying where), then queue it again.'
        end;
$$;

revoke all on function public.no_consent_text(public.leads, jsonb) from public, anon, authenticated;
grant execute on function public.no_consent_text(public.leads, jsonb) to service_role;

create or replace function public.call_decided(p_result jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
    select p_result || jsonb_build_object('reason', case p_result ->> 'decision'
        when 'not_found' then 'no such lead'
        when 'no_phone' then 'the lead has no valid phone number'
        when 'no_consent' then 'no checked consent checkbox on record (CALL_CONSENT=required): the lead rests in no_consent'
        when 'booked' then 'the lead has booked a meeting: nobody is called after booking'
        when 'do_not_call' then 'the lead is marked do-not-call'
        when 'in_progress' then 'a call to the lead is already in progress'
        when 'not_queued' then 'no call is queued for the lead'
        when 'max_attempts' then 'the lead was called the maximum number of times (CALL_MAX_ATTEMPTS)'
        when 'not_due' then 'the lead''s next call is not due yet'
        when 'outside_hours' then 'outside calling hours in a time zone the lead''s number may be in: scheduled for when they are within hours in every one'
        when 'no_calling_hours' then 'the time zones the lead''s number may be in share no calling hours: the lead is not called automatically'
        when 'person_booked' then 'the same person (the same phone or email) booked through another lead'
        when 'person_in_progress' then 'the same person is on a call for another lead: tried again later'
        when 'person_cooldown' then 'the same person answered a call recently (CALL_PERSON_COOLDOWN_HOURS)'
        when 'person_daily_cap' then 'the same person had the most calls a day allows (CALL_MAX_PER_PERSON_PER_DAY)'
        when 'place' then 'placed'
        else p_result ->> 'decision'
    end);
$$;

-- call_claim's consent check (after the phone check) is written with the rest of the claim in
-- 20261204002000_rules_by_place.sql: one text of call_claim for these three migrations, applied
-- together.

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
    -- (1) Every item's identity keys at once, in one sorted order: two batches sharing people
    -- never hold each other's keys (taken item by item they could).
    perform pg_advisory_xact_lock(hashtextextended(k.key, 0))
    from (select distinct key from (
              select 'phone:' || nullif(i.value -> 'lead' ->> 'phone', '') as key
              from jsonb_array_elements(coalesce(p_results, '[]'::jsonb)) i
              union all
              select 'email:' || lower(nullif(i.value -> 'lead' ->> 'email', ''))
              from jsonb_array_elements(coalesce(p_results, '[]'::jsonb)) i) all_keys
          where key is not null order by key) k;
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
                -- The form's legal content (read once per form) and the lead's consent answers.
                if jsonb_typeof(v_item -> 'form') = 'object'
                   and nullif(v_item -> 'form' ->> 'id', '') is not null then
                    insert into public.lead_forms (form_id, name, status, locale, legal_content)
                    values (left(v_item -> 'form' ->> 'id', 100), left(v_item -> 'form' ->> 'name', 500),
                            left(v_item -> 'form' ->> 'status', 50),
                            left(v_item -> 'form' ->> 'locale', 20),
                            v_item -> 'form' -> 'legal_content')
                    on conflict (form_id) do nothing;
                end if;
                insert into public.consents (lead_id, source, form_id, checkbox_key, checkbox_text,
                                             is_checked, checked_by_default, disclaimer, given_at,
                                             evidence)
                select v_row.id, 'meta_form',
                       coalesce(left(c.value ->> 'form_id', 100), v_lead ->> 'form_id', v_row.form_id),
                       left(c.value ->> 'checkbox_key', 200), left(c.value ->> 'checkbox_text', 2000),
                       (c.value ->> 'is_checked')::boolean,
                       (c.value ->> 'checked_by_default')::boolean,
                       left(c.value ->> 'disclaimer', 10000),
                       coalesce((c.value ->> 'given_at')::timestamptz, v_row.submitted_at),
                       coalesce(c.value -> 'evidence', '{}'::jsonb)
                from jsonb_array_elements(case when jsonb_typeof(v_lead -> 'consents') = 'array'
                                               then v_lead -> 'consents' else '[]'::jsonb end) c;
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
