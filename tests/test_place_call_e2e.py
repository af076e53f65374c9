"""place_call end to end: functions-framework over real HTTP, the real database, ElevenLabs faked
at its HTTP boundary (tools/fakes/elevenlabs_fake.py: calls filed under their to_number)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from lib.errors import ConfigError
from place_call.settings import PlaceCallSettings
from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import leadgen_delivery, new_leadgen_id

from .conftest import (
    CONSENTED,
    ELEVENLABS,
    SECRET,
    Functions,
    GraphFake,
    call_sweep,
    calls,
    lead,
    place,
    placed_conversation,
    queued_lead,
    unique_phone,
    webhook,
)

Conn = psycopg.Connection[Any]


# --- placing -------------------------------------------------------------------------------


def test_place_calls_the_lead_through_elevenlabs(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    answer = place(functions, lead_id).json()
    assert answer["decision"] == "placed" and answer["attempt"] == 1
    (request,) = elevenlabs.requests(phone)
    assert request["path"] == "/v1/convai/twilio/outbound-call"
    assert request["headers"]["xi-api-key"] == ELEVENLABS["ELEVENLABS_API_KEY"]
    sent = httpx.Response(200, content=request["body"]).json()
    assert sent["agent_id"] == ELEVENLABS["ELEVENLABS_AGENT_ID"]
    assert sent["agent_phone_number_id"] == ELEVENLABS["ELEVENLABS_PHONE_NUMBER_ID"]
    assert sent["to_number"] == phone
    variables = sent["conversation_initiation_client_data"]["dynamic_variables"]
    assert (variables["lead_id"], variables["lead_name"]) == (lead_id, "Zoë Lead")
    # The disclosure the agent says first: an AI assistant, the call may be recorded.
    assert variables["business_name"] == ""
    assert variables["disclosure"] == (
        "soy una asistente de inteligencia artificial de nuestra empresa y esta llamada puede "
        "ser grabada."
    )
    assert sent["conversation_initiation_client_data"]["user_id"] == lead_id
    (call,) = calls(db, lead_id)
    assert (call["status"], call["conversation_id"]) == ("initiated", answer["conversation_id"])
    assert call["call_sid"].startswith("CA")
    assert lead(db, lead_id)["status"] == "calling"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_place_without_the_internal_token_401(functions: Functions, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for path in ("", "/sweep"):
        response = httpx.post(functions.url("place_call", path), json={}, headers=headers)
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("status", "columns", "decision"),
    [
        ("booked", {}, "booked"),
        ("do_not_call", {}, "do_not_call"),
        ("fetched", {}, "not_queued"),
        ("call_queued", {"call_attempts": 3}, "max_attempts"),
        ("call_queued", {"next_call_at": None}, "not_due"),
        ("call_queued", {"phone": None}, "no_phone"),
    ],
)
def test_place_says_why_not(
    functions: Functions,
    elevenlabs: FakeClient,
    db: Conn,
    status: str,
    columns: dict[str, Any],
    decision: str,
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone, status=status)
    if columns:
        sets = ", ".join(f"{name} = %s" for name in columns)
        db.execute(f"update leads set {sets} where id = %s", (*columns.values(), lead_id))
    answer = place(functions, lead_id).json()
    assert (answer["decision"], answer["lead_id"]) == (decision, lead_id)
    assert answer["reason"]
    assert elevenlabs.count(phone) == 0
    assert calls(db, lead_id) == []


def test_20_simultaneous_requests_and_a_sweep_call_the_lead_once(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    with ThreadPoolExecutor(max_workers=21) as pool:
        futures = [pool.submit(place, functions, lead_id) for _ in range(20)]
        futures.append(pool.submit(call_sweep, functions))
        answers = [f.result() for f in futures]
    assert {a.status_code for a in answers} == {200}
    decisions = [a.json()["decision"] for a in answers[:20]]
    # The sweep may place other tests' due calls too: count this lead's calls where they land.
    assert decisions.count("placed") <= 1
    assert set(decisions) <= {"placed", "in_progress"}
    assert elevenlabs.count(phone) == 1
    assert len(calls(db, lead_id)) == 1


@pytest.mark.parametrize(
    ("answer", "error_code", "counted", "call_status"),
    [
        (
            {"status": 500, "body": {"detail": "Internal error"}},
            "elevenlabs_unavailable",
            False,
            "failed",
        ),
        (
            {
                "status": 422,
                "body": {"detail": [{"loc": ["body", "agent_id"], "msg": "bad", "type": "x"}]},
            },
            None,
            False,
            "failed",
        ),
        (
            {"status": 401, "body": {"detail": {"status": "quota_exceeded", "message": "quota"}}},
            None,
            False,
            "failed",
        ),
        (
            {
                "status": 200,
                "body": {
                    "success": False,
                    "message": "Number unreachable",
                    "conversation_id": None,
                    "callSid": None,
                },
            },
            None,
            True,
            "failed",
        ),
        ({"status": 200, "body": {}, "delay": 1.5}, "elevenlabs_timeout", True, "unknown"),
        (
            {"status": 200, "body": {"success": True, "message": "Success", "callSid": "CA1"}},
            "elevenlabs_call_untracked",
            True,
            "unknown",
        ),
    ],
    ids=["5xx", "422_config", "out_of_credits", "success_false", "timeout", "no_conversation"],
)
def test_elevenlabs_errors_recorded_and_the_next_attempt_planned(
    functions: Functions,
    elevenlabs: FakeClient,
    db: Conn,
    answer: dict[str, Any],
    error_code: str | None,
    counted: bool,
    call_status: str,
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    elevenlabs.script(phone, answer)
    response = place(functions, lead_id).json()
    assert response["decision"] == "failed"
    (call,) = calls(db, lead_id)
    assert call["status"] == call_status
    if error_code:
        assert call["error_code"] == error_code
    row = lead(db, lead_id)
    assert row["status"] == "call_queued"
    assert row["call_attempts"] == (1 if counted else 0)
    assert row["next_call_at"] is not None
    wait = row["next_call_at"] - db.execute("select public.clock_now()").fetchone()[0]  # type: ignore[index]
    assert timedelta(minutes=29) < wait <= timedelta(minutes=30)  # CALL_WAIT_FAILED_MINUTES
    # Not called again before the wait, not even by the sweep.
    call_sweep(functions)
    assert elevenlabs.count(phone) == 1
    assert (
        "Next attempt"
        in db.execute(
            "select message from integration_logs where lead_id = %s and event = 'call.failed'",
            (lead_id,),
        ).fetchone()[0]
    )  # type: ignore[index]


def test_sweep_places_due_calls(functions: Functions, elevenlabs: FakeClient, db: Conn) -> None:
    phones = [unique_phone() for _ in range(3)]
    ids = [queued_lead(db, phone=phone) for phone in phones]
    answer = call_sweep(functions).json()
    assert answer["placed"] >= 3
    assert [elevenlabs.count(phone) for phone in phones] == [1, 1, 1]
    assert all(lead(db, lead_id)["status"] == "calling" for lead_id in ids)


def test_sweep_dials_under_its_own_trace(
    functions: Functions, database_api: FakeClient, db: Conn
) -> None:
    # The calls a sweep dials concurrently keep its trace id: one id finds all it did.
    ids = [queued_lead(db) for _ in range(2)]
    trace = uuid.uuid4().hex
    response = httpx.post(
        functions.url("place_call", "/sweep"),
        headers={
            "Authorization": f"Bearer {functions.env['INTERNAL_TOKEN']}",
            "traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01",
        },
        timeout=60,
    )
    assert response.status_code == 200
    started = [r["body"] for r in database_api.requests("call_started", trace=trace)]
    for lead_id in ids:
        (call,) = calls(db, lead_id)
        assert any(str(call["id"]) in body for body in started), lead_id


def test_sweep_recovers_a_claim_whose_answer_was_never_recorded(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id = queued_lead(db, status="calling", call_attempts=1, next_call_at=None)
    db.execute(
        "insert into calls (lead_id, attempt, to_number, requested_at) "
        "select id, 1, phone, public.clock_now() - interval '3 minutes' from leads where id = %s",
        (lead_id,),
    )
    call_sweep(functions)
    (call,) = calls(db, lead_id)
    assert (call["status"], call["error_code"]) == ("unknown", "call_start_unrecorded")
    assert lead(db, lead_id)["status"] == "call_queued"


# --- speed to lead: Meta to ElevenLabs --------------------------------------------------------


def test_meta_lead_with_a_phone_is_called_at_once(
    functions: Functions, graph: GraphFake, elevenlabs: FakeClient, db: Conn
) -> None:
    lid, phone = new_leadgen_id(), unique_phone()
    node = {
        "id": lid,
        **CONSENTED,
        "field_data": [
            {"name": "full_name", "values": ["Speedy Lead"]},
            {"name": "phone_number", "values": [phone]},
        ],
    }
    graph.script(lid, lead=node)
    assert functions.post_meta(leadgen_delivery(lid)).json()["fetched"] == 1
    assert elevenlabs.count(phone) == 1  # before Meta got its answer
    row = db.execute(
        "select l.status, l.timezone, l.timezones, c.status, c.allowed_by -> 'zones' "
        "from leads l join calls c on c.lead_id = l.id where l.meta_leadgen_id = %s",
        (lid,),
    ).fetchone()
    assert row == (
        "calling",
        "America/New_York",
        ["America/New_York"],
        "initiated",
        ["America/New_York"],
    )


def test_the_delivery_trace_follows_the_lead_into_place_call(
    functions: Functions, graph: GraphFake, database_api: FakeClient
) -> None:
    # One trace id finds what a lead did in both functions: meta_webhook forwards it to
    # place_call, whose database calls carry it.
    lid, trace = new_leadgen_id(), uuid.uuid4().hex
    node = {
        "id": lid,
        **CONSENTED,
        "field_data": [{"name": "phone_number", "values": [unique_phone()]}],
    }
    graph.script(lid, lead=node)
    traceparent = f"00-{trace}-{uuid.uuid4().hex[:16]}-01"
    response = functions.post_meta(
        leadgen_delivery(lid), headers_extra={"traceparent": traceparent}
    )
    assert response.json()["fetched"] == 1
    rpcs = [request["key"] for request in database_api.requests(trace=trace)]
    assert rpcs == ["meta_ingest", "meta_complete", "call_claim", "call_started"]


# --- the post-call webhook ------------------------------------------------------------------


def test_webhook_answered_call_recorded_and_lead_called(functions: Functions, db: Conn) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    event = samples.post_call_transcription(
        conversation, lead_id=lead_id, duration=95, summary="Wants a quote for a new roof."
    )
    answer = webhook(functions, event).json()
    assert (answer["status"], answer["outcome"], answer["lead_status"]) == (
        "recorded",
        "answered",
        "called",
    )
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"], call["duration_secs"]) == ("completed", "answered", 95)
    assert call["summary"] == "Wants a quote for a new roof."
    assert call["call_successful"] == "success"
    assert lead(db, lead_id)["next_call_at"] is None
    assert webhook(functions, event).json()["status"] == "duplicate"


def test_webhook_voicemail_detected_schedules_the_next_attempt(
    functions: Functions, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    event = samples.post_call_transcription(conversation, lead_id=lead_id, voicemail_tool=True)
    answer = webhook(functions, event).json()
    assert (answer["outcome"], answer["lead_status"]) == ("voicemail", "call_queued")
    row = lead(db, lead_id)
    wait = row["next_call_at"] - db.execute("select public.clock_now()").fetchone()[0]  # type: ignore[index]
    assert timedelta(minutes=119) < wait <= timedelta(minutes=120)


def test_webhook_voicemail_the_agent_did_not_hang_up_on_is_flagged(
    functions: Functions, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    transcript = [
        samples.turn("agent", "Hola, soy Laura de Tejados Sol.", 0),
        samples.turn("user", "Hola. Deje su mensaje después de la señal.", 2),
        samples.turn("agent", "¿Hola? ¿Me escucha?", 6),
    ]
    event = samples.post_call_transcription(
        conversation, lead_id=lead_id, transcript=transcript, duration=40
    )
    assert webhook(functions, event).json()["outcome"] == "voicemail"
    (call,) = calls(db, lead_id)
    assert (call["outcome"], call["voicemail_missed"], call["error_code"]) == (
        "voicemail",
        True,
        "voicemail_missed",
    )
    status, message = db.execute(
        "select status, message from integration_logs where lead_id = %s and event = "
        "'call.voicemail'",
        (lead_id,),
    ).fetchone()  # type: ignore[misc]
    assert status == "error"
    assert "Deje su mensaje después de la señal" in message
    assert "deje su mensaje" in message and "prompt" in message


@pytest.mark.parametrize(
    ("reason", "outcome", "wait_minutes"),
    [("busy", "busy", 15), ("no-answer", "no_answer", 60), ("unknown", "unknown", 30)],
)
def test_webhook_initiation_failure_recorded_with_its_wait(
    functions: Functions, db: Conn, reason: str, outcome: str, wait_minutes: int
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    event = samples.call_initiation_failure(conversation, failure_reason=reason, lead_id=lead_id)
    assert webhook(functions, event).json()["outcome"] == outcome
    row = lead(db, lead_id)
    wait = row["next_call_at"] - db.execute("select public.clock_now()").fetchone()[0]  # type: ignore[index]
    assert timedelta(minutes=wait_minutes - 1) < wait <= timedelta(minutes=wait_minutes)


def test_webhook_after_the_last_attempt_leaves_the_lead_at_rest(
    functions: Functions, db: Conn
) -> None:
    lead_id = queued_lead(db, call_attempts=2)
    conversation = placed_conversation(functions, db, lead_id)
    event = samples.post_call_transcription(conversation, lead_id=lead_id, voicemail_tool=True)
    assert webhook(functions, event).json()["lead_status"] == "voicemail"
    row = lead(db, lead_id)
    assert (row["call_attempts"], row["next_call_at"]) == (3, None)


def test_webhook_links_by_lead_when_the_start_timed_out(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    elevenlabs.script(phone, {"status": 200, "body": {}, "delay": 1.5})
    assert place(functions, lead_id).json()["decision"] == "failed"
    event = samples.post_call_transcription(samples.new_conversation_id(), lead_id=lead_id)
    assert webhook(functions, event).json()["outcome"] == "answered"
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("completed", "answered")
    assert lead(db, lead_id)["status"] == "called"


def test_webhook_audio_and_unknown_types_ignored(functions: Functions, db: Conn) -> None:
    conversation = samples.new_conversation_id()
    answer = webhook(functions, samples.post_call_audio(conversation)).json()
    assert answer == {"status": "ignored", "type": "post_call_audio"}
    assert db.execute(
        "select count(*) from webhook_events where external_id = %s", (conversation,)
    ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("secret", "age"),
    [("wsec_wrong", 0), (SECRET, 31 * 60), (SECRET, -31 * 60)],
    ids=["wrong_secret", "stale", "future"],
)
def test_webhook_bad_signature_401(functions: Functions, secret: str, age: int) -> None:
    event = samples.post_call_transcription(samples.new_conversation_id(), lead_id="x")
    response = webhook(functions, event, secret=secret, at=int(time.time()) - age)
    assert response.status_code == 401
    if secret == "wsec_wrong":  # the answer names the variable to fix
        assert "ELEVENLABS_WEBHOOK_SECRET" in response.json()["error"]["message"]


def test_webhook_rotated_secret_accepted(functions: Functions, db: Conn) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    event = samples.post_call_transcription(conversation, lead_id=lead_id)
    assert webhook(functions, event, secret="wsec_test_old").status_code == 200


# --- booking stops calls ----------------------------------------------------------------------


def test_booking_drops_a_queued_call(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    from .conftest import invitee_event, post

    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone, next_call_at=None)
    db.execute(
        "update leads set next_call_at = public.clock_now() + interval '1 minute' where id = %s",
        (lead_id,),
    )
    assert post(functions, invitee_event(lead_id=lead_id)).json()["lead_status"] == "booked"
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("booked", None)
    assert place(functions, lead_id).json()["decision"] == "booked"
    assert elevenlabs.count(phone) == 0


# --- the ledger: one bad attempt never stops the queue ------------------------------------------

OUTAGE = {"status": 503, "body": {"detail": {"status": "service_unavailable", "message": "Down"}}}


def make_due(db: Conn, lead_id: str) -> None:
    db.execute("update leads set next_call_at = public.clock_now() where id = %s", (lead_id,))


@pytest.mark.parametrize("path", ["place", "sweep"])
def test_given_back_attempt_is_placed_again_by_the_next_claim(
    functions: Functions, elevenlabs: FakeClient, db: Conn, path: str
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    elevenlabs.script(phone, OUTAGE)
    assert place(functions, lead_id).json()["decision"] == "failed"
    make_due(db, lead_id)
    if path == "place":
        response = place(functions, lead_id)
        assert response.status_code == 200, response.text
        assert response.json()["decision"] == "placed"
    else:
        response = call_sweep(functions)
        assert response.status_code == 200, response.text
    given_back, placed = calls(db, lead_id)
    assert (given_back["attempt"], given_back["status"], given_back["counted"]) == (
        1,
        "failed",
        False,
    )
    assert (placed["attempt"], placed["status"], placed["counted"]) == (1, "initiated", True)
    assert lead(db, lead_id)["call_attempts"] == 1
    assert elevenlabs.count(phone) == 2


@pytest.fixture
def unclaimable(db: Conn) -> Iterator[Callable[[str], None]]:
    """Make call_claim fail for chosen leads (a trigger on calls raising for their ids): a fault
    in one lead's claim that no valid data can cause today."""
    db.execute("create table if not exists public.test_unclaimable (lead_id uuid primary key)")
    db.execute(
        "create or replace function public.test_refuse_claim() returns trigger "
        "language plpgsql security definer as $$ begin "
        "if exists (select from public.test_unclaimable u where u.lead_id = new.lead_id) then "
        "raise exception 'test: this lead cannot be claimed' using errcode = 'XX001'; end if; "
        "return new; end $$"
    )
    db.execute(
        "create trigger test_refuse_claim before insert on public.calls "
        "for each row execute function public.test_refuse_claim()"
    )
    try:
        yield (
            lambda lead_id: (
                db.execute("insert into public.test_unclaimable values (%s)", (lead_id,)) and None
            )
        )
    finally:
        db.execute("drop trigger test_refuse_claim on public.calls")
        db.execute("drop function public.test_refuse_claim()")
        db.execute("drop table public.test_unclaimable")


