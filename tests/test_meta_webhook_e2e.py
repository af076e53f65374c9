"""meta_webhook end to end: functions-framework over real HTTP, the real database through the
PostgREST stand-in, the Graph API faked at its HTTP boundary."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from lib.signatures import sign_meta
from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import batch_delivery, leadgen_delivery, meta_headers, new_leadgen_id
from tools.stack import local as local_stack

from .conftest import CONSENTED, FIXTURES, Functions, GraphFake, fixture_bytes, serve_functions

Conn = psycopg.Connection[Any]


def lead(db: Conn, leadgen_id: str) -> dict[str, Any] | None:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select * from leads where meta_leadgen_id = %s", (leadgen_id,)
        ).fetchone()


def logs(db: Conn, external_id: str) -> list[tuple[str, str, str | None, str]]:
    return [
        tuple(r)
        for r in db.execute(  # type: ignore[misc]
            "select event, status, error_code, message from integration_logs "
            "where external_id = %s order by id",
            (external_id,),
        )
    ]


def traced_logs(db: Conn, trace: str) -> list[tuple[str, str]]:
    """(status, error_code) of the integration_logs rows that count the request ``trace``."""
    return [
        tuple(r)
        for r in db.execute(  # type: ignore[misc]
            "select status, error_code from integration_logs where details->'trace_ids' ? %s "
            "order by id",
            (trace,),
        )
    ]


def graph_error(code: int, subcode: int | None = None, message: str = "error") -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AXyz",
    }
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


# --- the subscription handshake ------------------------------------------------------------


def test_handshake_right_token_echoes_challenge_as_text(functions: Functions) -> None:
    response = httpx.get(
        functions.url("meta_webhook"),
        params={
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": functions.env["META_VERIFY_TOKEN"],
        },
    )
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_anything_else_403(functions: Functions, params: dict[str, str]) -> None:
    if params.get("hub.mode") == "unsubscribe":
        params["hub.verify_token"] = functions.env["META_VERIFY_TOKEN"]
    response = httpx.get(functions.url("meta_webhook"), params=params)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "verification_failed"


# --- deliveries ----------------------------------------------------------------------------


def test_delivery_official_sample_ends_as_complete_lead(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    sample = json.loads(fixture_bytes("meta/leadgen_webhook_fbsamples.json"))
    lid = new_leadgen_id()
    sample["entry"][0]["changes"][0]["value"]["leadgen_id"] = lid
    # Sent now, as the Lead Ads Testing Tool sends it (a 2021 lead would be too old to call).
    sample["entry"][0]["changes"][0]["value"]["created_time"] = int(time.time())
    node = json.loads((FIXTURES / "meta" / "graph_lead_custom_questions.json").read_text())
    graph.script(lid, lead={**node, **CONSENTED, "id": lid})
    response = functions.post_meta(json.dumps(sample).encode())
    assert response.status_code == 200
    assert response.json() == {
        "received": 1,
        "new": 1,
        "duplicates": 0,
        "fetched": 1,
        "pending": 0,
        "ignored": 0,
        "rejected": 0,
    }
    row = lead(db, lid)
    assert row is not None
    assert (row["status"], row["full_name"], row["email"], row["phone"]) == (
        "calling",
        "Zoë Łukasiewicz-Müller",
        "zoe.lm@example.com",
        "+14155552671",
    )
    assert row["answers"]["which_services_are_you_interested_in?"] == ["roof_repair", "gutters"]
    assert (row["page_id"], row["form_id"], row["campaign_id"]) == (
        "138124712925158",
        "172036835026334",
        "120210000000000003",
    )
    assert [(e, s) for e, s, _, _ in logs(db, lid)] == [
        ("lead.received", "ok"),
        ("lead.fetched", "ok"),
    ]
    assert graph.fetches(lid) == 1


def test_delivery_graph_request_carries_fields_and_appsecret_proof(
    functions: Functions, graph: GraphFake
) -> None:
    lid = new_leadgen_id()
    assert functions.post_meta(leadgen_delivery(lid)).status_code == 200
    (request,) = graph.requests(lid)
    query = request["query"]
    assert "field_data" in query["fields"].split(",")
    token = functions.env["META_ACCESS_TOKEN"]
    assert query["access_token"] == token
    # https://developers.facebook.com/docs/graph-api/securing-requests#appsecret_proof:
    # the HMAC-SHA256 of the access token, keyed by the app secret.
    secret = functions.env["META_APP_SECRET"].encode()
    assert query["appsecret_proof"] == hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def traced(trace: str) -> dict[str, str]:
    """The header that gives a request the trace id ``trace`` (W3C trace context)."""
    return {"traceparent": f"00-{trace}-{'1' * 16}-01"}


def test_delivery_costs_two_database_round_trips_and_a_duplicate_one(
    functions: Functions, database_api: FakeClient
) -> None:
    lid, first, again = new_leadgen_id(), uuid.uuid4().hex, uuid.uuid4().hex
    assert (
        functions.post_meta(leadgen_delivery(lid), headers_extra=traced(first)).json()["fetched"]
        == 1
    )
    # meta_webhook's two, then place_call's (the lead has a phone; the trace goes along).
    assert [r["key"] for r in database_api.requests(trace=first)] == [
        "meta_ingest",
        "meta_complete",
        "call_claim",
        "call_started",
    ]
    assert (
        functions.post_meta(leadgen_delivery(lid), headers_extra=traced(again)).json()["duplicates"]
        == 1
    )
    assert [r["key"] for r in database_api.requests(trace=again)] == ["meta_ingest"]


def test_delivery_tampered_body_401_rejected_nothing_stored(functions: Functions, db: Conn) -> None:
    lid, other = new_leadgen_id(), new_leadgen_id()
    valid = sign_meta(leadgen_delivery(other), secret=functions.env["META_APP_SECRET"])
    trace = uuid.uuid4().hex
    response = httpx.post(
        functions.url("meta_webhook"),
        content=leadgen_delivery(lid),
        headers={"X-Hub-Signature-256": valid, **traced(trace)},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert lead(db, lid) is None
    assert db.execute(
        "select count(*) from webhook_events where external_id = %s", (lid,)
    ).fetchone() == (0,)
    assert traced_logs(db, trace) == [("rejected", "invalid_signature")]


def test_delivery_signed_with_other_secret_401(functions: Functions, db: Conn) -> None:
    lid = new_leadgen_id()
    response = functions.post_meta(leadgen_delivery(lid), secret="not-the-app-secret")
    assert response.status_code == 401
    assert lead(db, lid) is None


def test_delivery_without_signature_401(functions: Functions) -> None:
    response = httpx.post(functions.url("meta_webhook"), content=leadgen_delivery("1"))
    assert response.status_code == 401


def test_delivery_duplicate_sequential_one_lead_one_fetch(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    lid = new_leadgen_id()
    first = functions.post_meta(leadgen_delivery(lid))
    second = functions.post_meta(leadgen_delivery(lid))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["duplicates"] == 1 and second.json()["fetched"] == 0
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = %s", (lid,)
    ).fetchone() == (1,)
    assert graph.fetches(lid) == 1


def test_delivery_duplicate_simultaneous_one_lead_one_fetch(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    lid = new_leadgen_id()
    body = leadgen_delivery(lid)
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: functions.post_meta(body), range(10)))
    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["new"] for r in responses) == 1
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = %s", (lid,)
    ).fetchone() == (1,)
    assert graph.fetches(lid) == 1


def test_delivery_batch_of_entries_and_changes_every_lead_stored(
    functions: Functions, db: Conn
) -> None:
    ids = [new_leadgen_id() for _ in range(4)]
    pages = (new_leadgen_id(), new_leadgen_id())
    body = batch_delivery(*ids, pages=pages)
    response = functions.post_meta(body)
    assert response.status_code == 200
    assert response.json()["received"] == 4
    assert response.json()["fetched"] == 4
    assert response.json()["ignored"] == 1
    rows = {lid: lead(db, lid) for lid in ids}
    assert all(row is not None and row["status"] == "calling" for row in rows.values())
    stored = db.execute(
        "select payload -> 'value' ->> 'ad_id' from webhook_events where external_id = %s",
        (ids[0],),
    ).fetchone()
    assert stored == ("7",)
    assert rows[ids[2]]["page_id"] == pages[1]  # type: ignore[index]
    assert [(e, s) for e, s, _, _ in logs(db, pages[0])] == [("webhook.feed", "ignored")]


@pytest.mark.parametrize(
    ("responses", "error_code", "retried", "words"),
    [
        (
            [{"status": 400, "body": graph_error(190, 463, "Session has expired")}],
            "graph_token_invalid",
            True,
            "META_ACCESS_TOKEN",
        ),
        (
            [{"status": 403, "body": graph_error(10, None, "Permission denied")}],
            "graph_permission_denied",
            True,
            "leads_retrieval",
        ),
        (
            [{"status": 400, "body": graph_error(200)}],
            "graph_permission_denied",
            True,
            "Leads Access Manager",
        ),
        ([{"status": 400, "body": graph_error(4)}], "graph_rate_limited", True, "automatically"),
        ([{"status": 400, "body": graph_error(80005)}], "graph_rate_limited", True, "backoff"),
        (
            [{"status": 400, "body": graph_error(100, 33, "Unsupported get request.")}],
            "graph_unknown_lead",
            False,
            "test button",
        ),
        ([{"status": 500, "body": {"error": "boom"}}], "graph_unavailable", True, "Retried"),
        ([{"status": 200, "body": {"id": "x"}, "delay": 1.5}], "graph_timeout", True, "within"),
    ],
)
def test_delivery_graph_error_lead_pending_with_reason_and_200(
    functions: Functions,
    graph: GraphFake,
    db: Conn,
    responses: list[dict[str, Any]],
    error_code: str,
    retried: bool,
    words: str,
) -> None:
    lid = new_leadgen_id()
    graph.script(lid, *responses)
    response = functions.post_meta(leadgen_delivery(lid))
    assert response.status_code == 200
    assert response.json()["pending"] == 1
    row = lead(db, lid)
    assert row is not None
    assert (row["status"], row["fetch_error_code"]) == ("fetch_pending", error_code)
    assert (row["next_fetch_at"] is not None) is retried
    failure = [entry for entry in logs(db, lid) if entry[0] == "lead.fetch_failed"]
    assert failure and failure[0][1:3] == ("error", error_code)
    assert words in failure[0][3]


def test_sweep_completes_lead_once_graph_recovers(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    lid = new_leadgen_id()
    graph.script(lid, {"status": 503, "body": graph_error(2, None, "Service unavailable")})
    functions.post_meta(leadgen_delivery(lid))
    row = lead(db, lid)
    assert row is not None and row["status"] == "fetch_pending"
    # The retry is due 30 s later; move it to the front of the queue instead of waiting.
    db.execute(
        "update leads set next_fetch_at = now() - interval '1 day' where id = %s", (row["id"],)
    )
    response = functions.sweep()
    assert response.status_code == 200
    assert response.json()["claimed"] >= 1 and response.json()["completed"] >= 1
    done = lead(db, lid)
    assert done is not None and done["status"] == "calling" and done["fetch_error_code"] is None
    assert done["fetch_attempts"] == 2
    assert graph.fetches(lid) == 2


def test_sweep_nothing_due_answers_zero_counts(functions: Functions, db: Conn) -> None:
    db.execute(
        "update leads set next_fetch_at = now() + interval '1 hour' "
        "where status = 'fetch_pending' and next_fetch_at <= now()"
    )
    response = functions.sweep()
    assert response.status_code == 200
    answer = response.json()
    assert answer.pop("retention").keys() == {"logs", "events", "before"}
    assert answer.pop("conversions") == {}  # META_DATASET_ID unset: no stage is sent
    assert isinstance(answer.pop("recovery"), dict)  # the daily recovery (test_backfill)
    assert answer == {
        "claimed": 0,
        "completed": 0,
        "failed": 0,
        "remaining": 0,
        "batches": 1,
    }


def test_sweep_drains_a_backlog_batch_after_batch(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    ids = [new_leadgen_id() for _ in range(140)]  # 20 fetched inline, 120 left due
    assert functions.post_meta(leadgen_delivery(*ids)).json()["fetched"] == 20
    response = functions.sweep()
    assert response.status_code == 200
    assert response.json()["batches"] >= 3  # SWEEP_BATCH_SIZE is 50
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = any(%s) and status = 'calling'",
        (ids,),
    ).fetchone() == (140,)
    assert sum(graph.fetches(lid) for lid in ids[::20]) == 7


def test_sweep_retry_pending_fetches_leads_waiting_on_a_fixed_token(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    lid = new_leadgen_id()
    graph.script(lid, {"status": 400, "body": graph_error(190, 463, "Session has expired")})
    functions.post_meta(leadgen_delivery(lid))
    row = lead(db, lid)
    assert row is not None and row["fetch_error_class"] == "auth"
    assert row["next_fetch_at"] > db.execute("select now()").fetchone()[0]  # type: ignore[index]
    functions.sweep()  # not due: the backoff holds it
    assert lead(db, lid)["status"] == "fetch_pending"  # type: ignore[index]
    response = httpx.post(
        functions.url("meta_webhook", "/sweep"),
        params={"retry": "pending"},
        headers={"Authorization": f"Bearer {functions.env['INTERNAL_TOKEN']}"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["retried"] >= 1
    done = lead(db, lid)
    assert done is not None and done["status"] == "calling"
    assert [e for e, *_ in logs(db, lid)] == ["lead.received", "lead.fetch_failed", "lead.fetched"]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_sweep_without_internal_token_401(functions: Functions, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(functions.url("meta_webhook", "/sweep"), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b'{"object": "page"}', "invalid_payload"),
    ],
)
def test_delivery_malformed_400_and_rejected_log(
    functions: Functions, db: Conn, body: bytes, code: str
) -> None:
    trace = uuid.uuid4().hex
    response = functions.post_meta(body, headers_extra={"X-Cloud-Trace-Context": f"{trace}/1;o=1"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert traced_logs(db, trace) == [("rejected", code)]


def test_delivery_over_body_limit_413(functions: Functions) -> None:
    body = b'{"object": "page", "entry": [], "pad": "' + b"x" * 1_100_000 + b'"}'
    response = functions.post_meta(body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_delivery_batch_of_1000_changes_fits_the_limit(functions: Functions, db: Conn) -> None:
    ids = [new_leadgen_id() for _ in range(1000)]
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "138124712925158",
                    "time": 1,
                    "changes": [
                        {
                            "field": "leadgen",
                            "value": {
                                "leadgen_id": lid,
                                "page_id": "138124712925158",
                                "form_id": "172036835026334",
                                "adgroup_id": "120210000000000001",
                                "ad_id": "120210000000000001",
                                "created_time": 1630087926,
                            },
                        }
                        for lid in ids
                    ],
                }
            ],
        }
    ).encode()
    response = functions.post_meta(body)
    assert response.status_code == 200
    assert response.json()["received"] == 1000
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = any(%s)", (ids,)
    ).fetchone() == (1000,)
    # Graph fetches past the inline limit are left due for the sweep, not dropped.
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = any(%s) and status = "
        "'fetch_pending' and next_fetch_at <= now()",
        (ids,),
    ).fetchone() == (980,)
    db.execute(
        "update leads set next_fetch_at = now() + interval '1 hour' "
        "where meta_leadgen_id = any(%s) and status = 'fetch_pending'",
        (ids,),
    )


def test_method_not_allowed_405_with_allow(functions: Functions) -> None:
    response = httpx.put(functions.url("meta_webhook"), content=b"{}")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_unknown_subpath_404_even_when_signed(functions: Functions, db: Conn) -> None:
    lid = new_leadgen_id()
    body = leadgen_delivery(lid)
    signed = meta_headers(body, secret=functions.env["META_APP_SECRET"])
    response = httpx.post(functions.url("meta_webhook", "/anything"), content=body, headers=signed)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert lead(db, lid) is None


def test_handshake_on_sweep_subpath_405(functions: Functions) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": functions.env["META_VERIFY_TOKEN"],
    }
    response = httpx.get(functions.url("meta_webhook", "/sweep"), params=params)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "1158201444" not in response.text


# --- configuration and outages -------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Functions]]:
    started: list[Functions] = []
    yield started
    for server in started:
        server.process.terminate()
        server.process.wait(timeout=10)


def test_missing_app_secret_500_names_variable(
    stack: local_stack.Stack, served: list[Functions], tmp_path: Path
) -> None:
    env = {k: v for k, v in stack.env.items() if k != "META_APP_SECRET"}
    server = serve_functions({**env, "META_APP_SECRET": ""}, tmp_path / "f.log")
    served.append(server)
    response = httpx.post(
        server.url("meta_webhook"),
        content=leadgen_delivery("1"),
        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "missing_configuration"
    assert "META_APP_SECRET" in error["message"]


@pytest.mark.parametrize("outage", ["database API unreachable", "database down behind the API"])
def test_database_outage_503_nothing_written(
    stack: local_stack.Stack,
    served: list[Functions],
    graph: GraphFake,
    db: Conn,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    outage: str,
) -> None:
    supabase_url = (
        f"http://127.0.0.1:{local_stack.free_port()}"
        if outage == "database API unreachable"
        else request.getfixturevalue("dead_database_api")
    )
    server = serve_functions({**stack.env, "SUPABASE_URL": supabase_url}, tmp_path / "f.log")
    served.append(server)
    lid = new_leadgen_id()
    response = server.post_meta(leadgen_delivery(lid))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert lead(db, lid) is None
    assert graph.fetches(lid) == 0


def test_delivery_result_not_recorded_still_200_and_lead_kept_for_sweep(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    lid = new_leadgen_id()
    db.execute("revoke execute on function public.meta_complete(jsonb) from service_role")
    try:
        response = functions.post_meta(leadgen_delivery(lid))
    finally:
        db.execute("grant execute on function public.meta_complete(jsonb) to service_role")
    assert response.status_code == 200
    assert response.json()["pending"] == 1
    row = lead(db, lid)
    assert row is not None
    assert row["status"] == "fetch_pending"
    assert row["next_fetch_at"] is not None  # the lease: the sweep takes it over
    assert graph.fetches(lid) == 1


# --- poison stays local --------------------------------------------------------------------


def poisoned_node(leadgen_id: str, poison: str) -> dict[str, Any]:
    node: dict[str, Any] = {"id": leadgen_id, **CONSENTED}
    if poison == "nul":
        node["field_data"] = [
            {"name": "full_name", "values": ["hello\u0000world"]},
            {"name": "phone_number", "values": ["+14155552671"]},
        ]
    elif poison == "not_objects":
        node["field_data"] = ["oops"]
    return node


@pytest.mark.parametrize("poison", ["nul", "not_objects", "no_field_data"])
def test_poisoned_graph_answer_costs_only_its_own_lead(
    functions: Functions, graph: GraphFake, db: Conn, poison: str
) -> None:
    ids = [new_leadgen_id() for _ in range(26)]
    bad = [ids[3], ids[23]]  # one fetched inline, one left for the sweep (inline limit 20)
    for lid in bad:
        graph.script(lid, lead=poisoned_node(lid, poison))
    response = functions.post_meta(leadgen_delivery(*ids))
    assert response.status_code == 200
    assert response.json()["new"] == 26
    assert functions.sweep().status_code == 200
    rows = {lid: lead(db, lid) for lid in ids}
    good = [lid for lid in ids if lid not in bad]
    # Completed, with their call queued or already placed (place_call's immediate answer may
    # miss its short timeout while it places 20 calls at once; its sweep covers that).
    completed = ("call_queued", "calling")
    assert all(rows[lid]["status"] in completed for lid in good)  # type: ignore[index]
    for lid in bad:
        row = rows[lid]
        assert row is not None
        entries = logs(db, lid)
        if poison == "nul":
            assert row["status"] in completed
            assert row["full_name"] == "hello\ufffdworld" and row["phone"] == "+14155552671"
            fetched = [e for e in entries if e[0] == "lead.fetched"]
            assert fetched and "field_data[0] (full_name)" in fetched[0][3]
        else:
            assert (row["status"], row["fetch_error_code"]) == (
                "fetch_pending",
                "graph_lead_malformed",
            )
            assert row["fetch_error_class"] == "malformed"
            failed = [e for e in entries if e[0] == "lead.fetch_failed"]
            assert failed and "field_data" in failed[0][3]


def test_poisoned_graph_answer_retried_only_up_to_the_cap(
    functions: Functions, graph: GraphFake, db: Conn
) -> None:
    lid = new_leadgen_id()
    graph.script(lid, lead=poisoned_node(lid, "not_objects"))
    functions.post_meta(leadgen_delivery(lid))
    db.execute(
        "update leads set fetch_attempts = 39, next_fetch_at = now() - interval '1 second' "
        "where meta_leadgen_id = %s",
        (lid,),
    )
    assert functions.sweep().status_code == 200
    row = lead(db, lid)
    assert row is not None
    assert (row["status"], row["fetch_attempts"], row["next_fetch_at"]) == (
        "fetch_pending",
        40,
        None,
    )
    assert "No automatic retry" in logs(db, lid)[-1][3]
    assert graph.fetches(lid) == 2


POISONS = {
    "nul": '"note":"x\\u0000y"',
    "lone_surrogate": '"note":"\\ud800"',
    "nan": '"x":NaN',
    "infinity": '"x":1e999',
    "huge_integer": '"x":' + "9" * 5000,
    "deep_nesting": '"x":' + "[" * 3000 + "]" * 3000,
}


@pytest.mark.parametrize("poison", list(POISONS))
@pytest.mark.parametrize("entry_time", ["1630087927", "1.5", "1e30"])
def test_poisoned_delivery_loses_nothing_valid(
    functions: Functions, db: Conn, poison: str, entry_time: str
) -> None:
    page = new_leadgen_id()
    kept, poisoned_value, poisoned_id, after = (new_leadgen_id() for _ in range(4))
    changes = [
        '{"field":"leadgen","value":{"leadgen_id":"' + kept + '"}}',
        '{"field":"leadgen","value":{"leadgen_id":"'
        + poisoned_value
        + '",'
        + POISONS[poison]
        + "}}",
        '{"field":"leadgen","value":{"leadgen_id":"' + poisoned_id + "\\u0000" + '"}}',
        '{"field":"leadgen","value":{"leadgen_id":"' + after + '"}}',
    ]
    body = (
        '{"object":"page","entry":[{"id":"'
        + page
        + '","time":'
        + entry_time
        + ',"changes":['
        + ",".join(changes)
        + "]}]}"
    ).encode()
    response = functions.post_meta(body)
    assert response.status_code == 200
    assert response.json()["received"] == 3 and response.json()["rejected"] == 1
    for lid in (kept, poisoned_value, after):
        row = lead(db, lid)
        assert row is not None and row["status"] == "calling"
    assert lead(db, poisoned_id) is None
    rejected = [e for e in logs(db, page) if e[1] == "rejected"]
    assert [e[2] for e in rejected] == ["invalid_change"]
    assert "entry[0].changes[2]" in rejected[0][3]
    received = [e for e in logs(db, poisoned_value) if e[0] == "lead.received"]
    assert "unusable" in received[0][3]


# --- strangers cannot grow the database ------------------------------------------------------


def test_refused_requests_counted_in_a_bounded_number_of_rows(
    functions: Functions, db: Conn
) -> None:
    traces = [uuid.uuid4().hex for _ in range(60)]
    for trace in traces:
        response = httpx.post(
            functions.url("meta_webhook"),
            content=leadgen_delivery("1"),
            headers={"X-Hub-Signature-256": "sha256=" + "0" * 64, **traced(trace)},
        )
        assert response.status_code == 401
    rows = db.execute(
        "select occurrences, message, jsonb_array_length(details->'trace_ids') "
        "from integration_logs where details->'trace_ids' ?| %s",
        (traces,),
    ).fetchall()
    assert 1 <= len(rows) <= 2  # one a minute (two if the minute turned meanwhile)
    assert sum(occurrences for occurrences, _, _ in rows) >= len(traces)
    assert all(kept <= 10 for _, _, kept in rows)
    assert "requests refused with invalid_signature" in rows[-1][1]
    assert "META_APP_SECRET" in rows[-1][1]


def test_refused_request_long_path_stored_truncated(functions: Functions, db: Conn) -> None:
    trace = uuid.uuid4().hex
    response = httpx.post(
        functions.url("meta_webhook", "/" + "x" * 60_000), content=b"{}", headers=traced(trace)
    )
    assert response.status_code == 404
    assert len(response.text) < 1_000
    (row,) = db.execute(
        "select details->>'path', message from integration_logs where details->'trace_ids' ? %s",
        (trace,),
    ).fetchall()
    assert len(row[0]) <= 201 and len(row[1]) <= 1_000
