"""The figures of a soak run, as a JSON-able dict (``--json``) and as the text it prints."""

from __future__ import annotations

import math
import os
import platform
from collections import Counter, defaultdict
from dataclasses import asdict
from importlib.metadata import version
from typing import Any

from tools.soak.checks import Check, Facts
from tools.soak.drain import Drain
from tools.soak.faults import Outage
from tools.soak.load import Load, Outcome, is_2xx
from tools.soak.plan import ADJACENT


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0-1) of ``values``; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def repeats_in_flight_together(outcomes: list[Outcome]) -> int:
    """Repeats whose first attempt started before an earlier delivery of their id was answered
    for the last time: two deliveries of one id in flight at once."""
    by_id: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.attempts:
            by_id[outcome.delivery.leadgen_id].append(outcome)
    together = 0
    for sent in by_id.values():
        sent.sort(key=lambda o: o.started)
        latest_end = sent[0].ended
        for outcome in sent[1:]:
            together += outcome.started < latest_end
            latest_end = max(latest_end, outcome.ended)
    return together


def load_figures(load: Load, outcomes: list[Outcome]) -> dict[str, Any]:
    attempts = [a for o in outcomes for a in o.attempts]
    answered = [a.seconds * 1000 for a in attempts if a.status is not None]
    answered_2xx = [a.seconds * 1000 for a in attempts if is_2xx(a.status)]
    delivered = sum(o.delivered for o in outcomes)
    answers: Counter[str] = Counter()
    for outcome in outcomes:
        for key, value in (outcome.answer or {}).items():
            answers[key] += value if isinstance(value, int) else 0
    return {
        "deliveries": len(outcomes),
        "unique_ids": len({o.delivery.leadgen_id for o in outcomes}),
        "repeats": sum(o.delivery.repeat is not None for o in outcomes),
        "repeats_sent_adjacent": sum(o.delivery.repeat == ADJACENT for o in outcomes),
        "repeats_in_flight_together": repeats_in_flight_together(outcomes),
        "requests": len(attempts),
        "redeliveries": len(attempts) - sum(bool(o.attempts) for o in outcomes),
        "delivered_2xx": delivered,
        "answers_by_status": dict(sorted(Counter(a.label for a in attempts).items())),
        "non_2xx_by_status": dict(
            sorted(Counter(a.label for a in attempts if not is_2xx(a.status)).items())
        ),
        "most_attempts_of_a_delivery": max((len(o.attempts) for o in outcomes), default=0),
        "load_seconds": round(load.seconds, 2),
        "deliveries_per_second": round(delivered / load.seconds, 1) if load.seconds else 0.0,
        "requests_per_second": round(len(attempts) / load.seconds, 1) if load.seconds else 0.0,
        "latency_ms": {
            "p50": round(percentile(answered, 0.50), 1),
            "p99": round(percentile(answered, 0.99), 1),
            "max": round(max(answered, default=0.0), 1),
            "p50_2xx": round(percentile(answered_2xx, 0.50), 1),
            "p99_2xx": round(percentile(answered_2xx, 0.99), 1),
        },
        "answer_counts": dict(answers),
        "stored_despite_non_2xx": stored_despite_non_2xx(outcomes),
    }


def outage_figures(outages: list[Outage], outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Each outage, with the non-2xx answers that came (or failed) from its start to 5 s after
    its end or to the next outage, whichever is first."""
    figures = []
    starts = [o.at for o in outages[1:]] + [float("inf")]
    for outage, next_start in zip(outages, starts, strict=True):
        until = min(outage.at + outage.seconds + 5, next_start)
        window = [
            a
            for o in outcomes
            for a in o.attempts
            if outage.at <= a.started + a.seconds < until and not is_2xx(a.status)
        ]
        last = max((a.started + a.seconds for a in window), default=outage.at)
        figures.append(
            {
                **asdict(outage),
                "at": round(outage.at, 2),
                "seconds": round(outage.seconds, 2),
                "detail": {k: round(v, 2) for k, v in outage.detail.items()},
                "non_2xx_seen": dict(sorted(Counter(a.label for a in window).items())),
                "last_non_2xx_after_start_seconds": round(last - outage.at, 2),
            }
        )
    return figures


def stored_despite_non_2xx(outcomes: list[Outcome]) -> dict[str, int]:
    """Ids sent once whose final 2xx answer called them a duplicate: an attempt answered non-2xx
    (or cut off) had stored the lead. Counted by the failed attempts' statuses."""
    sent: Counter[str] = Counter(o.delivery.leadgen_id for o in outcomes)
    found: Counter[str] = Counter()
    for outcome in outcomes:
        answer = outcome.answer or {}
        if sent[outcome.delivery.leadgen_id] == 1 and answer.get("duplicates"):
            labels = sorted({a.label for a in outcome.attempts if not is_2xx(a.status)})
            found[" + ".join(labels)] += 1
    return dict(sorted(found.items()))


def database_figures(facts: Facts, graph_requests: int) -> dict[str, Any]:
    fetched = sum(facts.fetched_ok[i] for i in facts.ids)
    failures = sum(facts.fetch_failures.values())
    return {
        "leads": len(facts.leads),
        "lead_fetched_rows": fetched,
        "fetch_failed_rows_by_code": dict(facts.fetch_failures),
        "graph_requests": graph_requests,
        # Fetches that reached the Graph fake but whose result was never recorded (the process
        # was killed, or Postgres was down at meta_complete): the sweep fetched those again.
        "graph_fetches_unrecorded": graph_requests - fetched - failures,
    }


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "functions_framework": version("functions-framework"),
        "gunicorn": version("gunicorn"),
    }


