"""The polling fallback for a post-call webhook that never came (place_call's sweep, SQL
``call_claim_unreported`` / ``call_record_polled``): end to end over real HTTP, the real database,
ElevenLabs faked at its HTTP boundary (tools/fakes/elevenlabs_fake.py: a conversation's reads are
filed under its path). Calls are made old by moving their timestamps back, never by sleeping."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from lib.errors import FailureClass, ProviderFailure
from place_call.elevenlabs_api import ElevenLabsClient
from place_call.elevenlabs_events import from_conversation, parse
from tools.fakes import elevenlabs_fake
from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import FakeClient, Request
from tools.stack import local as local_stack

from .conftest import (
    FIXTURES,
    GIVE_UP_MINUTES,
    Functions,
    age,
    calls,
    lead,
    place,
    placed_conversation,
    queued_lead,
    sweep_calls,
    webhook,
)

Conn = psycopg.Connection[Any]
AFTER_MINUTES = 15  # CALL_RECONCILE_AFTER_MINUTES' default


@pytest.fixture(scope="module")
def elevenlabs(elevenlabs_url: str) -> FakeClient:
    return FakeClient(elevenlabs_url)


def path(conversation_id: str) -> str:
    """What the fake files a conversation's reads under."""
    return f"/v1/convai/conversations/{conversation_id}"


def late_call(
    functions: Functions, db: Conn, minutes: float = AFTER_MINUTES + 1
) -> tuple[str, str]:
    """A lead whose call ElevenLabs placed ``minutes`` ago, and no webhook since."""
    lead_id = queued_lead(db)
    conversation_id = placed_conversation(functions, db, lead_id)
    age(db, conversation_id, minutes)
    return lead_id, conversation_id


def logs(db: Conn, lead_id: str, event: str) -> list[dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select * from integration_logs where lead_id = %s and event = %s order by id",
            (lead_id, event),
        ).fetchall()


def wait_after(db: Conn, lead_id: str) -> timedelta:
    row = lead(db, lead_id)
    now = db.execute("select public.clock_now()").fetchone()[0]  # type: ignore[index]
    return row["next_call_at"] - now  # type: ignore[no-any-return]


# --- the webhook never came -------------------------------------------------------------------


