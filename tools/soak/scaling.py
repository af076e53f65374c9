"""``python -m tools.soak --ingest-scaling``: what one delivery of many leadgen changes costs.

- ``meta_ingest`` called directly (``lib.db.Database`` over the PostgREST stand-in, 120 s
  timeout) with 1,000 / 3,000 / 5,000 / 10,000 changes, leads shaped as meta_webhook passes them,
  ``p_claim_limit`` 20 as meta_webhook calls it;
- the same sizes as one signed delivery through meta_webhook (verify, parse, ``meta_ingest``,
  the 20 inline Graph fetches, ``meta_complete``): a body over ``MAX_BODY_BYTES`` (1 MiB, about
  8,000 changes of this shape) is refused with 413 before anything is stored.

Each size runs ``rounds`` times with fresh ids; the median is reported, and the cost per 1,000
changes shows whether it is linear. The leads stay ``fetch_pending`` (no sweep runs). Before
each series the tables are analyzed, as autovacuum keeps them in a steady state: right after a
burst of thousands of leads, before any ANALYZE, ``meta_complete`` on a pooled connection was
seen to take ~0.2 s per lead (docs/RELIABILITY.md); ``--no-analyze`` measures that state.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import psycopg

from lib.db import Database
from tools.fakes.samples import FORM_ID, PAGE_ID, leadgen_delivery, meta_headers, new_leadgen_id

SIZES = (1_000, 3_000, 5_000, 10_000)
CLAIM_LIMIT = 20  # meta_webhook's INLINE_FETCH_LIMIT


def ingest_leads(count: int) -> list[dict[str, Any]]:
    """``count`` leads as meta_webhook's parser hands them to meta_ingest, fresh ids."""
    created = int(time.time())
    leads = []
    for _ in range(count):
        value = {
            "leadgen_id": new_leadgen_id(),
            "page_id": PAGE_ID,
            "form_id": FORM_ID,
            "created_time": created,
        }
        payload = {"entry_id": PAGE_ID, "entry_time": created + 1, "value": value}
        leads.append({**value, "payload": payload})
    return leads


def time_ingest(db: Database, count: int) -> float:
    """Seconds of one meta_ingest call with ``count`` new leads (its answer checked)."""
    leads = ingest_leads(count)
    started = time.perf_counter()
    stored = db.rpc(
        "meta_ingest", {"p_leads": leads, "p_skipped": [], "p_claim_limit": CLAIM_LIMIT}
    )
    seconds = time.perf_counter() - started
    if len(stored["to_fetch"]) + len(stored["deferred"]) != count:
        raise RuntimeError(f"meta_ingest stored {len(stored['to_fetch'])} of {count} leads")
    return seconds


def time_delivery(url: str, secret: str, count: int) -> tuple[float, int, int, Any]:
    """One signed delivery of ``count`` changes: seconds, body bytes, status, answer."""
    body = leadgen_delivery(
        *(new_leadgen_id() for _ in range(count)), created_time=int(time.time())
    )
    started = time.perf_counter()
    response = httpx.post(url, content=body, headers=meta_headers(body, secret=secret), timeout=120)
    seconds = time.perf_counter() - started
    try:
        answer = response.json()
    except ValueError:
        answer = response.text[:200]
    return seconds, len(body), response.status_code, answer


def analyze(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("analyze public.leads, public.webhook_events, public.integration_logs")


def measure(
    db: Database, url: str, secret: str, database_url: str, *, rounds: int, fresh_stats: bool
) -> list[dict[str, Any]]:
    """Each size: meta_ingest's median, then the delivery's (after one warm-up delivery);
    ``fresh_stats``: ANALYZE before each series."""
    time_delivery(url, secret, 10)
    rows = []
    for count in SIZES:
        if fresh_stats:
            analyze(database_url)
        ingest_ms = statistics.median(time_ingest(db, count) for _ in range(rounds)) * 1000
        if fresh_stats:
            analyze(database_url)
        runs = [time_delivery(url, secret, count) for _ in range(rounds)]
        delivery_ms = statistics.median(run[0] for run in runs) * 1000
        rows.append(
            {
                "changes": count,
                "ingest_ms": round(ingest_ms, 1),
                "ingest_ms_per_1000": round(ingest_ms / count * 1000, 1),
                "body_bytes": runs[0][1],
                "delivery_status": runs[0][2],
                "delivery_ms": round(delivery_ms, 1),
                "delivery_ms_per_1000": round(delivery_ms / count * 1000, 1),
                "delivery_answer": runs[0][3],
            }
        )
    return rows


def render(rows: list[dict[str, Any]], rounds: int, *, fresh_stats: bool) -> str:
    stats = "ANALYZE before each series" if fresh_stats else "no ANALYZE"
    lines = [
        f"median of {rounds}, {stats}; meta_ingest direct, then one signed delivery through "
        "meta_webhook",
        "changes  meta_ingest ms  per 1000   body bytes  status  delivery ms  per 1000",
    ]
    for row in rows:
        lines.append(
            f"{row['changes']:>7}  {row['ingest_ms']:>14}  {row['ingest_ms_per_1000']:>8}  "
            f"{row['body_bytes']:>11}  {row['delivery_status']:>6}  {row['delivery_ms']:>11}  "
            f"{row['delivery_ms_per_1000']:>8}"
        )
    lines += [f"{row['changes']:>7}  answer {row['delivery_answer']}" for row in rows]
    return "\n".join(lines)
