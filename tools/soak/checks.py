"""What a soak run must end with, checked over the run's own leadgen ids only.

:func:`gather` reads the facts from the database (superuser, ``DATABASE_URL``); the checks are
pure functions of the facts and of the load's outcomes, so that each can be shown to fail on a
fabricated loss (tests/test_soak.py):

- **stored**: one ``leads`` row per unique id sent (none lost, none doubled);
- **fetched once**: exactly one ``lead.fetched`` row per lead in ``integration_logs``, i.e. one
  *completed* Graph fetch (a fetch whose result was lost to a kill or an outage and fetched again
  is not completed twice), and exactly one ``lead.received`` ``ok`` row (the others are
  ``duplicate``);
- **none pending**: no lead left ``fetch_pending``: once the faults stop the Graph fake answers
  every id, so a pending lead is one the sweep never completed;
- **whole rows**: every lead has its ``webhook_events`` row, every ``webhook_events`` row of
  the run its lead, and every lead past ``fetch_pending`` (``fetched``, or ``call_queued`` when
  it has a phone) its answers and ``fetched_at``;
- **redelivered**: every delivery ended with a 2xx answer: no non-2xx answer (nor connection
  error) was the last word on a delivery;
- **faults injected**: the SIGKILL and the Postgres restart both happened while the load ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tools.soak.load import Outcome

_SHOWN = 5  # ids named in a failed check's message


@dataclass(frozen=True)
class Lead:
    status: str
    has_answers: bool
    has_fetched_at: bool
    fetch_error_code: str | None


@dataclass
class Facts:
    """The database's rows for the run's ids: leads by leadgen id, and counts by leadgen id."""

    ids: list[str]
    leads: dict[str, Lead] = field(default_factory=dict)
    lead_rows: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    received_ok: Counter[str] = field(default_factory=Counter)
    fetched_ok: Counter[str] = field(default_factory=Counter)
    fetch_failures: Counter[str] = field(default_factory=Counter)  # by error_code


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


_LEADS_SQL = """
select meta_leadgen_id, status, answers <> '{}'::jsonb, fetched_at is not null, fetch_error_code
from public.leads where meta_leadgen_id = any(%s)
"""
_EVENTS_SQL = """
select external_id, count(*) from public.webhook_events
where provider = 'meta' and event_type = 'leadgen' and external_id = any(%s)
group by 1
"""
_LOGS_SQL = """
select external_id, event, status, error_code, count(*) from public.integration_logs
where provider = 'meta' and external_id = any(%s)
  and event in ('lead.received', 'lead.fetched', 'lead.fetch_failed')
group by 1, 2, 3, 4
"""


def gather(database_url: str, ids: list[str]) -> Facts:
    """The rows of ``leads``, ``webhook_events`` and ``integration_logs`` for ``ids``."""
    facts = Facts(ids)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for leadgen_id, *row in conn.execute(_LEADS_SQL, (ids,)):
            facts.leads[leadgen_id] = Lead(*row)
            facts.lead_rows[leadgen_id] += 1
        for external_id, count in conn.execute(_EVENTS_SQL, (ids,)):
            facts.events[external_id] = count
        for external_id, event, status, code, count in conn.execute(_LOGS_SQL, (ids,)):
            _count_log(facts, external_id, event, status, code, count)
    return facts


def _count_log(
    facts: Facts, external_id: str, event: str, status: str, code: str | None, count: int
) -> None:
    if event == "lead.received" and status == "ok":
        facts.received_ok[external_id] += count
    elif event == "lead.fetched" and status == "ok":
        facts.fetched_ok[external_id] += count
    elif event == "lead.fetch_failed":
        facts.fetch_failures[code or "?"] += count


def _named(ids: Iterable[str]) -> str:
    listed = sorted(ids)
    more = f" and {len(listed) - _SHOWN} more" if len(listed) > _SHOWN else ""
    return ", ".join(listed[:_SHOWN]) + more


def _problems(*found: tuple[list[str], str]) -> list[str]:
    """ "N <what> (ids)" for each non-empty list of ids."""
    return [f"{len(ids)} {what} ({_named(ids)})" for ids, what in found if ids]


def check_stored(facts: Facts) -> Check:
    problems = _problems(
        ([i for i in facts.ids if i not in facts.leads], "lost"),
        ([i for i, n in facts.lead_rows.items() if n > 1], "stored twice"),
    )
    ok = f"{len(facts.leads)} leads = {len(facts.ids)} unique ids sent"
    return Check("stored", not problems, "; ".join(problems) or ok)


def check_fetched_once(facts: Facts) -> Check:
    problems = _problems(
        ([i for i in facts.ids if facts.fetched_ok[i] == 0], "never fetched"),
        ([i for i in facts.ids if facts.fetched_ok[i] > 1], "fetched more than once"),
        (
            [i for i in facts.ids if facts.received_ok[i] != 1],
            "without exactly one lead.received ok row",
        ),
    )
    total = sum(facts.fetched_ok[i] for i in facts.ids)
    ok = f"{total} lead.fetched rows, one per lead; one lead.received ok row each"
    return Check("fetched once", not problems, "; ".join(problems) or ok)


def check_none_pending(facts: Facts) -> Check:
    pending = {i: lead for i, lead in facts.leads.items() if lead.status == "fetch_pending"}
    codes = Counter(lead.fetch_error_code or "claimed, no result yet" for lead in pending.values())
    problems = _problems((list(pending), f"left fetch_pending {dict(codes)}"))
    return Check("none pending", not problems, "; ".join(problems) or "no lead fetch_pending")


def check_whole_rows(facts: Facts) -> Check:
    problems = _problems(
        ([i for i in facts.leads if facts.events[i] == 0], "leads without webhook_events"),
        ([i for i in facts.events if i not in facts.leads], "webhook_events without a lead"),
        (
            [
                i
                for i, lead in facts.leads.items()
                if lead.status != "fetch_pending" and not (lead.has_answers and lead.has_fetched_at)
            ],
            "leads past fetch_pending without answers or fetched_at",
        ),
    )
    ok = "every lead has its event, every event its lead, every fetched lead its answers"
    return Check("whole rows", not problems, "; ".join(problems) or ok)


def check_redelivered(outcomes: list[Outcome]) -> Check:
    failed = [o for o in outcomes if not o.delivered]
    retried = [o for o in outcomes if len(o.attempts) > 1]
    if failed:
        last = Counter(o.attempts[-1].label if o.attempts else "never sent" for o in failed)
        ids = _named(o.delivery.leadgen_id for o in failed)
        detail = f"{len(failed)} deliveries never answered 2xx (last answer: {dict(last)}; {ids})"
    else:
        detail = f"all {len(outcomes)} answered 2xx; {len(retried)} of them after a redelivery"
    return Check("redelivered", not failed, detail)


def check_faults(outages: list[Any], missed: list[str], *, expected: int) -> Check:
    happened = ", ".join(f"{o.what} at {o.at:.1f} s" for o in outages)
    passed = len(outages) == expected and not missed
    return Check("faults injected", passed, "; ".join([happened, *missed]) if missed else happened)


def run_checks(
    facts: Facts, outcomes: list[Outcome], outages: list[Any], missed: list[str], *, faults: int
) -> list[Check]:
    return [
        check_stored(facts),
        check_fetched_once(facts),
        check_none_pending(facts),
        check_whole_rows(facts),
        check_redelivered(outcomes),
        check_faults(outages, missed, expected=faults),
    ]
