"""A call's outcome under out-of-order, repeated and late post-call events (SQL
``call_record_outcome``): end to end over real HTTP, the real database, ElevenLabs faked at its
HTTP boundary. A recorded outcome is never downgraded (answered > voicemail > busy / no answer >
failed > unknown), and a late event for an old attempt never reopens a lead on another call."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import FakeClient

from .conftest import (
    GIVE_UP_MINUTES,
    RULES,
    Functions,
    age,
    call_sweep,
    calls,
    lead,
    place,
    placed_conversation,
    queued_lead,
    sweep_calls,
    unique_phone,
    webhook,
)

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def elevenlabs(elevenlabs_url: str) -> FakeClient:
    return FakeClient(elevenlabs_url)


def wait(db: Conn, lead_id: str) -> timedelta:
    row = lead(db, lead_id)
    now = db.execute("select public.clock_now()").fetchone()[0]  # type: ignore[index]
    return row["next_call_at"] - now  # type: ignore[no-any-return]


def events(db: Conn, conversation_id: str) -> list[str]:
    return [
        row[0]
        for row in db.execute(
            "select event_type from webhook_events where provider = 'elevenlabs' "
            "and external_id = %s order by id",
            (conversation_id,),
        ).fetchall()
    ]


def answered(conversation_id: str, lead_id: str) -> dict[str, Any]:
    return samples.post_call_transcription(conversation_id, lead_id=lead_id)


def voicemail(conversation_id: str, lead_id: str) -> dict[str, Any]:
    return samples.post_call_transcription(conversation_id, lead_id=lead_id, voicemail_tool=True)


def busy(conversation_id: str, lead_id: str) -> dict[str, Any]:
    return samples.call_initiation_failure(conversation_id, failure_reason="busy", lead_id=lead_id)


def no_answer(conversation_id: str, lead_id: str) -> dict[str, Any]:
    return samples.call_initiation_failure(
        conversation_id, failure_reason="no-answer", lead_id=lead_id
    )


def test_answered_then_initiation_failure_keeps_answered_and_its_summary(
    functions: Functions, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    assert webhook(functions, answered(conversation, lead_id)).json()["outcome"] == "answered"
    later = webhook(functions, no_answer(conversation, lead_id))
    assert later.status_code == 200
    assert later.json()["outcome"] == "answered"
    (call,) = calls(db, lead_id)
    assert (call["outcome"], call["summary"]) == ("answered", samples.ANSWERED_SUMMARY)
    assert call["analysis"] is not None
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("called", None)
    assert events(db, conversation) == ["post_call_transcription", "call_initiation_failure"]
    kept = db.execute(
        "select status, message from integration_logs where lead_id = %s "
        "and event = 'call_initiation_failure'",
        (lead_id,),
    ).fetchone()
    assert kept is not None and kept[0] == "ok" and "answered" in kept[1]


@pytest.mark.parametrize("order", ["voicemail_first", "busy_first"])
def test_voicemail_and_busy_in_either_order_wait_the_voicemail_wait(
    functions: Functions, db: Conn, order: str
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    pair = [voicemail(conversation, lead_id), busy(conversation, lead_id)]
    for event in pair if order == "voicemail_first" else reversed(pair):
        assert webhook(functions, event).status_code == 200
    (call,) = calls(db, lead_id)
    assert call["outcome"] == "voicemail"
    assert lead(db, lead_id)["status"] == "call_queued"
    assert timedelta(minutes=119) < wait(db, lead_id) <= timedelta(minutes=120)


def test_real_webhook_replaces_a_reconcile_give_up(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    elevenlabs.put(f"conversations/{conversation}", {"known": False})
    age(db, conversation, GIVE_UP_MINUTES + 10)
    sweep_calls(functions)
    (call,) = calls(db, lead_id)
    assert call["outcome"] == "unknown"
    assert lead(db, lead_id)["status"] == "call_queued"

    response = webhook(functions, answered(conversation, lead_id))
    assert response.json()["status"] == "recorded"
    (call,) = calls(db, lead_id)
    assert (call["outcome"], call["summary"]) == ("answered", samples.ANSWERED_SUMMARY)
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("called", None)
    assert len(events(db, conversation)) == 2  # the give-up and the webhook, both kept


def test_late_busy_for_an_old_attempt_never_reopens_a_lead_on_another_call(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    # Attempt 1's start timed out (no conversation id), the lead was queued again and attempt 2
    # is live; then attempt 1's busy arrives, linked by the lead id.
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    elevenlabs.script(phone, {"status": 200, "body": {}, "delay": 1.5})
    assert place(functions, lead_id).json()["decision"] == "failed"
    # The retry wait passes (for the lead, and for its timed-out call, which may have rung).
    db.execute("update leads set next_call_at = public.clock_now() where id = %s", (lead_id,))
    db.execute(
        "update calls set requested_at = requested_at - interval '31 minutes' where lead_id = %s",
        (lead_id,),
    )
    second = placed_conversation(functions, db, lead_id)
    assert lead(db, lead_id)["status"] == "calling"

    assert webhook(functions, busy(samples.new_conversation_id(), lead_id)).status_code == 200
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("calling", None)
    call_sweep(functions)
    assert place(functions, lead_id).json()["decision"] == "in_progress"
    assert elevenlabs.count(phone) == 2
    first, live = calls(db, lead_id)
    assert (first["outcome"], live["conversation_id"], live["outcome"]) == ("busy", second, None)


def test_late_answered_for_an_old_attempt_ends_the_queued_call(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    # Attempt 1's start timed out (unknown: it may have rung), the lead was queued again; then
    # its webhook says the person answered: they are not called again.
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    elevenlabs.script(phone, {"status": 200, "body": {}, "delay": 1.5})
    assert place(functions, lead_id).json()["decision"] == "failed"
    assert lead(db, lead_id)["status"] == "call_queued"
    response = webhook(functions, answered(samples.new_conversation_id(), lead_id))
    assert response.json()["outcome"] == "answered"
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("called", None)


def test_duplicate_webhook_with_an_unknown_lead_id_is_a_duplicate_not_500(
    functions: Functions, db: Conn
) -> None:
    # Matched by its conversation id, but carrying a lead id no lead has: its redelivery's log
    # row must not refer to that lead (it was a 500, 23503 on integration_logs' foreign key).
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    event = answered(conversation, str(uuid.uuid4()))
    assert webhook(functions, event).json()["status"] == "recorded"
    again = webhook(functions, event)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate"
    # An event that matches no call, with an unknown lead id, is parked, and so is its retry.
    stray = answered(samples.new_conversation_id(), str(uuid.uuid4()))
    assert [webhook(functions, stray).json()["status"] for _ in range(2)] == ["parked"] * 2


# --- events before what they refer to ----------------------------------------------------------


def test_initiation_failure_before_call_started_is_parked_then_applied(
    functions: Functions, db: Conn
) -> None:
    # The webhook (no lead id, as ElevenLabs documents it) arrives while place_call still waits
    # for the outbound-call answer: the call is claimed but its conversation id is not recorded.
    lead_id = queued_lead(db)
    (call_id,) = db.execute(
        "insert into calls (lead_id, attempt, to_number) select id, 1, phone from leads "
        "where id = %s returning id",
        (lead_id,),
    ).fetchone()  # type: ignore[misc]
    db.execute(
        "update leads set status = 'calling', call_attempts = 1, next_call_at = null where id = %s",
        (lead_id,),
    )
    conversation = samples.new_conversation_id()
    event = samples.call_initiation_failure(conversation, failure_reason="busy", lead_id=None)
    assert webhook(functions, event).json()["status"] == "parked"
    assert webhook(functions, event).json()["status"] == "parked"  # a redelivery: not a duplicate
    assert events(db, conversation) == []

    import json

    db.execute(
        "select public.call_started(%s, %s, %s)",
        (
            call_id,
            json.dumps({"ok": True, "conversation_id": conversation, "call_sid": "CA1"}),
            json.dumps(RULES),
        ),
    )
    (call,) = calls(db, lead_id)
    assert (call["conversation_id"], call["outcome"]) == (conversation, "busy")
    assert lead(db, lead_id)["status"] == "call_queued"
    assert timedelta(minutes=14) < wait(db, lead_id) <= timedelta(minutes=15)
    assert events(db, conversation) == ["call_initiation_failure"]
    assert db.execute(
        "select count(*) from parked_events where key = %s", (conversation,)
    ).fetchone() == (0,)
    assert webhook(functions, event).json()["status"] == "duplicate"  # recorded now


# --- an answer without a transcript is still an answer ------------------------------------------


def without_transcript(event: dict[str, Any]) -> dict[str, Any]:
    """The webhook as a workspace with exclude_transcript sends it, and no evaluation."""
    del event["data"]["transcript"]
    event["data"]["analysis"]["call_successful"] = "unknown"
    return event


def test_webhook_without_transcript_reads_the_conversation_api(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)  # the fake: answered, done
    answer = webhook(functions, without_transcript(answered(conversation, lead_id))).json()
    assert (answer["status"], answer["outcome"]) == ("recorded", "answered")
    assert elevenlabs.count(f"/v1/convai/conversations/{conversation}") == 1
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("called", None)


def test_webhook_without_transcript_undecided_leaves_the_lead_uncalled(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    elevenlabs.put(f"conversations/{conversation}", {"status": "processing"})
    answer = webhook(functions, without_transcript(answered(conversation, lead_id))).json()
    assert answer["status"] == "deferred"
    (call,) = calls(db, lead_id)
    assert (call["status"], call["outcome"]) == ("initiated", None)
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("calling", None)
    call_sweep(functions)
    assert place(functions, lead_id).json()["decision"] == "in_progress"
    # Once the conversation is done, the sweep's reading records it.
    elevenlabs.put(f"conversations/{conversation}", {"status": "done"})
    age(db, conversation, 16)
    sweep_calls(functions)
    assert calls(db, lead_id)[0]["outcome"] == "answered"


def test_webhook_with_a_plain_text_transcript_is_decided_from_it(
    functions: Functions, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    event = answered(conversation, lead_id)
    event["data"]["transcript"] = (
        "agent: Hola, soy Laura.\nuser: Deje su mensaje después de la señal."
    )
    event["data"]["analysis"]["call_successful"] = "unknown"
    assert webhook(functions, event).json()["outcome"] == "voicemail"


def test_answering_machine_detection_then_a_person_is_answered(
    functions: Functions, db: Conn
) -> None:
    lead_id = queued_lead(db)
    conversation = placed_conversation(functions, db, lead_id)
    detection = {
        "type": "answering_machine_detection",
        "event_timestamp": 1_765_000_000,
        "data": {"conversation_id": conversation, "agent_id": samples.AGENT_ID},
    }  # fixed timestamp: the event's content, not a date the test depends on
    assert webhook(functions, detection).json()["outcome"] == "voicemail"
    assert lead(db, lead_id)["status"] == "call_queued"
    assert webhook(functions, answered(conversation, lead_id)).json()["outcome"] == "answered"
    assert lead(db, lead_id)["status"] == "called"
