"""The ElevenLabs client (place_call/elevenlabs_api.py): every answer class through
httpx.MockTransport, then against the local fake (tools/fakes/elevenlabs_fake.py) over real
HTTP; and the post-call webhook builders (tools/fakes/elevenlabs_samples.py) against the docs'
samples."""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from lib.errors import ConfigError, FailureClass, ProviderFailure
from lib.settings import reload_settings
from lib.signatures import verify_elevenlabs
from place_call.elevenlabs_api import ElevenLabsClient, OutboundCall, get_elevenlabs
from tests.conftest import (
    ELEVENLABS_FAKE_AGENT,
    ELEVENLABS_FAKE_KEY,
    ELEVENLABS_FAKE_NUMBER_ID,
    FIXTURES,
    ElevenLabsFake,
)
from tools.fakes import elevenlabs_samples

BASE = "https://api.elevenlabs.test"
VARIABLES = {"lead_id": "5d0c1c58-4b9e-4a8e-9a55-2f1b4c3d2e1f", "lead_name": "Ana", "attempt": 1}
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / "elevenlabs" / name).read_text())


_numbers = itertools.count(secrets.randbelow(9_000))


def new_number() -> str:
    """A phone number no other test uses (the fake files calls under it)."""
    return f"+1212555{next(_numbers) % 10_000:04d}"


def mock_client(handler: Handler, *, telephony: str = "twilio") -> ElevenLabsClient:
    return ElevenLabsClient(
        base_url=BASE + "/",
        api_key=ELEVENLABS_FAKE_KEY,
        timeout=1.0,
        telephony=telephony,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def answering(status: int, body: Any = None, *, text: str | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text)
        return httpx.Response(status, json=body)

    return handler


def place(client: ElevenLabsClient, to_number: str = "+12125550123") -> OutboundCall:
    return client.outbound_call(
        agent_id=ELEVENLABS_FAKE_AGENT,
        phone_number_id=ELEVENLABS_FAKE_NUMBER_ID,
        to_number=to_number,
        dynamic_variables=VARIABLES,
    )


def failure_of(call: Callable[[], Any]) -> ProviderFailure:
    with pytest.raises(ProviderFailure) as caught:
        call()
    return caught.value


# --- the request and a successful answer -----------------------------------------------------


def test_outbound_call_twilio_sends_documented_request_reads_callsid() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json=fixture("elevenlabs_outbound_call_response_reconstructed.json")
        )

    placed = place(mock_client(handler))

    assert placed == OutboundCall(
        conversation_id="conv_0000000000000000000000000",
        call_sid="CA00000000000000000000000000000000",
        message="Success",
    )
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/convai/twilio/outbound-call"
    assert request.headers["xi-api-key"] == ELEVENLABS_FAKE_KEY
    body = json.loads(request.content)
    assert body == {
        "agent_id": ELEVENLABS_FAKE_AGENT,
        "agent_phone_number_id": ELEVENLABS_FAKE_NUMBER_ID,
        "to_number": "+12125550123",
        "conversation_initiation_client_data": {"dynamic_variables": VARIABLES},
    }
    documented = fixture("elevenlabs_outbound_call_request_reconstructed.json")
    assert body.keys() == documented.keys()


def test_outbound_call_sip_trunk_uses_sip_endpoint_reads_sip_call_id() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        answer = fixture("elevenlabs_sip_outbound_call_response_reconstructed.json")
        return httpx.Response(200, json=answer)

    placed = place(mock_client(handler, telephony="sip_trunk"))

    assert seen == ["/v1/convai/sip-trunk/outbound-call"]
    assert placed.call_sid == "00000000-0000-0000-0000-000000000000"
    assert placed.conversation_id == "conv_0000000000000000000000000"


def test_outbound_call_null_call_sid_accepted_as_none() -> None:
    body = {"success": True, "message": "Success", "conversation_id": "conv_1", "callSid": None}

    placed = place(mock_client(answering(200, body)))

    assert placed == OutboundCall(conversation_id="conv_1", call_sid=None, message="Success")


