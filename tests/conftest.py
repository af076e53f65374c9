"""Shared fixtures: one embedded stack (real Postgres, real migrations via the Supabase CLI, the
PostgREST stand-in, the Graph fake) and the functions served over real HTTP, per test session."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

import tools
from lib.signatures import sign_calendly
from place_call.settings import PlaceCallSettings
from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import FakeClient
from tools.fakes.graph_fake import CONSENT_KEY
from tools.fakes.samples import FORM_ID, meta_headers
from tools.settings import everything
from tools.stack import local as local_stack

# `make test` is hermetic: no setting of the shell reaches it (the stack and each test set what
# they need), and the operator commands it runs read neither .local/dev.env nor supabase/.env.
for _name in {v.name for v in everything().variables()} | {"DATABASE_URL", "PORT", "ENV"}:
    os.environ.pop(_name, None)
os.environ["LOCAL_ENV_FILE"] = os.devnull
os.environ["PROJECT_ENV_FILE"] = "/nonexistent/supabase/.env"

FIXTURES = Path(__file__).parent / "fixtures"
CALENDLY_KEYS = ("calendly-test-signing-key-new", "calendly-test-signing-key-old")

# The ElevenLabs and Calendly fakes a test module starts for itself (beside the stack's own).
ELEVENLABS_FAKE_KEY = "sk_test_elevenlabs_key"
ELEVENLABS_FAKE_AGENT = "agent_4101kf6gqfgpfrganck3s1m0ap3v"
ELEVENLABS_FAKE_NUMBER_ID = "phnum_0000000000000000000000001"
CALENDLY_TOKEN = "calendly-test-token"
Conn = psycopg.Connection[Any]


class Tripwire:
    """A loopback port that counts every connection made to it (and answers none)."""

    def __init__(self, port: int = 0) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.socket.listen(64)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.socket.close()


@pytest.fixture(scope="session", autouse=True)
def tripwire() -> Iterator[None]:
    """With TRIPWIRE_PORT (.ci/run sets it, beside a production-shaped supabase/.env pointing
    there), the whole suite must make no connection to that port."""
    port = os.environ.get("TRIPWIRE_PORT")
    if not port:
        yield
        return
    wire = Tripwire(int(port))
    yield
    wire.close()
    assert wire.connections == 0, (
        f"{wire.connections} connection(s) reached the production-shaped supabase/.env's "
        "tripwire: something local read the deployer's file"
    )


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def dead_database_api(tmp_path: Path) -> Iterator[str]:
    """The URL of a PostgREST stand-in whose database is down (a closed port)."""
    dead = f"postgresql://authenticator:x@127.0.0.1:{local_stack.free_port()}/postgres"
    log = tmp_path / "dead-rest.log"
    with local_stack.serving("tools.stack.rest_standin", "--db-url", dead, env={}, log=log) as url:
        yield url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.Stack]:
    # The ElevenLabs settings the tests sign and check with; everything else is generated.
    # STACK_CLOCK_SHIFT (`STACK_CLOCK_SHIFT='30 days' make test`) runs the suite with the call
    # rules' SQL clock that far ahead: no test may depend on it being now().
    shift = (
        {"STACK_CLOCK_SHIFT": os.environ["STACK_CLOCK_SHIFT"]}
        if "STACK_CLOCK_SHIFT" in os.environ
        else {}
    )
    started = local_stack.start(tmp_path_factory.mktemp("stack"), environ={**ELEVENLABS, **shift})
    yield started
    started.stop()


@dataclass
class Functions:
    """The functions served over HTTP by tools.stack.serve, with helpers to call them."""

    base: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def url(self, name: str, path: str = "") -> str:
        return f"{self.base}/functions/v1/{name}{path}"

    def post_meta(
        self,
        body: bytes,
        *,
        secret: str | None = None,
        headers_extra: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = meta_headers(body, secret=secret or self.env["META_APP_SECRET"])
        headers.update(headers_extra or {})
        return httpx.post(
            self.url("meta_webhook"), content=body, headers=headers, timeout=30, **kwargs
        )

    def sweep(self) -> httpx.Response:
        return httpx.post(
            self.url("meta_webhook", "/sweep"),
            timeout=60,
            headers={"Authorization": f"Bearer {self.env['INTERNAL_TOKEN']}"},
        )


def serve_functions(env: dict[str, str], log: Path, port: int | None = None) -> Functions:
    port = port or local_stack.free_port()
    process = local_stack.spawn(
        "tools.stack.serve",
        "--port",
        str(port),
        log=log,
        env={**env, "PYTHONPATH": tools.PYTHONPATH},
    )
    base = f"http://127.0.0.1:{port}"
    local_stack.wait_until(local_stack.http_ok(f"{base}/health"), what="tools.stack.serve")
    return Functions(base, env, process)


ELEVENLABS = {
    "ELEVENLABS_API_KEY": "sk_test_elevenlabs_key",
    "ELEVENLABS_AGENT_ID": "agent_4101kf6gqfgpfrganck3s1m0ap3v",
    "ELEVENLABS_PHONE_NUMBER_ID": "phnum_test_laura",
    "ELEVENLABS_WEBHOOK_SECRET": "wsec_test_new, wsec_test_old",
}


@pytest.fixture(scope="session")
def elevenlabs_url(stack: local_stack.Stack) -> str:
    """The stack's ElevenLabs fake (tools/fakes/elevenlabs_fake.py)."""
    return stack.env["ELEVENLABS_API_URL"]


