"""The ElevenLabs fake answers as ElevenLabs does: every answer the product reads (outbound call,
conversation, agent, phone number, subscription) and the post-call webhook samples validate
against the official SDK's pydantic models (``elevenlabs``, a test-only dependency; the
product's own client is ``elevenlabs_api``)."""

from __future__ import annotations

from typing import Any

import httpx
import pydantic
import pytest
from elevenlabs.types import (
    GetAgentResponseModel,
    GetConvAiSettingsResponseModel,
    GetConversationResponseModel,
    GetPhoneNumberSipTrunkResponseModel,
    GetPhoneNumberTwilioResponseModel,
    PatchWorkspaceWebhookResponseModel,
    SipTrunkOutboundCallResponse,
    Subscription,
    TwilioOutboundCallResponse,
    WorkspaceWebhookListResponseModel,
)

from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import FakeClient

from .conftest import ELEVENLABS


@pytest.fixture(scope="module")
def api(elevenlabs_url: str) -> httpx.Client:
    return httpx.Client(
        base_url=elevenlabs_url, headers={"xi-api-key": ELEVENLABS["ELEVENLABS_API_KEY"]}
    )


def valid(model: type[pydantic.BaseModel], data: Any) -> None:
    """``data`` is what ``model`` accepts: every required field there, each of its type."""
    model.model_validate(data)


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/convai/twilio/outbound-call", TwilioOutboundCallResponse),
        ("/v1/convai/sip-trunk/outbound-call", SipTrunkOutboundCallResponse),
    ],
)
def test_fake_outbound_call_and_its_conversation_match_the_sdk(
    api: httpx.Client, path: str, model: type[pydantic.BaseModel]
) -> None:
    answer = api.post(
        path,
        json={
            "agent_id": ELEVENLABS["ELEVENLABS_AGENT_ID"],
            "agent_phone_number_id": ELEVENLABS["ELEVENLABS_PHONE_NUMBER_ID"],
            "to_number": "+12125550123",
            "conversation_initiation_client_data": {
                "user_id": "lead-1",
                "dynamic_variables": {"lead_id": "lead-1"},
            },
        },
    )
    assert answer.status_code == 200
    valid(model, answer.json())
    conversation = api.get(f"/v1/convai/conversations/{answer.json()['conversation_id']}")
    assert conversation.status_code == 200
    valid(GetConversationResponseModel, conversation.json())


def test_fake_agent_phone_number_and_subscription_match_the_sdk(
    api: httpx.Client, elevenlabs_url: str
) -> None:
    valid(
        GetAgentResponseModel,
        api.get(f"/v1/convai/agents/{ELEVENLABS['ELEVENLABS_AGENT_ID']}").json(),
    )
    number = api.get(f"/v1/convai/phone-numbers/{ELEVENLABS['ELEVENLABS_PHONE_NUMBER_ID']}").json()
    valid(GetPhoneNumberTwilioResponseModel, number)
    valid(Subscription, api.get("/v1/user/subscription").json())
    valid(WorkspaceWebhookListResponseModel, api.get("/v1/workspace/webhooks").json())
    valid(GetConvAiSettingsResponseModel, api.get("/v1/convai/settings").json())
    control = FakeClient(elevenlabs_url)
    control.put("phone_number", {"provider": "sip_trunk"})
    try:
        number = api.get(f"/v1/convai/phone-numbers/{ELEVENLABS['ELEVENLABS_PHONE_NUMBER_ID']}")
        valid(GetPhoneNumberSipTrunkResponseModel, number.json())
    finally:
        control.put("phone_number", {"provider": "twilio"})


@pytest.mark.parametrize(
    "event",
    [
        samples.post_call_transcription("conv_sdk", lead_id="lead-1"),
        samples.post_call_transcription("conv_sdk", lead_id="lead-1", voicemail_tool=True),
    ],
    ids=["answered", "voicemail"],
)
def test_post_call_samples_data_match_the_sdk_conversation(event: dict[str, Any]) -> None:
    valid(GetConversationResponseModel, event["data"])


def test_fake_webhook_patch_and_agent_overrides_match_the_sdk(
    api: httpx.Client, elevenlabs_url: str
) -> None:
    control = FakeClient(elevenlabs_url)
    hook = api.get("/v1/workspace/webhooks").json()["webhooks"][0]
    try:
        patched = api.patch(
            f"/v1/workspace/webhooks/{hook['webhook_id']}",
            json={"name": hook["name"], "is_disabled": False, "retry_enabled": True},
        )
        valid(PatchWorkspaceWebhookResponseModel, patched.json())
        control.put("agent", {"webhook_overrides": {"exclude_transcript": True}})
        agent = api.get(f"/v1/convai/agents/{ELEVENLABS['ELEVENLABS_AGENT_ID']}").json()
        valid(GetAgentResponseModel, agent)
        assert GetAgentResponseModel.model_validate(
            agent
        ).platform_settings.workspace_overrides.webhooks.exclude_transcript  # type: ignore[union-attr]
    finally:
        control.put("agent", {"webhook_overrides": None})
        control.put("webhooks", [hook])  # type: ignore[arg-type]
    # ElevenLabs requires the name and whether it is disabled on every PATCH.
    refused = api.patch(
        f"/v1/workspace/webhooks/{hook['webhook_id']}", json={"retry_enabled": True}
    )
    assert refused.status_code == 422