@pytest.mark.parametrize("conversation_id", [None, ""])
def test_outbound_call_success_without_conversation_id_is_ambiguous(
    conversation_id: str | None,
) -> None:
    # Ringing, but nothing to follow it by: recorded as unknown, like a timeout, never as placed.
    body = {"success": True, "message": "Success", "conversation_id": conversation_id}

    failure = failure_of(lambda: place(mock_client(answering(200, body))))

    assert failure.failure_class == FailureClass.AMBIGUOUS
    assert failure.code == "elevenlabs_call_untracked"


def test_client_unknown_telephony_is_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        mock_client(answering(200, {}), telephony="vonage")
    assert caught.value.details["invalid"] == ["ELEVENLABS_TELEPHONY"]


# --- every error class -----------------------------------------------------------------------


def test_outbound_call_success_false_is_invalid_call_refused() -> None:
    body = {
        "success": False,
        "message": "Failed to initiate call: number unreachable",
        "conversation_id": None,
        "callSid": None,
    }

    failure = failure_of(lambda: place(mock_client(answering(200, body)), "+12125550199"))

    assert failure.failure_class == FailureClass.INVALID
    assert failure.code == "elevenlabs_call_refused"
    assert '"Failed to initiate call: number unreachable"' in failure.message
    assert failure.details["to_number"] == "+12*******99"
    assert "+12125550199" not in failure.message + json.dumps(failure.details)


def test_outbound_call_422_is_config_with_each_loc_and_msg() -> None:
    body = fixture("elevenlabs_http_422_validation_error_reconstructed.json")
    body["detail"].append(
        {"loc": ["body", "agent_id"], "msg": "bad id", "type": "x", "input": "+12125550123"}
    )

    failure = failure_of(lambda: place(mock_client(answering(422, body))))

    assert failure.failure_class == FailureClass.CONFIG
    assert failure.code == "elevenlabs_request_invalid"
    assert "body.to_number: Field required; body.agent_id: bad id" in failure.message
    assert "check ELEVENLABS_AGENT_ID" in failure.message
    assert "ELEVENLABS_PHONE_NUMBER_ID" in failure.message
    assert failure.details["errors"] == ["body.to_number: Field required", "body.agent_id: bad id"]
    # The validation error's ``input`` (here the phone number) is never kept.
    assert "+12125550123" not in failure.message + json.dumps(failure.details)


@pytest.mark.parametrize(
    "body",
    [
        # As ElevenLabs answers it (home-assistant/core#160414).
        {
            "detail": {
                "status": "quota_exceeded",
                "message": "This request exceeds your quota of 10000. You have 0 credits "
                "remaining, while 91 credits are required for this request.",
            }
        },
        {"detail": {"status": "payment_issue", "message": "Not enough credits to start a call"}},
        {"detail": "Your quota is exhausted"},
    ],
    ids=["quota_exceeded", "credits_message", "quota_string"],
)
def test_outbound_call_401_out_of_credits_is_quota(body: dict[str, Any]) -> None:
    failure = failure_of(lambda: place(mock_client(answering(401, body))))

    assert failure.failure_class == FailureClass.QUOTA
    assert failure.code == "elevenlabs_quota_exceeded"
    assert "out of credits" in failure.message
    assert "top up in ElevenLabs > Subscription" in failure.message


def test_outbound_call_401_invalid_key_is_auth() -> None:
    body = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}

    failure = failure_of(lambda: place(mock_client(answering(401, body))))

    assert failure.failure_class == FailureClass.AUTH
    assert failure.code == "elevenlabs_api_key_invalid"
    assert '(HTTP 401: "Invalid API key")' in failure.message
    assert "ELEVENLABS_API_KEY is invalid or revoked" in failure.message
    assert failure.details["elevenlabs_status"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {"detail": {"status": "forbidden", "message": "Forbidden"}}),
        # A key restricted to some endpoints (ElevenLabs answers 401 with this status).
        (
            401,
            {
                "detail": {
                    "status": "missing_permissions",
                    "message": "The API key you used is missing the permission convai_write "
                    "to execute this operation.",
                }
            },
        ),
    ],
    ids=["403", "401_missing_permissions"],
)
def test_outbound_call_permission_refused_is_permission(status: int, body: Any) -> None:
    failure = failure_of(lambda: place(mock_client(answering(status, body))))

    assert failure.failure_class == FailureClass.PERMISSION
    assert failure.code == "elevenlabs_permission_denied"
    assert "ElevenLabs > Developers > API Keys" in failure.message


