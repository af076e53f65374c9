"""The call rules in SQL (supabase/migrations/*_calls.sql), against the real Postgres."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from tools.stack import local as local_stack

from .conftest import ANY_HOUR, RULES, claim, record_consent

Conn = psycopg.Connection[Any]
# Fixed days for call_window, a pure function of the instant it is given (no clock is read):
# a winter and a summer day (summer time in Madrid and New York), and the night the issue saw a
# Spanish mobile called at 02:58 Madrid time.
WINTER, SUMMER, NIGHT_SEEN = "2026-01-15", "2026-07-15", "2026-12-04"  # fixed


def queued(db: Conn, *, timezone: str | None = None) -> str:
    phone = "+1646" + str(2_000_000 + uuid.uuid4().int % 8_000_000)
    row = db.execute(
        "insert into leads (source, status, phone, timezone, next_call_at) "
        "values ('manual', 'call_queued', %s, %s, public.clock_now()) returning id::text",
        (phone, timezone),
    ).fetchone()
    assert row is not None
    record_consent(db, str(row[0]))
    return str(row[0])


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


def outside_hours_zone(db: Conn) -> str:
    """An Etc/GMT zone whose local time is outside 09:00-20:00 by the call rules' clock
    (public.clock_now(); Etc signs are inverted)."""
    row = db.execute("select public.clock_now()").fetchone()
    assert row is not None
    now: datetime = row[0]
    for offset in range(-12, 15):
        if not 9 <= (now + timedelta(hours=offset)).hour < 20:
            return f"Etc/GMT{-offset:+d}" if offset else "UTC"
    raise AssertionError("unreachable: some zone is always outside 09:00-20:00")


def test_call_claim_outside_hours_schedules_the_next_window(db: Conn) -> None:
    zone = outside_hours_zone(db)
    lead_id = queued(db, timezone=zone)
    answer = claim(db, lead_id)
    assert (answer["decision"], answer["timezones"]) == ("outside_hours", [zone])
    next_call = db.execute(
        "select next_call_at, (next_call_at at time zone %s)::time, status from leads "
        "where id = %s",
        (zone, lead_id),
    ).fetchone()
    assert next_call is not None
    assert str(next_call[1]) == "09:00:00" and next_call[2] == "call_queued"
    assert next_call[0] > db.execute("select public.clock_now()").fetchone()[0]  # type: ignore[index]


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
        "select extract(epoch from call_retry_at(%s, %s, %s) - public.clock_now())",
        (outcome, attempts, json.dumps(RULES)),
    ).fetchone()
    assert row is not None
    assert (None if row[0] is None else round(row[0] / 60)) == minutes


# --- calling hours in every zone a number may be in -------------------------------------------


def window(db: Conn, zones: list[str], at: str, rules: dict[str, Any] = RULES) -> dict[str, Any]:
    row = db.execute(
        "select public.call_window(%s, %s, %s::timestamptz)", (zones, json.dumps(rules), at)
    ).fetchone()
    assert row is not None
    return dict(row[0])


def toll_free_zones() -> list[str]:
    """Every zone phonenumbers gives a +1 800 number (Guam to Pago Pago)."""
    from lib.phone import time_zones

    return time_zones("+18005550100")


@pytest.mark.parametrize(
    ("zones", "at", "allowed", "next_at"),
    [
        # A frozen clock (a pure function of its instant). Madrid 09:30, the Canaries 08:30:
        # not yet; both are within hours once the Canaries open at 09:00 there.
        (
            ["Europe/Madrid", "Atlantic/Canary"],
            f"{WINTER} 08:30+00",
            False,
            f"{WINTER} 09:00+00",
        ),
        (["Europe/Madrid", "Atlantic/Canary"], f"{WINTER} 10:00+00", True, None),
        # Summer time: Madrid UTC+2, the Canaries UTC+1.
        (["Europe/Madrid", "Atlantic/Canary"], f"{SUMMER} 07:30+00", False, f"{SUMMER} 08:00+00"),
        # An evening zone and a morning one: New York 20:30 (closed), Los Angeles 17:30 (open);
        # next when Los Angeles opens (New York is 12:00 then).
        (
            ["America/New_York", "America/Los_Angeles"],
            f"{WINTER} 01:30+00",
            False,
            f"{WINTER} 17:00+00",
        ),
        # A Spanish mobile at 02:58 Madrid time: the night the issue saw called.
        (
            ["Atlantic/Canary", "Europe/Madrid"],
            f"{NIGHT_SEEN} 01:58+00",
            False,
            f"{NIGHT_SEEN} 09:00+00",
        ),
        # No zone at all: the default (New York), 09:00 there.
        ([], f"{WINTER} 13:00+00", False, f"{WINTER} 14:00+00"),
        (["Mars/Olympus_Mons"], f"{WINTER} 15:00+00", True, None),
    ],
)  # fixed instants: call_window is a pure function of them
def test_call_window_every_zone_within_hours(
    db: Conn, zones: list[str], at: str, allowed: bool, next_at: str | None
) -> None:
    answer = window(db, zones, at)
    assert answer["allowed"] is allowed
    expected = None
    if next_at is not None:
        expected = db.execute("select %s::timestamptz", (next_at,)).fetchone()[0]  # type: ignore[index]
    got = answer["next_at"]
    if got is not None:
        got = db.execute("select %s::timestamptz", (got,)).fetchone()[0]  # type: ignore[index]
    assert got == expected


@pytest.mark.parametrize(
    ("at", "next_at"),
    [
        # Summer: St John's (UTC-2:30) to Guam (UTC+10) leave no common hour of 09:00-20:00.
        (f"{SUMMER} 20:00+00", None),
        # Winter: St John's is UTC-3:30, and 23:00-23:30 UTC is within hours everywhere (Guam
        # 09:00, Pago Pago 12:00, St John's 19:30).
        (f"{WINTER} 20:00+00", f"{WINTER} 23:00+00"),
    ],
)  # fixed instants: call_window is a pure function of them
def test_call_window_toll_free_number_zones(db: Conn, at: str, next_at: str | None) -> None:
    zones = toll_free_zones()
    assert "Pacific/Guam" in zones and "Pacific/Pago_Pago" in zones
    answer = window(db, zones, at)
    assert answer["allowed"] is False
    got = answer["next_at"] and db.execute("select %s::timestamptz", (answer["next_at"],))
    expected = next_at and db.execute("select %s::timestamptz", (next_at,))
    assert (got and got.fetchone()) == (expected and expected.fetchone())


def madrid_hours(db: Conn) -> dict[str, str]:
    """Calling hours in which exactly one of Madrid and the Canaries (an hour behind) is now (by
    the call rules' clock),
    whatever the date and the summer time: opening at Madrid's current hour (the Canaries still
    closed), or, at 23:xx in Madrid, closing at it (the Canaries still open)."""
    row = db.execute(
        "select extract(hour from public.clock_now() at time zone 'Europe/Madrid')"
    ).fetchone()
    hour = int(row[0])  # type: ignore[index]
    if hour == 23:
        return {"hours_start": "21:00", "hours_end": "23:00"}
    return {"hours_start": f"{hour:02d}:00", "hours_end": f"{min(hour + 2, 24):02d}:00"}


def test_call_claim_spanish_mobile_waits_until_both_zones_are_within_hours(db: Conn) -> None:
    lead_id = queued(db)
    db.execute(
        "update leads set phone = %s, timezone = null, "
        "timezones = array['Atlantic/Canary', 'Europe/Madrid'] where id = %s",
        ("+346" + str(10_000_000 + uuid.uuid4().int % 90_000_000), lead_id),
    )
    hours = madrid_hours(db)
    answer = claim(db, lead_id, {**RULES, **hours})
    assert answer["decision"] == "outside_hours", answer
    assert sorted(answer["timezones"]) == ["Atlantic/Canary", "Europe/Madrid"]
    row = db.execute(
        "select (next_call_at at time zone 'Atlantic/Canary')::time, "
        "(next_call_at at time zone 'Europe/Madrid')::time, next_call_at > public.clock_now() "
        "from leads where id = %s",
        (lead_id,),
    ).fetchone()
    assert row is not None
    # The common window opens when the Canaries open, an hour after Madrid did.
    start = datetime.strptime(hours["hours_start"], "%H:%M")
    assert (row[0], row[1], row[2]) == (start.time(), (start + timedelta(hours=1)).time(), True)
    assert db.execute("select count(*) from calls where lead_id = %s", (lead_id,)).fetchone() == (
        0,
    )


def test_call_claim_toll_free_number_rests_in_no_calling_hours(db: Conn) -> None:
    lead_id = queued(db)
    db.execute(
        "update leads set phone = %s, timezones = %s where id = %s",
        ("+1800" + str(2_000_000 + uuid.uuid4().int % 8_000_000), toll_free_zones(), lead_id),
    )
    # 09:00-17:00 holds no common hour in any season for Guam to St John's.
    answer = claim(db, lead_id, {**RULES, "hours_start": "09:00", "hours_end": "17:00"})
    assert answer["decision"] == "no_calling_hours", answer
    row = db.execute("select status, next_call_at from leads where id = %s", (lead_id,)).fetchone()
    assert row == ("no_calling_hours", None)
    logged = db.execute(
        "select status, error_code, message from integration_logs where lead_id = %s "
        "and event = 'call.no_calling_hours'",
        (lead_id,),
    ).fetchone()
    assert logged is not None and logged[:2] == ("error", "no_calling_hours")
    assert "Pacific/Guam" in logged[2] and "share no calling hours" in logged[2]
    assert claim(db, lead_id)["decision"] == "not_queued"  # at rest, not rescheduled


def test_call_claim_placed_call_records_the_zones_and_local_times(db: Conn) -> None:
    lead_id = queued(db, timezone="America/New_York")
    assert claim(db, lead_id, {**RULES, **ANY_HOUR})["decision"] == "place"
    row = db.execute("select allowed_by from calls where lead_id = %s", (lead_id,)).fetchone()
    assert row is not None
    assert row[0]["zones"] == ["America/New_York"] and row[0]["hours"] == "00:00–24:00"  # noqa: RUF001
    assert set(row[0]["local"]) == {"America/New_York"}


# --- the call rules' one clock ---------------------------------------------------------------


def test_call_rules_read_the_test_clock(db: Conn) -> None:
    # Relative to whatever shift the run has (STACK_CLOCK_SHIFT), restored after.
    row = db.execute(
        "select coalesce((select shift from public.test_clock), interval '0')"
    ).fetchone()
    assert row is not None
    before: timedelta = row[0]
    if os.environ.get("STACK_CLOCK_SHIFT"):  # the run's shift is the one asked for
        asked = db.execute("select %s::interval", (os.environ["STACK_CLOCK_SHIFT"],)).fetchone()
        assert asked is not None and before == asked[0]
    lead_id = queued(db, timezone="America/New_York")
    db.execute(
        "update leads set next_call_at = public.clock_now() + interval '3 hours' where id = %s",
        (lead_id,),
    )
    rules = {**RULES, **ANY_HOUR}
    assert claim(db, lead_id, rules)["decision"] == "not_due"
    set_shift = (
        "insert into public.test_clock (shift) values (%s) "
        "on conflict (id) do update set shift = excluded.shift"
    )
    db.execute(set_shift, (before + timedelta(hours=4),))
    try:
        assert claim(db, lead_id, rules)["decision"] == "place"
        row = db.execute(
            "select requested_at - now() from calls where lead_id = %s", (lead_id,)
        ).fetchone()
        # Made moments before this statement's now(): four hours ahead of it, less that moment.
        assert row is not None and timedelta(hours=3) < row[0] - before <= timedelta(hours=4)
    finally:
        db.execute(set_shift, (before,))


def test_test_clock_not_writable_by_the_api_role(stack: local_stack.Stack) -> None:
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        conn.execute("set role service_role")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into public.test_clock (shift) values (interval '1 day')")


def test_call_claim_decisions_carry_their_reason(db: Conn) -> None:
    # The words of each decision live in SQL (call_decided), not in a table mirroring it.
    assert claim(db, str(uuid.uuid4()))["reason"] == "no such lead"
    lead_id = queued(db)
    db.execute(
        "update leads set next_call_at = public.clock_now() + interval '1 hour' where id = %s",
        (lead_id,),
    )
    assert claim(db, lead_id, {**RULES, **ANY_HOUR})["reason"] == (
        "the lead's next call is not due yet"
    )
    placed = claim(db, queued(db), {**RULES, **ANY_HOUR})
    assert (placed["decision"], placed["reason"]) == ("place", "placed")


@pytest.mark.parametrize(
    "decision",
    [
        "not_found", "no_phone", "booked", "do_not_call", "in_progress", "not_queued",
        "max_attempts", "not_due", "outside_hours", "no_calling_hours", "person_booked",
        "person_in_progress", "person_cooldown", "person_daily_cap",
    ],
)  # fmt: skip
def test_every_refusal_has_words_of_its_own(db: Conn, decision: str) -> None:
    row = db.execute(
        "select public.call_decided(jsonb_build_object('decision', %s::text)) ->> 'reason'",
        (decision,),
    ).fetchone()
    assert row is not None and row[0] != decision and len(row[0]) > 10
