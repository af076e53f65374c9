"""Database round trips per delivery, counted in Postgres itself.

Every database call of a function is one ``POST /rest/v1/rpc/<fn>``, i.e. one top-level call of
``public.<fn>``; with ``track_functions = 'pl'`` Postgres counts them in
``pg_stat_user_functions``. Counted: the RPC entry points of the Meta flow, and the error-path
``log_event`` RPCs (the ``*.request`` rows of integration_logs: ``log_event`` is also called
inside the RPCs, so its own statistics would over-count). Divided by the leads created meanwhile:
one per delivery, every leadgen id being new.

A backend reports its function statistics when its transaction ends, at most once a second, and
when idle only after 10 s; ending the stand-in's connections before each reading makes them
report now (the stand-in reconnects on its next request)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

RPC_FUNCTIONS = ("meta_ingest", "meta_complete", "meta_claim_due")
STANDIN_ROLE = "authenticator"


@dataclass
class RoundTrips:
    deliveries: int  # leads created: one per delivery
    completed: int  # of those, no longer fetch_pending (the Graph fetch and meta_complete ran)
    still_pending: int  # leads of the whole database still fetch_pending after the run
    rpc_calls: dict[str, int]

    @property
    def per_delivery(self) -> float | None:
        return sum(self.rpc_calls.values()) / self.deliveries if self.deliveries else None


class RpcCounter:
    """Superuser readings of the stack's database (the throwaway cluster of tools/stack.py)."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.conn.execute("alter system set track_functions = 'pl'")
        self.conn.execute("select pg_reload_conf()")

    def close(self) -> None:
        self.conn.close()

    def _flush_standin(self) -> None:
        self.conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where usename = %s and pid <> pg_backend_pid()",
            (STANDIN_ROLE,),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = self.conn.execute(
                "select count(*) from pg_stat_activity where usename = %s", (STANDIN_ROLE,)
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.05)

    def leads(self) -> int:
        row = self.conn.execute("select count(*) from public.leads").fetchone()
        assert row is not None
        return int(row[0])

    def settle(self, timeout: float = 10.0) -> int:
        """Wait until the deliveries still in flight when wrk stopped are done (no lead left
        fetch_pending, the count unchanged for 0.1 s; bounded); the number of leads."""
        deadline = time.monotonic() + timeout
        previous = None
        while time.monotonic() < deadline:
            row = self.conn.execute(
                "select count(*), count(*) filter (where status = 'fetch_pending') "
                "from public.leads"
            ).fetchone()
            assert row is not None
            if row[1] == 0 and row == previous:
                break
            previous = row
            time.sleep(0.1)
        return self.leads()

    def snapshot(self) -> dict[str, int]:
        self._flush_standin()
        self.conn.execute("select pg_stat_clear_snapshot()")
        calls: dict[str, Any] = dict(
            self.conn.execute(
                "select funcname, calls from pg_stat_user_functions where schemaname = 'public'"
            ).fetchall()
        )
        counts = {name: int(calls.get(name, 0)) for name in RPC_FUNCTIONS}
        row = self.conn.execute(
            "select (select count(*) from public.leads), "
            "(select count(*) from public.leads where status = 'fetch_pending'), "
            "(select count(*) from public.integration_logs where event like '%.request')"
        ).fetchone()
        assert row is not None
        counts.update(leads=row[0], pending=row[1], error_logs=row[2])
        return counts


def between(before: dict[str, int], after: dict[str, int]) -> RoundTrips:
    delta = {key: after[key] - before[key] for key in before}
    calls = {name: delta[name] for name in RPC_FUNCTIONS}
    calls["log_event (error path)"] = delta["error_logs"]
    return RoundTrips(
        deliveries=delta["leads"],
        completed=delta["leads"] - delta["pending"],
        still_pending=after["pending"],
        rpc_calls=calls,
    )