def render(figures: dict[str, Any], checks: list[Check]) -> str:
    """The figures and the checks, as the lines the run prints."""
    lines = [
        f"machine      {figures['machine']}",
        f"config       {figures['config']}",
        *_load_lines(figures["load"]),
        *_outage_lines(figures),
        "",
        *_check_lines(checks, figures["load"]),
    ]
    return "\n".join(lines)


def _load_lines(load: dict[str, Any]) -> list[str]:
    return [
        f"deliveries   {load['deliveries']} sent ({load['unique_ids']} unique ids, "
        f"{load['repeats']} repeats: {load['repeats_sent_adjacent']} sent adjacent, "
        f"{load['repeats_in_flight_together']} in flight together with their first)",
        f"requests     {load['requests']} ({load['redeliveries']} redeliveries; at most "
        f"{load['most_attempts_of_a_delivery']} attempts for one delivery)",
        f"answers      {load['answers_by_status']}",
        f"non-2xx      {load['non_2xx_by_status']}",
        f"throughput   {load['deliveries_per_second']} deliveries/s, "
        f"{load['requests_per_second']} requests/s over {load['load_seconds']} s",
        f"latency ms   {load['latency_ms']}",
        f"2xx answers  {load['answer_counts']}",
        f"stored, yet  {load['stored_despite_non_2xx']} (ids sent once whose last answer said "
        "duplicate, by the statuses of their failed attempts)",
    ]


def _outage_lines(figures: dict[str, Any]) -> list[str]:
    during, drain, db = figures["sweeps_during_load"], figures["drain"], figures["database"]
    lines = [
        f"outage       {o['what']}: at {o['at']} s for {o['seconds']} s {o['detail']}; non-2xx "
        f"seen {o['non_2xx_seen']}, the last {o['last_non_2xx_after_start_seconds']} s after "
        "its start"
        for o in figures["outages"]
    ]
    return [
        *lines,
        f"sweeps       during the load: {during['sweeps']} ({dict(during['answers'])}), "
        f"{during['claimed']} claimed, {during['completed']} completed, {during['failed']} failed",
        f"graph        {db['graph_requests']} fetch requests; {db['lead_fetched_rows']} recorded "
        f"fetched, failures {db['fetch_failed_rows_by_code']}, "
        f"{db['graph_fetches_unrecorded']} unrecorded (fetched again)",
        f"drain        pending after the load {drain['pending_at_start']}; drained "
        f"{drain['after_load_seconds']} s after the load by {drain['sweeps']} sweeps "
        f"({dict(drain['answers'])}), {drain['made_due']} waits cut, "
        f"{drain['completed']} completed",
        f"leads        {db['leads']}",
        f"error rows   {figures['error_trail']} (integration_logs, status error or rejected)",
    ]


def _check_lines(checks: list[Check], load: dict[str, Any]) -> list[str]:
    lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in checks]
    unexpected = {k: v for k, v in load["non_2xx_by_status"].items() if k.isdigit() and k != "503"}
    if unexpected:
        lines.append(
            f"NOTE  answers other than 2xx and 503: {unexpected}; no loss by themselves (they were "
            "redelivered), but see the function's log (--state-dir keeps it)"
        )
    return lines


def drain_figures(drain: Drain) -> dict[str, Any]:
    return {**asdict(drain), "answers": dict(drain.answers), "seconds": round(drain.seconds, 2)}
