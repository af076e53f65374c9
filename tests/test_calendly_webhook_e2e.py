"""calendly_webhook end to end: functions-framework over real HTTP, the real database through the
PostgREST stand-in. Payloads are shaped as Calendly documents them (docs/PROVIDERS.md section 2.3);
the older shape is Calendly's own OpenAPI example (tests/fixtures/calendly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import leadgen_delivery, new_leadgen_id

from .conftest import (
    API,
    CALENDLY_KEYS,
    CONSENTED,
    FIXTURES,
    MEETING,
    Functions,
    GraphFake,
    invitee_event,
    invitee_uri,
    post,
)

Conn = psycopg.Connection[Any]


def appointment(db: Conn, uri: str) -> dict[str, Any] | None:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select * from appointments where calendly_invitee_uri = %s", (uri,)
        ).fetchone()


def lead_row(db: Conn, lead_id: Any) -> dict[str, Any]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("select * from leads where id = %s", (lead_id,)).fetchone()
    assert row is not None
    return row


def new_lead(db: Conn, *, email: str | None = None, phone: str | None = None) -> str:
    row = db.execute(
        "insert into leads (source, status, email, phone) values ('manual', 'fetched', %s, %s) "
        "returning id::text",
        (email, phone),
    ).fetchone()
    assert row is not None
    return str(row[0])


def unique_phone() -> str:
    return "+1212" + str(2_000_000 + uuid.uuid4().int % 8_000_000)


# --- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "age", "accepted"),
    [
        (CALENDLY_KEYS[0], 0, True),
        (CALENDLY_KEYS[1], 0, True),  # the key being rotated out still verifies
        ("not-the-key", 0, False),
        # Far outside the 3-minute tolerance either way: the server reads its own clock later
        # than the test signed, so an age within seconds of the edge would depend on the
        # machine's load (test_signatures checks the exact edge with a frozen clock).
        (CALENDLY_KEYS[0], 2 * 180, False),  # stale
        (CALENDLY_KEYS[0], -2 * 180, False),  # from the future
    ],
)
def test_signature_checked_with_rotation_and_tolerance(
    functions: Functions, db: Conn, key: str, age: int, accepted: bool
) -> None:
    event = invitee_event()
    response = post(functions, event, key=key, at=time.time() - age)
    assert response.status_code == (200 if accepted else 401)
    stored = appointment(db, event["payload"]["uri"])
    assert (stored is not None) is accepted
    if not accepted:
        assert response.json()["error"]["code"] == "invalid_signature"
    if key == "not-the-key":  # the answer names the variable to fix
        assert "CALENDLY_SIGNING_KEY" in response.json()["error"]["message"]


def test_unsigned_event_401_nothing_stored(functions: Functions, db: Conn) -> None:
    event = invitee_event()
    response = httpx.post(functions.url("calendly_webhook"), json=event)
    assert response.status_code == 401
    assert appointment(db, event["payload"]["uri"]) is None


# --- matching ----------------------------------------------------------------------------


def test_created_with_lead_id_in_utm_content_ties_that_lead(functions: Functions, db: Conn) -> None:
    lead_id = new_lead(db, email="someone.else@example.com")
    event = invitee_event(lead_id=lead_id)
    response = post(functions, event)
    assert response.status_code == 200
    assert response.json()["status"] == "recorded"
    row = appointment(db, event["payload"]["uri"])
    assert row is not None
    assert (str(row["lead_id"]), row["matched_by"], row["status"]) == (
        lead_id,
        "tracking",
        "active",
    )
    assert row["event_name"] == "Discovery call"
    assert row["start_time"] == MEETING
    assert row["tracking"]["utm_source"] == "facebook"
    assert lead_row(db, lead_id)["status"] == "booked"


def test_created_matches_email_case_insensitively(functions: Functions, db: Conn) -> None:
    email = f"Zoe.{uuid.uuid4().hex[:8]}@Example.com"
    lead_id = new_lead(db, email=email.lower())
    event = invitee_event(email=email.upper())
    assert post(functions, event).json()["matched_by"] == "email"
    row = appointment(db, event["payload"]["uri"])
    assert row is not None and str(row["lead_id"]) == lead_id


@pytest.mark.parametrize("where", ["text_reminder_number", "question"])
def test_created_matches_phone(functions: Functions, db: Conn, where: str) -> None:
    phone = unique_phone()
    lead_id = new_lead(db, phone=phone)
    national = f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"
    if where == "text_reminder_number":
        event = invitee_event(phone=national)
    else:
        answers = [{"question": "Your phone number", "answer": national, "position": 0}]
        event = invitee_event(answers=answers)
    assert post(functions, event).json()["matched_by"] == "phone"
    row = appointment(db, event["payload"]["uri"])
    assert row is not None and str(row["lead_id"]) == lead_id


def test_created_without_a_match_creates_a_calendly_lead(functions: Functions, db: Conn) -> None:
    event = invitee_event(phone="+34 612 34 56 78")
    answer = post(functions, event).json()
    assert answer["matched_by"] == "new_lead"
    lead = lead_row(db, answer["lead_id"])
    assert (lead["source"], lead["status"], lead["email"], lead["phone"]) == (
        "calendly",
        "booked",
        event["payload"]["email"],
        "+34612345678",
    )


def test_do_not_call_lead_stays_do_not_call(functions: Functions, db: Conn) -> None:
    lead_id = new_lead(db)
    db.execute("update leads set status = 'do_not_call' where id = %s", (lead_id,))
    event = invitee_event(lead_id=lead_id)
    assert post(functions, event).json()["lead_status"] == "do_not_call"
    assert appointment(db, event["payload"]["uri"]) is not None


# --- cancel, reschedule, no-show -------------------------------------------------------------


def test_canceled_records_reason_and_who_and_cancels_the_lead(
    functions: Functions, db: Conn
) -> None:
    lead_id = new_lead(db)
    created = invitee_event(lead_id=lead_id)
    uri = created["payload"]["uri"]
    post(functions, created)
    canceled = invitee_event("invitee.canceled", uri=uri, lead_id=lead_id)
    assert post(functions, canceled).json()["lead_status"] == "canceled"
    row = appointment(db, uri)
    assert row is not None
    assert (row["status"], row["rescheduled"], row["cancel_reason"]) == (
        "canceled",
        False,
        "Something came up",
    )
    assert (row["canceled_by"], row["canceler_type"]) == ("Zoë Test", "invitee")


@pytest.mark.parametrize("order", ["cancel_first", "created_first"])
def test_reschedule_in_either_order_keeps_the_lead_booked(
    functions: Functions, db: Conn, order: str
) -> None:
    lead_id = new_lead(db)
    old_uri, new_uri = invitee_uri(), invitee_uri()
    post(functions, invitee_event(uri=old_uri, lead_id=lead_id))
    cancel = invitee_event(
        "invitee.canceled", uri=old_uri, lead_id=lead_id, rescheduled=True, new_invitee=new_uri
    )
    created = invitee_event(
        uri=new_uri,
        old_invitee=old_uri,
        start=(MEETING + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        email="x@y.zz",
    )
    first, second = (cancel, created) if order == "cancel_first" else (created, cancel)
    assert post(functions, first).status_code == 200
    assert lead_row(db, lead_id)["status"] == "booked"
    assert post(functions, second).status_code == 200
    old, new = appointment(db, old_uri), appointment(db, new_uri)
    assert old is not None and new is not None
    assert (old["status"], old["rescheduled"]) == ("canceled", True)
    assert (new["status"], str(new["lead_id"]), new["matched_by"]) == (
        "active",
        lead_id,
        "reschedule",
    )
    assert lead_row(db, lead_id)["status"] == "booked"


def test_cancel_before_created_is_never_reactivated(functions: Functions, db: Conn) -> None:
    lead_id = new_lead(db)
    uri = invitee_uri()
    post(functions, invitee_event("invitee.canceled", uri=uri, lead_id=lead_id))
    post(functions, invitee_event(uri=uri, lead_id=lead_id))
    row = appointment(db, uri)
    assert row is not None and row["status"] == "canceled"
    # Never seen booked, so not "canceled" either: the lead keeps its status (and stays callable).
    assert lead_row(db, lead_id)["status"] == "fetched"


def test_no_show_marked_and_unmarked(functions: Functions, db: Conn) -> None:
    created = invitee_event()
    uri = created["payload"]["uri"]
    post(functions, created)
    no_show = f"{API}/invitee_no_shows/{uuid.uuid4()}"
    mark = {
        "event": "invitee_no_show.created",
        "created_at": "2026-12-03T16:00:00.000000Z",
        "payload": {"uri": no_show, "invitee": uri, "created_at": "2026-12-03T16:00:00Z"},
    }
    assert post(functions, mark).json()["status"] == "recorded"
    row = appointment(db, uri)
    assert row is not None and row["no_show"] is True
    unmark = {**mark, "event": "invitee_no_show.deleted"}
    assert post(functions, unmark).json()["status"] == "recorded"
    row = appointment(db, uri)
    assert row is not None and (row["no_show"], row["no_show_at"]) == (False, None)


def test_other_event_types_200_ignored(functions: Functions, db: Conn) -> None:
    trace = uuid.uuid4().hex
    event = {"event": "routing_form_submission.created", "payload": {"uri": trace}}
    response = post(functions, event)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "event": "routing_form_submission.created"}


# --- idempotency, round trips, shapes, poison -------------------------------------------------


def test_redelivery_and_20_simultaneous_deliveries_change_nothing(
    functions: Functions, db: Conn
) -> None:
    event = invitee_event()
    uri = event["payload"]["uri"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: post(functions, event), range(20)))
    assert {a.status_code for a in answers} == {200}
    assert sorted(a.json()["status"] for a in answers) == ["duplicate"] * 19 + ["recorded"]
    assert post(functions, event).json()["status"] == "duplicate"
    assert db.execute(
        "select count(*) from appointments where calendly_invitee_uri = %s", (uri,)
    ).fetchone() == (1,)
    assert db.execute(
        "select count(*) from webhook_events where provider = 'calendly' and external_id = %s",
        (uri,),
    ).fetchone() == (1,)
    row = appointment(db, uri)
    assert row is not None
    assert db.execute("select count(*) from leads where id = %s", (row["lead_id"],)).fetchone() == (
        1,
    )


def test_delivery_costs_one_database_round_trip(
    functions: Functions, database_api: FakeClient
) -> None:
    trace = uuid.uuid4().hex
    post(functions, invitee_event(), headers={"traceparent": f"00-{trace}-{'2' * 16}-01"})
    assert [r["key"] for r in database_api.requests(trace=trace)] == ["calendly_record"]


@pytest.mark.parametrize("kind", ["created", "canceled"])
def test_older_payload_shape_recorded(functions: Functions, db: Conn, kind: str) -> None:
    event = json.loads(
        (FIXTURES / "calendly" / f"calendly_invitee_{kind}_openapi2024.json").read_text()
    )
    uri = invitee_uri()
    event["payload"]["uri"] = uri
    event["payload"]["email"] = f"{uuid.uuid4().hex[:8]}@example.com"
    event["payload"]["name"] = None
    response = post(functions, event)
    assert response.status_code == 200
    row = appointment(db, uri)
    assert row is not None
    assert row["status"] == ("active" if kind == "created" else "canceled")
    assert row["start_time"] is None  # no scheduled_event in this shape


def test_poisoned_values_cost_only_themselves(functions: Functions, db: Conn) -> None:
    event = invitee_event(name="Zoë\u0000Bad")
    event["payload"]["scheduled_event"]["start_time"] = "99999-01-01T00:00:00Z"
    event["payload"]["questions_and_answers"] = [{"question": "x" * 10_000, "answer": ["no"]}]
    body = (
        json.dumps(event)
        .encode()
        .replace(b'"invitees_counter": {', b'"n": NaN, "invitees_counter": {')
    )
    response = post(functions, body)
    assert response.status_code == 200
    row = appointment(db, event["payload"]["uri"])
    assert row is not None
    assert row["invitee_name"] == "Zoë\ufffdBad"
    assert row["start_time"] is None


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{nope", "malformed_json"), (b'{"payload": {}}', "invalid_payload")],
)
def test_malformed_body_400(functions: Functions, body: bytes, code: str) -> None:
    response = post(functions, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_created_without_invitee_uri_400(functions: Functions) -> None:
    event = invitee_event()
    event["payload"]["uri"] = "not a uri\u0000"
    response = post(functions, event)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_payload"


# --- the lead's trail ------------------------------------------------------------------------


def test_lead_trail_shows_receipt_fetch_booking_and_meeting_in_order(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    lid = new_leadgen_id()
    email = f"trail.{uuid.uuid4().hex[:8]}@example.com"
    node = {
        "id": lid,
        **CONSENTED,
        "field_data": [
            {"name": "full_name", "values": ["Trail Lead"]},
            {"name": "email", "values": [email]},
        ],
    }
    graph.script(lid, lead=node)
    assert functions.post_meta(leadgen_delivery(lid)).json()["fetched"] == 1
    booked = post(functions, invitee_event(email=email)).json()
    lead_id = booked["lead_id"]
    result = subprocess.run(
        [sys.executable, "-m", "tools.ops.logs", "--lead", lead_id[:8]],
        env={**os.environ, "DATABASE_URL": functions.env["DATABASE_URL"]},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["at", "(UTC)", "provider", "event"]
    assert [line.split()[3] for line in lines[1:]] == [
        "lead.received",
        "lead.fetched",
        "appointment.booked",
        "meeting",
    ]
    assert "Discovery call (active)" in lines[-1]


def no_show_event(
    kind: str, invitee: str, created_at: str, mark: str | None = None
) -> dict[str, Any]:
    mark = mark or f"{API}/invitee_no_shows/{uuid.uuid4()}"
    return {
        "event": kind,
        "created_at": created_at,
        "payload": {"uri": mark, "invitee": invitee, "created_at": created_at},
    }


def test_no_show_before_its_booking_is_parked_then_applied(functions: Functions, db: Conn) -> None:
    created = invitee_event()
    uri = created["payload"]["uri"]
    mark = no_show_event("invitee_no_show.created", uri, "2026-11-28T16:00:00.000000Z")  # fixed
    assert post(functions, mark).json()["status"] == "parked"
    assert post(functions, mark).json()["status"] == "parked"  # a retry: not a duplicate
    assert appointment(db, uri) is None
    assert post(functions, created).json()["status"] == "recorded"
    row = appointment(db, uri)
    assert row is not None and row["no_show"] is True
    assert post(functions, mark).json()["status"] == "duplicate"


def test_no_show_marks_follow_their_created_at_not_arrival(functions: Functions, db: Conn) -> None:
    created = invitee_event()
    uri = created["payload"]["uri"]
    post(functions, created)
    mark_uri = f"{API}/invitee_no_shows/{uuid.uuid4()}"
    # Fixed instants: only their order matters.
    at = ("2026-11-28T16:00:00Z", "2026-11-28T17:00:00Z", "2026-11-28T18:00:00Z")  # fixed
    later_mark = no_show_event("invitee_no_show.created", uri, at[1], mark_uri)
    earlier_unmark = no_show_event("invitee_no_show.deleted", uri, at[0], mark_uri)
    assert post(functions, later_mark).json()["status"] == "recorded"
    assert post(functions, earlier_unmark).json()["status"] == "ignored"
    row = appointment(db, uri)
    assert row is not None and row["no_show"] is True
    newer_unmark = no_show_event("invitee_no_show.deleted", uri, at[2])
    assert post(functions, newer_unmark).json()["status"] == "recorded"
    row = appointment(db, uri)
    assert row is not None and row["no_show"] is False
