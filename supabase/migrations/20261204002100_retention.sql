-- A retention job (issue 16, item 6): integration_logs and webhook_events would otherwise grow
-- for ever. meta_webhook's sweep (every minute) deletes, in bounded batches, the rows older than
-- RETENTION_DAYS (90 by default, at least 7: longer than any provider's redelivery window, Meta
-- 36 hours and Calendly 24 hours, since webhook_events holds the idempotency keys: a delivery
-- redelivered after its key is gone would be recorded again).
--
-- Never deleted: the log rows that are a person's evidence (an opt-out's words, a do-not-call
-- entry added or removed, a consent refused), parked events (they end when their call is
-- recorded, or after 7 days in call_claim_due), consents, calls and do-not-call entries.

create index webhook_events_received_at on public.webhook_events (received_at);

create function public.retention_sweep(p_days integer, p_limit integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_before timestamptz;
    v_logs integer;
    v_events integer;
begin
    if p_days is null or p_days < 7 then
        raise exception 'retention of % days is shorter than the providers'' redelivery windows', p_days
            using errcode = '22023', hint = 'RETENTION_DAYS is at least 7.';
    end if;
    v_before := now() - make_interval(days => p_days);
    delete from public.integration_logs i
    where i.id in (select l.id from public.integration_logs l
                   where l.created_at < v_before
                     and l.event not in ('lead.opted_out', 'dnc.added', 'dnc.removed',
                                         'call.no_consent')
                   order by l.created_at
                   limit greatest(p_limit, 0));
    get diagnostics v_logs = row_count;
    delete from public.webhook_events w
    where w.id in (select e.id from public.webhook_events e
                   where e.received_at < v_before
                   order by e.received_at
                   limit greatest(p_limit, 0));
    get diagnostics v_events = row_count;
    return jsonb_build_object('logs', v_logs, 'events', v_events, 'before', v_before);
end
$$;

revoke all on function public.retention_sweep(integer, integer) from public, anon, authenticated;
grant execute on function public.retention_sweep(integer, integer) to service_role;
