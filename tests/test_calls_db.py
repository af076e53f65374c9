"""The call rules in SQL (supabase/migrations/*_calls.sql), against the real Postgres."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tools import stack as local_stack

Conn = psycopg.Connection[Any]
ANY_HOUR = {"hours_start": "00:00", "hours_end": "24:00"}
RULES = {
    "max_attempts": 3,
    "hours_start": "09:00",
    "hours_end": "20:00",
    "default_timezone": "America/New_York",
    "wait_minutes": {"voicemail": 120, "no_answer": 60, "busy": 15, "failed": 30},
}


def queued(db: Conn, *, timezone: str | None = None) -> str:
    phone = "+1646" + str(2_000_000 + uuid.uuid4().int % 8_000_000)
    row = db.execute(
        "insert into leads (source, status, phone, timezone, next_call_at) "
        "values ('manual', 'call_queued', %s, %s, now()) returning id::text",
        (phone, timezone),
    ).fetchone()
    assert row is not None
    return str(row[0])


def claim(conn: Conn, lead_id: str, rules: dict[str, Any] = RULES) -> dict[str, Any]:
    row = conn.execute("select public.call_claim(%s, %s)", (lead_id, json.dumps(rules))).fetchone()
    assert row is not None
    return dict(row[0])


def test_call_claim_waits_for_a_concurrent_claim_and_never_places_twice(
    stack: local_stack.Stack, db: Conn
) -> None:
    lead_id = queued(db)
    outcome: dict[str, Any] = {}
    with psycopg.connect(stack.env["DATABASE_URL"]) as first:
        assert claim(first, lead_id, {**RULES, **ANY_HOUR})["decision"] == "place"  # uncommitted

        def second_claim() -> None:
            with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as second:
                try:
                    outcome["answer"] = claim(second, lead_id, {**RULES, **ANY_HOUR})
                except psycopg.Error as exc:
                    outcome["error"] = exc

        thread = threading.Thread(target=second_claim)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # blocked on the lead's row lock
        first.commit()
    thread.join(timeout=10)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["answer"]["decision"] == "in_progress"
    assert db.execute("select count(*) from calls where lead_id = %s", (lead_id,)).fetchone() == (
        1,
    )


def outside_hours_zone() -> str:
    """An Etc/GMT zone whose local time now is outside 09:00-20:00 (Etc signs are inverted)."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        if not 9 <= (now + timedelta(hours=offset)).hour < 20:
            return f"Etc/GMT{-offset:+d}" if offset else "UTC"
    raise AssertionError("unreachable: some zone is always outside 09:00-20:00")


def test_call_claim_outside_hours_schedules_the_next_window(db: Conn) -> None:
    zone = outside_hours_zone()
    lead_id = queued(db, timezone=zone)
    answer = claim(db, lead_id)
    assert (answer["decision"], answer["timezone"]) == ("outside_hours", zone)
    next_call = db.execute(
        "select next_call_at, (next_call_at at time zone %s)::time, status from leads "
        "where id = %s",
        (zone, lead_id),
    ).fetchone()
    assert next_call is not None
    assert str(next_call[1]) == "09:00:00" and next_call[2] == "call_queued"
    assert next_call[0] > db.execute("select now()").fetchone()[0]  # type: ignore[index]


def test_call_claim_unknown_time_zone_falls_back_to_the_default(db: Conn) -> None:
    lead_id = queued(db, timezone="Mars/Olympus_Mons")
    assert claim(db, lead_id, {**RULES, **ANY_HOUR})["decision"] == "place"


@pytest.mark.parametrize(
    ("outcome", "attempts", "minutes"),
    [
        ("voicemail", 1, 120),
        ("no_answer", 1, 60),
        ("busy", 2, 15),
        ("failed", 1, 30),
        ("unknown", 1, 30),
        ("voicemail", 3, None),
    ],
)
def test_call_retry_at_by_outcome(
    db: Conn, outcome: str, attempts: int, minutes: int | None
) -> None:
    row = db.execute(
        "select extract(epoch from call_retry_at(%s, %s, %s) - now())",
        (outcome, attempts, json.dumps(RULES)),
    ).fetchone()
    assert row is not None
    assert (None if row[0] is None else round(row[0] / 60)) == minutes