def test_outbound_call_404_is_config_naming_both_ids() -> None:
    body = {"detail": {"status": "agent_not_found", "message": "Agent not found"}}

    failure = failure_of(lambda: place(mock_client(answering(404, body))))

    assert failure.failure_class == FailureClass.CONFIG
    assert failure.code == "elevenlabs_not_found"
    assert "ELEVENLABS_AGENT_ID" in failure.message
    assert "ELEVENLABS_PHONE_NUMBER_ID" in failure.message


def test_outbound_call_429_is_throttled() -> None:
    body = {"detail": {"status": "too_many_concurrent_requests", "message": "Too many calls"}}

    failure = failure_of(lambda: place(mock_client(answering(429, body))))

    assert failure.failure_class == FailureClass.THROTTLED
    assert failure.code == "elevenlabs_rate_limited"
    assert "concurrent" in failure.message


@pytest.mark.parametrize("status", [500, 502, 503])
def test_outbound_call_5xx_is_transient(status: int) -> None:
    failure = failure_of(lambda: place(mock_client(answering(status, text="<html>oops</html>"))))

    assert failure.failure_class == FailureClass.TRANSIENT
    assert failure.code == "elevenlabs_unavailable"
    assert f"(HTTP {status})" in failure.message


def test_outbound_call_other_4xx_is_invalid_request_refused() -> None:
    body = {"detail": {"status": "invalid_phone_number", "message": "Invalid to_number"}}

    failure = failure_of(lambda: place(mock_client(answering(400, body))))

    assert failure.failure_class == FailureClass.INVALID
    assert failure.code == "elevenlabs_request_refused"


@pytest.mark.parametrize(
    "answer",
    [
        {"text": "<html>captive portal</html>"},
        {"body": ["success"]},
        {"body": {"success": "true", "message": "Success"}},
        {"body": {"success": True, "message": "Success", "conversation_id": 42}},
        {"body": {"success": True, "message": "Success", "callSid": {"sid": "CA1"}}},
        {"body": {"success": True, "message": ["Success"]}},
    ],
    ids=["html", "list", "success_string", "conversation_id_number", "callsid_object", "message"],
)
def test_outbound_call_undocumented_answer_is_malformed(answer: dict[str, Any]) -> None:
    handler = answering(200, answer.get("body"), text=answer.get("text"))

    failure = failure_of(lambda: place(mock_client(handler)))

    assert failure.failure_class == FailureClass.MALFORMED
    assert failure.code == "elevenlabs_answer_malformed"
    assert "The call may have started" in failure.message


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def test_outbound_call_read_timeout_is_ambiguous() -> None:
    failure = failure_of(lambda: place(mock_client(raising(httpx.ReadTimeout("slow")))))

    assert failure.failure_class == FailureClass.AMBIGUOUS
    assert failure.code == "elevenlabs_timeout"
    assert "it may have gone through" in failure.message


def test_outbound_call_connect_error_is_transient_unreachable() -> None:
    failure = failure_of(lambda: place(mock_client(raising(httpx.ConnectError("refused")))))

    assert failure.failure_class == FailureClass.TRANSIENT
    assert failure.code == "elevenlabs_unreachable"
    assert "ELEVENLABS_API_URL" in failure.message


# --- the read methods ------------------------------------------------------------------------

READS: dict[str, Callable[[ElevenLabsClient], dict[str, Any]]] = {
    "subscription": lambda client: client.subscription(),
    "agent": lambda client: client.agent(ELEVENLABS_FAKE_AGENT),
    "phone_number": lambda client: client.phone_number(ELEVENLABS_FAKE_NUMBER_ID),
}


