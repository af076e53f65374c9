"""`make soak-calls`: the call path under people, faults and days of simulated time.

A population of leads (about 1.3 per person: people who filled several forms share a phone or an
email; Spanish mobiles, multi-zone and toll-free +1 numbers) is queued for its calls; then, step
after step of simulated time (the call rules read ``public.clock_now()``, which only the test
stack moves), place_call's sweep runs, the ElevenLabs fake answers each call request as the soak
scripted it (placed, or a 503, a 429, out of credits, a timeout), post-call webhooks are sent
duplicated, reordered, late or never (the sweep must then read the conversation), and people
book through Calendly at random moments, mid-call too. After every step the checks of
tools/soak/calls_checks.py read what the fake saw; at the end every lead must be final or have
its next call scheduled, and every webhook must be in the database. Loopback only, bounded in
count and time; everything it starts it stops.

    python -m tools.soak.calls [--leads 2000 --people 1500 --days 3 --step-minutes 30 ...]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

import tools
from lib.phone import time_zones
from lib.signatures import sign_calendly
from tools.fakes import elevenlabs_samples as samples
from tools.fakes.calendly_samples import calendly_invitee_event
from tools.fakes.fake_api import FakeClient
from tools.soak.calls_checks import Call, Facts, run_checks, utc
from tools.stack import local as local_stack

OUTBOUND = "/v1/convai/twilio/outbound-call"
CONVERSATION = "/v1/convai/conversations/"
FINAL = {
    "called",
    "voicemail",
    "no_answer",
    "booked",
    "person_booked",
    "do_not_call",
    "no_consent",
    "too_old",
}
# Rest statuses a lead may end in that are not final but need nobody (no common calling hours).
AT_REST = {"no_calling_hours"}
FAULTS = {
    "outage": {"status": 503, "body": {"detail": "Service Unavailable"}},
    "throttled": {
        "status": 429,
        "body": {"detail": {"status": "too_many_concurrent_requests", "message": "Slow down"}},
    },
    "quota": {
        "status": 401,
        "body": {"detail": {"status": "quota_exceeded", "message": "You have 0 credits left"}},
    },
    "timeout": {"status": 200, "body": {}, "delay": 3.5},
}


@dataclass(frozen=True)
class Settings:
    leads: int = 2000
    people: int = 1500
    days: float = 3.0
    step_minutes: int = 30
    fault_share: float = 0.08
    missing_share: float = 0.1
    duplicate_share: float = 0.1
    late_share: float = 0.15
    booking_share: float = 0.15
    unconsented_share: float = 0.05
    # Leads that reach us days after the form was filled (a backfill, a recovery): older than
    # CALL_MAX_LEAD_AGE_HOURS, they are never called automatically.
    stale_share: float = 0.03
    seed: int = 0


@dataclass
class Person:
    number: int
    phone: str
    email: str
    lead_ids: list[str] = field(default_factory=list)


@dataclass
class Pending:
    """A webhook to send at ``step``."""

    step: int
    event: dict[str, Any]
    conversation_id: str


def phone_for(kind: str, n: int) -> str:
    return {
        "ny": f"+1212{2_000_000 + n}",
        "la": f"+1310{2_000_000 + n}",
        "boise": f"+1208555{n % 10_000:04d}",
        "miami": f"+1305{2_000_000 + n}",
        "dakota": f"+1605555{n % 10_000:04d}",
        "es": f"+346{10_000_000 + n}",
        "toll_free": f"+1800{2_000_000 + n}",
    }[kind]


def population(settings: Settings, rng: random.Random) -> list[Person]:
    kinds = (
        ["ny"] * 25
        + ["miami"] * 5
        + ["la"] * 20
        + ["boise"] * 8
        + ["dakota"] * 7
        + ["es"] * 33
        + ["toll_free"] * 2
    )
    return [
        Person(
            i,
            phone_for(rng.choice(kinds), i),
            f"soak.person.{i}.{uuid.uuid4().hex[:6]}@example.com",
        )
        for i in range(settings.people)
    ]


class Soak:
    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.state_dir = state_dir
        self.facts = Facts()
        self.people = population(settings, self.rng)
        self.person_of_lead: dict[str, int] = {}
        self.phone_of_lead: dict[str, str] = {}
        self.armed: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        self.pending: list[Pending] = []
        self.last_seq = 0
        self.webhooks_sent: list[tuple[str, str]] = []
        self.bookings: dict[int, int] = {}  # step -> person
        self.shift_of_step: dict[int, timedelta] = {}
        # Steps fall on whole and half hours of the simulated clock, as calling hours do: a
        # request is on the same side of every 09:00 and 20:00 as the claim that allowed it.
        self.start_at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(
            hours=1
        )
        self.conversations_read = 0

    # --- setup ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        stack = local_stack.start(self.state_dir / "stack", environ={})
        served = None
        try:
            env = {
                **stack.env,
                # Only the scripted timeouts time out, even on a loaded machine.
                "HTTP_TIMEOUT_SECONDS": "3",
                "CALL_SWEEP_BATCH_SIZE": "500",
                "CALL_RECONCILE_BATCH_SIZE": "200",
                "PLACE_CALL_URL": "",
            }
            port = local_stack.free_port()
            served = local_stack.spawn(
                "tools.stack.serve",
                "--port",
                str(port),
                env={**env, "PYTHONPATH": tools.PYTHONPATH},
                log=self.state_dir / "functions.log",
            )
            self.base = f"http://127.0.0.1:{port}/functions/v1"
            local_stack.wait_until(
                local_stack.http_ok(f"http://127.0.0.1:{port}/health"), what="functions"
            )
            self.env = env
            self.http = httpx.Client(timeout=60)
            self.fake = FakeClient(env["ELEVENLABS_API_URL"])
            with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
                self.db = db
                return self._run()
        finally:
            if served is not None:
                served.terminate()
                served.wait(timeout=10)
            stack.stop()

    def _run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.facts.holidays = {
            (calendar, day)
            for calendar, day in self.db.execute("select calendar, day from call_holidays")
        }
        self._queue_leads()
        steps = self.load_steps = int(self.settings.days * 24 * 60 / self.settings.step_minutes)
        for step in range(steps):
            self._step(step)
        # Drain: what is in flight ends (webhooks, the sweep's readings), no new day begins.
        for step in range(steps, steps + 6):
            self._step(step, last=step == steps + 5)
        problems = run_checks(self.facts)
        problems.update(self._final_checks())
        return {
            "settings": asdict(self.settings),
            "seconds": round(time.monotonic() - started, 1),
            "figures": self._figures(),
            "checks": {name: found[:5] for name, found in problems.items()},
            "passed": not any(problems.values()),
        }

    def _queue_leads(self) -> None:
        """Every person gets a lead; the rest of the leads go to people again, sharing the phone
        (a second form) or only the email (another phone)."""
        rows = []
        owners = list(range(self.settings.people)) + [
            self.rng.randrange(self.settings.people)
            for _ in range(self.settings.leads - self.settings.people)
        ]
        seen: set[int] = set()
        for n, owner in enumerate(owners):
            person = self.people[owner]
            again = owner in seen
            seen.add(owner)
            phone = person.phone
            if again and self.rng.random() < 0.4:
                phone = phone_for("ny", 5_000_000 + n)  # same email, another phone
            zones = time_zones(phone)
            self.facts.zones[phone] = zones
            due = self.rng.uniform(0, 36) * 3600  # forms arrive over the first day and a half
            rows.append((person, phone, zones, due))
        with self.db.cursor() as cur:
            for person, phone, zones, due in rows:
                lead_id = str(uuid.uuid4())
                # A stale lead's form was filled 80 hours ago (ages are on the real clock, as its
                # timestamps are; the simulated clock moves calling hours).
                stale = self.rng.random() < self.settings.stale_share
                cur.execute(
                    "insert into leads (id, source, status, full_name, email, phone, timezone, "
                    "timezones, next_call_at, submitted_at) values (%s, 'manual', 'call_queued', "
                    "%s, %s, %s, %s, %s, public.clock_now() + make_interval(secs => %s), "
                    "now() - make_interval(hours => %s))",
                    (
                        lead_id,
                        f"Soak {person.number}",
                        person.email,
                        phone,
                        zones[0] if len(zones) == 1 else None,
                        zones,
                        due,
                        80 if stale else 0,
                    ),
                )
                if stale:
                    self.facts.stale.add(lead_id)
                # Most people ticked the form's consent box; the others are never called.
                if self.rng.random() < self.settings.unconsented_share:
                    self.facts.unconsented.add(lead_id)
                else:
                    cur.execute(
                        "insert into consents (lead_id, source, is_checked, evidence) "
                        "values (%s, 'manual', true, '{\"by\": \"soak\"}')",
                        (lead_id,),
                    )
                person.lead_ids.append(lead_id)
                self.person_of_lead[lead_id] = person.number
                self.phone_of_lead[lead_id] = phone
        for phone in {phone for _, phone, _, _ in rows}:
            self._arm(phone)
        steps = int(self.settings.days * 24 * 60 / self.settings.step_minutes)
        for person in self.rng.sample(
            self.people, int(self.settings.people * self.settings.booking_share)
        ):
            self.bookings.setdefault(self.rng.randrange(1, max(steps, 2)), person.number)

    def _arm(self, phone: str) -> None:
        """The answer to the next call request to ``phone``: placed, or a fault."""
        if self.rng.random() < self.settings.fault_share:
            kind = self.rng.choice(list(FAULTS))
            self.fake.script(phone, FAULTS[kind])
            self.armed[phone].append((kind, None))
        else:
            conversation = "conv_soak" + uuid.uuid4().hex[:20]
            self.fake.script(
                phone,
                {
                    "status": 200,
                    "body": {
                        "success": True,
                        "message": "Success",
                        "conversation_id": conversation,
                        "callSid": "CA" + uuid.uuid4().hex,
                    },
                },
            )
            self.armed[phone].append(("ok", conversation))

    # --- one step ------------------------------------------------------------------------------

    def _step(self, step: int, *, last: bool = False) -> None:
        target = self.start_at + timedelta(minutes=step * self.settings.step_minutes)
        shift = target - datetime.now(UTC)
        self.shift_of_step[step] = shift
        self.db.execute("delete from public.test_clock")
        self.db.execute("insert into public.test_clock (shift) values (%s)", (shift,))
        self._sweep(step)
        self._observe(step)
        self._deliver(step, everything=last)
        if step in self.bookings:
            self._book(step, self.people[self.bookings[step]])

    def _sweep(self, step: int) -> None:
        response = self.http.post(
            f"{self.base}/place_call/sweep",
            headers={"Authorization": f"Bearer {self.env['INTERNAL_TOKEN']}"},
        )
        if response.status_code != 200 or response.json().get("errors"):
            self.facts.sweep_failures.append(
                f"step {step}: {response.status_code} {response.text[:200]}"
            )

    def _observe(self, step: int) -> None:
        requests = self.fake.requests(after=self.last_seq)
        shift = self.shift_of_step[step]
        for request in requests:
            self.last_seq = max(self.last_seq, request["seq"])
            if request["path"].startswith(CONVERSATION):
                self.conversations_read += 1
                conversation = request["path"].removeprefix(CONVERSATION)
                for call in self.facts.calls:
                    if call.conversation_id == conversation and call.ended_step is None:
                        call.ended_step = step
                continue
            if request["path"] != OUTBOUND:
                continue
            body = json.loads(request["body"])
            phone = body["to_number"]
            lead_id = body["conversation_initiation_client_data"]["dynamic_variables"]["lead_id"]
            answer, conversation = self.armed[phone].pop(0)
            self._arm(phone)
            call = Call(
                seq=request["seq"],
                step=step,
                at=utc(request["at"]) + shift,
                lead_id=lead_id,
                person=self.person_of_lead[lead_id],
                to_number=phone,
                answer=answer,
                conversation_id=conversation,
                step_at=self.start_at + timedelta(minutes=step * self.settings.step_minutes),
            )
            self.facts.calls.append(call)
            if answer == "ok" and conversation is not None:
                self._plan_outcome(step, call)

    def _plan_outcome(self, step: int, call: Call) -> None:
        assert call.conversation_id is not None
        outcome = self.rng.choices(
            ["answered", "voicemail", "no-answer", "busy"], weights=[35, 30, 25, 10]
        )[0]
        conversation, lead_id = call.conversation_id, call.lead_id
        if outcome in ("answered", "voicemail"):
            event = samples.post_call_transcription(
                conversation, lead_id=lead_id, voicemail_tool=outcome == "voicemail"
            )
        else:
            event = samples.call_initiation_failure(
                conversation, failure_reason=outcome, lead_id=lead_id
            )
        # While draining, every outcome comes at once: nothing is left for a sweep after the end.
        roll = 1.0 if step >= self.load_steps else self.rng.random()
        if roll < self.settings.missing_share and outcome in ("answered", "voicemail"):
            # Never sent: the sweep must read it from the conversation API.
            self.fake.put(
                f"conversations/{conversation}",
                {"status": "done", "voicemail_tool": outcome == "voicemail", "lead_id": lead_id},
            )
            return
        delay = (
            self.rng.randint(1, 3)
            if roll < self.settings.missing_share + self.settings.late_share
            else 0
        )
        self.pending.append(Pending(step + delay, event, conversation))
        if self.rng.random() < self.settings.duplicate_share:
            self.pending.append(Pending(step + delay + self.rng.randint(0, 2), event, conversation))

    def _deliver(self, step: int, *, everything: bool) -> None:
        due = [p for p in self.pending if everything or p.step <= step]
        self.pending = [p for p in self.pending if p not in due]
        self.rng.shuffle(due)  # reordered
        secret = self.env["ELEVENLABS_WEBHOOK_SECRET"].split(",")[0].strip()
        for item in due:
            body = samples.encode(item.event)
            response = self.http.post(
                f"{self.base}/place_call/webhook",
                content=body,
                headers=samples.signed_headers(body, secret, None),
            )
            if response.status_code != 200:
                self.facts.webhooks_refused.append(
                    f"{item.conversation_id}: {response.status_code}"
                )
            self.webhooks_sent.append((item.conversation_id, item.event["type"]))
            for call in self.facts.calls:
                if call.conversation_id == item.conversation_id and call.ended_step is None:
                    call.ended_step = step

    def _book(self, step: int, person: Person) -> None:
        payload = calendly_invitee_event(email=person.email, name=f"Soak {person.number}")
        body = json.dumps(payload).encode()
        signature = sign_calendly(
            body, secret=self.env["CALENDLY_SIGNING_KEY"], timestamp=int(time.time())
        )
        response = self.http.post(
            f"{self.base}/calendly_webhook",
            content=body,
            headers={"Content-Type": "application/json", "Calendly-Webhook-Signature": signature},
        )
        if response.status_code == 200:
            self.facts.booked_step[person.number] = step
        else:
            self.facts.webhooks_refused.append(f"booking {person.number}: {response.status_code}")

    # --- the end -------------------------------------------------------------------------------

    def _final_checks(self) -> dict[str, list[str]]:
        rows = self.db.execute(
            "select id::text, status, next_call_at from leads where id = any(%s::uuid[])",
            (list(self.person_of_lead),),
        ).fetchall()
        unsettled = [
            f"lead {lead_id} {status}"
            for lead_id, status, next_call in rows
            if status not in FINAL | AT_REST and not (status == "call_queued" and next_call)
        ]
        stored = {
            (row[0], row[1])
            for row in self.db.execute(
                "select external_id, event_type from webhook_events where provider = 'elevenlabs'"
            ).fetchall()
        }
        lost = [f"{c} {t}" for c, t in set(self.webhooks_sent) if (c, t) not in stored]
        return {
            "every lead final or its next call scheduled": unsettled,
            "no webhook lost": lost,
        }

    def _figures(self) -> dict[str, Any]:
        calls = self.facts.calls
        statuses = dict(
            self.db.execute(
                "select status, count(*) from leads where id = any(%s::uuid[]) group by status",
                (list(self.person_of_lead),),
            ).fetchall()
        )
        return {
            "leads": len(self.person_of_lead),
            "people": len(self.people),
            "spanish_mobiles": sum(1 for p in self.people if p.phone.startswith("+346")),
            "multi_zone_us": sum(
                1
                for p in self.people
                if len(self.facts.zones.get(p.phone, [])) > 1 and p.phone.startswith("+1")
            ),
            "call_requests": len(calls),
            "faulted": {kind: sum(1 for c in calls if c.answer == kind) for kind in FAULTS},
            "placed": sum(1 for c in calls if c.answer == "ok"),
            "webhooks_sent": len(self.webhooks_sent),
            "conversations_read": self.conversations_read,
            "bookings": len(self.facts.booked_step),
            "lead_statuses": statuses,
        }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.soak.calls", description=__doc__.split("\n")[0]
    )
    defaults = Settings()
    for name, value in asdict(defaults).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--state-dir", type=Path, help="kept after the run (default: a temporary one)")
    p.add_argument("--json", type=Path, help="also write the figures and checks here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings(**{k: v for k, v in vars(args).items() if k in asdict(Settings())})
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="soak-calls-"))
    report = Soak(settings, state_dir).run()
    if args.state_dir is None and report["passed"]:
        shutil.rmtree(state_dir, ignore_errors=True)
    print(json.dumps(report, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
