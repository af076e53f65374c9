-- Calls whose post-call webhook never came: the polling fallback.
--
-- ElevenLabs sends each post-call webhook once and never retries a failed one ("For HIPAA
-- compliance, if a webhook fails we can not retry the webhook", PROVIDERS.md 3.2). A call it
-- placed (status initiated, a conversation_id) whose webhook is lost would keep its lead in
-- calling for ever. place_call's sweep claims such calls once they are old enough
-- (call_claim_unreported), reads each conversation from GET /v1/convai/conversations/{id}, and
-- records what it finds with call_record_polled, which goes through call_record_outcome: the
-- same function, and the same idempotency key (conversation_id + type), as the webhook, so a
-- webhook that arrives afterwards is a duplicate and a poll after the webhook changes nothing.

alter table public.calls
    add column reconcile_at timestamptz,
    add column reconcile_checks integer not null default 0;

comment on column public.calls.reconcile_at is
    'For a call placed without an outcome yet: when place_call''s sweep may next read its conversation from the ElevenLabs API (null: not read yet, due CALL_RECONCILE_AFTER_MINUTES after started_at). Set when a sweep claims the call, so it is also that sweep''s lease.';
comment on column public.calls.reconcile_checks is
    'How many times a sweep claimed the call to read its conversation because the post-call webhook had not come.';

-- The sweep's look for calls without an outcome, every minute: only calls in progress (and
-- lost ones) are in it.
create index calls_unreported on public.calls (started_at) where status = 'initiated';