def test_reads_get_documented_paths_with_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=fixture("elevenlabs_user_subscription.json"))

    client = mock_client(handler)
    assert client.subscription() == fixture("elevenlabs_user_subscription.json")
    client.agent("agent/../x")
    client.phone_number(ELEVENLABS_FAKE_NUMBER_ID)

    assert [(r.method, r.url.raw_path.decode()) for r in seen] == [
        ("GET", "/v1/user/subscription"),
        ("GET", "/v1/convai/agents/agent%2F..%2Fx"),
        ("GET", f"/v1/convai/phone-numbers/{ELEVENLABS_FAKE_NUMBER_ID}"),
    ]
    assert {r.headers["xi-api-key"] for r in seen} == {ELEVENLABS_FAKE_KEY}


@pytest.mark.parametrize(
    ("status", "body", "failure_class"),
    [
        (401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, "auth"),
        (401, {"detail": {"status": "missing_permissions", "message": "no"}}, "permission"),
        (429, {"detail": {"status": "system_busy", "message": "busy"}}, "throttled"),
        (503, None, "transient"),
        (200, ["not", "an", "object"], "malformed"),
    ],
)
@pytest.mark.parametrize("read", list(READS))
def test_reads_failures_classified_as_outbound_call(
    read: str, status: int, body: Any, failure_class: str
) -> None:
    failure = failure_of(lambda: READS[read](mock_client(answering(status, body))))

    assert failure.failure_class == failure_class
    assert "may have started" not in failure.message


def test_reads_read_timeout_is_transient() -> None:
    client = mock_client(raising(httpx.ReadTimeout("slow")))

    failure = failure_of(client.subscription)

    assert failure.failure_class == FailureClass.TRANSIENT
    assert failure.code == "elevenlabs_timeout"


@pytest.mark.parametrize(
    ("read", "setting"),
    [("agent", "ELEVENLABS_AGENT_ID"), ("phone_number", "ELEVENLABS_PHONE_NUMBER_ID")],
)
def test_reads_404_names_the_setting(read: str, setting: str) -> None:
    body = {"detail": {"status": "not_found", "message": "Not found"}}

    failure = failure_of(lambda: READS[read](mock_client(answering(404, body))))

    assert failure.failure_class == FailureClass.CONFIG
    assert f"check {setting}" in failure.message


# --- get_elevenlabs --------------------------------------------------------------------------


@pytest.fixture
def fresh_config() -> Iterator[None]:
    reload_settings()
    get_elevenlabs.cache_clear()
    yield
    reload_settings()
    get_elevenlabs.cache_clear()


@pytest.mark.usefixtures("fresh_config")
def test_get_elevenlabs_without_key_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)

    with pytest.raises(ConfigError) as caught:
        get_elevenlabs()

    assert caught.value.missing == ["ELEVENLABS_API_KEY"]


@pytest.mark.usefixtures("fresh_config")
def test_get_elevenlabs_from_config_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", ELEVENLABS_FAKE_KEY)
    monkeypatch.setenv("ELEVENLABS_API_URL", BASE)
    monkeypatch.setenv("ELEVENLABS_TELEPHONY", "sip_trunk")

    client = get_elevenlabs()

    assert client is get_elevenlabs()
    assert client._outbound_path == "/v1/convai/sip-trunk/outbound-call"
    assert client._base == BASE
    assert client._headers["xi-api-key"] == ELEVENLABS_FAKE_KEY


# --- against the local fake, over HTTP -------------------------------------------------------


@pytest.fixture(scope="module")
def fake(elevenlabs_fake: ElevenLabsFake) -> ElevenLabsFake:
    return elevenlabs_fake


def fake_client(
    fake: ElevenLabsFake,
    *,
    key: str = ELEVENLABS_FAKE_KEY,
    telephony: str = "twilio",
    timeout: float = 5.0,
) -> ElevenLabsClient:
    return ElevenLabsClient(
        base_url=fake.base,
        api_key=key,
        timeout=timeout,
        telephony=telephony,
        http_client=httpx.Client(),
    )