def test_reconcile_late_call_recorded_as_the_webhook_would(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id, conversation_id = late_call(functions, db)
    answer = sweep_calls(functions).json()
    assert answer["reconciled"] >= 1 and {"still_running", "unknown"} <= answer.keys()
    assert elevenlabs.count(path(conversation_id)) == 1
    (read,) = elevenlabs.requests(path(conversation_id))
    assert read["method"] == "GET" and read["headers"]["xi-api-key"]
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"], call["duration_secs"]) == ("completed", "answered", 42)
    # Read long after it ended: its end is its start plus its duration, not the time of reading.
    assert call["ended_at"] - call["started_at"] == timedelta(seconds=42)
    assert call["summary"] == samples.ANSWERED_SUMMARY
    assert call["call_successful"] == "success"
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("called", None)
    (reconciled,) = logs(db, lead_id, "call.reconciled")
    assert (reconciled["status"], reconciled["error_code"]) == (
        "error",
        "post_call_webhook_missing",
    )
    assert reconciled["external_id"] == conversation_id
    assert "did not arrive" in reconciled["message"]
    assert "conversation API" in reconciled["message"]
    assert "make doctor" in reconciled["message"]
    assert len(logs(db, lead_id, "call.answered")) == 1


def test_reconcile_young_call_not_read(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id, conversation_id = late_call(functions, db, minutes=AFTER_MINUTES - 1)
    sweep_calls(functions)
    assert elevenlabs.count(path(conversation_id)) == 0
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("initiated", None)
    assert lead(db, lead_id)["status"] == "calling"


def test_reconcile_then_the_webhook_is_a_duplicate(functions: Functions, db: Conn) -> None:
    lead_id, conversation_id = late_call(functions, db)
    sweep_calls(functions)
    (before,) = calls(db, lead_id)
    lead_before = lead(db, lead_id)
    event = samples.post_call_transcription(
        conversation_id, lead_id=lead_id, voicemail_tool=True, duration=7
    )
    assert webhook(functions, event).json()["status"] == "duplicate"
    assert calls(db, lead_id) == [before]
    assert lead(db, lead_id) == lead_before


def test_reconcile_after_the_webhook_does_nothing(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation_id = placed_conversation(functions, db, lead_id)
    event = samples.post_call_transcription(conversation_id, lead_id=lead_id, duration=95)
    assert webhook(functions, event).json()["status"] == "recorded"
    (before,) = calls(db, lead_id)
    age(db, conversation_id, AFTER_MINUTES + 1)
    (aged,) = calls(db, lead_id)
    sweep_calls(functions)
    assert elevenlabs.count(path(conversation_id)) == 0
    assert calls(db, lead_id) == [aged] and aged["outcome"] == before["outcome"] == "answered"
    assert logs(db, lead_id, "call.reconciled") == []


def test_reconcile_polled_record_after_the_webhook_changes_nothing(
    functions: Functions, db: Conn
) -> None:
    """A sweep that claimed the call just before its webhook (of either type) came records
    nothing: the call already has its outcome."""
    lead_id = queued_lead(db)
    conversation_id = placed_conversation(functions, db, lead_id)
    (call,) = calls(db, lead_id)
    event = samples.call_initiation_failure(conversation_id, failure_reason="busy", lead_id=lead_id)
    assert webhook(functions, event).json()["status"] == "recorded"
    (before,) = calls(db, lead_id)
    lead_before = lead(db, lead_id)
    polled = {
        "type": "post_call_transcription",
        "conversation_id": conversation_id,
        "lead_id": lead_id,
        "outcome": "failed",
        "status": "failed",
        "message": "The call failed (ElevenLabs status failed).",
        "payload": {},
    }
    row = db.execute(
        "select call_record_polled(%s, %s, '{}', 'read')", (call["id"], json.dumps(polled))
    ).fetchone()
    assert row is not None and row[0]["duplicate"] is True
    assert calls(db, lead_id) == [before] and before["outcome"] == "busy"
    assert lead(db, lead_id) == lead_before
    assert logs(db, lead_id, "call.reconciled") == []


# --- still on the line, unknown, failing ------------------------------------------------------


def test_reconcile_call_in_progress_left_and_read_again_later(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation_id = placed_conversation(functions, db, lead_id)
    elevenlabs.put(f"conversations/{conversation_id}", {"status": "in-progress"})
    age(db, conversation_id, AFTER_MINUTES + 1)
    sweep_calls(functions)
    assert elevenlabs.count(path(conversation_id)) == 1
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"], call["reconcile_checks"]) == ("initiated", None, 1)
    assert lead(db, lead_id)["status"] == "calling"
    sweep_calls(functions)  # within the wait: not read again
    assert elevenlabs.count(path(conversation_id)) == 1
    elevenlabs.put(f"conversations/{conversation_id}", {"status": "done"})
    db.execute("update calls set reconcile_at = public.clock_now() where id = %s", (call["id"],))
    sweep_calls(functions)
    assert elevenlabs.count(path(conversation_id)) == 2
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("completed", "answered")
    assert lead(db, lead_id)["status"] == "called"


@pytest.mark.parametrize(
    "conversation", [{"known": False}, {"status": "processing"}], ids=["404", "never_done"]
)
def test_reconcile_unknown_only_after_the_give_up_limit_then_next_attempt(
    functions: Functions, elevenlabs: FakeClient, db: Conn, conversation: dict[str, Any]
) -> None:
    lead_id = queued_lead(db)
    conversation_id = placed_conversation(functions, db, lead_id)
    elevenlabs.put(f"conversations/{conversation_id}", conversation)
    age(db, conversation_id, GIVE_UP_MINUTES - 10)
    sweep_calls(functions)
    assert elevenlabs.count(path(conversation_id)) == 1
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("initiated", None)
    assert lead(db, lead_id)["status"] == "calling"

    age(db, conversation_id, 70)  # past the limit, and past the wait before the next read
    sweep_calls(functions)
    assert elevenlabs.count(path(conversation_id)) == 2
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("completed", "unknown")
    row = lead(db, lead_id)
    assert (row["status"], row["call_attempts"]) == ("call_queued", 1)
    assert timedelta(minutes=29) < wait_after(db, lead_id) <= timedelta(minutes=30)
    (reconciled,) = logs(db, lead_id, "call.reconciled")
    assert "unknown" in reconciled["message"] and "make doctor" in reconciled["message"]
    assert "Next attempt" in reconciled["message"]
    # The next attempt, under the usual rules, once it is due.
    db.execute("update leads set next_call_at = public.clock_now() where id = %s", (lead_id,))
    answer = place(functions, lead_id).json()
    assert (answer["decision"], answer["attempt"]) == ("placed", 2)


@pytest.mark.parametrize(
    ("answer", "error_code"),
    [
        (
            {"status": 401, "body": {"detail": {"status": "invalid_api_key", "message": "no"}}},
            "elevenlabs_api_key_invalid",
        ),
        ({"status": 503, "body": {"detail": "Service Unavailable"}}, "elevenlabs_unavailable"),
        ({"status": 200, "body": {}, "delay": 1.5}, "elevenlabs_timeout"),
    ],
    ids=["401", "5xx", "timeout"],
)
def test_reconcile_provider_error_leaves_the_call_for_later_with_a_log_row(
    functions: Functions,
    elevenlabs: FakeClient,
    db: Conn,
    answer: dict[str, Any],
    error_code: str,
) -> None:
    lead_id, conversation_id = late_call(functions, db)
    elevenlabs.script(path(conversation_id), answer)
    sweep_calls(functions)
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("initiated", None)
    assert lead(db, lead_id)["status"] == "calling"
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        (row,) = cur.execute(
            "select * from integration_logs where event = 'call.reconcile_failed' "
            "and details -> 'conversation_ids' ? %s",
            (conversation_id,),
        ).fetchall()
    assert (row["status"], row["error_code"]) == ("error", error_code)
    assert row["details"]["codes"][error_code] >= 1
    assert "read again at a later sweep" in row["message"]
    # Later, with the API back, it is read again and recorded.
    db.execute("update calls set reconcile_at = public.clock_now() where id = %s", (call["id"],))
    sweep_calls(functions)
    assert elevenlabs.count(path(conversation_id)) == 2
    assert calls(db, lead_id)[0]["outcome"] == "answered"


def test_reconcile_two_sweeps_racing_read_each_call_once(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    late = [late_call(functions, db) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: sweep_calls(functions), range(4)))
    assert {a.status_code for a in answers} == {200}
    assert [elevenlabs.count(path(conversation)) for _, conversation in late] == [1, 1, 1, 1]
    for lead_id, _ in late:
        (call,) = calls(db, lead_id)
        assert call["outcome"] == "answered"
        assert len(logs(db, lead_id, "call.reconciled")) == 1


def test_call_claim_unreported_skips_a_call_another_sweep_holds(
    stack: local_stack.Stack, functions: Functions, db: Conn
) -> None:
    lead_id, conversation_id = late_call(functions, db)
    claim = "select call_claim_unreported(1000, %s, %s)"
    with psycopg.connect(stack.env["DATABASE_URL"]) as first:
        held = first.execute(claim, (AFTER_MINUTES, GIVE_UP_MINUTES)).fetchone()
        assert held is not None
        assert conversation_id in [c["conversation_id"] for c in held[0]["claimed"]]
        outcome: dict[str, Any] = {}

        def second_claim() -> None:
            with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as second:
                row = second.execute(claim, (AFTER_MINUTES, GIVE_UP_MINUTES)).fetchone()
                outcome["answer"] = row[0] if row else None

        thread = threading.Thread(target=second_claim)
        thread.start()
        thread.join(timeout=5)
        blocked = thread.is_alive()
        first.commit()  # uncommitted until now: the second claim ran while it was held
    thread.join(timeout=10)
    assert not blocked  # skipped, not waited for
    claimed = [c["conversation_id"] for c in outcome["answer"]["claimed"]]
    assert conversation_id not in claimed
    (call,) = calls(db, lead_id)
    assert call["reconcile_checks"] == 1 and call["reconcile_at"] is not None


# --- voicemail --------------------------------------------------------------------------------


def test_reconcile_voicemail_conversation_recorded_as_voicemail(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id, conversation_id = late_call(functions, db)
    elevenlabs.put(f"conversations/{conversation_id}", {"voicemail_tool": True})
    sweep_calls(functions)
    (call,) = calls(db, lead_id)
    assert (call["outcome"], call["voicemail_missed"]) == ("voicemail", False)
    assert lead(db, lead_id)["status"] == "call_queued"
    assert timedelta(minutes=119) < wait_after(db, lead_id) <= timedelta(minutes=120)


def test_reconcile_voicemail_the_agent_missed_is_flagged(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id, conversation_id = late_call(functions, db)
    transcript = [
        samples.turn("agent", "Hola, soy Laura.", 0),
        samples.turn("user", "Deje su mensaje después del tono.", 2),
    ]
    elevenlabs.put(f"conversations/{conversation_id}", {"transcript": transcript})
    sweep_calls(functions)
    (call,) = calls(db, lead_id)
    assert (call["outcome"], call["voicemail_missed"], call["error_code"]) == (
        "voicemail",
        True,
        "voicemail_missed",
    )
    (row,) = logs(db, lead_id, "call.voicemail")
    assert row["status"] == "error" and "Deje su mensaje" in row["message"]


# --- the fake ---------------------------------------------------------------------------------


def test_fake_conversation_unknown_404_and_key_checked(elevenlabs_url: str) -> None:
    missing = httpx.get(
        f"{elevenlabs_url}{path(samples.new_conversation_id())}",
        headers={"xi-api-key": "sk_test_elevenlabs_key"},
    )
    assert missing.status_code == 404
    assert missing.json()["detail"]["status"] == "conversation_not_found"
    assert httpx.get(f"{elevenlabs_url}{path('x')}").status_code == 401


def test_fake_keeps_a_bounded_number_of_calls_and_conversations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(elevenlabs_fake, "LOG_LIMIT", 3)
    fake = elevenlabs_fake.ElevenLabsFake(None, None, None)
    body = {"agent_id": "a", "agent_phone_number_id": "p", "to_number": samples.TO_NUMBER}
    for _ in range(5):
        request = Request(
            "POST",
            "/v1/convai/twilio/outbound-call",
            {},
            {},
            json.dumps(body).encode(),
        )
        fake.outbound_call(request, "twilio")
    assert len(fake.calls) == 3 and len(fake.conversations) == 3
    assert [c["conversation_id"] for c in fake.calls] == list(fake.conversations)
    assert {"body", "at"} <= fake.calls[0].keys()


# --- the client and the parsing, without I/O ----------------------------------------------------


def mock_client(status: int, body: Any = None, *, exc: Exception | None = None) -> ElevenLabsClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET" and request.headers["xi-api-key"] == "sk_test"
        assert request.url.path == "/v1/convai/conversations/conv_1"
        if exc is not None:
            raise exc
        return httpx.Response(status, json=body)

    return ElevenLabsClient(
        base_url="https://api.elevenlabs.test",
        api_key="sk_test",
        timeout=1.0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


@pytest.mark.parametrize(
    ("client", "failure_class", "code"),
    [
        (
            mock_client(404, {"detail": {"status": "conversation_not_found", "message": "no"}}),
            FailureClass.NOT_FOUND,
            "elevenlabs_conversation_not_found",
        ),
        (mock_client(200, {"conversation_id": "conv_1"}), FailureClass.MALFORMED, None),
        (
            mock_client(200, exc=httpx.ReadTimeout("slow")),
            FailureClass.TRANSIENT,
            "elevenlabs_timeout",
        ),
        (
            mock_client(401, {"detail": {"status": "invalid_api_key", "message": "no"}}),
            FailureClass.AUTH,
            "elevenlabs_api_key_invalid",
        ),
    ],
    ids=["404", "no_status", "timeout", "401"],
)
def test_client_conversation_failures_classified(
    client: ElevenLabsClient, failure_class: FailureClass, code: str | None
) -> None:
    with pytest.raises(ProviderFailure) as raised:
        client.conversation("conv_1")
    assert raised.value.failure_class is failure_class
    if code:
        assert raised.value.code == code


def test_from_conversation_gives_the_webhooks_record() -> None:
    """The conversation API answers the webhook's ``data``: the same record either way."""
    body = (FIXTURES / "elevenlabs" / "elevenlabs_post_call_transcription_2025.json").read_bytes()
    event = parse(body, voicemail_phrases=["deje su mensaje"])
    data = json.loads(body)["data"]
    record = from_conversation(data["conversation_id"], data, voicemail_phrases=["deje su mensaje"])
    assert record == event.record
    assert mock_client(200, data).conversation("conv_1") == data
