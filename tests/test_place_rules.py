"""Calling rules by place (call_place_rules, call_holidays, nanp_area_codes): the window of a
number is the intersection of CALL_HOURS_* and the rules of every place it belongs to, on its
local weekday, without the holidays of its calendars. call_window is a pure function of the
instant it is given, so most cases use fixed instants; the claims move the test clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tools.build.nanp import area_code_places
from tools.stack import local as local_stack

from .conftest import ANY_HOUR, RULES, calls, claim, queued_lead

Conn = psycopg.Connection[Any]

# Fixed instants (2026-07-15, 2026-11-26, 2026-12-04 to 12-09), on purpose: call_window is a pure
# function of the instant it is given (it never reads the clock), and these pin summer time, a
# weekday, a weekend and holidays of the seeded calendars (2026-2028), which stay in the table
# whatever today is. The claims below use instants derived from now (next_local).
PLACES = {**RULES, **ANY_HOUR, "place_rules": True}  # the places' windows, CALL_HOURS_* open
MIAMI, NEW_YORK, MADRID, CANARY, CHICAGO = (
    "America/New_York",  # Miami keeps Eastern time
    "America/New_York",
    "Europe/Madrid",
    "Atlantic/Canary",
    "America/Chicago",
)


def places(db: Conn, phone: str) -> list[str]:
    row = db.execute("select public.phone_places(%s)", (phone,)).fetchone()
    assert row is not None
    return list(row[0])


def window(
    db: Conn, phone: str, zones: list[str], at: str, rules: dict[str, Any] = PLACES
) -> dict[str, Any]:
    row = db.execute(
        "select public.call_window(%s, %s, %s::timestamptz, public.phone_places(%s))",
        (zones, json.dumps(rules), at, phone),
    ).fetchone()
    assert row is not None
    return dict(row[0])


def hours(start: str, end: str) -> str:
    return f"{start}\u2013{end}"


def utc(value: str | None) -> str | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC).isoformat()


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+13055550100", ["US", "US-FL"]),
        ("+12125550100", ["US", "US-NY"]),
        ("+14055550100", ["US", "US-OK"]),
        ("+14165550100", ["CA", "CA-ON"]),
        ("+18005550100", ["US"]),  # toll-free: no area, the federal rules
        ("+34612345678", ["ES"]),
        ("+442071234567", []),  # no rule names the country: CALL_HOURS_* alone
        (None, []),
    ],
)
def test_phone_places(db: Conn, phone: str | None, expected: list[str]) -> None:
    assert places(db, phone) == expected  # type: ignore[arg-type]


def test_area_code_seed_is_phonenumbers_geocoder(db: Conn) -> None:
    seeded: dict[str, list[str]] = {}
    for npa, place in db.execute("select npa, place from nanp_area_codes order by npa, place"):
        seeded.setdefault(npa, []).append(place)
    assert seeded == area_code_places()


def test_florida_is_not_called_after_20_00_florida_time(db: Conn) -> None:
    at = "2026-07-15 20:30 America/New_York"  # summer time; a fixed instant: see the module's note
    florida = window(db, "+13055550100", [MIAMI], at)
    new_york = window(db, "+12125550100", [NEW_YORK], at)

    assert florida["allowed"] is False
    assert utc(florida["next_at"]) == "2026-07-16T12:00:00+00:00"  # 08:00 EDT
    assert florida["hours"] == hours("08:00", "20:00")
    assert [rule["place"] for rule in florida["rules"]] == ["US", "US-FL"]
    assert "501.616" in florida["rules"][1]["source"]
    assert new_york["allowed"] is True  # the federal 08:00 to 21:00
    assert new_york["hours"] == hours("08:00", "21:00")


def test_call_hours_and_the_place_intersect(db: Conn) -> None:
    rules = {**RULES, "place_rules": True, "hours_start": "09:00", "hours_end": "22:00"}
    early = window(db, "+13055550100", [MIAMI], "2026-07-15 08:30 America/New_York", rules)
    late = window(db, "+13055550100", [MIAMI], "2026-07-15 20:10 America/New_York", rules)
    assert (early["allowed"], early["hours"]) == (False, hours("09:00", "20:00"))
    assert utc(early["next_at"]) == "2026-07-15T13:00:00+00:00"
    assert late["allowed"] is False


def test_spain_no_calls_at_weekends_nor_on_holidays(db: Conn) -> None:
    saturday = window(db, "+34612345678", [MADRID], "2026-12-05 12:00 Europe/Madrid")
    assert saturday["allowed"] is False
    assert "ES allows no calls on Saturday" in saturday["hours"]
    assert utc(saturday["next_at"]) == "2026-12-07T08:00:00+00:00"  # Monday 09:00
    # Monday evening: Tuesday 8 December is a national holiday, so Wednesday 09:00.
    monday = window(db, "+34612345678", [MADRID], "2026-12-07 21:30 Europe/Madrid")
    assert utc(monday["next_at"]) == "2026-12-09T08:00:00+00:00"
    tuesday = window(db, "+34612345678", [MADRID], "2026-12-08 11:00 Europe/Madrid")
    assert tuesday["allowed"] is False
    assert "holiday: Inmaculada Concepción (ES)" in tuesday["hours"]
    # A Spanish mobile may be in the Canaries: the common window opens at 09:00 there.
    both = window(db, "+34612345678", [MADRID, CANARY], "2026-12-05 12:00 Europe/Madrid")
    assert utc(both["next_at"]) == "2026-12-07T09:00:00+00:00"
    weekday = window(db, "+34612345678", [MADRID], "2026-12-09 10:00 Europe/Madrid")
    assert weekday["allowed"] is True


def test_us_federal_holidays_and_the_operator_s_dates(db: Conn) -> None:
    thanksgiving = window(db, "+12125550100", [NEW_YORK], "2026-11-26 12:00 America/New_York")
    assert thanksgiving["allowed"] is False
    assert "Thanksgiving Day (US)" in thanksgiving["hours"]
    assert utc(thanksgiving["next_at"]) == "2026-11-27T13:00:00+00:00"  # Friday 08:00 EST
    no_calendars = {**PLACES, "holidays": []}
    at = "2026-11-26 12:00 America/New_York"
    assert window(db, "+12125550100", [NEW_YORK], at, no_calendars)["allowed"] is True
    # A date of CALL_HOLIDAYS holds for every number, whatever its place.
    eve = {**RULES, **ANY_HOUR, "holidays": ["2026-12-24"]}
    london = window(db, "+442071234567", ["Europe/London"], "2026-12-24 12:00 Europe/London", eve)
    assert london["allowed"] is False
    assert utc(london["next_at"]) == "2026-12-25T00:00:00+00:00"


def test_louisiana_no_automated_calls_on_sunday(db: Conn) -> None:
    sunday = window(db, "+15045550100", [CHICAGO], "2026-12-06 12:00 America/Chicago")
    assert sunday["allowed"] is False
    assert "US-LA allows no calls on Sunday" in sunday["hours"]
    assert utc(sunday["next_at"]) == "2026-12-07T14:00:00+00:00"  # Monday 08:00 CST


def test_an_area_code_spanning_states_keeps_to_the_intersection(db: Conn) -> None:
    with db.transaction(force_rollback=True):
        db.execute("insert into nanp_area_codes values ('999', 'US-FL'), ('999', 'US-LA')")
        assert places(db, "+19995550100") == ["US", "US-FL", "US-LA"]
        sunday = window(db, "+19995550100", [CHICAGO], "2026-12-06 12:00 America/Chicago")
        friday = window(db, "+19995550100", [CHICAGO], "2026-12-04 20:30 America/Chicago")
    assert sunday["allowed"] is False  # Louisiana's Sunday
    assert (friday["allowed"], friday["hours"]) == (
        False,
        hours("08:00", "20:00"),
    )  # Florida's 20:00


def test_an_operator_override_applies_and_no_common_hours_rests_the_lead(db: Conn) -> None:
    with db.transaction(force_rollback=True):
        db.execute(
            'update call_place_rules set windows = windows || \'{"1": ["10:00", "12:00"]}\' '
            "where place = 'ES'"
        )
        monday = window(db, "+34612345678", [MADRID], "2026-12-07 12:30 Europe/Madrid")
        db.execute(
            "update call_place_rules set windows = "
            '\'{"1":null,"2":null,"3":null,"4":null,"5":null,"6":null,"7":null}\' '
            "where place = 'ES'"
        )
        never = window(db, "+34612345678", [MADRID], "2026-12-07 12:30 Europe/Madrid")
    assert (monday["allowed"], monday["hours"]) == (False, hours("10:00", "12:00"))
    assert never["allowed"] is False and never["next_at"] is None


# --- the claim, on the test clock ----------------------------------------------------------------


@pytest.fixture
def clock(stack: local_stack.Stack) -> Iterator[Any]:
    """Moves public.clock_now() to a chosen instant; puts the previous shift back after."""
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute("select shift from public.test_clock").fetchone()
        previous = row[0] if row else None

        def move_to(instant: datetime) -> None:
            conn.execute(
                "insert into public.test_clock (shift) values (%s - now()) "
                "on conflict (id) do update set shift = excluded.shift",
                (instant,),
            )

        yield move_to
        if previous is None:
            conn.execute("delete from public.test_clock")
        else:
            conn.execute("update public.test_clock set shift = %s", (previous,))


def next_local(hour: int, minute: int, zone: str, weekday: int = 2) -> datetime:
    """The next such local time on a Wednesday (a day no seeded calendar holds), a week ahead
    at least (so a test never depends on today's date)."""
    day = datetime.now(UTC).astimezone(ZoneInfo(zone)).date() + timedelta(days=7)
    while day.weekday() != weekday or (day.month, day.day) in {(12, 25), (1, 1), (7, 4)}:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone))


