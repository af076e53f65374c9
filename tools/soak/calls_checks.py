"""The calls soak's checks (``make soak-calls``): pure functions over what the soak saw at the
ElevenLabs fake (every call request, with the answer the soak had scripted for it) and what it
did (webhooks, bookings), with calling hours judged by ``zoneinfo``, never by the SQL under test.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Answers that give the attempt back (nothing rang, not the lead's fault) and that may have rung.
GIVEN_BACK = ("outage", "throttled", "quota")
ANSWERS = ("ok", "timeout", *GIVEN_BACK)


@dataclass
class Call:
    """One outbound-call request the fake received."""

    seq: int
    step: int
    at: datetime  # on the simulated clock
    lead_id: str
    person: int
    to_number: str
    answer: str  # ok, timeout (the request timed out: it may have rung), outage, throttled, quota
    conversation_id: str | None = None
    ended_step: int | None = None  # the step its outcome reached the system (webhook or read)
    # When its step began on the simulated clock: the claim that allowed it was made then (plus
    # milliseconds), so the rolling day is judged on it rather than on the request's arrival,
    # which jitters by milliseconds either side of an exact 24 hours.
    step_at: datetime | None = None

    @property
    def may_have_rung(self) -> bool:
        return self.answer not in GIVEN_BACK


@dataclass
class Facts:
    """Everything the checks read."""

    calls: list[Call] = field(default_factory=list)
    zones: dict[str, list[str]] = field(default_factory=dict)  # to_number -> time zones
    booked_step: dict[int, int] = field(default_factory=dict)  # person -> step of the booking
    unconsented: set[str] = field(default_factory=set)  # leads with no consent on record
    holidays: set[tuple[str, date]] = field(default_factory=set)  # (calendar, day): call_holidays
    sweep_failures: list[str] = field(default_factory=list)
    webhooks_refused: list[str] = field(default_factory=list)
    hours: tuple[time, time] = (time(9), time(20))
    max_attempts: int = 3
    per_person_per_day: int = 3
    # Leads older than CALL_MAX_LEAD_AGE_HOURS when they arrived (a backfill, a recovery).
    stale: set[str] = field(default_factory=set)


def two_live_calls(facts: Facts) -> list[str]:
    """A call requested while another call to the same person was live: placed (answered ok)
    and its outcome not yet known to the system (no webhook delivered, conversation not read)."""
    problems = []
    by_person: dict[int, list[Call]] = defaultdict(list)
    for call in sorted(facts.calls, key=lambda c: c.seq):
        for earlier in by_person[call.person]:
            live = earlier.answer == "ok" and (
                earlier.ended_step is None or earlier.ended_step >= call.step
            )
            if live:
                problems.append(
                    f"person {call.person}: call {call.seq} ({call.lead_id}) while call "
                    f"{earlier.seq} ({earlier.lead_id}) was live"
                )
        by_person[call.person].append(call)
    return problems


def after_booking(facts: Facts) -> list[str]:
    return [
        f"person {call.person}: call {call.seq} at step {call.step} after booking at step "
        f"{facts.booked_step[call.person]}"
        for call in facts.calls
        if call.person in facts.booked_step and call.step > facts.booked_step[call.person]
    ]


def without_consent(facts: Facts) -> list[str]:
    return [
        f"call {call.seq} to lead {call.lead_id}, which has no consent on record"
        for call in facts.calls
        if call.lead_id in facts.unconsented
    ]


def outside_hours(facts: Facts) -> list[str]:
    start, end = facts.hours
    problems = []
    for call in facts.calls:
        for zone in facts.zones.get(call.to_number) or ["America/New_York"]:
            local = call.at.astimezone(ZoneInfo(zone)).time()
            if not start <= local < end:
                problems.append(f"call {call.seq} to {call.to_number} at {local} in {zone}")
    return problems


def outside_place_rules(facts: Facts) -> list[str]:
    """Judged here with zoneinfo and the statutes' own terms (docs/LAWFUL_CALLING.md), never by
    the SQL under test: Spain, weekdays 09:00-21:00 and not on its holidays; the US, the federal
    08:00-21:00 and not on federal holidays; Florida (305), 08:00-20:00."""
    problems = []
    for call in facts.calls:
        number = call.to_number
        for zone in facts.zones.get(number) or ["America/New_York"]:
            local = call.at.astimezone(ZoneInfo(zone))
            if number.startswith("+34"):
                calendar, start, end, weekend = "ES", time(9), time(21), local.weekday() >= 5
            elif number.startswith("+1") and not number.startswith(("+1800", "+1888")):
                calendar, start, end, weekend = "US", time(8), time(21), False
                if number.startswith("+1305"):
                    end = time(20)
            else:
                continue
            if weekend or (calendar, local.date()) in facts.holidays:
                problems.append(f"call {call.seq} to {number} on {local:%a %Y-%m-%d} in {zone}")
            elif not start <= local.time() < end:
                problems.append(f"call {call.seq} to {number} at {local:%H:%M} in {zone}")
    return problems


def over_daily_cap(facts: Facts) -> list[str]:
    problems = []
    by_person: dict[int, list[datetime]] = defaultdict(list)
    for call in facts.calls:
        if call.may_have_rung:
            by_person[call.person].append(call.step_at or call.at)
    for person, times in by_person.items():
        times.sort()
        for i in range(len(times) - facts.per_person_per_day):
            if times[i + facts.per_person_per_day] - times[i] < timedelta(hours=24):
                problems.append(f"person {person}: {facts.per_person_per_day + 1} calls in 24 h")
                break
    return problems


def over_max_attempts(facts: Facts) -> list[str]:
    counted: dict[str, int] = defaultdict(int)
    for call in facts.calls:
        if call.may_have_rung:
            counted[call.lead_id] += 1
    return [f"lead {lead}: {n} attempts" for lead, n in counted.items() if n > facts.max_attempts]


def too_old(facts: Facts) -> list[str]:
    """A call to a lead that was older than CALL_MAX_LEAD_AGE_HOURS when it arrived."""
    return [
        f"call {call.seq} to lead {call.lead_id}, older than CALL_MAX_LEAD_AGE_HOURS"
        for call in facts.calls
        if call.lead_id in facts.stale
    ]


CHECKS = {
    "never two live calls to one person": two_live_calls,
    "no call after the person booked": after_booking,
    "no call without consent (CALL_CONSENT=required)": without_consent,
    "no call outside calling hours in any zone of the number": outside_hours,
    "no call outside the rules of the number's place (weekends, holidays, state hours)": (
        outside_place_rules
    ),
    "no person over CALL_MAX_PER_PERSON_PER_DAY in 24 h": over_daily_cap,
    "no lead over CALL_MAX_ATTEMPTS": over_max_attempts,
    "no automatic call to a lead older than CALL_MAX_LEAD_AGE_HOURS": too_old,
    "no sweep failed": lambda facts: facts.sweep_failures,
    "every webhook accepted": lambda facts: facts.webhooks_refused,
}


def run_checks(facts: Facts) -> dict[str, list[str]]:
    """Each check's problems (empty: it passed)."""
    return {name: check(facts) for name, check in CHECKS.items()}


def at_step(start: datetime, step: int, minutes: int) -> datetime:
    """The simulated time a step starts at."""
    return start + timedelta(minutes=step * minutes)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