@pytest.fixture(scope="session")
def functions(
    stack: local_stack.Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Functions]:
    port = local_stack.free_port()
    env = {
        **stack.env,
        "HTTP_TIMEOUT_SECONDS": "1",
        "DEFAULT_PHONE_REGION": "US",
        # Two keys, as while one is rotated: the newest signs, both verify.
        "CALENDLY_SIGNING_KEY": f"{CALENDLY_KEYS[0]}, {CALENDLY_KEYS[1]}",
        "PLACE_CALL_URL": f"http://127.0.0.1:{port}/functions/v1/place_call",
        # Calls at any hour, so tests do not depend on the clock (test_calls covers the hours).
        "CALL_HOURS_START": "00:00",
        "CALL_HOURS_END": "24:00",
        "CALL_PLACE_RULES": "false",  # test_place_rules covers the rules by place
    }
    served = serve_functions(env, tmp_path_factory.mktemp("functions") / "functions.log", port)
    yield served
    served.process.terminate()
    served.process.wait(timeout=10)


@pytest.fixture
def db(stack: local_stack.Stack) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection to the stack's database, for assertions and setup."""
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        yield conn


class GraphFake(FakeClient):
    """The Graph fake's control API: requests are filed under the node (the lead id)."""

    def script(
        self, leadgen_id: str, *responses: dict[str, Any], lead: dict[str, Any] | None = None
    ) -> None:
        body: dict[str, Any] = {"responses": list(responses)}
        if lead is not None:
            body["lead"] = lead
        self.put(f"leads/{leadgen_id}", body)

    def fetches(self, leadgen_id: str) -> int:
        return self.count(leadgen_id)

    def set_token(self, **info: Any) -> None:
        self.put("token", info)


@pytest.fixture(scope="session")
def graph(stack: local_stack.Stack) -> GraphFake:
    return GraphFake(stack.env["META_GRAPH_URL"])


@pytest.fixture(scope="session")
def database_api(stack: local_stack.Stack) -> FakeClient:
    """The PostgREST stand-in's log of the RPCs it served, filed under the function's name."""
    return FakeClient(stack.env["SUPABASE_URL"])


