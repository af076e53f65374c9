-- See the funnel (issue 18): views anyone can read in Supabase Studio, and the only thing
-- `make report` reads, so the page and Studio agree.
--
--   report_leads   one row per lead: where it came from, how fast it was first called and first
--                  reached, what happened, and why it was lost when it was;
--   report_daily   per day (UTC, of the lead's creation at its source), source, form and
--                  campaign: the funnel's counts and the speed-to-lead figures (with every
--                  delay of the group, for a period's percentiles);
--   report_losses  per day, source, form and campaign: the leads never reached, by reason.
--
-- Definitions (also in the README):
-- - source: meta, calendly, manual, or backfill for a Meta lead that `make backfill` or the daily
--   recovery brought (leads.arrived_via);
-- - came_at: the lead's creation at its source (Meta's created_time, else when we stored it);
-- - called: at least one call that may have rung (calls.counted); first attempt: the first call
--   requested, counted or not; first contact: the first call answered by the person;
-- - delays (first_attempt_secs, first_contact_secs) from came_at; none for backfilled leads,
--   whose delay measures the recovery, not the product;
-- - consented: a ticked consent box the form did not pre-check, or a consent recorded by hand;
-- - lost (never reached: not answered, not booked), by the first reason that applies:
--   do_not_call, no_phone, no_consent, person_booked (another lead of the person booked),
--   provider_failures (attempted, nothing ever rang, no call under way), too_old (older than
--   CALL_MAX_LEAD_AGE_HOURS when its call came due), outside_hours (the number's zones share no
--   calling hours), max_attempts (rang, never answered, no more attempts), in_progress (still
--   being tried, waiting for calling hours or a person's cooldown included: not lost yet);
-- - booked: a booking still active (one canceled for good is not; a reschedule stays booked);
--   attended: such a booking, not marked a no-show, whose meeting has ended.

-- The consent each lead of a period is looked up in, read from the index alone.
create index consents_given on public.consents (lead_id)
    where is_checked and not coalesce(checked_by_default, false);

-- A period of days is read through this index (the views' day is this expression).
create index leads_report_day
    on public.leads (((coalesce(submitted_at, created_at) at time zone 'UTC')::date));

create view public.report_leads
with (security_invoker = true)
as
select
    l.id as lead_id,
    (coalesce(l.submitted_at, l.created_at) at time zone 'UTC')::date as day,
    coalesce(l.submitted_at, l.created_at) as came_at,
    case when l.arrived_via is not null then 'backfill'
         when l.source = 'meta_lead_ads' then 'meta'
         else l.source end as source,
    l.form_id,
    coalesce(l.campaign_name, l.campaign_id) as campaign,
    l.status,
    l.phone is not null as has_phone,
    coalesce(k.consented, false) as consented,
    c.first_attempt_at,
    c.first_contact_at,
    coalesce(c.attempts, 0) as attempts,
    coalesce(c.rang, 0) > 0 as called,
    c.first_contact_at is not null as answered,
    coalesce(c.voicemail, false) as voicemail,
    coalesce(c.voicemail_missed, false) as voicemail_missed,
    coalesce(a.booked, false) as booked,
    coalesce(a.attended, false) as attended,
    coalesce(a.no_show, false) as no_show,
    l.status = 'do_not_call' as do_not_call,
    case when l.arrived_via is null
         then extract(epoch from c.first_attempt_at - coalesce(l.submitted_at, l.created_at))
    end as first_attempt_secs,
    case when l.arrived_via is null
         then extract(epoch from c.first_contact_at - coalesce(l.submitted_at, l.created_at))
    end as first_contact_secs,
    case
        when c.first_contact_at is not null or coalesce(a.booked, false) then null
        when l.status = 'do_not_call' then 'do_not_call'
        when l.phone is null then 'no_phone'
        when l.status = 'no_consent' then 'no_consent'
        when l.status = 'person_booked' then 'person_booked'
        when coalesce(c.attempts, 0) > 0 and coalesce(c.rang, 0) = 0
             and l.status not in ('calling', 'call_queued') then 'provider_failures'
        when l.status = 'too_old' then 'too_old'
        when l.status = 'no_calling_hours' then 'outside_hours'
        when coalesce(c.rang, 0) > 0 and l.status in ('voicemail', 'no_answer') then 'max_attempts'
        else 'in_progress'
    end as lost_reason
from public.leads l
left join lateral (
    select min(x.requested_at) as first_attempt_at,
           min(coalesce(x.started_at, x.requested_at)) filter (where x.outcome = 'answered')
               as first_contact_at,
           count(*) as attempts,
           count(*) filter (where x.counted) as rang,
           bool_or(x.outcome = 'voicemail') as voicemail,
           bool_or(x.voicemail_missed) as voicemail_missed
    from public.calls x where x.lead_id = l.id
) c on true
left join lateral (
    select bool_or(p.status = 'active') as booked,
           bool_or(p.status = 'active' and not p.no_show and p.end_time < now()) as attended,
           bool_or(p.status = 'active' and p.no_show) as no_show
    from public.appointments p where p.lead_id = l.id
    having count(*) > 0
) a on true
left join lateral (
    select true as consented
    from public.consents s
    where s.lead_id = l.id and s.is_checked and not coalesce(s.checked_by_default, false)
    limit 1
) k on true;

comment on view public.report_leads is
    'One row per lead for the funnel: source (meta, calendly, manual, backfill), came_at (its creation at the source), first attempt and first contact and their delays in seconds (none for backfilled leads), what happened, and lost_reason for a lead never reached. Definitions: supabase/migrations/20261204002600_funnel_views.sql.';

create view public.report_daily
with (security_invoker = true)
as
select
    r.day, r.source, r.form_id, r.campaign,
    count(*) as leads,
    count(*) filter (where r.has_phone) as with_phone,
    count(*) filter (where r.consented) as consented,
    count(*) filter (where r.called) as called,
    count(*) filter (where r.answered) as answered,
    count(*) filter (where r.voicemail) as voicemail,
    count(*) filter (where r.voicemail_missed) as voicemail_missed,
    count(*) filter (where r.booked) as booked,
    count(*) filter (where r.attended) as attended,
    count(*) filter (where r.no_show) as no_show,
    count(*) filter (where r.do_not_call) as do_not_call,
    count(*) filter (where r.lost_reason is not null and r.lost_reason <> 'in_progress') as lost,
    count(r.first_attempt_secs) as timed_attempts,
    percentile_cont(0.5) within group (order by r.first_attempt_secs) as first_attempt_p50_secs,
    percentile_cont(0.95) within group (order by r.first_attempt_secs) as first_attempt_p95_secs,
    count(r.first_contact_secs) as timed_contacts,
    percentile_cont(0.5) within group (order by r.first_contact_secs) as first_contact_p50_secs,
    percentile_cont(0.95) within group (order by r.first_contact_secs) as first_contact_p95_secs,
    count(*) filter (where r.first_attempt_secs <= 60) as attempted_within_1_min,
    count(*) filter (where r.first_attempt_secs <= 300) as attempted_within_5_min,
    count(*) filter (where r.first_attempt_secs <= 900) as attempted_within_15_min,
    count(*) filter (where r.first_attempt_secs <= 3600) as attempted_within_60_min,
    count(*) filter (where r.first_attempt_secs <= 14400) as attempted_within_4_h,
    count(*) filter (where r.first_attempt_secs <= 86400) as attempted_within_24_h,
    -- The leads never reached, by reason (report_losses lists them one reason a row).
    count(*) filter (where r.lost_reason = 'do_not_call') as lost_do_not_call,
    count(*) filter (where r.lost_reason = 'no_phone') as lost_no_phone,
    count(*) filter (where r.lost_reason = 'no_consent') as lost_no_consent,
    count(*) filter (where r.lost_reason = 'person_booked') as lost_person_booked,
    count(*) filter (where r.lost_reason = 'provider_failures') as lost_provider_failures,
    count(*) filter (where r.lost_reason = 'too_old') as lost_too_old,
    count(*) filter (where r.lost_reason = 'outside_hours') as lost_outside_hours,
    count(*) filter (where r.lost_reason = 'max_attempts') as lost_max_attempts,
    count(*) filter (where r.lost_reason = 'in_progress') as in_progress,
    -- Every delay of the group, so that a period's percentiles are computed over its leads
    -- (no sum of days gives them) from this view alone.
    array_agg(r.first_attempt_secs) filter (where r.first_attempt_secs is not null)
        as first_attempt_delays,
    array_agg(r.first_contact_secs) filter (where r.first_contact_secs is not null)
        as first_contact_delays
from public.report_leads r
group by r.day, r.source, r.form_id, r.campaign;

comment on view public.report_daily is
    'The funnel per day (UTC, of the leads'' creation), source, form and campaign: counts, first attempt and first contact delays (p50, p95, over the leads timed: timed_attempts, timed_contacts) and how many were first attempted within 1, 5, 15 and 60 minutes. Contact rate: answered / called; booking rate: booked / leads.';

create view public.report_losses
with (security_invoker = true)
as
select d.day, d.source, d.form_id, d.campaign, x.reason, x.leads
from public.report_daily d
cross join lateral (values
    ('do_not_call', d.lost_do_not_call), ('no_phone', d.lost_no_phone),
    ('no_consent', d.lost_no_consent), ('person_booked', d.lost_person_booked),
    ('provider_failures', d.lost_provider_failures), ('too_old', d.lost_too_old),
    ('outside_hours', d.lost_outside_hours), ('max_attempts', d.lost_max_attempts),
    ('in_progress', d.in_progress)
) x (reason, leads)
where x.leads > 0;

comment on view public.report_losses is
    'The leads never reached (not answered, not booked), per day, source, form, campaign and the first reason that applies (see report_leads).';

revoke all on public.report_leads, public.report_daily, public.report_losses
    from public, anon, authenticated;
grant select on public.report_leads, public.report_daily, public.report_losses to service_role;
