"""Consent on record (CALL_CONSENT): a Meta lead's consent checkbox is stored with the disclaimer
text it was given under, and no AI call is placed without it under the default policy. Over real
HTTP and the real database; the Graph and ElevenLabs APIs are the local fakes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from meta_webhook.lead_mapping import map_consents
from tools.fakes.fake_api import FakeClient
from tools.fakes.graph_fake import CONSENT_KEY, default_form
from tools.fakes.samples import leadgen_delivery, new_leadgen_id
from tools.ops.doctor import core as doctor_core
from tools.ops.doctor import meta as doctor_meta
from tools.stack import local as local_stack

from .conftest import (
    ANY_HOUR,
    RULES,
    Functions,
    GraphFake,
    calls,
    claim,
    queued_lead,
    unique_phone,
)

Conn = psycopg.Connection[Any]


# When the person submitted the form: an hour ago, in the Graph API's created_time format.
SUBMITTED = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
CREATED_TIME = SUBMITTED.strftime("%Y-%m-%dT%H:%M:%S+0000")


def new_form_id() -> str:
    """A form id no other test uses (the function reads each form once per process)."""
    return str(900_000_000_000_000 + uuid.uuid4().int % 10**14)


def node(lid: str, phone: str, form_id: str, *responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": lid,
        "created_time": CREATED_TIME,
        "form_id": form_id,
        "field_data": [
            {"name": "full_name", "values": ["Consuelo Lead"]},
            {"name": "phone_number", "values": [phone]},
        ],
        **({"custom_disclaimer_responses": list(responses)} if responses else {}),
    }


def box(key: str = CONSENT_KEY, checked: str = "1") -> dict[str, Any]:
    return {"checkbox_key": key, "is_checked": checked}


def stored(db: Conn, lid: str) -> dict[str, Any]:
    with db.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from leads where meta_leadgen_id = %s", (lid,)).fetchone()
    assert row is not None
    return row


def consents(db: Conn, lead_id: str) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select * from consents where lead_id = %s order by id", (lead_id,)
        ).fetchall()


def claim_logs(db: Conn, lead_id: str) -> list[tuple[str, str, str | None, str]]:
    return [
        (str(r[0]), str(r[1]), r[2], str(r[3]))
        for r in db.execute(
            "select event, status, error_code, message from integration_logs "
            "where lead_id = %s and event = 'call.no_consent' order by id",
            (lead_id,),
        )
    ]


def submit(
    functions: Functions, graph: GraphFake, lead_node: dict[str, Any], *, form: Any = None
) -> None:
    if form is not None:
        graph.put(f"forms/{lead_node['form_id']}", form)
    graph.script(lead_node["id"], lead=lead_node)
    answer = functions.post_meta(leadgen_delivery(lead_node["id"]))
    assert answer.status_code == 200 and answer.json()["fetched"] == 1, answer.text


# --- the mapping, without I/O ------------------------------------------------------------------


def test_map_consents_reads_each_box_against_the_form() -> None:
    form = default_form("1")
    checkboxes = form["legal_content"]["custom_disclaimer"]["checkboxes"]
    checkboxes.append({"key": "newsletter", "text": "News", "is_checked_by_default": True})
    lead_node = node(
        "5", "+12125550100", "1", box(), box("newsletter"), box("unknown", "1"), box("x", "0")
    )

    mapped = {c["checkbox_key"]: c for c in map_consents(lead_node, form)}

    consent = mapped[CONSENT_KEY]
    assert (consent["is_checked"], consent["checked_by_default"]) == (True, False)
    assert consent["checkbox_text"].startswith("Acepto que me llame")
    assert "Condiciones" in consent["disclaimer"] and "Acepto" in consent["disclaimer"]
    assert consent["given_at"] == CREATED_TIME
    assert consent["evidence"]["response"] == {"checkbox_key": CONSENT_KEY, "is_checked": "1"}
    assert mapped["newsletter"]["checked_by_default"] is True  # pre-checked: never consent
    assert mapped["unknown"]["checked_by_default"] is None  # not on the form: unknown
    assert mapped["x"]["is_checked"] is False


@pytest.mark.parametrize(
    ("value", "checked"),
    [
        ("1", True),
        (True, True),
        ("true", True),
        ("0", False),
        (False, False),
        ("", False),
        (None, False),
        ({"a": 1}, False),
    ],
)
def test_map_consents_reads_is_checked_strictly(value: Any, checked: bool) -> None:
    [consent] = map_consents(node("5", "+1", "1", box(checked=value)), default_form("1"))
    assert consent["is_checked"] is checked


def test_map_consents_without_responses_or_form_keeps_what_there_is() -> None:
    assert map_consents(node("5", "+1", "1"), None) == []
    [consent] = map_consents(node("5", "+1", "1", box()), None)
    assert (consent["is_checked"], consent["checked_by_default"], consent["disclaimer"]) == (
        True,
        None,
        None,
    )


# --- the flow ----------------------------------------------------------------------------------


def test_checked_box_is_stored_with_the_form_text_and_the_lead_is_called(
    functions: Functions, graph: GraphFake, elevenlabs: FakeClient, db: Conn
) -> None:
    form_id, phone = new_form_id(), unique_phone()
    first, second = new_leadgen_id(), new_leadgen_id()
    submit(functions, graph, node(first, phone, form_id, box()), form=default_form(form_id))
    submit(functions, graph, node(second, unique_phone(), form_id, box()))

    row = stored(db, first)
    [consent] = consents(db, row["id"])
    assert (consent["source"], consent["form_id"], consent["checkbox_key"]) == (
        "meta_form",
        form_id,
        CONSENT_KEY,
    )
    assert (consent["is_checked"], consent["checked_by_default"]) == (True, False)
    assert "inteligencia artificial" in consent["checkbox_text"]
    assert consent["given_at"] == SUBMITTED
    assert consent["evidence"]["response"] == {"checkbox_key": CONSENT_KEY, "is_checked": "1"}
    # The form is read once, stored once, and the call carries the consent it was placed under.
    assert graph.count(form_id) == 1
    name = db.execute("select name from lead_forms where form_id = %s", (form_id,)).fetchone()
    assert name == ("Spring offer form",)
    assert elevenlabs.count(phone) == 1
    [call] = calls(db, str(row["id"]))
    assert call["consent"]["id"] == consent["id"]
    assert call["consent"]["policy"] == "required"


@pytest.mark.parametrize(
    ("responses", "form", "status", "words"),
    [
        ([box(checked="0")], "consent", "ok", "The person did not check the consent box"),
        ([], "consent", "error", "asks for no consent: in Meta Ads Manager, duplicate the form"),
        ([box()], "prechecked", "ok", "pre-checked it, which is never consent"),
    ],
    ids=["unchecked", "no_checkbox", "prechecked"],
)
def test_lead_without_consent_is_not_called_and_the_log_says_what_to_fix(
    functions: Functions,
    graph: GraphFake,
    elevenlabs: FakeClient,
    db: Conn,
    responses: list[dict[str, Any]],
    form: str,
    status: str,
    words: str,
) -> None:
    form_id, phone, lid = new_form_id(), unique_phone(), new_leadgen_id()
    shown = default_form(form_id)
    if form == "prechecked":
        shown["legal_content"]["custom_disclaimer"]["checkboxes"][0]["is_checked_by_default"] = True
    submit(functions, graph, node(lid, phone, form_id, *responses), form=shown)

    row = stored(db, lid)
    assert row["status"] == "no_consent"
    assert elevenlabs.count(phone) == 0
    assert calls(db, str(row["id"])) == []
    [(event, log_status, code, message)] = claim_logs(db, str(row["id"]))
    assert (event, log_status, code) == (
        "call.no_consent",
        status,
        None if status == "ok" else "no_consent",
    )
    assert words in message
    if not responses:
        assert form_id in message


def test_policy_recorded_calls_and_keeps_the_absence_off_keeps_nothing(db: Conn) -> None:
    recorded = queued_lead(db, consent=False)
    off = queued_lead(db, consent=False)

    assert claim(db, recorded, {**RULES, **ANY_HOUR, "consent": "recorded"})["decision"] == "place"
    assert claim(db, off, {**RULES, **ANY_HOUR, "consent": "off"})["decision"] == "place"

    assert calls(db, recorded)[0]["consent"] == {"id": None, "policy": "recorded"}
    assert calls(db, off)[0]["consent"] is None


def test_consent_checkboxes_name_the_boxes_that_count(db: Conn) -> None:
    lead_id = queued_lead(db, consent=False)
    db.execute(
        "insert into consents (lead_id, source, form_id, checkbox_key, is_checked, "
        "checked_by_default) values (%s, 'meta_form', '1', 'newsletter', true, false)",
        (lead_id,),
    )
    other = queued_lead(db, consent=False)
    db.execute(
        "insert into consents (lead_id, source, form_id, checkbox_key, is_checked, "
        "checked_by_default) values (%s, 'meta_form', '1', 'newsletter', true, false)",
        (other,),
    )

    named = {**RULES, **ANY_HOUR, "consent_checkboxes": [CONSENT_KEY]}
    assert claim(db, lead_id, named)["decision"] == "no_consent"
    assert claim(db, other, {**RULES, **ANY_HOUR})["decision"] == "place"  # empty: any box


def test_a_lead_queued_again_after_its_consent_is_recorded_is_called(db: Conn) -> None:
    lead_id = queued_lead(db, consent=False)
    assert claim(db, lead_id, {**RULES, **ANY_HOUR})["decision"] == "no_consent"
    db.execute(
        "insert into consents (lead_id, source, is_checked, evidence) "
        "values (%s, 'manual', true, '{\"by\": \"phone call of 2026-12-01\"}')",
        (lead_id,),
    )
    db.execute(
        "update leads set status = 'call_queued', next_call_at = public.clock_now() where id = %s",
        (lead_id,),
    )
    assert claim(db, lead_id, {**RULES, **ANY_HOUR})["decision"] == "place"


def test_consents_are_append_only(stack: local_stack.Stack, db: Conn) -> None:
    lead_id = queued_lead(db)
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        for sql in (
            "update consents set is_checked = false where lead_id = %s",
            "delete from consents where lead_id = %s",
            "delete from leads where id = %s",
        ):
            with pytest.raises(psycopg.errors.Error):
                conn.execute(sql, (lead_id,))
    assert len(consents(db, lead_id)) == 1


# --- make doctor -------------------------------------------------------------------------------


def test_doctor_warns_for_each_active_form_without_a_consent_box(
    stack: local_stack.Stack, graph: GraphFake
) -> None:
    good, bare, paused = new_form_id(), new_form_id(), new_form_id()
    graph.reset()  # only these forms on the Page
    graph.put(f"forms/{good}", default_form(good))
    graph.put(f"forms/{bare}", {**default_form(bare, consent=False), "name": "Bare form"})
    graph.put(f"forms/{paused}", {**default_form(paused, consent=False), "status": "ARCHIVED"})
    try:
        with doctor_core.Context(stack.env) as ctx:
            result = doctor_meta.check_lead_forms_consent(ctx)
    finally:
        graph.reset()

    assert result.status == "warn", result.message
    assert "1 of 2 active forms ask for no consent" in result.message
    assert f"Bare form ({bare}): no consent checkbox in its custom disclaimer" in result.message
    assert "not pre-checked" in result.message and paused not in result.message


def test_doctor_lead_forms_ok_when_each_asks_for_consent(
    stack: local_stack.Stack, graph: GraphFake
) -> None:
    graph.reset()  # the fake's default form, which asks for consent
    with doctor_core.Context(stack.env) as ctx:
        result = doctor_meta.check_lead_forms_consent(ctx)
    assert result.status == "ok", result.message
    assert "each asks for consent" in result.message


# --- make send-test-event --no-consent ---------------------------------------------------------


def test_send_test_event_without_consent_stores_a_lead_that_is_not_called(
    functions: Functions, db: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.ops import send_event

    lid = new_leadgen_id()
    env = {
        "META_APP_SECRET": functions.env["META_APP_SECRET"],
        "META_GRAPH_URL": functions.env["META_GRAPH_URL"],
    }
    argv = ["meta", "--no-consent", "--leadgen-id", lid, "--url", functions.url("meta_webhook")]
    assert send_event.main(argv, env=env) == 0, capsys.readouterr()
    assert "consent box left unchecked" in capsys.readouterr().out
    row = stored(db, lid)
    assert row["status"] == "no_consent"
    assert [c["is_checked"] for c in consents(db, str(row["id"]))] == [False]


def test_send_test_event_without_consent_refuses_a_real_graph_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tools.ops import send_event

    env = {"META_APP_SECRET": "s", "META_GRAPH_URL": "https://graph.facebook.com"}
    assert send_event.main(["meta", "--no-consent", "--url", "http://127.0.0.1:9/x"], env=env) == 2
    assert "needs `make dev`'s Graph fake" in capsys.readouterr().err