@pytest.fixture(autouse=True)
def _no_real_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests build their configuration explicitly; nothing leaks in from the shell."""
    for key in list(os.environ):
        if key.startswith(("META_", "SUPABASE_", "INTERNAL_TOKEN")):
            monkeypatch.delenv(key, raising=False)


__all__ = [
    "CALENDLY_KEYS",
    "ELEVENLABS",
    "FIXTURES",
    "Functions",
    "GraphFake",
    "fixture_bytes",
    "serve_functions",
]


# --- the provider fakes a test module starts for itself ----------------------------------


class ElevenLabsFake(FakeClient):
    """The ElevenLabs fake's control API: outbound calls are filed under their to_number."""

    def calls(self, to_number: str) -> list[dict[str, Any]]:
        response = self.http.get("/_fake/calls", params={"to_number": to_number})
        response.raise_for_status()
        return list(response.json())


@pytest.fixture(scope="module")
def elevenlabs_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElevenLabsFake]:
    """An ElevenLabs fake of its own for a test module (tools/fakes/elevenlabs_fake.py), with
    the module's own calls, scripts and plan."""
    env = {
        "ELEVENLABS_API_KEY": ELEVENLABS_FAKE_KEY,
        "ELEVENLABS_AGENT_ID": ELEVENLABS_FAKE_AGENT,
        "ELEVENLABS_PHONE_NUMBER_ID": ELEVENLABS_FAKE_NUMBER_ID,
    }
    log = tmp_path_factory.mktemp("elevenlabs") / "fake.log"
    with local_stack.serving("tools.fakes.elevenlabs_fake", env=env, log=log) as base:
        yield ElevenLabsFake(base)


class CalendlyFake(FakeClient):
    """The Calendly fake's control API: requests are filed under ``"<METHOD> <path>"``."""

    def subscriptions(self) -> list[dict[str, Any]]:
        response = self.http.get("/_fake/subscriptions")
        response.raise_for_status()
        return list(response.json())

    def change(self, uri: str, **fields: Any) -> None:
        self.put(f"subscriptions/{uri.rsplit('/', 1)[-1]}", fields)

    def plan(self, **plan: Any) -> None:
        self.put("plan", plan)

    def mark(self) -> int:
        """Where the request log is now, for :meth:`operations`."""
        return max((int(r["seq"]) for r in self.requests()), default=0)

    def operations(self, after: int = 0) -> list[str]:
        """The provider calls received (after ``mark()``), in order, as ``"<METHOD> <path>"``."""
        return [str(r["key"]) for r in self.requests() if int(r["seq"]) > after]


@pytest.fixture(scope="module")
def calendly_fake_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalendlyFake]:
    """A Calendly API fake of its own for a test module (tools/fakes/calendly_fake.py)."""
    log = tmp_path_factory.mktemp("calendly") / "calendly-fake.log"
    env = {"CALENDLY_API_TOKEN": CALENDLY_TOKEN}
    with local_stack.serving("tools.fakes.calendly_fake", env=env, log=log) as base:
        client = CalendlyFake(base)
        yield client
        client.http.close()


# --- place_call: leads, calls and requests -------------------------------------------------

SECRET = ELEVENLABS["ELEVENLABS_WEBHOOK_SECRET"].split(",")[0].strip()


@pytest.fixture(scope="module")
def elevenlabs(elevenlabs_url: str) -> FakeClient:
    return FakeClient(elevenlabs_url)


def unique_phone() -> str:
    """A New York number no other test calls (the fake files calls under their number)."""
    return "+1646" + str(2_000_000 + uuid.uuid4().int % 8_000_000)


def queued_lead(
    db: Conn,
    *,
    phone: str | None = None,
    status: str = "call_queued",
    consent: bool = True,
    **cols: Any,
) -> str:
    """A lead inserted as the operator would, with the consent to be called recorded by hand
    (``consent``: CALL_CONSENT=required calls nobody without it)."""
    values = {
        "source": "manual",
        "status": status,
        "phone": phone or unique_phone(),
        "full_name": "Zoë Lead",
        "next_call_at": "public.clock_now()",
        **cols,
    }
    names = ", ".join(values)
    marks = ", ".join(v if v == "public.clock_now()" else "%s" for v in values.values())
    row = db.execute(
        f"insert into leads ({names}) values ({marks}) returning id::text",
        tuple(v for v in values.values() if v != "public.clock_now()"),
    ).fetchone()
    assert row is not None
    if consent:
        record_consent(db, str(row[0]))
    return str(row[0])