def test_fake_outbound_call_starts_call_filed_under_number(fake: ElevenLabsFake) -> None:
    number = new_number()

    placed = place(fake_client(fake), number)

    assert re.fullmatch(r"conv_[a-z0-9]{25}", placed.conversation_id or "")
    assert re.fullmatch(r"CA[0-9a-f]{32}", placed.call_sid or "")
    assert placed.message == "Success"
    assert fake.count(number) == 1
    [started] = fake.calls(number)
    assert started["conversation_id"] == placed.conversation_id
    assert started["body"]["conversation_initiation_client_data"]["dynamic_variables"] == VARIABLES


def test_fake_sip_trunk_outbound_call_answers_sip_call_id(fake: ElevenLabsFake) -> None:
    placed = place(fake_client(fake, telephony="sip_trunk"), new_number())

    assert re.fullmatch(r"[0-9a-f-]{36}", placed.call_sid or "")


def test_fake_wrong_key_is_auth(fake: ElevenLabsFake) -> None:
    number = new_number()

    failure = failure_of(lambda: place(fake_client(fake, key="sk_wrong"), number))

    assert failure.failure_class == FailureClass.AUTH
    assert fake.count(number) == 1
    assert fake.calls(number) == []


def test_fake_scripted_5xx_then_success_two_requests(fake: ElevenLabsFake) -> None:
    number = new_number()
    fake.script(number, {"status": 503, "body": {"detail": "Service Unavailable"}})
    client = fake_client(fake)

    failure = failure_of(lambda: place(client, number))
    placed = place(client, number)

    assert failure.failure_class == FailureClass.TRANSIENT
    assert placed.conversation_id
    assert fake.count(number) == 2


@pytest.mark.parametrize(
    ("step", "failure_class", "code"),
    [
        (
            {
                "status": 200,
                "body": {
                    "success": False,
                    "message": "Busy",
                    "conversation_id": None,
                    "callSid": None,
                },
            },
            FailureClass.INVALID,
            "elevenlabs_call_refused",
        ),
        (
            {
                "status": 422,
                "body": fixture("elevenlabs_http_422_validation_error_reconstructed.json"),
            },
            FailureClass.CONFIG,
            "elevenlabs_request_invalid",
        ),
        ({"status": 200, "delay": 1.5, "body": {}}, FailureClass.AMBIGUOUS, "elevenlabs_timeout"),
    ],
    ids=["success_false", "422", "timeout"],
)
def test_fake_scripted_failure_classified(
    fake: ElevenLabsFake, step: dict[str, Any], failure_class: FailureClass, code: str
) -> None:
    number = new_number()
    fake.script(number, step)

    failure = failure_of(lambda: place(fake_client(fake, timeout=0.5), number))

    assert (failure.failure_class, failure.code) == (failure_class, code)
    assert fake.calls(number) == []


def test_fake_unknown_agent_is_config_not_found(fake: ElevenLabsFake) -> None:
    client = fake_client(fake)

    failure = failure_of(
        lambda: client.outbound_call(
            agent_id="agent_unknown",
            phone_number_id=ELEVENLABS_FAKE_NUMBER_ID,
            to_number=new_number(),
            dynamic_variables={},
        )
    )

    assert (failure.failure_class, failure.code) == (FailureClass.CONFIG, "elevenlabs_not_found")
    assert "Agent with id agent_unknown not found" in failure.message