def florida_phone() -> str:
    import uuid

    return "+1305" + str(2_000_000 + uuid.uuid4().int % 8_000_000)


def test_a_florida_lead_waits_for_08_00_and_its_call_records_the_rule(db: Conn, clock: Any) -> None:
    evening = next_local(20, 30, MIAMI)
    clock(evening)
    lead_id = queued_lead(db, phone=florida_phone(), timezone=MIAMI)

    answer = claim(db, lead_id, PLACES)

    assert answer["decision"] == "outside_hours"
    assert datetime.fromisoformat(answer["next_call_at"]) == (evening + timedelta(days=1)).replace(
        hour=8, minute=0
    )
    clock(evening + timedelta(days=1, hours=-12))  # 08:30 the next morning
    assert claim(db, lead_id, PLACES)["decision"] == "place"
    [call] = calls(db, lead_id)
    allowed = call["allowed_by"]
    assert allowed["places"] == ["US", "US-FL"] and allowed["hours"] == hours("08:00", "20:00")
    assert [rule["place"] for rule in allowed["rules"]] == ["US", "US-FL"]
    assert next(iter(allowed["local"].values())).endswith("08:30 Thu")


def test_a_florida_person_is_not_called_a_fourth_time_in_24_hours(db: Conn, clock: Any) -> None:
    noon = next_local(12, 0, MIAMI)
    clock(noon)
    phone = florida_phone()
    generous = {**PLACES, "max_per_person_per_day": 5}
    first = queued_lead(db, phone=phone, timezone=MIAMI)
    db.execute(
        "insert into calls (lead_id, attempt, to_number, requested_at, status, outcome) "
        "select %s, n, %s, public.clock_now() - make_interval(hours => n), 'completed', "
        "'no_answer' from generate_series(1, 3) n",
        (first, phone),
    )
    db.execute("update leads set status = 'no_answer', call_attempts = 3 where id = %s", (first,))
    fourth = queued_lead(db, phone=phone, timezone=MIAMI)

    answer = claim(db, fourth, generous)

    assert answer["decision"] == "person_daily_cap"
    row = db.execute(
        "select message from integration_logs where lead_id = %s "
        "and event = 'call.person_daily_cap'",
        (fourth,),
    ).fetchone()
    assert row is not None and "the limit of US-FL" in row[0]
    # A New York person with the same history is called: the federal rules set no cap.
    ny = "+1212" + phone[5:]
    other = queued_lead(db, phone=ny, timezone=NEW_YORK)
    db.execute(
        "insert into calls (lead_id, attempt, to_number, requested_at, status, outcome) "
        "select %s, n, %s, public.clock_now() - make_interval(hours => n), 'completed', "
        "'no_answer' from generate_series(1, 3) n",
        (other, ny),
    )
    again = queued_lead(db, phone=ny, timezone=NEW_YORK)
    assert claim(db, again, generous)["decision"] == "place"


