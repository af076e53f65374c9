"""The retention job (SQL retention_sweep, run by meta_webhook's sweep): integration_logs and
webhook_events rows older than RETENTION_DAYS go, a batch at a time; the evidence rows, consents,
calls and do-not-call entries stay. Over the real database and the served sweep."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from .conftest import Functions, queued_lead

Conn = psycopg.Connection[Any]


def old_rows(db: Conn, marker: str, days: int) -> None:
    lead_id = queued_lead(db)
    for event in ("lead.fetched", "lead.opted_out", "dnc.added", "call.placed"):
        db.execute(
            "insert into integration_logs (created_at, provider, event, status, message, "
            "external_id, lead_id) values (now() - make_interval(days => %s), 'meta', %s, 'ok', "
            "'old', %s, %s)",
            (days, event, marker, lead_id),
        )
    db.execute(
        "insert into webhook_events (received_at, provider, event_type, external_id, payload) "
        "values (now() - make_interval(days => %s), 'meta', 'leadgen', %s, '{}')",
        (days, marker),
    )


def left(db: Conn, marker: str) -> tuple[list[str], int]:
    events = [
        str(r[0])
        for r in db.execute(
            "select event from integration_logs where external_id = %s order by event", (marker,)
        )
    ]
    row = db.execute(
        "select count(*) from webhook_events where external_id = %s", (marker,)
    ).fetchone()
    assert row is not None
    return events, int(row[0])


def test_the_sweep_deletes_old_rows_and_keeps_the_evidence(functions: Functions, db: Conn) -> None:
    old, recent = f"old-{uuid.uuid4()}", f"recent-{uuid.uuid4()}"
    old_rows(db, old, 91)  # RETENTION_DAYS is 90 by default
    old_rows(db, recent, 89)

    answer = functions.sweep()

    assert answer.status_code == 200
    assert answer.json()["retention"]["logs"] >= 2
    assert left(db, old) == (["dnc.added", "lead.opted_out"], 0)
    assert left(db, recent) == (["call.placed", "dnc.added", "lead.fetched", "lead.opted_out"], 1)


def test_retention_is_bounded_per_run_and_never_shorter_than_a_week(db: Conn) -> None:
    markers = [f"batch-{uuid.uuid4()}" for _ in range(3)]
    for marker in markers:
        old_rows(db, marker, 400)
    done = db.execute("select retention_sweep(365, 1)").fetchone()
    assert done is not None and (done[0]["logs"], done[0]["events"]) == (1, 1)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("select retention_sweep(6, 100)")