-- The wait before a call still in progress is read again, after its p_checks-th read: 5 minutes,
-- doubling, at most an hour (doubles as the claiming sweep's lease).
create function public.call_reconcile_wait(p_checks integer) returns interval
language sql
immutable
set search_path = ''
as $$
    select make_interval(mins => least(5 * power(2, least(greatest(p_checks - 1, 0), 4))::integer,
                                       60))
$$;

-- call_claim_unreported: claim up to p_limit calls ElevenLabs placed (they have a
-- conversation_id) at least p_after_minutes ago that still have no outcome, oldest first. Row
-- locks with SKIP LOCKED, and reconcile_at moved past now (the lease, and the backoff), so two
-- sweeps never read the same call. Returns {claimed: [{call_id, lead_id, attempt,
-- conversation_id, started_at, checks, give_up}], remaining}; give_up: the call started at
-- least p_give_up_minutes ago, so a conversation still unfinished or unknown is recorded as
-- unknown.
create function public.call_claim_unreported(
    p_limit integer, p_after_minutes integer, p_give_up_minutes integer
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_claimed jsonb;
begin
    with due as (
        select c.id from public.calls c
        where c.status = 'initiated' and c.outcome is null and c.conversation_id is not null
          and c.started_at <= now() - make_interval(mins => greatest(p_after_minutes, 0))
          and (c.reconcile_at is null or c.reconcile_at <= now())
        order by c.started_at
        limit greatest(p_limit, 0)
        for update skip locked
    ), claimed as (
        update public.calls c set
            reconcile_checks = c.reconcile_checks + 1,
            reconcile_at = now() + public.call_reconcile_wait(c.reconcile_checks + 1)
        from due
        where c.id = due.id
        returning c.id, c.lead_id, c.attempt, c.conversation_id, c.started_at, c.reconcile_checks
    )
    select coalesce(jsonb_agg(jsonb_build_object(
               'call_id', claimed.id, 'lead_id', claimed.lead_id, 'attempt', claimed.attempt,
               'conversation_id', claimed.conversation_id, 'started_at', claimed.started_at,
               'checks', claimed.reconcile_checks,
               'give_up', claimed.started_at
                   <= now() - make_interval(mins => greatest(p_give_up_minutes, 0)))
               order by claimed.started_at), '[]'::jsonb)
    into v_claimed
    from claimed;
    return jsonb_build_object(
        'claimed', v_claimed,
        'remaining', (select count(*) from public.calls c
                      where c.status = 'initiated' and c.outcome is null
                        and c.conversation_id is not null
                        and c.started_at
                            <= now() - make_interval(mins => greatest(p_after_minutes, 0))
                        and (c.reconcile_at is null or c.reconcile_at <= now())));
end
$$;

-- call_record_polled: record the outcome of a claimed call read from the conversation API (or
-- given up on), through call_record_outcome (p_event as the webhook's, type
-- post_call_transcription), then log p_message (why the webhook's outcome was read instead, and
-- what to check) as call.reconciled. A call that already has its outcome (its webhook came
-- meanwhile) is left alone. Returns call_record_outcome's answer.
create function public.call_record_polled(
    p_call_id uuid, p_event jsonb, p_rules jsonb, p_message text
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_call public.calls;
    v_result jsonb;
begin
    -- No row lock here: call_record_outcome takes webhook_events' key before the call's row, as
    -- the webhook does, so the two never wait on each other in opposite orders.
    select * into v_call from public.calls c where c.id = p_call_id;
    if not found or v_call.outcome is not null or v_call.status <> 'initiated'
       or v_call.conversation_id is distinct from p_event ->> 'conversation_id' then
        return jsonb_build_object('duplicate', true);
    end if;
    v_result := public.call_record_outcome(p_event, p_rules);
    if coalesce((v_result ->> 'duplicate')::boolean, false)
       or coalesce((v_result ->> 'ignored')::boolean, false) then
        return v_result;
    end if;
    -- Read long after the call, so its end is its start plus its duration, not now.
    update public.calls c
    set ended_at = c.started_at + make_interval(secs => c.duration_secs)
    where c.id = p_call_id and c.started_at is not null and c.duration_secs is not null;
    perform public.log_event(
        'elevenlabs', 'call.reconciled', 'error',
        left(p_message, 2000) || case when v_result ->> 'outcome' = 'answered' then ''
                                      else public.call_next_text(v_result) end,
        v_call.conversation_id, v_call.lead_id, 'post_call_webhook_missing',
        jsonb_build_object('call_id', v_call.id, 'attempt', v_call.attempt,
                           'outcome', v_result ->> 'outcome',
                           'checks', v_call.reconcile_checks));
    return v_result;
end
$$;

revoke all on function public.call_reconcile_wait(integer) from public, anon, authenticated;
revoke all on function public.call_claim_unreported(integer, integer, integer)
    from public, anon, authenticated;
revoke all on function public.call_record_polled(uuid, jsonb, jsonb, text)
    from public, anon, authenticated;
grant execute on function public.call_reconcile_wait(integer) to service_role;
grant execute on function public.call_claim_unreported(integer, integer, integer) to service_role;
grant execute on function public.call_record_polled(uuid, jsonb, jsonb, text) to service_role;

-- call_outcome_summary: for `make doctor`, how the post-call webhook is doing. waiting: calls
-- placed at least p_after_minutes ago still without an outcome (the sweep reads them);
-- reconciled: calls of the last 24 hours whose outcome had to be read from the conversation API
-- because their webhook never came, and when the last one was.
create function public.call_outcome_summary(p_after_minutes integer)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'waiting', (select count(*) from public.calls c
                    where c.status = 'initiated' and c.outcome is null
                      and c.started_at
                          <= now() - make_interval(mins => greatest(p_after_minutes, 0))),
        'reconciled', g.reconciled,
        'last_reconciled_at', g.last_at)
    from (select count(*) as reconciled, max(i.created_at) as last_at
          from public.integration_logs i
          where i.provider = 'elevenlabs' and i.status = 'error'
            and i.event = 'call.reconciled' and i.created_at > now() - interval '24 hours') g
$$;

revoke all on function public.call_outcome_summary(integer) from public, anon, authenticated;
grant execute on function public.call_outcome_summary(integer) to service_role;