def test_sweep_a_lead_whose_claim_fails_costs_only_itself(
    functions: Functions,
    elevenlabs: FakeClient,
    db: Conn,
    unclaimable: Callable[[str], None],
) -> None:
    bad = queued_lead(db)
    db.execute(
        "update leads set next_call_at = public.clock_now() - interval '1 hour' where id = %s",
        (bad,),
    )
    unclaimable(bad)
    phones = [unique_phone() for _ in range(3)]
    good = [queued_lead(db, phone=phone) for phone in phones]
    response = call_sweep(functions)
    assert response.status_code == 200, response.text
    assert response.json()["errors"] >= 1, response.json()
    assert [elevenlabs.count(phone) for phone in phones] == [1, 1, 1], response.json()
    assert all(lead(db, lead_id)["status"] == "calling" for lead_id in good)
    assert calls(db, bad) == []
    row = lead(db, bad)
    assert row["status"] == "call_queued"
    wait = row["next_call_at"] - db.execute("select public.clock_now()").fetchone()[0]  # type: ignore[index]
    assert timedelta(minutes=29) < wait <= timedelta(minutes=30)  # behind the queue
    (failed,) = db.execute(
        "select error_code, message, details->>'sqlstate' from integration_logs "
        "where lead_id = %s and event = 'call.claim_failed'",
        (bad,),
    ).fetchall()
    assert failed[0] == "call_claim_failed" and failed[2] == "XX001"
    assert "Other leads are not affected" in failed[1]