# --- make doctor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "now", "status", "words"),
    [
        ({}, "2026-12-04", "ok", "holiday calendars US, ES hold the next 90 days"),
        ({}, "2028-11-01", "warn", "US ends on 2028-12-25: add its next year's days"),
        ({"CALL_HOLIDAYS": "US,XX,2026-12-24"}, "2026-12-04", "warn", "XX has no days"),
        ({"CALL_PLACE_RULES": "false"}, "2026-12-04", "warn", "only CALL_HOURS_* apply"),
    ],
    ids=["seeded", "running_out", "unknown_calendar", "off"],
)
def test_doctor_checks_the_calling_rules(
    stack: local_stack.Stack, env: dict[str, str], now: str, status: str, words: str
) -> None:
    from tools.ops.doctor import core as doctor_core
    from tools.ops.doctor import project as doctor_project

    instant = datetime.fromisoformat(now).replace(tzinfo=UTC).timestamp()
    with doctor_core.Context({**stack.env, **env}, now=instant) as ctx:
        result = doctor_project.check_call_rules(ctx)
    assert result.status == status, result.message
    assert words in result.message


def test_a_us_territory_keeps_the_federal_rules(db: Conn) -> None:
    assert places(db, "+13405550100") == ["US", "VI"]  # the US Virgin Islands
    assert places(db, "+17875550100") == ["US"]  # Puerto Rico: no geocoder area, federal


