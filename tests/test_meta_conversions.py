"""Outcomes back to Meta (issue 17, part 1): the lead stages written to the SQL outbox by the
stage changes themselves, sent to the Graph fake's Conversions API by meta_webhook's sweep code,
over the real database; the fake checks each event as Meta's Conversion Leads specification
says. A Meta lead is called, answers and books through the served functions; then the sweep runs
(in this process, with its own settings, as the served functions keep META_DATASET_ID unset)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from lib.db import Database
from meta_webhook import conversions
from meta_webhook.graph_api import graph_for
from meta_webhook.settings import MetaWebhookSettings
from tools.fakes import elevenlabs_samples as samples
from tools.fakes.graph_fake import graph_error
from tools.fakes.samples import leadgen_delivery, new_leadgen_id
from tools.ops.doctor import core as doctor_core
from tools.ops.doctor import meta as doctor_meta

from .conftest import Functions, GraphFake, invitee_event, post, queued_lead, webhook

Conn = psycopg.Connection[Any]
DATASET = "918273645500"


def config(functions: Functions, **changes: str) -> MetaWebhookSettings:
    return MetaWebhookSettings.load(
        {
            "SUPABASE_URL": functions.env["SUPABASE_URL"],
            "SUPABASE_SERVICE_ROLE_KEY": functions.env["SUPABASE_SERVICE_ROLE_KEY"],
            "META_GRAPH_URL": functions.env["META_GRAPH_URL"],
            "META_ACCESS_TOKEN": functions.env["META_ACCESS_TOKEN"],
            "META_APP_SECRET": functions.env["META_APP_SECRET"],
            "META_DATASET_ID": DATASET,
            "META_TEST_EVENT_CODE": "TEST12345",
            **changes,
        }
    )


def run_sweep(functions: Functions, **changes: str) -> dict[str, Any]:
    settings = config(functions, **changes)
    graph = graph_for(settings, settings.require("META_ACCESS_TOKEN")[0])
    db = Database(functions.env["SUPABASE_URL"], functions.env["SUPABASE_SERVICE_ROLE_KEY"])
    return conversions.sweep(db, settings, graph)


def events_of(graph: GraphFake, leadgen_id: str) -> list[dict[str, Any]]:
    answer = graph.http.get("/_fake/events")
    answer.raise_for_status()
    return [e for e in answer.json() if e["user_data"]["lead_id"] == int(leadgen_id)]


def meta_lead(functions: Functions, db: Conn) -> tuple[str, str]:
    """A Meta lead delivered, fetched and queued through meta_webhook: (leadgen id, lead id)."""
    leadgen_id = new_leadgen_id()
    assert functions.post_meta(leadgen_delivery(leadgen_id)).status_code == 200
    row = db.execute(
        "select id::text from leads where meta_leadgen_id = %s", (leadgen_id,)
    ).fetchone()
    assert row is not None
    return leadgen_id, str(row[0])


def only(db: Conn, *lead_ids: str) -> None:
    """Park every other lead's unsent stages: the sweep claims whatever is due in the shared test
    database, and other modules' leads must not share (or split) this test's batches."""
    db.execute(
        "update meta_conversions set status = 'parked' "
        "where status in ('pending', 'sending') and not (lead_id::text = any(%s))",
        (list(lead_ids),),
    )


def answered(functions: Functions, db: Conn, lead_id: str) -> None:
    """The lead's call (placed by meta_webhook's request to place_call) answered."""
    deadline = time.monotonic() + 20
    conversation = None
    while conversation is None and time.monotonic() < deadline:
        row = db.execute(
            "select conversation_id from calls where lead_id = %s and conversation_id is not null",
            (lead_id,),
        ).fetchone()
        conversation = row[0] if row else None
        time.sleep(0.05)
    assert conversation, "the lead was never called"
    event = samples.post_call_transcription(conversation, lead_id=lead_id)
    assert webhook(functions, event).status_code == 200


def test_a_lead_called_answering_and_booking_sends_its_stages_in_order_once(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    leadgen_id, lead_id = meta_lead(functions, db)
    answered(functions, db, lead_id)
    assert post(functions, invitee_event(lead_id=lead_id)).status_code == 200
    # Redelivered webhooks change nothing: each stage is written once.
    assert functions.post_meta(leadgen_delivery(leadgen_id)).status_code == 200
    assert post(functions, invitee_event(lead_id=lead_id)).status_code == 200

    # Two sweeps at once, then one more: each event reaches Meta once.
    only(db, lead_id)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: run_sweep(functions), range(2)))
    run_sweep(functions)

    sent = events_of(graph, leadgen_id)
    assert [e["event_name"] for e in sent] == ["Lead", "Contacted", "Booked"]
    assert [e["event_id"] for e in sent] == [
        f"stl-{leadgen_id}-received",
        f"stl-{leadgen_id}-called",
        f"stl-{leadgen_id}-booked",
    ]
    times = [e["event_time"] for e in sent]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 600
    for e in sent:
        assert e["action_source"] == "system_generated"
        assert e["user_data"] == {"lead_id": int(leadgen_id)}
        assert e["custom_data"] == {"event_source": "crm", "lead_event_source": "Speed to lead"}
        assert (e["dataset_id"], e["test_event_code"]) == (DATASET, "TEST12345")
    rows = db.execute(
        "select stage, status, attempts from meta_conversions where lead_id = %s order by rank",
        (lead_id,),
    ).fetchall()
    assert rows == [("received", "sent", 1), ("called", "sent", 1), ("booked", "sent", 1)]


def test_a_rejected_batch_parks_its_bad_event_alone_and_sends_the_rest(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    leads = [meta_lead(functions, db) for _ in range(5)]
    bad_leadgen, bad_lead = leads[2]
    graph.put("events_reject", {"lead_ids": [int(bad_leadgen)]})
    only(db, *(lead for _, lead in leads))
    try:
        run_sweep(functions)
    finally:
        graph.put("events_reject", {"lead_ids": []})

    for leadgen_id, _ in leads:
        expected = [] if leadgen_id == bad_leadgen else ["Lead"]
        assert [e["event_name"] for e in events_of(graph, leadgen_id)] == expected
    status = db.execute(
        "select status, last_error from meta_conversions where lead_id = %s", (bad_lead,)
    ).fetchone()
    assert status is not None and status[0] == "parked"
    assert "not a lead of this dataset" in status[1]
    logged = db.execute(
        "select message, error_code from integration_logs where lead_id = %s "
        "and event = 'conversion.parked'",
        (bad_lead,),
    ).fetchall()
    assert len(logged) == 1 and "Meta refused the received stage" in logged[0][0]


def test_a_failed_send_is_retried_later_not_lost(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    leadgen_id, lead_id = meta_lead(functions, db)
    graph.script(f"{DATASET}/events", {"status": 503, "body": {"error": "busy"}})
    run_sweep(functions)
    row = db.execute(
        "select status, attempts, next_attempt_at > now() from meta_conversions where lead_id = %s",
        (lead_id,),
    ).fetchone()
    assert row == ("pending", 1, True)
    assert events_of(graph, leadgen_id) == []
    # Its retry time comes: sent.
    db.execute("update meta_conversions set next_attempt_at = now() where lead_id = %s", (lead_id,))
    run_sweep(functions)
    assert [e["event_name"] for e in events_of(graph, leadgen_id)] == ["Lead"]


def test_attended_is_inferred_after_the_meeting_and_grace_and_old_events_are_parked(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    leadgen_id, lead_id = meta_lead(functions, db)
    assert post(functions, invitee_event(lead_id=lead_id)).status_code == 200
    run_sweep(functions)
    # The meeting ended 25 hours ago (META_ATTENDED_GRACE_HOURS is 24): attended, at its end
    # (the lead came two days ago: a stage's time is never before the lead's).
    db.execute("update leads set created_at = now() - interval '2 days' where id = %s", (lead_id,))
    ended = int(time.time()) - 25 * 3600
    db.execute(
        "update appointments set start_time = to_timestamp(%s) - interval '30 minutes', "
        "end_time = to_timestamp(%s) where lead_id = %s",
        (ended, ended, lead_id),
    )
    run_sweep(functions)
    sent = events_of(graph, leadgen_id)
    assert [e["event_name"] for e in sent] == ["Lead", "Booked", "Attended"]
    assert sent[-1]["event_time"] == ended

    # A stage that was never sent and is now 8 days old is parked, with a log row.
    other_leadgen, other = meta_lead(functions, db)
    db.execute(
        "update meta_conversions set event_time = now() - interval '8 days' where lead_id = %s",
        (other,),
    )
    run_sweep(functions)
    assert events_of(graph, other_leadgen) == []
    assert db.execute(
        "select count(*) from integration_logs where lead_id = %s "
        "and error_code = 'conversion_expired'",
        (other,),
    ).fetchone() == (1,)


def test_no_dataset_sends_nothing_and_a_calendly_only_lead_has_no_stage(
    functions: Functions, db: Conn
) -> None:
    assert run_sweep(functions, META_DATASET_ID="") == {}
    answer = post(functions, invitee_event(email=f"only-{new_leadgen_id()}@example.com"))
    assert answer.status_code == 200
    lead_id = answer.json()["lead_id"]
    assert db.execute(
        "select count(*) from meta_conversions where lead_id = %s", (lead_id,)
    ).fetchone() == (0,)


@pytest.fixture(autouse=True)
def _fresh_graph_events(graph: GraphFake) -> None:
    graph.http.put("/_fake/events_reject", json={"lead_ids": []})


def doctor_line(functions: Functions, **changes: str) -> doctor_core.Result:
    env = {**functions.env, "META_DATASET_ID": DATASET, **changes}
    with doctor_core.Context(env) as ctx:
        return doctor_meta.check_conversions(ctx)


def test_doctor_checks_the_dataset_and_the_last_upload(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    assert doctor_line(functions, META_DATASET_ID="") == (
        doctor_core.SKIP,
        "Meta conversions: not checked, META_DATASET_ID is not set (no stage is sent to Meta)",
    )
    wrong = doctor_line(functions, META_CONVERSIONS_TOKEN="not-the-token")
    assert wrong.status == doctor_core.FAIL
    assert wrong.message.startswith(
        f"Meta conversions: dataset {DATASET} does not answer with META_CONVERSIONS_TOKEN: "
    )

    # Earlier tests' parked stages (and those `only` parked) are made two days old.
    _, lead_id = meta_lead(functions, db)
    only(db, lead_id)
    db.execute(
        "update meta_conversions set parked_at = parked_at - interval '2 days' "
        "where status = 'parked'"
    )
    run_sweep(functions)
    fine = doctor_line(functions)
    assert fine.status == doctor_core.OK, fine.message
    assert f"dataset Speed to lead CRM ({DATASET}) answers; last upload " in fine.message

    # A stage parked today is a warning.
    _, parked = meta_lead(functions, db)
    db.execute(
        "update meta_conversions set status = 'parked', parked_at = now() where lead_id = %s",
        (parked,),
    )
    warned = doctor_line(functions)
    assert warned.status == doctor_core.WARN, warned.message
    assert "1 stage(s) parked in the last 24 h" in warned.message
    db.execute(
        "update meta_conversions set parked_at = parked_at - interval '2 days' where lead_id = %s",
        (parked,),
    )

    # A stage waiting two hours and no upload for two days: the sweep cannot send.
    _, waiting = meta_lead(functions, db)
    db.execute(
        "update meta_conversions set created_at = now() - interval '2 hours' where lead_id = %s",
        (waiting,),
    )
    db.execute("update meta_conversions set sent_at = sent_at - interval '2 days'")
    stuck = doctor_line(functions)
    assert stuck.status == doctor_core.FAIL, stuck.message
    assert "stage(s) waiting, the oldest for 2 h, and no upload since" in stuck.message


def test_a_test_lead_s_stages_go_to_test_events_and_the_others_live(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    from tools.ops import send_event

    test_leadgen = new_leadgen_id()
    env = {
        "DATABASE_URL": functions.env["DATABASE_URL"],
        "META_APP_SECRET": functions.env["META_APP_SECRET"],
    }
    argv = ["meta", "--url", functions.url("meta_webhook"), "--leadgen-id", test_leadgen]
    assert send_event.main([*argv, "--test-event-code", "TESTLEAD1"], env) == 0
    live_leadgen, live = meta_lead(functions, db)
    tested = db.execute(
        "select id::text from leads where meta_leadgen_id = %s", (test_leadgen,)
    ).fetchone()
    assert tested is not None
    only(db, live, tested[0])

    run_sweep(functions, META_TEST_EVENT_CODE="")

    assert [e["test_event_code"] for e in events_of(graph, test_leadgen)] == ["TESTLEAD1"]
    assert [e["test_event_code"] for e in events_of(graph, live_leadgen)] == [None]


def test_a_request_meta_refuses_as_a_whole_is_retried_not_parked(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    # A dataset id Meta does not know: code 100 with subcode 33, the request's fault.
    _, lead_id = meta_lead(functions, db)
    only(db, lead_id)
    unknown = {
        "status": 400,
        "body": graph_error(
            "Unsupported post request. Object with ID '918273645500' does not exist", 100,
            subcode=33,
        ),
    }  # fmt: skip
    graph.script(f"{DATASET}/events", unknown)
    assert run_sweep(functions)["requests"] == 1  # no bisection
    row = db.execute(
        "select status, attempts from meta_conversions where lead_id = %s", (lead_id,)
    ).fetchone()
    assert row == ("pending", 1)
    failed = db.execute(
        "select message from integration_logs where event = 'conversion.failed' "
        "order by id desc limit 1"
    ).fetchone()
    assert failed is not None and "does not exist" in failed[0]


def test_a_lone_rejected_event_is_retried_since_nothing_proves_it_alone_is_bad(
    functions: Functions, db: Conn, graph: GraphFake
) -> None:
    leadgen_id, lead_id = meta_lead(functions, db)
    only(db, lead_id)
    graph.put("events_reject", {"lead_ids": [int(leadgen_id)]})
    run_sweep(functions)
    row = db.execute(
        "select status from meta_conversions where lead_id = %s", (lead_id,)
    ).fetchone()
    assert row == ("pending",)


def test_backoff_stays_at_an_hour_after_many_failures(db: Conn) -> None:
    lead_id = queued_lead(db, source="meta_lead_ads", meta_leadgen_id=new_leadgen_id())
    db.execute(
        "update meta_conversions set status = 'sending', attempts = 50 where lead_id = %s",
        (lead_id,),
    )
    [row_id] = [
        r[0] for r in db.execute("select id from meta_conversions where lead_id = %s", (lead_id,))
    ]
    failed = [{"id": row_id, "attempts": 50, "error": "busy", "code": "graph_unavailable"}]
    db.execute("select public.meta_conversions_done('[]', %s)", (json.dumps(failed),))
    wait = db.execute(
        "select next_attempt_at - now() from meta_conversions where id = %s", (row_id,)
    ).fetchone()
    assert wait is not None and timedelta(minutes=63) < wait[0] <= timedelta(minutes=64)
    # An answer for an earlier claim (attempts moved on since) changes nothing.
    db.execute("update meta_conversions set status = 'sending' where id = %s", (row_id,))
    late = [{"id": row_id, "attempts": 49}]
    db.execute("select public.meta_conversions_done(%s, '[]')", (json.dumps(late),))
    assert db.execute(
        "select status from meta_conversions where id = %s", (row_id,)
    ).fetchone() == ("sending",)


def test_without_a_dataset_stages_older_than_a_week_are_dropped_quietly(
    functions: Functions, db: Conn
) -> None:
    _, lead_id = meta_lead(functions, db)
    db.execute(
        "update meta_conversions set event_time = now() - interval '8 days' where lead_id = %s",
        (lead_id,),
    )
    assert run_sweep(functions, META_DATASET_ID="") == {}
    assert db.execute(
        "select count(*) from meta_conversions where lead_id = %s", (lead_id,)
    ).fetchone() == (0,)
    assert db.execute(
        "select count(*) from integration_logs where lead_id = %s and event like 'conversion.%%'",
        (lead_id,),
    ).fetchone() == (0,)


def test_a_sweep_out_of_time_defers_its_batch_and_sends_nothing(functions: Functions) -> None:
    settings = config(functions)
    sender = conversions.Sender(
        graph_for(settings, settings.require("META_ACCESS_TOKEN")[0]), settings, 0
    )
    row = {"id": 1, "attempts": 1, "lead_id": "x", "leadgen_id": "1", "stage": "received",
           "event_time": int(time.time()), "event_id": "stl-1-received"}  # fmt: skip

    assert sender.send([row]) is False

    assert sender.requests == 0 and sender.sent == []
    assert sender.failed == [
        {"id": 1, "attempts": 1, "error": "not sent: this sweep's time is spent",
         "code": "meta_batch_deferred", "park": False}
    ]  # fmt: skip


def test_a_claim_not_yet_committed_holds_back_the_later_stages_of_its_leads(
    functions: Functions, db: Conn
) -> None:
    lead_id = queued_lead(db, source="meta_lead_ads", meta_leadgen_id=new_leadgen_id())
    db.execute("select public.meta_conversion_add(%s, 'called', now())", (lead_id,))
    only(db, lead_id)
    url = functions.env["DATABASE_URL"]
    with psycopg.connect(url) as first, psycopg.connect(url, autocommit=True) as second:
        # The first sweep claims the lead's first stage and has not committed yet.
        row = first.execute("select public.meta_conversions_claim(1, 120, 24)").fetchone()
        assert row is not None and [c["stage"] for c in row[0]["claimed"]] == ["received"]
        # A second sweep meanwhile must not take the later stage: it waits for the first.
        second.execute("set lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            second.execute("select public.meta_conversions_claim(1000, 120, 24)")
        first.rollback()