# What a Graph lead node carries when the person ticked the form's consent box (the Graph fake's
# default lead does): scripted lead nodes spread it in.
CONSENTED: dict[str, Any] = {
    "form_id": FORM_ID,
    "custom_disclaimer_responses": [{"checkbox_key": CONSENT_KEY, "is_checked": "1"}],
}


def record_consent(db: Conn, lead_id: str) -> None:
    db.execute(
        "insert into consents (lead_id, source, is_checked, given_at, evidence)"
        " values (%s, 'manual', true, public.clock_now(), %s)",
        (lead_id, Jsonb({"by": "tests", "how": "recorded by hand"})),
    )


def lead(db: Conn, lead_id: str) -> dict[str, Any]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("select * from leads where id = %s", (lead_id,)).fetchone()
    assert row is not None
    return row


def calls(db: Conn, lead_id: str) -> list[dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select * from calls where lead_id = %s order by attempt, created_at", (lead_id,)
        ).fetchall()


def place(functions: Functions, lead_id: str, token: str | None = None) -> httpx.Response:
    return httpx.post(
        functions.url("place_call"),
        json={"lead_id": lead_id},
        headers={"Authorization": f"Bearer {token or functions.env['INTERNAL_TOKEN']}"},
        timeout=30,
    )


def call_sweep(functions: Functions) -> httpx.Response:
    return httpx.post(
        functions.url("place_call", "/sweep"),
        headers={"Authorization": f"Bearer {functions.env['INTERNAL_TOKEN']}"},
        timeout=60,
    )


def webhook(
    functions: Functions, event: dict[str, Any], *, secret: str = SECRET, at: int | None = None
) -> httpx.Response:
    body = samples.encode(event)
    return httpx.post(
        functions.url("place_call", "/webhook"),
        content=body,
        headers=samples.signed_headers(body, secret, at),
        timeout=30,
    )


def placed_conversation(functions: Functions, db: Conn, lead_id: str) -> str:
    answer = place(functions, lead_id).json()
    assert answer["decision"] == "placed", answer
    return str(answer["conversation_id"])


# --- calendly_webhook: signed invitee events ---------------------------------------------

API = "https://api.calendly.com"
# Meetings are tomorrow at 15:00 UTC, so they are always after the run's own log rows (a lead's
# trail is in time order) and in the future as a real booking is.
MEETING = (datetime.now(UTC) + timedelta(days=1)).replace(
    hour=15, minute=0, second=0, microsecond=0
)
START = MEETING.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


