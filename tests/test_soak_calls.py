"""`make soak-calls` (tools/soak/calls.py): its checks catch each broken rule, and a short run
of it (150 leads of 110 people, a day and a half in hourly steps, every fault) passes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from tools.soak.calls import Settings, Soak
from tools.soak.calls_checks import Call, Facts, run_checks

# A fixed instant: the checks are pure functions of the times they are given.
NOON_NY = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)


def call(seq: int, *, step: int = 0, person: int = 1, lead: str = "a", **kwargs: object) -> Call:
    values: dict[str, object] = {
        "at": NOON_NY + timedelta(minutes=30 * step),
        "to_number": "+12125550100",
        "answer": "ok",
        "conversation_id": f"conv_{seq}",
        **kwargs,
    }
    return Call(seq=seq, step=step, lead_id=lead, person=person, **values)  # type: ignore[arg-type]


def failing(facts: Facts) -> set[str]:
    return {name for name, problems in run_checks(facts).items() if problems}


def test_calls_checks_pass_a_clean_history() -> None:
    facts = Facts(
        calls=[call(1, ended_step=0), call(2, step=1, lead="b")],
        zones={"+12125550100": ["America/New_York"]},
    )
    assert failing(facts) == set()


def test_calls_checks_catch_a_call_to_a_lead_older_than_the_max_age() -> None:
    young = Facts(calls=[call(1)], stale={"b"})
    assert failing(young) == set()
    old = Facts(calls=[call(1)], stale={"a"})
    assert failing(old) == {"no automatic call to a lead older than CALL_MAX_LEAD_AGE_HOURS"}


def test_calls_checks_catch_two_live_calls_to_one_person() -> None:
    facts = Facts(calls=[call(1, ended_step=2), call(2, step=1, lead="b")])
    assert failing(facts) == {"never two live calls to one person"}
    # A call whose start timed out was never known to be live; a given-back one never rang.
    facts = Facts(calls=[call(1, answer="timeout"), call(2, step=1, lead="b")])
    assert failing(facts) == set()


def test_calls_checks_catch_a_call_after_booking() -> None:
    facts = Facts(calls=[call(1, ended_step=0), call(2, step=3, lead="b")], booked_step={1: 2})
    assert failing(facts) == {"no call after the person booked"}


def test_calls_checks_catch_a_call_at_night_in_one_zone_of_the_number() -> None:
    # 17:00 UTC: 12:00 in New York, 18:00 in Madrid, 17:00 in the Canaries; 21:30 UTC is
    # 22:30 in Madrid.
    evening = NOON_NY.replace(hour=21, minute=30)
    facts = Facts(
        calls=[call(1, to_number="+34600000000", at=evening, ended_step=0)],
        zones={"+34600000000": ["Atlantic/Canary", "Europe/Madrid"]},
    )
    assert failing(facts) == {"no call outside calling hours in any zone of the number", PLACE}


PLACE = "no call outside the rules of the number's place (weekends, holidays, state hours)"


def test_calls_checks_catch_a_call_against_the_place_s_rules() -> None:
    saturday = NOON_NY + timedelta(days=2)  # 18:00 in Madrid, within every hour
    madrid = {"+34600000000": ["Europe/Madrid"]}
    facts = Facts(
        calls=[call(1, to_number="+34600000000", at=saturday, ended_step=0)], zones=madrid
    )
    assert failing(facts) == {PLACE}
    holiday = {("ES", NOON_NY.date())}
    thursday = Facts(calls=[call(1, to_number="+34600000000", ended_step=0)], zones=madrid)
    assert failing(thursday) == set()
    thursday.holidays = holiday
    assert failing(thursday) == {PLACE}
    # Florida's day ends at 20:00: 20:30 there is within CALL_HOURS_* of a 9-21 deployment.
    florida = Facts(
        calls=[call(1, to_number="+13055550100", at=NOON_NY.replace(hour=1, minute=30))],
        zones={"+13055550100": ["America/New_York"]},
        hours=(time(9), time(21)),
    )
    assert failing(florida) == {PLACE}


def test_calls_checks_catch_the_daily_cap_and_max_attempts() -> None:
    calls = [call(2 * i, step=2 * i, ended_step=2 * i) for i in range(4)]  # 4 calls in 3.5 h
    assert failing(Facts(calls=calls)) == {
        "no person over CALL_MAX_PER_PERSON_PER_DAY in 24 h",
        "no lead over CALL_MAX_ATTEMPTS",
    }
    # Requests answered with an outage rang nobody: they count towards neither.
    given_back = [call(2 * i + 1, step=2 * i + 1, answer="outage") for i in range(4)]
    assert failing(Facts(calls=[*calls[:3], *given_back])) == set()


def test_soak_calls_short_run_keeps_every_rule(tmp_path: Path) -> None:
    settings = Settings(leads=150, people=110, days=1.5, step_minutes=60, seed=1)
    report = Soak(settings, tmp_path).run()
    assert report["passed"], {name: found for name, found in report["checks"].items() if found}
    figures = report["figures"]
    # A sanity bound on the work done (about 150 requests; the stale leads are never called).
    assert figures["call_requests"] > 120 and figures["bookings"] > 0
    assert sum(figures["faulted"].values()) > 0 and figures["conversations_read"] > 0
