"""The report at size: twelve months holding ``leads`` leads (1,000,000 by default) with their
calls, bookings and consents, then every query of `make report` for a 30-day period, timed.

    python -m tools.bench.report_size [--leads 1000000] [--runs 3] [--keep]   # its own stack

The rows are written straight into the tables with ``generate_series`` (triggers off while they
are: they would only add the people, lead-stage outbox and status checks this measurement does
not read), then ANALYZE. The target is 2 s for the whole report's queries of a 30-day period
(judged on the median of ``runs``); `make bench` runs it after its other measurements.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tools.ops import report
from tools.stack import local as local_stack

TARGET_SECONDS = 2.0
STATUSES = ("called", "voicemail", "no_answer", "booked", "no_consent", "fetched", "call_queued",
            "do_not_call", "no_calling_hours", "too_old")  # fmt: skip

POPULATE = (
    """
insert into public.leads (id, source, status, meta_leadgen_id, form_id, campaign_name, phone,
                          submitted_at, created_at, next_call_at, arrived_via)
select gen_random_uuid(),
       case when i %% 10 = 0 then 'calendly' else 'meta_lead_ads' end,
       (%(statuses)s::text[])[1 + (i * 7) %% cardinality(%(statuses)s::text[])],
       case when i %% 10 <> 0 then (8000000000000000 + i)::text end,
       case when i %% 10 <> 0 then 'bench-form-' || (i %% 20) end,
       'bench-campaign-' || (i %% 50),
       case when i %% 12 = 0 then null else '+1212' || lpad((i %% 10000000)::text, 7, '0') end,
       at, at + interval '2 seconds', null,
       case when i %% 25 = 0 then 'backfill' end
from (select i, now() - make_interval(secs => (i::float8 / %(leads)s) * 365 * 86400) as at
      from generate_series(1, %(leads)s) i) g
""",
    """
insert into public.calls (lead_id, attempt, to_number, requested_at, started_at, status, outcome,
                          counted, voicemail_missed)
select l.id, a, '+12125550100',
       l.submitted_at + make_interval(secs => 20 + (abs(hashtext(l.id::text)) %% 900) + a * 3600),
       l.submitted_at + make_interval(secs => 25 + (abs(hashtext(l.id::text)) %% 900) + a * 3600),
       'completed',
       (array['answered', 'voicemail', 'no_answer', 'busy'])
           [1 + (abs(hashtext(l.id::text)) + a) %% 4],
       true, false
from public.leads l, generate_series(1, 2) a
where l.phone is not null and l.status not in ('no_consent', 'fetched', 'no_calling_hours')
  and (a = 1 or abs(hashtext(l.id::text)) %% 2 = 0)
""",
    """
insert into public.appointments (lead_id, calendly_invitee_uri, status, start_time, end_time,
                                 matched_by, no_show)
select l.id, 'https://api.calendly.com/invitees/bench-' || l.id, 'active',
       l.submitted_at + interval '2 days', l.submitted_at + interval '2 days 30 minutes',
       'tracking', abs(hashtext(l.id::text)) %% 7 = 0
from public.leads l where l.status = 'booked'
""",
    """
insert into public.consents (lead_id, source, is_checked, evidence)
select l.id, 'manual', true, '{"by": "bench"}'
from public.leads l where l.status <> 'no_consent' and l.source = 'meta_lead_ads'
""",
)


@dataclass
class Size:
    leads: int
    populate_seconds: float = 0.0
    runs_ms: list[float] = field(default_factory=list)
    period: str = ""
    leads_in_period: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms) if self.runs_ms else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.runs_ms) and self.median_ms <= TARGET_SECONDS * 1000

    def lines(self) -> list[str]:
        verdict = "PASS" if self.passed else "FAIL"
        return [
            f"Report at size: {self.leads:,} leads over twelve months (populated in "
            f"{self.populate_seconds:.0f} s); a 30-day period ({self.period}, "
            f"{self.leads_in_period:,} leads): every query of `make report`",
            f"{verdict}  report queries for 30 days <= {TARGET_SECONDS * 1000:.0f} ms: "
            f"{self.median_ms:.0f} ms  (median of {len(self.runs_ms)} runs: "
            + ", ".join(f"{ms:.0f}" for ms in self.runs_ms)
            + " ms)",
        ]


def measure(database_url: str, *, leads: int, runs: int) -> Size:
    """Populate the database at ``database_url`` and time the report's queries."""
    size = Size(leads)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        started = time.monotonic()
        conn.execute("set session_replication_role = replica")
        for statement in POPULATE:
            # Only the statements with parameters may hold them (and their %% escapes).
            params = {"leads": leads, "statuses": list(STATUSES)} if "%(" in statement else None
            conn.execute(statement.replace("%%", "%") if params is None else statement, params)
        conn.execute("set session_replication_role = origin")
        conn.execute("analyze")
        size.populate_seconds = time.monotonic() - started
        until = datetime.now(UTC).date() - timedelta(days=30)
        period = report.Period(until - timedelta(days=29), until)
        size.period = f"{period.since} to {period.until}"
        for _ in range(runs):
            started = time.monotonic()
            figures = report.read(conn, period)
            size.runs_ms.append(round((time.monotonic() - started) * 1000, 1))
        size.leads_in_period = figures.totals["leads"]
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.report_size")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="stl-report-size-"))
    stack = local_stack.start(work / "stack", environ={})
    try:
        size = measure(stack.env["DATABASE_URL"], leads=args.leads, runs=args.runs)
    finally:
        stack.stop()
    print("\n".join(size.lines()))
    return 0 if size.passed else 1


def as_json(size: Size) -> dict[str, Any]:
    return {
        "leads": size.leads,
        "populate_seconds": round(size.populate_seconds, 1),
        "period": size.period,
        "leads_in_period": size.leads_in_period,
        "runs_ms": size.runs_ms,
        "median_ms": size.median_ms,
        "passed": size.passed,
    }


if __name__ == "__main__":
    sys.exit(main())