# When the sample invitee booked and canceled: derived from now (a booking made two hours ago,
# canceled an hour later), never a fixed date, which would drift further into the past each day.
BOOKED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def calendly_time(moment: datetime) -> str:
    """``moment`` as Calendly writes times (microseconds, a Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def invitee_uri() -> str:
    return f"{API}/scheduled_events/{uuid.uuid4()}/invitees/{uuid.uuid4()}"


def invitee_event(
    kind: str = "invitee.created",
    *,
    uri: str | None = None,
    email: str | None = None,
    name: str | None = "Zoë Test",
    phone: str | None = None,
    lead_id: str | None = None,
    answers: list[dict[str, Any]] | None = None,
    rescheduled: bool = False,
    old_invitee: str | None = None,
    new_invitee: str | None = None,
    start: str = START,
) -> dict[str, Any]:
    """An invitee.created / invitee.canceled event in the current documented shape."""
    uri = uri or invitee_uri()
    event_uri = uri.split("/invitees/")[0]
    payload: dict[str, Any] = {
        "uri": uri,
        "email": email or f"{uuid.uuid4().hex[:10]}@example.com",
        "first_name": None,
        "last_name": None,
        "name": name,
        "status": "canceled" if kind == "invitee.canceled" else "active",
        "questions_and_answers": answers or [],
        "timezone": "Europe/Madrid",
        "event": event_uri,
        "created_at": calendly_time(BOOKED_AT),
        "updated_at": calendly_time(BOOKED_AT),
        "tracking": {
            "utm_campaign": "spring",
            "utm_source": "facebook",
            "utm_medium": None,
            "utm_content": lead_id,
            "utm_term": None,
            "salesforce_uuid": None,
        },
        "text_reminder_number": phone,
        "rescheduled": rescheduled,
        "old_invitee": old_invitee,
        "new_invitee": new_invitee,
        "cancel_url": f"https://calendly.com/cancellations/{uuid.uuid4()}",
        "reschedule_url": f"https://calendly.com/reschedulings/{uuid.uuid4()}",
        "routing_form_submission": None,
        "payment": None,
        "no_show": None,
        "reconfirmation": None,
        "scheduling_method": None,
        "invitee_scheduled_by": None,
        "scheduled_event": {
            "uri": event_uri,
            "name": "Discovery call",
            "meeting_notes_plain": None,
            "meeting_notes_html": None,
            "status": "active",
            "start_time": start,
            "end_time": start.replace("15:00", "15:30"),
            "event_type": f"{API}/event_types/{uuid.uuid4()}",
            "location": {"type": "outbound_call", "location": phone},
            "invitees_counter": {"total": 1, "active": 1, "limit": 1},
            "created_at": calendly_time(BOOKED_AT),
            "updated_at": calendly_time(BOOKED_AT),
            "event_memberships": [{"user": f"{API}/users/AAAA", "user_email": "host@example.com"}],
            "event_guests": [],
        },
    }
    if kind == "invitee.canceled":
        payload["cancellation"] = {
            "canceled_by": "Zoë Test",
            "reason": "Something came up",
            "canceler_type": "invitee",
            "created_at": calendly_time(BOOKED_AT + timedelta(hours=1)),
        }
    return {
        "created_at": calendly_time(BOOKED_AT + timedelta(seconds=1)),
        "created_by": f"{API}/users/AAAA",
        "event": kind,
        "payload": payload,
    }


def post(
    functions: Functions,
    event: dict[str, Any] | bytes,
    *,
    key: str = CALENDLY_KEYS[0],
    at: float | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    signature = sign_calendly(body, secret=key, timestamp=int(at or time.time()))
    return httpx.post(
        functions.url("calendly_webhook"),
        content=body,
        headers={
            "Content-Type": "application/json",
            "Calendly-Webhook-Signature": signature,
            **(headers or {}),
        },
        timeout=30,
    )


# --- the call rules in SQL ---------------------------------------------------------------

# p_rules as place_call sends them with its defaults (the one home of those numbers).
RULES = PlaceCallSettings.load({}).call_rules()
ANY_HOUR = {"hours_start": "00:00", "hours_end": "24:00", "place_rules": False}
GIVE_UP_MINUTES = PlaceCallSettings.load({}).call_reconcile_give_up_minutes


def claim(conn: Conn, lead_id: str, rules: dict[str, Any] = RULES) -> dict[str, Any]:
    row = conn.execute("select public.call_claim(%s, %s)", (lead_id, json.dumps(rules))).fetchone()
    assert row is not None
    return dict(row[0])


def sweep_calls(functions: Functions) -> httpx.Response:
    """place_call's sweep (due calls, then the reconcile of calls without a webhook), 200."""
    response = httpx.post(
        functions.url("place_call", "/sweep"),
        headers={"Authorization": f"Bearer {functions.env['INTERNAL_TOKEN']}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response


def age(db: Conn, conversation_id: str, minutes: float) -> None:
    """Move the call's clock ``minutes`` back: it started (and was last claimed) that long
    earlier."""
    db.execute(
        "update calls set requested_at = requested_at - make_interval(mins => %(m)s), "
        "started_at = started_at - make_interval(mins => %(m)s), "
        "reconcile_at = reconcile_at - make_interval(mins => %(m)s) "
        "where conversation_id = %(c)s",
        {"m": minutes, "c": conversation_id},
    )
