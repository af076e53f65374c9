"""The sweeps: every minute during the load (:class:`Sweeper`, as pg_cron calls it in production),
then, after the load and with the faults stopped, until no lead of the run is pending
(:func:`drain`).

Leads whose Graph fetch failed wait for their retry (30 s, doubling: ``meta_fetch_policy()``),
and leads whose claim died with the killed process or the Postgres outage wait for their
2-minute lease. Between sweeps their wait is cut to now, for the run's leads only, so the drain
takes seconds rather than minutes: the backoff itself is tested elsewhere (tests of
``queue_retry_at`` and the sweep), the soak tests that nothing is lost.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from tools.soak.load import is_2xx

SWEEP_TIMEOUT_SECONDS = 120.0  # a sweep works up to SWEEP_TIME_BUDGET_SECONDS (45 s)

_PENDING_SQL = """
select coalesce(fetch_error_code, 'claimed, no result yet'), count(*) from public.leads
where status = 'fetch_pending' and meta_leadgen_id = any(%s)
group by 1
"""
# Cuts the retry wait (or the lease) of the run's pending leads to now. Run only between
# sweeps, when no fetch is in flight, so it never lets two fetches of one lead overlap.
_MAKE_DUE_SQL = """
update public.leads set next_fetch_at = now()
where status = 'fetch_pending' and next_fetch_at > now() and meta_leadgen_id = any(%s)
"""


@dataclass
class Drain:
    """What the drain found and did."""

    pending_at_start: dict[str, int] = field(default_factory=dict)
    sweeps: int = 0
    made_due: int = 0
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    left: int = 0
    seconds: float = 0.0


class Sweeper(threading.Thread):
    """``POST /sweep`` every ``every`` seconds until :meth:`stop`; the answers are counted."""

    def __init__(self, sweep_url: str, token: str, every: float) -> None:
        super().__init__(name="soak-sweeper", daemon=True)
        self.url = sweep_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.every = every
        self.result = Drain()
        self._stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=SWEEP_TIMEOUT_SECONDS, headers=self.headers) as client:
            while not self._stopping.wait(self.every):
                _sweep(client, self.url, self.result)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=SWEEP_TIMEOUT_SECONDS)


def pending(conn: psycopg.Connection[Any], ids: list[str]) -> dict[str, int]:
    """The run's fetch_pending leads, counted by their fetch_error_code."""
    return dict(conn.execute(_PENDING_SQL, (ids,)).fetchall())


def drain(
    sweep_url: str, token: str, database_url: str, ids: list[str], *, deadline: float
) -> Drain:
    """Sweep until none of ``ids`` is pending, a sweep changes nothing, or ``deadline``."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        httpx.Client(timeout=SWEEP_TIMEOUT_SECONDS, headers=headers) as client,
    ):
        result = Drain(pending_at_start=pending(conn, ids))
        result.left = sum(result.pending_at_start.values())
        while result.left and time.monotonic() < deadline:
            made_due = conn.execute(_MAKE_DUE_SQL, (ids,)).rowcount
            answer = _sweep(client, sweep_url, result)
            result.made_due += made_due
            result.left = sum(pending(conn, ids).values())
            if answer is not None and not answer.get("claimed") and not made_due:
                break  # nothing due and nothing waiting: more sweeps would change nothing
    result.seconds = time.monotonic() - started
    return result


def _sweep(client: httpx.Client, url: str, result: Drain) -> dict[str, Any] | None:
    """One sweep; its answer when 2xx (counted into ``result``), else None after a pause."""
    result.sweeps += 1
    try:
        response = client.post(url)
    except httpx.HTTPError as exc:
        result.answers[type(exc).__name__] += 1
        time.sleep(0.5)
        return None
    result.answers[str(response.status_code)] += 1
    if not is_2xx(response.status_code):
        time.sleep(0.5)
        return None
    answer: dict[str, Any] = response.json()
    for key in ("claimed", "completed", "failed"):
        setattr(result, key, getattr(result, key) + int(answer.get(key, 0)))
    return answer