@pytest.mark.parametrize(
    "windows",
    [
        '{"1":["08:00"],"2":null,"3":null,"4":null,"5":null,"6":null,"7":null}',
        '{"1":["20:00","08:00"],"2":null,"3":null,"4":null,"5":null,"6":null,"7":null}',
        '{"1":[null,null],"2":null,"3":null,"4":null,"5":null,"6":null,"7":null}',
        '{"1":["8am","9pm"],"2":null,"3":null,"4":null,"5":null,"6":null,"7":null}',
        '{"1":null,"2":null,"3":null,"4":null,"5":null,"6":null}',
    ],
)
def test_a_malformed_window_is_refused(db: Conn, windows: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation), db.transaction(force_rollback=True):
        db.execute("update call_place_rules set windows = %s where place = 'US-FL'", (windows,))


def test_an_unknown_consent_policy_fails_closed(db: Conn) -> None:
    lead_id = queued_lead(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        claim(db, lead_id, {**PLACES, "consent": "maybe"})


def test_holiday_calendars_are_read_in_any_case() -> None:
    from place_call.settings import PlaceCallSettings

    rules = PlaceCallSettings.load({"CALL_HOLIDAYS": "us, es-ct ,2026-12-24"}).call_rules()
    assert rules["holidays"] == ["US", "ES-CT", "2026-12-24"]