def test_fake_missing_to_number_answers_documented_422(fake: ElevenLabsFake) -> None:
    response = httpx.post(
        f"{fake.base}/v1/convai/twilio/outbound-call",
        headers={"xi-api-key": ELEVENLABS_FAKE_KEY},
        json={
            "agent_id": ELEVENLABS_FAKE_AGENT,
            "agent_phone_number_id": ELEVENLABS_FAKE_NUMBER_ID,
        },
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error == {
        "loc": ["body", "to_number"],
        "msg": "field required",
        "type": "value_error.missing",
    }
    assert (
        error.keys()
        == fixture("elevenlabs_http_422_validation_error_reconstructed.json")["detail"][0].keys()
    )


def test_fake_reads_answer_documented_shapes(fake: ElevenLabsFake) -> None:
    client = fake_client(fake)

    subscription = client.subscription()
    agent = client.agent(ELEVENLABS_FAKE_AGENT)
    number = client.phone_number(ELEVENLABS_FAKE_NUMBER_ID)

    # The OpenAPI example's fields, and the ones the SDK's model requires since
    # (test_elevenlabs_fake_fidelity checks those).
    assert fixture("elevenlabs_user_subscription.json").keys() <= subscription.keys()
    prompt = agent["conversation_config"]["agent"]["prompt"]
    assert prompt["built_in_tools"]["voicemail_detection"]["name"] == "voicemail_detection"
    assert (number["phone_number"], number["phone_number_id"], number["provider"]) == (
        "+17863212663",
        ELEVENLABS_FAKE_NUMBER_ID,
        "twilio",
    )
    for read in (lambda: client.agent("agent_other"), lambda: client.phone_number("phnum_other")):
        assert failure_of(read).failure_class == FailureClass.CONFIG


# --- the post-call webhook builders ----------------------------------------------------------


def keys(value: Any) -> Any:
    """The key structure of a JSON value (dicts' keys, recursively; lists by their first item)."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys(value[0])] if value else []
    return None


def test_samples_transcription_has_every_documented_key() -> None:
    documented = fixture("elevenlabs_post_call_transcription_2025.json")

    event = elevenlabs_samples.post_call_transcription("conv_1", lead_id="lead-1")

    assert event.keys() == documented.keys()
    for part in ("metadata", "analysis", "conversation_initiation_client_data"):
        assert documented["data"][part].keys() <= event["data"][part].keys(), part
    assert documented["data"].keys() - {"user_id"} <= event["data"].keys()
    assert (
        keys(documented["data"]["transcript"][0]).keys()
        == keys(event["data"]["transcript"][0]).keys()
    )
    assert (
        event["data"]["conversation_initiation_client_data"]["dynamic_variables"]["lead_id"]
        == "lead-1"
    )
    assert event["data"]["conversation_id"] == "conv_1"


def test_samples_voicemail_tool_appends_the_reconstructed_turn() -> None:
    turn = fixture("elevenlabs_transcript_turn_voicemail_detection_reconstructed.json")

    event = elevenlabs_samples.post_call_transcription(
        "conv_2", lead_id="lead-2", voicemail_tool=True
    )
    plain = elevenlabs_samples.post_call_transcription("conv_3", lead_id="lead-3")

    last = event["data"]["transcript"][-1]
    assert {**last, "time_in_call_secs": turn["time_in_call_secs"]} == turn
    results = [r for t in plain["data"]["transcript"] for r in t["tool_results"] or []]
    assert results == []


def test_samples_initiation_failure_twilio_and_sip() -> None:
    twilio = elevenlabs_samples.call_initiation_failure(
        "conv_4", failure_reason="no-answer", lead_id=None
    )
    sip = elevenlabs_samples.call_initiation_failure(
        "conv_5", failure_reason="busy", lead_id="lead-5", provider="sip"
    )

    assert twilio["type"] == "call_initiation_failure"
    assert twilio["data"].keys() == {"agent_id", "conversation_id", "failure_reason", "metadata"}
    assert twilio["data"]["metadata"]["type"] == "twilio"
    assert twilio["data"]["metadata"]["body"]["CallStatus"] == "no-answer"
    assert sip["data"]["metadata"]["body"]["sip_status_code"] == 486
    assert sip["data"]["conversation_initiation_client_data"]["dynamic_variables"] == {
        "lead_id": "lead-5"
    }
    with pytest.raises(ValueError, match="failure_reason is one of"):
        elevenlabs_samples.call_initiation_failure("c", failure_reason="rejected", lead_id=None)


def test_samples_audio_has_the_documented_keys() -> None:
    documented = fixture("elevenlabs_post_call_audio.json")

    event = elevenlabs_samples.post_call_audio("conv_6")

    assert keys(event) == keys(documented)


def test_samples_signed_headers_verify() -> None:
    body = elevenlabs_samples.encode(elevenlabs_samples.post_call_audio("conv_7"))

    headers = elevenlabs_samples.signed_headers(body, "wsec_test", timestamp=1_800_000_000)

    verify_elevenlabs(body, headers, secrets=["wsec_test"], now=1_800_000_000)
    assert headers["ElevenLabs-Signature"].startswith("t=1800000000,v0=")
