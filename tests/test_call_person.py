"""A person, not a lead, is who we call: leads sharing a phone or an email are one person (SQL
``people``, ``person_of``), called once at a time, never after any of their leads booked, not
again soon after they answered, and at most CALL_MAX_PER_PERSON_PER_DAY times a day. End to end
over real HTTP, the real database, the providers faked at their HTTP boundary."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import leadgen_delivery, new_leadgen_id
from tools.stack import local as local_stack

from .conftest import (
    ANY_HOUR,
    CONSENTED,
    RULES,
    Functions,
    GraphFake,
    call_sweep,
    calls,
    claim,
    invitee_event,
    lead,
    place,
    placed_conversation,
    queued_lead,
    unique_phone,
    webhook,
)
from .conftest import post as post_calendly

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def elevenlabs(elevenlabs_url: str) -> FakeClient:
    return FakeClient(elevenlabs_url)


def unique_email() -> str:
    return f"person.{uuid.uuid4().hex[:12]}@example.com"


def person(db: Conn, lead_id: str) -> Any:
    return lead(db, lead_id)["person_id"]


def logged(db: Conn, lead_id: str, event: str) -> list[tuple[str, str]]:
    return [
        (row[0], row[1])
        for row in db.execute(
            "select status, message from integration_logs where lead_id = %s and event = %s",
            (lead_id, event),
        ).fetchall()
    ]


# --- identity ------------------------------------------------------------------------------------


def test_leads_sharing_a_phone_or_an_email_are_one_person(db: Conn) -> None:
    phone, email = unique_phone(), unique_email()
    by_phone = queued_lead(db, phone=phone)
    by_email = queued_lead(db, phone=unique_phone(), email=email.upper().lower())
    stranger = queued_lead(db)
    assert person(db, by_phone) != person(db, by_email)
    # A lead with both ties the two together: one person, the older.
    both = queued_lead(db, phone=phone, email=email)
    people = {person(db, lead_id) for lead_id in (by_phone, by_email, both)}
    assert len(people) == 1 and None not in people
    assert person(db, stranger) not in people


# --- never two live calls ------------------------------------------------------------------------


def test_two_meta_leads_with_one_phone_get_one_call(
    functions: Functions, graph: GraphFake, elevenlabs: FakeClient, db: Conn
) -> None:
    phone = unique_phone()
    ids = [new_leadgen_id(), new_leadgen_id()]
    for lid in ids:
        graph.script(
            lid,
            lead={
                "id": lid,
                **CONSENTED,
                "field_data": [
                    {"name": "full_name", "values": ["Twice Submitted"]},
                    {"name": "phone_number", "values": [phone]},
                ],
            },
        )
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda lid: functions.post_meta(leadgen_delivery(lid)), ids))
    assert {a.status_code for a in answers} == {200}
    call_sweep(functions)
    assert elevenlabs.count(phone) == 1
    statuses = sorted(
        row[0]
        for row in db.execute(
            "select status from leads where meta_leadgen_id = any(%s)", (ids,)
        ).fetchall()
    )
    assert statuses == ["call_queued", "calling"]


def test_20_concurrent_claims_for_one_persons_20_leads_place_one_call(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    phone = unique_phone()
    ids = [queued_lead(db, phone=phone) for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda lead_id: place(functions, lead_id), ids))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    decisions = sorted(a.json()["decision"] for a in answers)
    assert decisions == ["person_in_progress"] * 19 + ["placed"]
    call_sweep(functions)
    assert elevenlabs.count(phone) == 1
    waiting = [lead_id for lead_id in ids if lead(db, lead_id)["status"] == "call_queued"]
    assert len(waiting) == 19
    assert logged(db, waiting[0], "call.person_busy")[0][0] == "ok"


# --- bookings ------------------------------------------------------------------------------------


def test_booking_by_email_ends_every_queued_call_of_the_person(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    phone, email = unique_phone(), unique_email()
    older = queued_lead(db, phone=phone)
    newer = queued_lead(db, phone=phone, email=email)
    db.execute(
        "update leads set next_call_at = public.clock_now() + interval '1 hour' where id = %s",
        (newer,),
    )
    booked = post_calendly(functions, invitee_event(email=email)).json()
    assert booked["lead_id"] == newer  # matched by email: the newest lead
    assert lead(db, newer)["status"] == "booked"
    row = lead(db, older)
    assert (row["status"], row["next_call_at"]) == ("person_booked", None)
    assert logged(db, older, "lead.person_booked")
    call_sweep(functions)
    assert place(functions, older).json()["decision"] == "not_queued"
    assert elevenlabs.count(phone) == 0


def test_lead_fetched_after_its_person_booked_is_not_called(
    functions: Functions, graph: GraphFake, elevenlabs: FakeClient, db: Conn
) -> None:
    # The Graph fetch fails, the person books through Calendly meanwhile (a new lead, by email),
    # then the fetch succeeds: the lead is stored, and never called.
    lid, phone, email = new_leadgen_id(), unique_phone(), unique_email()
    node = {
        "id": lid,
        **CONSENTED,
        "field_data": [
            {"name": "email", "values": [email]},
            {"name": "phone_number", "values": [phone]},
        ],
    }
    graph.script(lid, {"status": 500, "body": {"error": {"code": 2, "message": "down"}}}, lead=node)
    assert functions.post_meta(leadgen_delivery(lid)).status_code == 200
    assert db.execute("select status from leads where meta_leadgen_id = %s", (lid,)).fetchone() == (
        "fetch_pending",
    )
    assert post_calendly(functions, invitee_event(email=email)).json()["status"] == "recorded"
    db.execute("update leads set next_fetch_at = now() where meta_leadgen_id = %s", (lid,))
    assert functions.sweep().status_code == 200
    row = db.execute(
        "select id::text, status, email from leads where meta_leadgen_id = %s", (lid,)
    ).fetchone()
    assert row is not None and row[2] == email
    assert row[1] == "person_booked"
    call_sweep(functions)
    assert elevenlabs.count(phone) == 0


def test_simultaneous_bookings_with_one_phone_never_deadlock(
    functions: Functions, db: Conn
) -> None:
    phone = unique_phone()
    events = [invitee_event(email=unique_email(), phone=phone) for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda event: post_calendly(functions, event), events))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    assert {a.json()["status"] for a in answers} == {"recorded"}
    uris = [event["payload"]["uri"] for event in events]
    assert db.execute(
        "select count(*), count(distinct l.person_id) from appointments a "
        "join leads l on l.id = a.lead_id where a.calendly_invitee_uri = any(%s)",
        (uris,),
    ).fetchone() == (20, 1)


def test_simultaneous_bookings_tied_to_one_lead_never_deadlock(
    functions: Functions, db: Conn
) -> None:
    leads = [queued_lead(db, next_call_at=None, status="fetched") for _ in range(10)]
    events = [
        invitee_event(lead_id=lead_id, email=unique_email(), phone=unique_phone())
        for lead_id in leads
        for _ in range(2)
    ]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda event: post_calendly(functions, event), events))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    assert all(lead(db, lead_id)["status"] == "booked" for lead_id in leads)


# --- after an answer, and the daily cap ----------------------------------------------------------


def test_person_who_answered_is_not_called_again_within_the_cooldown(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    phone, email = unique_phone(), unique_email()
    first = queued_lead(db, phone=phone)
    conversation = placed_conversation(functions, db, first)
    event = samples.post_call_transcription(conversation, lead_id=first)
    assert webhook(functions, event).json()["outcome"] == "answered"
    second = queued_lead(db, phone=unique_phone(), email=email)
    db.execute("update leads set email = %s where id = %s", (email, first))
    assert person(db, first) == person(db, second)
    answer = place(functions, second).json()
    assert answer["decision"] == "person_cooldown", answer
    (call,) = calls(db, first)
    due = lead(db, second)["next_call_at"]
    assert due - call["ended_at"] == timedelta(hours=24)  # CALL_PERSON_COOLDOWN_HOURS
    assert "answered a call" in logged(db, second, "call.person_cooldown")[0][1]
    assert elevenlabs.count(phone) == 1


def add_calls(db: Conn, lead_id: str, n: int, *, counted: bool, hours_ago: float) -> None:
    db.execute(
        "insert into calls (lead_id, attempt, to_number, status, outcome, counted, requested_at) "
        "select id, coalesce((select max(attempt) from calls where lead_id = %s), 0) + g, phone, "
        "'completed', 'no_answer', %s, public.clock_now() - make_interval(secs => %s) "
        "from leads, generate_series(1, %s) g where id = %s",
        (lead_id, counted, hours_ago * 3600, n, lead_id),
    )


def test_person_daily_cap_counts_calls_of_every_lead_that_may_have_rung(
    functions: Functions, db: Conn
) -> None:
    phone = unique_phone()
    first = queued_lead(db, phone=phone, status="no_answer", next_call_at=None)
    add_calls(db, first, 2, counted=True, hours_ago=23)
    add_calls(db, first, 5, counted=False, hours_ago=1)  # given back: never rang
    add_calls(db, first, 4, counted=True, hours_ago=25)  # older than a day
    second = queued_lead(db, phone=phone)
    conversation = placed_conversation(functions, db, second)  # the third call of the day
    event = samples.call_initiation_failure(
        conversation, failure_reason="no-answer", lead_id=second
    )
    assert webhook(functions, event).json()["outcome"] == "no_answer"

    third = queued_lead(db, phone=phone)
    answer = place(functions, third).json()
    assert answer["decision"] == "person_daily_cap", answer
    row = db.execute(
        "select l.next_call_at - min(c.requested_at) from leads l, calls c "
        "where l.id = %s and c.lead_id = %s and c.counted "
        "and c.requested_at > public.clock_now() - interval '24 hours' group by l.next_call_at",
        (third, first),
    ).fetchone()
    assert row == (timedelta(hours=24),)  # when the oldest of the last 3 is a day old
    assert "CALL_MAX_PER_PERSON_PER_DAY" in logged(db, third, "call.person_daily_cap")[0][1]


def test_person_do_not_call_is_honoured_for_every_lead(functions: Functions, db: Conn) -> None:
    email = unique_email()
    queued_lead(db, email=email, status="do_not_call", next_call_at=None)
    other = queued_lead(db, email=email)
    assert place(functions, other).json()["decision"] == "do_not_call"
    assert lead(db, other)["status"] == "do_not_call"


def test_rules_carry_the_person_settings() -> None:
    from place_call.settings import PlaceCallSettings

    rules = PlaceCallSettings.load(
        {"CALL_PERSON_COOLDOWN_HOURS": "6", "CALL_MAX_PER_PERSON_PER_DAY": "2"}
    ).call_rules()
    assert (rules["person_cooldown_hours"], rules["max_per_person_per_day"]) == (6, 2)
    assert json.dumps(rules)


def test_claim_waits_for_a_concurrent_claim_of_the_same_person(stack: Any, db: Conn) -> None:
    # Two leads of one person claimed in two transactions: the second waits on the person's lock
    # until the first commits, then sees its call and places none.

    phone = unique_phone()
    first, second = queued_lead(db, phone=phone), queued_lead(db, phone=phone)
    outcome: dict[str, Any] = {}
    with psycopg.connect(stack.env["DATABASE_URL"]) as holder:
        assert claim(holder, first, {**RULES, **ANY_HOUR})["decision"] == "place"

        def second_claim() -> None:
            with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as other:
                outcome["answer"] = claim(other, second, {**RULES, **ANY_HOUR})

        thread = threading.Thread(target=second_claim)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # blocked on the person's lock
        holder.commit()
    thread.join(timeout=10)
    assert outcome["answer"]["decision"] == "person_in_progress"
    assert db.execute(
        "select count(*) from calls where lead_id = any(%s)", ([first, second],)
    ).fetchone() == (1,)


def test_lead_booked_before_its_answers_came_still_gets_them_and_no_call(
    functions: Functions, graph: GraphFake, elevenlabs: FakeClient, db: Conn
) -> None:
    # The Graph fetch fails, then a booking ties the lead by utm_content (booked); the sweep and
    # `make retry` still fetch its answers, whatever its status, and it is not called.
    lid, phone = new_leadgen_id(), unique_phone()
    node = {
        "id": lid,
        **CONSENTED,
        "field_data": [
            {"name": "full_name", "values": ["Booked First"]},
            {"name": "phone_number", "values": [phone]},
        ],
    }
    graph.script(lid, {"status": 500, "body": {"error": {"code": 2, "message": "down"}}}, lead=node)
    functions.post_meta(leadgen_delivery(lid))
    row = db.execute("select id::text from leads where meta_leadgen_id = %s", (lid,)).fetchone()
    assert row is not None
    lead_id = row[0]
    booked = post_calendly(functions, invitee_event(lead_id=lead_id, email=unique_email()))
    assert booked.json()["lead_status"] == "booked"
    retried = db.execute("select public.meta_retry_pending()").fetchone()
    assert retried is not None and retried[0] >= 1
    assert functions.sweep().status_code == 200
    row = lead(db, lead_id)
    assert (row["status"], row["full_name"], row["phone"]) == ("booked", "Booked First", phone)
    assert row["fetched_at"] is not None
    fetched = logged(db, lead_id, "lead.fetched")
    assert fetched and "no call is queued" in fetched[0][1]
    call_sweep(functions)
    assert elevenlabs.count(phone) == 0


@pytest.mark.parametrize("outcome", ["answered", "no_answer", "voicemail"])
def test_lead_booked_while_its_call_is_live_stays_booked_after_the_webhook(
    functions: Functions, elevenlabs: FakeClient, db: Conn, outcome: str
) -> None:
    phone = unique_phone()
    lead_id = queued_lead(db, phone=phone)
    conversation = placed_conversation(functions, db, lead_id)
    assert lead(db, lead_id)["status"] == "calling"
    booked = post_calendly(functions, invitee_event(lead_id=lead_id, email=unique_email()))
    assert booked.json()["lead_status"] == "booked"
    if outcome == "no_answer":
        event = samples.call_initiation_failure(
            conversation, failure_reason="no-answer", lead_id=lead_id
        )
    else:
        event = samples.post_call_transcription(
            conversation, lead_id=lead_id, voicemail_tool=outcome == "voicemail"
        )
    assert webhook(functions, event).json()["outcome"] == outcome
    row = lead(db, lead_id)
    assert (row["status"], row["next_call_at"]) == ("booked", None)
    call_sweep(functions)
    assert elevenlabs.count(phone) == 1


def test_a_call_whose_start_timed_out_is_live_for_the_person(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    # It may be ringing: another lead of the same person waits the retry wait too.
    phone = unique_phone()
    first, second = queued_lead(db, phone=phone), queued_lead(db, phone=phone)
    elevenlabs.script(phone, {"status": 200, "body": {}, "delay": 1.5})  # HTTP_TIMEOUT_SECONDS=1
    assert place(functions, first).json()["decision"] == "failed"
    assert calls(db, first)[0]["status"] == "unknown"
    assert place(functions, second).json()["decision"] == "person_in_progress"
    assert elevenlabs.count(phone) == 1


def test_booking_a_lead_without_answers_books_the_person(
    functions: Functions, graph: GraphFake, elevenlabs: FakeClient, db: Conn
) -> None:
    # The lead's fetch failed (no phone, no email yet); the person books through its link
    # (utm_content): their other lead, with the invitee's phone, is not called.
    phone, email = unique_phone(), unique_email()
    other = queued_lead(db, phone=phone)
    db.execute(
        "update leads set next_call_at = public.clock_now() + interval '1 hour' where id = %s",
        (other,),
    )
    lid = new_leadgen_id()
    graph.script(lid, {"status": 500, "body": {"error": {"code": 2, "message": "down"}}})
    functions.post_meta(leadgen_delivery(lid))
    row = db.execute("select id::text from leads where meta_leadgen_id = %s", (lid,)).fetchone()
    assert row is not None
    booked = post_calendly(functions, invitee_event(lead_id=row[0], email=email, phone=phone))
    assert booked.json()["lead_status"] == "booked"
    assert lead(db, other)["status"] == "person_booked"
    db.execute("update leads set next_call_at = public.clock_now() where id = %s", (other,))
    call_sweep(functions)
    assert elevenlabs.count(phone) == 0


def test_booking_by_email_ends_the_calls_of_the_invitees_other_phone(
    functions: Functions, elevenlabs: FakeClient, db: Conn
) -> None:
    # The invitee books with the email of one lead and the phone of another: both are them.
    email, first_phone, other_phone = unique_email(), unique_phone(), unique_phone()
    by_email = queued_lead(db, phone=first_phone, email=email)
    db.execute(
        "update leads set next_call_at = public.clock_now() + interval '1 hour' where id = %s",
        (by_email,),
    )
    by_phone = queued_lead(db, phone=other_phone)
    booked = post_calendly(functions, invitee_event(email=email, phone=other_phone))
    assert booked.json()["lead_id"] == by_email
    assert lead(db, by_phone)["status"] == "person_booked"
    later = queued_lead(db, phone=other_phone)  # a form filled after the booking
    assert place(functions, later).json()["decision"] == "person_booked"
    call_sweep(functions)
    assert elevenlabs.count(other_phone) == 0


# --- an opt-out said on the call ---------------------------------------------------------------


def _said(words: str) -> list[dict[str, Any]]:
    return samples.opt_out_transcript(words)


@pytest.mark.parametrize(
    "words",
    ["No, gracias. No me llames más, por favor.", "Stop calling me. Remove me from your list."],
)
def test_an_opt_out_on_the_call_makes_the_person_do_not_call_at_once(
    functions: Functions, elevenlabs: FakeClient, db: Conn, words: str
) -> None:
    phone, email = unique_phone(), unique_email()
    first = queued_lead(db, phone=phone, email=email)
    other = queued_lead(db, phone=unique_phone(), email=email)  # the same person, by email
    conversation = placed_conversation(functions, db, first)
    event = samples.post_call_transcription(conversation, lead_id=first, transcript=_said(words))
    assert webhook(functions, event).json()["outcome"] == "answered"
    assert (lead(db, first)["status"], lead(db, other)["status"]) == ("do_not_call", "do_not_call")
    (row,) = logged(db, first, "lead.opted_out")
    assert words in row[1] and "final" in row[1]
    assert place(functions, other).json()["decision"] == "do_not_call"
    assert elevenlabs.count(phone) == 1
    # A redelivery changes nothing; a later lead of the person is not called either.
    assert webhook(functions, event).json()["status"] == "duplicate"
    later = queued_lead(db, phone=phone)
    assert place(functions, later).json()["decision"] == "do_not_call"


def test_a_deferral_on_the_call_is_not_an_opt_out(functions: Functions, db: Conn) -> None:
    first = queued_lead(db, phone=unique_phone())
    conversation = placed_conversation(functions, db, first)
    said = _said("Ahora no puedo, no me llames ahora, llámame mañana.")
    event = samples.post_call_transcription(conversation, lead_id=first, transcript=said)
    assert webhook(functions, event).json()["outcome"] == "answered"
    assert lead(db, first)["status"] == "called"
    assert logged(db, first, "lead.opted_out") == []


def test_evidence_shows_the_person_s_calls_rules_and_opt_out(
    functions: Functions,
    db: Conn,
    stack: local_stack.Stack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tools.ops import evidence

    phone, email = unique_phone(), unique_email()
    first = queued_lead(db, phone=phone, email=email)
    other = queued_lead(db, phone=unique_phone(), email=email)
    conversation = placed_conversation(functions, db, first)
    words = "No me llames más, por favor."
    event = samples.post_call_transcription(conversation, lead_id=first, transcript=_said(words))
    webhook(functions, event)
    env = {"DATABASE_URL": stack.env["DATABASE_URL"]}

    assert evidence.main([other[:8]], env=env) == 0  # any lead of the person
    text = capsys.readouterr().out
    assert first in text and other in text and phone in text
    assert conversation in text and "calling hours 00:00\u201324:00; local time America/" in text
    assert f'"{words}"' in text
    assert f"lead {first} is do_not_call" in text and f"lead {other} is do_not_call" in text
    assert evidence.main([first, "--json"], env=env) == 0
    record = json.loads(capsys.readouterr().out)
    assert [row["words"] for row in record["opt_outs"]] == [words]
    assert evidence.main(["ffffffff"], env=env) == 2
    assert "no lead with an id starting ffffffff" in capsys.readouterr().err


@pytest.mark.parametrize("carries_lead_id", [True, False], ids=["matched_by_lead", "parked"])
def test_an_opt_out_that_arrives_before_its_call_is_recorded_holds(
    functions: Functions, db: Conn, carries_lead_id: bool
) -> None:
    # Out of order: the transcription (with the callee's "no") comes while place_call still waits
    # for ElevenLabs' answer. With the lead id it is recorded against the claimed call at once;
    # without it, it is parked and applied when call_started records the call.
    email = unique_email()
    first = queued_lead(db, phone=unique_phone(), email=email)
    other = queued_lead(db, phone=unique_phone(), email=email)
    (call_id,) = db.execute(
        "insert into calls (lead_id, attempt, to_number) select id, 1, phone from leads "
        "where id = %s returning id",
        (first,),
    ).fetchone()  # type: ignore[misc]
    db.execute(
        "update leads set status = 'calling', call_attempts = 1, next_call_at = null where id = %s",
        (first,),
    )
    conversation = samples.new_conversation_id()
    event = samples.post_call_transcription(
        conversation, lead_id=first, transcript=_said("Quítenme de la lista.")
    )
    if not carries_lead_id:
        event["data"]["conversation_initiation_client_data"] = {}
        event["data"].pop("user_id", None)
        assert webhook(functions, event).json()["status"] == "parked"
        assert lead(db, other)["status"] == "call_queued"  # nothing applied yet
    else:
        assert webhook(functions, event).json()["status"] == "recorded"
    db.execute(
        "select public.call_started(%s, %s, %s)",
        (
            call_id,
            json.dumps({"ok": True, "conversation_id": conversation, "call_sid": "CA1"}),
            json.dumps(RULES),
        ),
    )
    assert (lead(db, first)["status"], lead(db, other)["status"]) == ("do_not_call", "do_not_call")
    assert place(functions, other).json()["decision"] == "do_not_call"


def test_a_claim_racing_an_opt_out_never_calls_the_person(
    stack: local_stack.Stack, db: Conn
) -> None:
    # The opt-out is being recorded (uncommitted) when a claim of the person's other lead comes:
    # the claim waits for it, then refuses. Without the person-wide mark it would place the call.
    email = unique_email()
    first = queued_lead(db, phone=unique_phone(), email=email)
    other = queued_lead(db, phone=unique_phone(), email=email)
    outcome: dict[str, Any] = {}
    with psycopg.connect(stack.env["DATABASE_URL"]) as recording:
        recording.execute("select public.call_opt_out(%s, 'no me llames', 'conv_race')", (first,))

        def claim_other() -> None:
            with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as claiming:
                try:
                    outcome["answer"] = claim(claiming, other, {**RULES, **ANY_HOUR})
                except psycopg.Error as exc:
                    outcome["error"] = exc

        thread = threading.Thread(target=claim_other)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # blocked on the lead's row, marked by the opt-out
        recording.commit()
    thread.join(timeout=10)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["answer"]["decision"] == "do_not_call"
    assert db.execute("select count(*) from calls where lead_id = %s", (other,)).fetchone() == (0,)
