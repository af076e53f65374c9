"""meta_webhook's pure modules: parsing deliveries (leadgen), mapping Graph leads (lead_mapping),
classifying Graph errors (graph_errors)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lib.errors import BadRequest, FailureClass, Forbidden, ProviderFailure
from lib.phone import to_e164
from meta_webhook.graph_errors import classify_graph_error
from meta_webhook.lead_mapping import map_lead
from meta_webhook.meta_events import parse_delivery, verify_subscription
from tools.fakes.samples import batch_delivery, leadgen_delivery

from .conftest import FIXTURES, fixture_bytes


def graph_sample(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "meta" / name).read_text()))


def test_parse_delivery_official_sample_gives_one_lead() -> None:
    parsed = parse_delivery(fixture_bytes("meta/leadgen_webhook_fbsamples.json"))
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["233370042045345"]
    lead = parsed.leads[0]
    assert lead["page_id"] == "138124712925158"
    assert lead["form_id"] == "172036835026334"
    assert lead["ad_id"] is None
    assert lead["created_time"] == 1630087926
    assert parsed.skipped == []


def test_parse_delivery_numeric_ids_become_strings() -> None:
    parsed = parse_delivery(leadgen_delivery("444444444444", numeric=True))
    assert parsed.leads[0]["leadgen_id"] == "444444444444"
    assert parsed.leads[0]["page_id"] == "138124712925158"


def test_parse_delivery_docs_batch_of_entries_and_changes_all_kept() -> None:
    body = batch_delivery("11", "12", "13", "14")
    parsed = parse_delivery(body)
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["11", "12", "13", "14"]
    assert parsed.leads[0]["ad_id"] == "7"
    assert parsed.leads[1]["ad_id"] is None
    assert parsed.leads[1]["page_id"] == "1"  # from the entry when the value has none
    assert parsed.leads[2]["page_id"] == "2"
    assert [(s["event"], s["status"]) for s in parsed.skipped] == [("webhook.feed", "ignored")]


def test_parse_delivery_change_without_leadgen_id_rejected_alone() -> None:
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {"field": "leadgen", "value": {"form_id": "5"}},
                        {"field": "leadgen", "value": {"leadgen_id": "14"}},
                    ],
                }
            ],
        }
    ).encode()
    parsed = parse_delivery(body)
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["14"]
    assert parsed.skipped[0]["status"] == "rejected"
    assert parsed.skipped[0]["error_code"] == "invalid_change"
    assert parsed.skipped[0]["details"] == {
        "where": "entry[0].changes[0]",
        "reason": "has no usable leadgen_id",
        "value": {"form_id": "5"},
    }


def test_parse_delivery_other_object_ignored() -> None:
    parsed = parse_delivery(b'{"object": "user", "entry": []}')
    assert parsed.leads == []
    assert parsed.skipped[0]["status"] == "ignored"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"", "malformed_json"),
        (b"[]", "invalid_payload"),
        (b'{"object": "page"}', "invalid_payload"),
        (b'{"object": "page", "entry": {"id": 1}}', "invalid_payload"),
    ],
)
def test_parse_delivery_malformed_body_bad_request(body: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_delivery(body)
    assert caught.value.code == code
    assert caught.value.status == 400


def test_map_lead_docs_example_maps_standard_and_custom_fields() -> None:
    lead, warnings = map_lead(graph_sample("graph_lead_docs_example.json"), default_region="US")
    assert lead["full_name"] == "Joe Example"
    assert lead["email"] == "joe@example.com"
    assert lead["phone"] is None
    assert lead["answers"] == {
        "car_make": "Honda",
        "full_name": "Joe Example",
        "email": "joe@example.com",
        "selected_dealer": "99213450",
    }
    assert lead["ad_id"] == "6012345678901"
    assert warnings == []


def test_map_lead_first_last_non_ascii_multi_value_and_national_phone() -> None:
    lead, warnings = map_lead(graph_sample("graph_lead_custom_questions.json"), default_region="US")
    assert lead["full_name"] == "Zoë Łukasiewicz-Müller"
    assert lead["email"] == "zoe.lm@example.com"
    assert lead["phone"] == "+14155552671"
    assert lead["answers"]["which_services_are_you_interested_in?"] == ["roof_repair", "gutters"]
    assert lead["answers"]["best_time_to_call"] == "mornings"
    assert lead["answers"]["comments"] == []
    assert lead["platform"] == "ig"
    assert lead["is_organic"] is False
    assert lead["campaign_name"] == "Winter promo 2026"
    assert warnings == []


def test_map_lead_invalid_phone_kept_in_answers_with_warning() -> None:
    node = {"field_data": [{"name": "phone_number", "values": ["12345"]}]}
    lead, warnings = map_lead(node, default_region="GB")
    assert lead["phone"] is None
    assert lead["answers"]["phone_number"] == "12345"
    assert "DEFAULT_PHONE_REGION" in warnings[0]


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("not a number", "US", None),
        ("", "US", None),
        ("555", "US", None),
    ],
)
def test_to_e164_normalises_or_refuses(raw: str, region: str, expected: str | None) -> None:
    assert to_e164(raw, default_region=region) == expected


@pytest.mark.parametrize(
    ("code", "subcode", "error_class", "our_code"),
    [
        (190, 460, "auth", "graph_token_invalid"),
        (190, 463, "auth", "graph_token_invalid"),
        (190, None, "auth", "graph_token_invalid"),
        (10, None, "permission", "graph_permission_denied"),
        (200, None, "permission", "graph_permission_denied"),
        (299, None, "permission", "graph_permission_denied"),
        (4, None, "throttled", "graph_rate_limited"),
        (17, None, "throttled", "graph_rate_limited"),
        (32, None, "throttled", "graph_rate_limited"),
        (613, None, "throttled", "graph_rate_limited"),
        (80005, None, "throttled", "graph_rate_limited"),
        (100, 33, "not_found", "graph_unknown_lead"),
        (1, None, "transient", "graph_unavailable"),
        (2, None, "transient", "graph_unavailable"),
        (12345, None, "transient", "graph_error"),
    ],
)
def test_classify_graph_error_by_code(
    code: int, subcode: int | None, error_class: str, our_code: str
) -> None:
    error: dict[str, Any] = {
        "message": "x",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "t",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    err = classify_graph_error(400, {"error": error})
    assert (err.failure_class, err.code) == (error_class, our_code)
    assert err.details["graph_code"] == code


def test_classify_graph_error_docs_190_says_renew_token() -> None:
    err = classify_graph_error(400, graph_sample("graph_error_190_docs_example.json"))
    assert err.code == "graph_token_invalid"
    assert "META_ACCESS_TOKEN" in err.message
    assert err.details["fbtrace_id"] == "EJplcsCHuLu"


def test_classify_graph_error_html_5xx_is_transient() -> None:
    err = classify_graph_error(502, None)
    assert (err.failure_class, err.code) == ("transient", "graph_unavailable")


def test_classify_graph_error_bad_appsecret_proof_points_at_app_secret() -> None:
    err = classify_graph_error(
        400,
        {"error": {"message": "Invalid appsecret_proof provided in the API argument", "code": 100}},
    )
    assert err.code == "graph_appsecret_proof_invalid"
    assert "META_APP_SECRET" in err.message


def test_verify_subscription_right_token_returns_challenge_verbatim() -> None:
    args = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "t"}
    assert verify_subscription(args, verify_token="t") == "1158201444"


@pytest.mark.parametrize(
    "args",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "t"},
        {"hub.mode": "subscribe", "hub.verify_token": "t"},
        {},
    ],
)
def test_verify_subscription_anything_else_forbidden(args: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        verify_subscription(args, verify_token="t")


@pytest.mark.parametrize("leadgen_id", ["", "   ", None, {"id": 1}, True, "12 34; drop"])
def test_parse_delivery_unusable_leadgen_id_rejected_alone(leadgen_id: Any) -> None:
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {"field": "leadgen", "value": {"leadgen_id": leadgen_id}},
                        {"field": "leadgen", "value": {"leadgen_id": "15"}},
                    ],
                }
            ],
        }
    ).encode()
    parsed = parse_delivery(body)
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["15"]
    assert [s["status"] for s in parsed.skipped] == ["rejected"]


def test_parse_delivery_odd_optional_fields_keep_the_lead() -> None:
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "leadgen",
                            "value": {
                                "leadgen_id": " 16 ",
                                "form_id": {"x": 1},
                                "ad_id": None,
                                "page_id": True,
                                "created_time": "yesterday",
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    parsed = parse_delivery(body)
    assert parsed.skipped == []
    lead = parsed.leads[0]
    assert lead["leadgen_id"] == "16"
    assert (lead["form_id"], lead["ad_id"], lead["created_time"]) == (None, None, None)
    assert lead["page_id"] == "1"  # from the entry


def poisoned(value_json: str, *, entry_time: str = "1") -> bytes:
    """A delivery of a good change (leadgen_id 11) and a change whose value is ``value_json``,
    spliced in as raw JSON text (NaN, huge numbers and deep nesting cannot be json.dumps'ed)."""
    good = '{"field":"leadgen","value":{"leadgen_id":"11","form_id":"5"}}'
    bad = '{"field":"leadgen","value":' + value_json + "}"
    return (
        '{"object":"page","entry":[{"id":"42","time":'
        + entry_time
        + ',"changes":['
        + good
        + ","
        + bad
        + "]}]}"
    ).encode()


@pytest.mark.parametrize(
    ("value_json", "warning"),
    [
        ('{"leadgen_id":"12","form_id":"a\\u0000b"}', "form_id: a NUL"),
        ('{"leadgen_id":"12","note":"x\\u0000y"}', "note: a NUL"),
        ('{"leadgen_id":"12","note":"\\ud800"}', "note: a NUL, an invalid character"),
        ('{"leadgen_id":"12","x":NaN}', "x: nan is not a JSON number"),
        ('{"leadgen_id":"12","x":1e999}', "x: inf is not a JSON number"),
        ('{"leadgen_id":"12","x":' + "9" * 5000 + "}", "x: an integer of 5000 digits"),
        ('{"leadgen_id":"12","x":' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than 64"),
    ],
)
def test_parse_delivery_poisoned_value_kept_lead_with_storable_payload(
    value_json: str, warning: str
) -> None:
    parsed = parse_delivery(poisoned(value_json))
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["11", "12"]
    assert parsed.leads[0]["warnings"] == []
    assert any(warning in w for w in parsed.leads[1]["warnings"])
    text = json.dumps(parsed.leads, allow_nan=False)
    assert "\\u0000" not in text and "\\ud800" not in text


@pytest.mark.parametrize(
    "value_json",
    [
        '{"leadgen_id":"1\\u00002"}',
        '{"leadgen_id":NaN}',
        '{"leadgen_id":1e30}',
        '{"leadgen_id":' + "9" * 5000 + "}",
        '{"leadgen_id":' + "[" * 5000 + "]" * 5000 + "}",
        '"not an object"',
    ],
)
def test_parse_delivery_poisoned_leadgen_id_rejected_alone(value_json: str) -> None:
    parsed = parse_delivery(poisoned(value_json))
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["11"]
    (rejected,) = parsed.skipped
    assert (rejected["status"], rejected["error_code"]) == ("rejected", "invalid_change")
    assert rejected["details"]["where"] == "entry[0].changes[1]"
    assert "leadgen_id" in rejected["message"]
    json.dumps(parsed.skipped, allow_nan=False)


@pytest.mark.parametrize("entry_time", ["1.5", "1e30", "NaN", '"soon"', "-5"])
def test_parse_delivery_odd_entry_time_costs_nothing(entry_time: str) -> None:
    parsed = parse_delivery(poisoned('{"leadgen_id":"12"}', entry_time=entry_time))
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["11", "12"]
    assert all(lead["payload"]["entry_time"] is None for lead in parsed.leads)


def test_parse_delivery_entries_and_changes_of_wrong_shape_rejected_alone() -> None:
    body = (
        b'{"object":"page","entry":["x",{"id":"1","changes":['
        b'{"field":"leadgen","value":{"leadgen_id":"5"}},7,{"value":{}}]}]}'
    )
    parsed = parse_delivery(body)
    assert [lead["leadgen_id"] for lead in parsed.leads] == ["5"]
    assert [s["details"]["where"] for s in parsed.skipped] == [
        "entry[0]",
        "entry[1].changes[1]",
        "entry[1].changes[2]",
    ]


def test_map_lead_nul_in_an_answer_replaced_and_named() -> None:
    node = {"field_data": [{"name": "full_name", "values": ["hello\u0000world"]}]}
    lead, warnings = map_lead(node, default_region="US")
    assert lead["answers"] == {"full_name": "hello\ufffdworld"}
    assert lead["full_name"] == "hello\ufffdworld"
    assert warnings and "field_data[0] (full_name)" in warnings[0]


@pytest.mark.parametrize(
    "node",
    [
        {"id": "1", "field_data": ["oops"]},
        {"id": "1"},
        {"id": "1", "field_data": {"name": "email"}},
        {"id": "1", "field_data": []},
        {"id": "1", "field_data": [{"name": "", "values": ["x"]}, {"values": ["y"]}]},
    ],
)
def test_map_lead_without_usable_answers_is_malformed_failure(node: dict[str, Any]) -> None:
    with pytest.raises(ProviderFailure) as caught:
        map_lead(node, default_region="US")
    assert caught.value.failure_class is FailureClass.MALFORMED
    assert caught.value.code == "graph_lead_malformed"
    assert "field_data" in caught.value.message


def test_map_lead_bad_items_cost_only_themselves() -> None:
    node = {
        "form_id": 1.5,
        "ad_name": {"x": 1},
        "field_data": [
            {"name": "email", "values": ["Zoe@Example.com"]},
            "oops",
            {"name": "budget", "values": [{"nested": True}]},
            {"name": "city", "values": "Madrid"},
            {"name": "phone_number", "values": [5]},
        ],
    }
    lead, warnings = map_lead(node, default_region="US")
    assert lead["email"] == "zoe@example.com"
    assert lead["answers"] == {
        "email": "Zoe@Example.com",
        "budget": [],
        "city": "Madrid",
        "phone_number": "5",
    }
    assert "form_id" not in lead and "ad_name" not in lead
    assert any("field_data[1]" in w for w in warnings)
    assert any("field_data[2] (budget)" in w for w in warnings)


@pytest.mark.parametrize(
    ("raw", "zones", "single"),
    [
        ("+34 612 345 678", ["Atlantic/Canary", "Europe/Madrid"], None),  # a Spanish mobile
        ("+34 912 345 678", ["Europe/Madrid"], "Europe/Madrid"),
        ("+1 212 555 0100", ["America/New_York"], "America/New_York"),
        ("+44 7700 900123", [], None),  # the prefix tells no zone
    ],
)
def test_map_lead_keeps_every_time_zone_of_the_number(
    raw: str, zones: list[str], single: str | None
) -> None:
    node = {"field_data": [{"name": "phone_number", "values": [raw]}]}
    lead, _ = map_lead(node, default_region="US")
    assert (lead["timezones"], lead["timezone"]) == (zones, single)


@pytest.mark.parametrize(("status", "body"), [(204, b""), (201, b'{"id": "1"}')])
def test_graph_answer_other_than_200_is_classified(status: int, body: bytes) -> None:
    import httpx

    from meta_webhook.graph_api import GraphClient

    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    graph = GraphClient(
        base_url="https://graph.example",
        version="v25.0",
        access_token="t",
        app_secret="s",
        timeout=1,
        http_client=httpx.Client(transport=transport),
    )
    with pytest.raises(ProviderFailure) as caught:
        graph.fetch_lead("123")
    assert caught.value.code == "graph_unavailable"
    assert caught.value.details["http_status"] == status
