"""What each judged function did, counted in Postgres itself: the work units it completed and
its database round trips per unit.

Every database call of a function is one ``POST /rest/v1/rpc/<fn>``, i.e. one top-level call of
``public.<fn>``; with ``track_functions = 'pl'`` Postgres counts them in
``pg_stat_user_functions``. Counted per function: its RPC entry points, and its error-path
``log_refused`` RPCs (the occurrences of the ``<function>.request`` rows of integration_logs:
``log_event`` is also called inside the RPCs, so its own statistics would over-count). Divided
by the units the function completed meanwhile, each request being new work:

- meta_webhook: leads created from Meta (one per delivery), completed once no longer
  ``fetch_pending``;
- calendly_webhook: appointments created (one per ``invitee.created`` of a new invitee);
- place_call: calls created (one per placed call), done once no longer ``placing``.

A backend reports its function statistics when its transaction ends, at most once a second, and
when idle only after 10 s; ending the stand-in's connections before each reading makes them
report now (the stand-in reconnects on its next request).

The same superuser connection prepares place_call's leads: leads whose call is queued and due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from tools.bench.serve import CALENDLY, META, PLACE_CALL, base

STANDIN_ROLE = "authenticator"


@dataclass(frozen=True)
class Flow:
    """How one function's work shows in the database."""

    rpcs: tuple[str, ...]  # its RPC entry points
    event: str  # integration_logs.event of its refused requests
    unit: str  # what one request completes
    units: str  # the plural
    done: str  # SQL: units so far
    pending: str  # SQL: units still in flight
    bad: str  # SQL: units that ended badly
    per_unit: int  # the round trips one unit should cost


FLOWS = {
    META: Flow(
        rpcs=("meta_ingest", "meta_complete", "meta_claim_due"),
        event="meta_webhook.request",
        unit="delivery",
        units="deliveries",
        done="select count(*) from public.leads where source = 'meta_lead_ads'",
        pending="select count(*) from public.leads where status = 'fetch_pending'",
        bad="select count(*) from public.leads where fetch_error_code is not null",
        per_unit=2,
    ),
    CALENDLY: Flow(
        rpcs=("calendly_record",),
        event="calendly_webhook.request",
        unit="delivery",
        units="deliveries",
        done="select count(*) from public.appointments",
        pending="select 0",
        bad="select count(*) from public.appointments where lead_id is null",
        per_unit=1,
    ),
    PLACE_CALL: Flow(
        rpcs=("call_claim", "call_started", "call_claim_due"),
        event="place_call.request",
        unit="placed call",
        units="placed calls",
        done="select count(*) from public.calls",
        pending="select count(*) from public.calls where status = 'placing'",
        bad="select count(*) from public.calls where status <> 'initiated'",
        per_unit=2,
    ),
}


@dataclass
class RoundTrips:
    unit: str
    unit_plural: str
    units: int  # units created
    pending: int  # of the whole database, still in flight after the run
    bad: int  # created during the run and ended badly
    rpc_calls: dict[str, int]

    @property
    def per_unit(self) -> float | None:
        return sum(self.rpc_calls.values()) / self.units if self.units else None


class RpcCounter:
    """Superuser readings of the stack's database (tools/stack/local.py's throwaway cluster)."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self._phones = 0  # the queued leads' phones so far (one person each)
        self.conn.execute("alter system set track_functions = 'pl'")
        self.conn.execute("select pg_reload_conf()")

    def close(self) -> None:
        self.conn.close()

    def _count(self, sql: str) -> int:
        row = self.conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])

    def queue_calls(self, count: int, *, label: str) -> list[str]:
        """``count`` leads whose call is queued and due now (as meta_complete leaves a lead with
        a phone), entered by hand (source ``manual``); their ids, in order."""
        # Each lead a person of its own (one phone each): the call rules hold per person, and a
        # person whose last call has no outcome yet (none comes in the bench) is not called.
        first = self._phones
        self._phones += count
        rows = self.conn.execute(
            "insert into public.leads (source, status, full_name, phone, timezone, next_call_at) "
            "select 'manual', 'call_queued', %s || ' ' || n, "
            "'+1646' || (2000000 + (%s + n) %% 8000000)::text, 'America/New_York', now() "
            "from generate_series(1, %s) n order by n returning id",
            (f"Bench {label}", first, count),
        ).fetchall()
        ids = [str(row[0]) for row in rows]
        # Consented, as CALL_CONSENT=required needs (recorded by hand, as for a manual lead).
        self.conn.execute(
            "insert into public.consents (lead_id, source, is_checked, evidence) "
            "select id, 'manual', true, '{\"by\": \"bench\"}' from unnest(%s::uuid[]) id",
            (ids,),
        )
        return ids

    def catch_up(self) -> None:
        """``VACUUM ANALYZE`` the database: what autovacuum does after a burst of writes, done
        now rather than during the next measurement (the load windows write thousands of rows a
        second, far more than production ever does before a lead arrives)."""
        self.conn.execute("vacuum analyze")

    def _flush_standin(self) -> None:
        self.conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where usename = %s and pid <> pg_backend_pid()",
            (STANDIN_ROLE,),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self._count(
                f"select count(*) from pg_stat_activity where usename = '{STANDIN_ROLE}'"
            ):
                break
            time.sleep(0.05)

    def units(self, name: str) -> int:
        """The units done so far of ``name``'s flow (a floor's: its function's)."""
        return self._count(FLOWS[base(name)].done)

    def settle(self, name: str, timeout: float = 10.0) -> int:
        """Wait until the requests still in flight when wrk stopped are done (nothing of
        ``name``'s left pending, the count unchanged for 0.1 s; bounded); its units so far."""
        flow = FLOWS[base(name)]
        deadline = time.monotonic() + timeout
        previous = None
        while time.monotonic() < deadline:
            now = (self._count(flow.done), self._count(flow.pending))
            if now[1] == 0 and now == previous:
                break
            previous = now
            time.sleep(0.1)
        return self.units(name)

    def snapshot(self) -> dict[str, int]:
        self._flush_standin()
        self.conn.execute("select pg_stat_clear_snapshot()")
        calls: dict[str, Any] = dict(
            self.conn.execute(
                "select funcname, calls from pg_stat_user_functions where schemaname = 'public'"
            ).fetchall()
        )
        counts = {f"rpc:{name}": int(calls.get(name, 0)) for f in FLOWS.values() for name in f.rpcs}
        for name, flow in FLOWS.items():
            counts[f"done:{name}"] = self._count(flow.done)
            counts[f"pending:{name}"] = self._count(flow.pending)
            counts[f"bad:{name}"] = self._count(flow.bad)
            counts[f"refused:{name}"] = self._count(
                "select coalesce(sum(occurrences), 0) from public.integration_logs "
                f"where event = '{flow.event}'"
            )
        return counts


def between(name: str, before: dict[str, int], after: dict[str, int]) -> RoundTrips:
    """What ``name`` did between two snapshots."""
    flow = FLOWS[name]
    calls = {rpc: after[f"rpc:{rpc}"] - before[f"rpc:{rpc}"] for rpc in flow.rpcs}
    calls["log_refused (error path)"] = after[f"refused:{name}"] - before[f"refused:{name}"]
    return RoundTrips(
        unit=flow.unit,
        unit_plural=flow.units,
        units=after[f"done:{name}"] - before[f"done:{name}"],
        pending=after[f"pending:{name}"],
        bad=after[f"bad:{name}"] - before[f"bad:{name}"],
        rpc_calls=calls,
    )
