-- One health summary for `make status` (issue 17, part 3): per provider the last success and the
-- last failure (with its message, which says what to do), and each queue's depth and its oldest
-- item: leads waiting for a Graph fetch, calls due, lead stages to send to Meta, and the daily
-- recovery of each page. Every figure is read through an index: the latest row of a provider and
-- status (integration_logs_provider_status_latest), the due queues' partial indexes.

create function public.ops_status()
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'at', now(),
        'providers', (
            select jsonb_object_agg(p.provider, jsonb_build_object(
                'last_ok', (select i.created_at from public.integration_logs i
                            where i.provider = p.provider and i.status = 'ok'
                            order by i.created_at desc limit 1),
                'last_error', (select jsonb_build_object(
                                   'at', i.created_at, 'event', i.event,
                                   'error_code', i.error_code, 'message', left(i.message, 500))
                               from public.integration_logs i
                               where i.provider = p.provider and i.status = 'error'
                               order by i.created_at desc limit 1)))
            from (values ('meta'), ('calendly'), ('elevenlabs')) p (provider)),
        'queues', jsonb_build_object(
            'leads_pending_fetch', (
                select jsonb_build_object('count', count(*), 'oldest', min(l.created_at))
                -- Those still retried: a fetch that failed for good (an unknown lead) waits no more.
                from public.leads l
                where l.status = 'fetch_pending' and l.next_fetch_at is not null),
            'calls_due', (
                select jsonb_build_object('count', count(*), 'oldest', min(l.next_call_at))
                from public.leads l
                where l.status = 'call_queued' and l.next_call_at <= public.clock_now()),
            'meta_stages_to_send', (
                select jsonb_build_object('count', count(*), 'oldest', min(c.created_at))
                from public.meta_conversions c where c.status in ('pending', 'sending'))),
        'recovery', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'page_id', j.page_id, 'started_at', j.started_at,
                       'finished_at', j.finished_at, 'last_error', j.last_error)
                   order by j.page_id)
            from public.meta_recovery_jobs j), '[]'::jsonb))
$$;

revoke all on function public.ops_status() from public, anon, authenticated;
grant execute on function public.ops_status() to service_role;