def test_sweep_reconciles_even_when_placing_fails(functions: Functions, db: Conn) -> None:
    lead_id = queued_lead(db)
    conversation_id = placed_conversation(functions, db, lead_id)
    db.execute(
        "update calls set started_at = started_at - interval '16 minutes' "
        "where conversation_id = %s",
        (conversation_id,),
    )
    # Placing fails for every lead: the database refuses call_claim_due itself.
    db.execute("revoke execute on function public.call_claim_due(integer, jsonb) from service_role")
    try:
        response = call_sweep(functions)
    finally:
        db.execute(
            "grant execute on function public.call_claim_due(integer, jsonb) to service_role"
        )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "database_error"
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("completed", "answered")


@pytest.mark.parametrize(("start", "end"), [("20:00", "09:00"), ("09:00", "09:00")])
def test_overnight_or_empty_calling_hours_refused_by_name(start: str, end: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PlaceCallSettings.load({"CALL_HOURS_START": start, "CALL_HOURS_END": end})
    assert "CALL_HOURS_START" in caught.value.message and "CALL_HOURS_END" in caught.value.message


def test_webhook_audio_larger_than_what_is_parsed_is_verified_and_ignored(
    functions: Functions, db: Conn
) -> None:
    conversation = samples.new_conversation_id()
    body = samples.encode(samples.post_call_audio(conversation))
    body = body[:-1] + b', "padding": "' + b"A" * (6 * 1024 * 1024) + b'"}'
    response = httpx.post(
        functions.url("place_call", "/webhook"),
        content=body,
        headers=samples.signed_headers(body, SECRET, None),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ignored", "type": "post_call_audio"}
    assert db.execute(
        "select status from integration_logs where external_id is null "
        "and event = 'post_call_audio' order by id desc limit 1"
    ).fetchone() == ("ignored",)


def send_headers_only(base: str, path: str, headers: dict[str, str], length: int) -> bytes:
    """Send a request's line and headers announcing ``length`` body bytes, and none of them;
    what the server answers (it can answer only if it never waits for the body)."""
    host, port = base.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "garbage",
        "t=1,v0=" + "0" * 64,  # stale: 1970
        "t={now},v0=nothex",
        "t={future},v0=" + "0" * 64,  # two hours ahead
    ],
    ids=["missing", "malformed", "stale", "bad_hex", "future"],
)
def test_webhook_bad_header_answered_before_a_body_byte_is_read(
    functions: Functions, signature: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        now = int(time.time())
        headers["ElevenLabs-Signature"] = signature.format(now=now, future=now + 7200)
    answer = send_headers_only(
        functions.base, "/functions/v1/place_call/webhook", headers, 32 * 1024 * 1024
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_webhook_without_dynamic_variables_links_by_user_id(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    elevenlabs.script(phone, {"status": 200, "body": {}, "delay": 1.5})  # the start times out
    assert place(functions, lead_id).json()["decision"] == "failed"
    event = samples.post_call_transcription(samples.new_conversation_id(), lead_id=lead_id)
    del event["data"]["conversation_initiation_client_data"]["dynamic_variables"]
    assert webhook(functions, event).json()["outcome"] == "answered"
    (call,) = calls(db, lead_id)
    assert call["outcome"] == "answered"
    assert lead(db, lead_id)["status"] == "called"
