"""A local fake of the ElevenLabs API endpoints this project calls, for `make dev` and the tests.

Shapes follow ElevenLabs' OpenAPI (docs/PROVIDERS.md section 3; tests/fixtures/elevenlabs):

- ``POST /v1/convai/twilio/outbound-call`` → ``{"success": true, "message": "Success",
  "conversation_id": "conv_…", "callSid": "CA<32 hex>"}``; ``POST
  /v1/convai/sip-trunk/outbound-call`` the same with ``sip_call_id``. A body without
  ``agent_id``, ``agent_phone_number_id`` or ``to_number`` is a 422
  ``{"detail": [{"loc": ["body", "to_number"], "msg": "field required", …}]}``;
- ``GET /v1/user/subscription`` (the shape of ``elevenlabs_user_subscription.json``);
- ``GET /v1/convai/agents/{agent_id}``: an agent with the ``voicemail_detection`` system tool
  (in ``conversation_config.agent.prompt.built_in_tools``, by default);
- ``GET /v1/convai/phone-numbers/{phone_number_id}``: the number +17863212663 on Twilio;
- ``GET /v1/convai/conversations/{conversation_id}``: for a conversation the fake started (or a
  test set), a GetConversationResponseModel: the shape of a ``post_call_transcription``'s
  ``data`` (elevenlabs_post_call_transcription_2025.json, built by
  tools/fakes/elevenlabs_samples.py),
  ``status`` ``done`` and an answered call by default, the lead id and number the call was
  placed with;
- an unknown agent, phone number or conversation is a 404 ``{"detail": {"status":
  "agent_not_found" | "phone_number_not_found" | "conversation_not_found", …}}``, a wrong
  ``xi-api-key`` a 401 ``{"detail": {"status": "invalid_api_key", …}}``.

Outbound calls are filed under their ``to_number`` (a test counts the calls to one phone, or
scripts a 5xx, a 422, a ``success: false`` or a ``delay`` for it); other requests under their
path (``/v1/convai/conversations/conv_…``: a test counts the reads of one conversation, or
scripts a 401 or a 5xx for them). The calls and conversations kept are the last
:data:`~tools.fakes.fake_api.LOG_LIMIT`, so a long `make dev` does not grow without bound.

Besides the control routes every fake has (tools/fakes/fake_api.py: requests, scripts, faults),
tests use (never deployed):

- ``GET /_fake/calls[?to_number=…]``: the calls the fake started, oldest first, each
  ``{"to_number", "telephony", "conversation_id", "call_sid", "body", "at"}`` (the body as
  received, parsed; ``at`` the unix time it came);
- ``PUT /_fake/conversations/{conversation_id}`` ``{"status", "voicemail_tool", "transcript",
  "analysis", "metadata", "duration", "summary", "call_successful", "lead_id", "known"}`` (any
  of them): what ``GET /v1/convai/conversations/{conversation_id}`` answers from now on
  (``status`` ``in-progress``: a call still on the line; ``voicemail_tool``: the
  voicemail_detection tool's turn; ``analysis`` and ``metadata`` are merged into the default
  ones; ``known: false``: a 404). A conversation the fake did not start is created;
- ``PUT /_fake/subscription`` ``{"character_count": …, "character_limit": …}``: change the plan;
- ``PUT /_fake/agent`` ``{"voicemail_detection": "built_in" | "tool" | null, "name": …,
  "webhook_overrides": {…} | null}``: where the agent has the voicemail_detection tool
  (``null``: nowhere), and the post-call webhook settings it overrides;
- ``PUT /_fake/phone_number`` ``{"phone_number": …, "provider": …, "label": …}``;
- ``PUT /_fake/webhooks`` ``[workspace webhook, …]``: what ``GET /v1/workspace/webhooks`` lists
  (``PATCH /v1/workspace/webhooks/{webhook_id}`` changes one, as ElevenLabs does: its
  ``is_disabled``, ``name``, ``retry_enabled`` and ``events``);
- ``PUT /_fake/settings`` ``{"post_call_webhook_id", "events", "exclude_transcript",
  "transcript_format"}`` (any of them): the workspace's post-call webhook settings that
  ``GET /v1/convai/settings`` answers (by default the listed webhook, with the transcript and
  call initiation failure events, the transcript included, as JSON).

    ELEVENLABS_API_KEY=… python -m tools.fakes.elevenlabs_fake --port 54332

The key, agent id and phone-number id it expects come from ELEVENLABS_API_KEY,
ELEVENLABS_AGENT_ID and ELEVENLABS_PHONE_NUMBER_ID; unset, any is accepted.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import secrets
import string
import time
import uuid
from collections import OrderedDict, deque
from typing import Any

from tools.fakes import elevenlabs_samples as samples
from tools.fakes.fake_api import LOG_LIMIT, Answer, FakeApi, Request, serve

OUTBOUND_PATHS = {
    "/v1/convai/twilio/outbound-call": "twilio",
    "/v1/convai/sip-trunk/outbound-call": "sip_trunk",
}
SUBSCRIPTION_PATH = "/v1/user/subscription"
WEBHOOKS_PATH = "/v1/workspace/webhooks"
SETTINGS_PATH = "/v1/convai/settings"
DEFAULT_WEBHOOK_ID = "wh_0000000000000000000000001"
# What PUT /_fake/settings may set: ConvAiWebhooks of GET /v1/convai/settings.
WEBHOOK_SETTINGS = ("post_call_webhook_id", "events", "exclude_transcript", "transcript_format")


def workspace_webhook(url: str, **fields: Any) -> dict[str, Any]:
    """A workspace webhook as ``GET /v1/workspace/webhooks`` lists it (SDK
    WorkspaceWebhookResponseModel, with ``retry_enabled`` as ElevenLabs' webhook reference
    lists it), set up as the README says: active, never failed, retries on (`make
    elevenlabs-webhook`; ElevenLabs' own default is off) unless ``fields`` say otherwise."""
    return {
        "name": "speed to lead: place_call",
        "webhook_id": DEFAULT_WEBHOOK_ID,
        "webhook_url": url,
        "is_disabled": False,
        "is_auto_disabled": False,
        "created_at_unix": 1764806400,
        "auth_type": "hmac",
        "usage": [{"usage_type": "ConvAI Settings"}],
        "events": [],
        "most_recent_failure_error_code": None,
        "most_recent_failure_timestamp": None,
        "retry_enabled": True,
        **fields,
    }


def convai_settings(**webhooks: Any) -> dict[str, Any]:
    """``GET /v1/convai/settings`` (SDK GetConvAiSettingsResponseModel): post-call webhooks to
    :data:`DEFAULT_WEBHOOK_ID` with the transcript, unless ``webhooks`` say otherwise."""
    return {
        "conversation_initiation_client_data_webhook": None,
        "webhooks": {
            "post_call_webhook_id": DEFAULT_WEBHOOK_ID,
            "events": ["transcript", "call_initiation_failure"],
            "transcript_format": "json",
            "exclude_transcript": False,
            "send_audio": False,
            **webhooks,
        },
        "can_use_mcp_servers": False,
        "rag_retention_period_days": 10,
    }


_AGENT = re.compile(r"^/v1/convai/agents/([^/]+)$")
_PHONE_NUMBER = re.compile(r"^/v1/convai/phone-numbers/([^/]+)$")
_CONVERSATION = re.compile(r"^/v1/convai/conversations/([^/]+)$")
# What PUT /_fake/conversations/{id} may set (see the module's docstring).
CONVERSATION_SETTINGS = (
    "status",
    "voicemail_tool",
    "transcript",
    "analysis",
    "metadata",
    "duration",
    "summary",
    "call_successful",
    "lead_id",
    "known",
)
REQUIRED_FIELDS = ("agent_id", "agent_phone_number_id", "to_number")
DEFAULT_NUMBER = "+17863212663"
AGENT_NAME = "Laura"
VOICEMAIL_MODES = ("built_in", "tool", None)
INVALID_API_KEY = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
_ALPHANUMERIC = string.ascii_lowercase + string.digits

# GET /v1/user/subscription, as in the OpenAPI's example (elevenlabs_user_subscription.json), with
# room for many calls.
DEFAULT_SUBSCRIPTION: dict[str, Any] = {
    "allowed_to_extend_character_limit": True,
    "billing_period": "monthly_period",
    "can_extend_character_limit": True,
    "can_extend_voice_limit": True,
    "can_use_instant_voice_cloning": True,
    "can_use_professional_voice_cloning": True,
    "character_count": 1000,
    "character_limit": 100_000,
    "character_refresh_period": "monthly_period",
    "currency": "usd",
    "has_open_invoices": False,
    "max_character_limit_extension": 10000,
    "next_character_count_reset_unix": 1738356858,
    "next_invoice": {
        "amount_due_cents": 1000,
        "next_payment_attempt_unix": 1738356858,
        "discounts": [],
        "payment_intent_statusses": [],
    },
    "open_invoices": [],
    "current_overage": {"amount": "0.00", "currency": "usd"},
    # Usage-based billing past character_limit: none by default (a test sets it; SDK
    # types/subscription.py: an int, or "unlimited").
    "max_credit_limit_extension": 0,
    "professional_voice_slots_used_in_workspace": 0,
    "professional_voice_limit": 1,
    "professional_voice_slots_used": 0,
    "status": "active",
    "tier": "creator",
    "voice_add_edit_counter": 0,
    "voice_limit": 10,
    "voice_slots_used": 1,
}


def not_found(status: str, message: str) -> Answer:
    return Answer(404, {"detail": {"status": status, "message": message}})


def missing_fields(*names: str) -> Answer:
    """ElevenLabs' 422 (FastAPI's validation error) for missing body fields."""
    return Answer(
        422,
        {
            "detail": [
                {"loc": ["body", name], "msg": "field required", "type": "value_error.missing"}
                for name in names
            ]
        },
    )


def conversation_id() -> str:
    return "conv_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(25))


def conversation(conversation_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/convai/conversations/{conversation_id}``: GetConversationResponseModel, the
    same shape as a ``post_call_transcription``'s ``data`` (docs/PROVIDERS.md 3.2, 3.4), from
    what the fake knows of the call and what a test set (:data:`CONVERSATION_SETTINGS`)."""
    optional = {
        name: state[name]
        for name in ("duration", "summary", "call_successful", "transcript")
        if state.get(name) is not None
    }
    data: dict[str, Any] = samples.post_call_transcription(
        conversation_id,
        lead_id=state.get("lead_id") or "",
        agent_id=state.get("agent_id") or samples.AGENT_ID,
        status=str(state.get("status") or "done"),
        voicemail_tool=bool(state.get("voicemail_tool")),
        to_number=state.get("to_number") or samples.TO_NUMBER,
        call_sid=state.get("call_sid") or "CA" + "0" * 32,
        **optional,
    )["data"]
    for name in ("analysis", "metadata"):
        if isinstance(state.get(name), dict):
            data[name] = {**data[name], **state[name]}
    return data


def system_tool(name: str) -> dict[str, Any]:
    """A system tool as ``prompt.tools`` / ``prompt.built_in_tools`` hold it."""
    return {
        "type": "system",
        "name": name,
        "description": "",
        "response_timeout_secs": 20,
        "disable_interruptions": False,
        "force_pre_tool_speech": False,
        "assignments": [],
        "params": {"system_tool_type": name}
        | ({"voicemail_message": ""} if name == "voicemail_detection" else {}),
    }


# The disclosure (CALL_DISCLOSURE) comes as a dynamic variable, as the README advises.
FIRST_MESSAGE = "Hola {{lead_name}}, soy Laura, {{disclosure}} ¿Tienes un minuto?"


def agent(
    agent_id: str,
    *,
    name: str,
    voicemail_detection: str | None,
    first_message: str = FIRST_MESSAGE,
    language: str = "es",
    webhook_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``GET /v1/convai/agents/{agent_id}``: the parts of GetAgentResponseModel a caller reads,
    with voicemail_detection in ``built_in_tools``, in ``tools``, or nowhere, and the post-call
    webhook settings the agent overrides (``platform_settings.workspace_overrides.webhooks``;
    none by default)."""
    built_in: dict[str, Any] = {
        "end_call": system_tool("end_call"),
        "language_detection": None,
        "transfer_to_agent": None,
        "transfer_to_number": None,
        "skip_turn": None,
        "play_keypad_touch_tone": None,
        "voicemail_detection": (
            system_tool("voicemail_detection") if voicemail_detection == "built_in" else None
        ),
    }
    tools = [system_tool("voicemail_detection")] if voicemail_detection == "tool" else []
    return {
        "agent_id": agent_id,
        "name": name,
        "conversation_config": {
            "agent": {
                "first_message": first_message,
                "language": language,
                "dynamic_variables": {"dynamic_variable_placeholders": {}},
                "prompt": {
                    "prompt": "You call leads who just asked about our offer.",
                    "llm": "gemini-2.0-flash",
                    "temperature": 0,
                    "tools": tools,
                    "tool_ids": [],
                    "built_in_tools": built_in,
                },
            },
            "tts": {"model_id": "eleven_turbo_v2_5", "voice_id": "cjVigY5qzO86Huf0OWal"},
        },
        "metadata": {"created_at_unix_secs": 1739537000, "updated_at_unix_secs": 1739537000},
        "platform_settings": {
            "workspace_overrides": {
                "conversation_initiation_client_data_webhook": None,
                "webhooks": webhook_overrides,
            }
        },
        "tags": [],
    }


class ElevenLabsFake(FakeApi):
    def __init__(
        self, api_key: str | None, agent_id: str | None, phone_number_id: str | None
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.agent_id = agent_id
        self.phone_number_id = phone_number_id
        self.reset()

    def reset(self) -> None:
        self.calls: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        # conversation id → what GET /v1/convai/conversations/{id} answers (oldest dropped).
        self.conversations: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.subscription: dict[str, Any] = copy.deepcopy(DEFAULT_SUBSCRIPTION)
        self.agent_settings: dict[str, Any] = {
            "name": AGENT_NAME,
            "voicemail_detection": "built_in",
        }
        self.webhooks: list[dict[str, Any]] = [
            workspace_webhook("https://example.test/functions/v1/place_call/webhook")
        ]
        self.settings: dict[str, Any] = convai_settings()
        self.number: dict[str, Any] = {
            "phone_number": DEFAULT_NUMBER,
            "label": "Speed to lead",
            "provider": "twilio",
            "supports_inbound": True,
            "supports_outbound": True,
        }

    def key(self, request: Request) -> str | None:
        if request.path in OUTBOUND_PATHS and request.method == "POST":
            body = request.json()
            to_number = body.get("to_number") if isinstance(body, dict) else None
            return to_number if isinstance(to_number, str) and to_number else "(no to_number)"
        if request.path.startswith("/v1/"):
            return request.path
        return None

    def answer(self, request: Request) -> Answer:
        # The key is checked before any scripted answer, as ElevenLabs checks it first.
        key = self.key(request)
        if key is not None and self.api_key and request.headers.get("xi-api-key") != self.api_key:
            self.record(request, key)
            return Answer(401, INVALID_API_KEY)
        return super().answer(request)

    def handle(self, request: Request, key: str | None) -> Answer:
        path = request.path
        if path in OUTBOUND_PATHS and request.method == "POST":
            return self.outbound_call(request, OUTBOUND_PATHS[path])
        if path.startswith(WEBHOOKS_PATH + "/") and request.method == "PATCH":
            return self.patch_webhook(path.removeprefix(WEBHOOKS_PATH + "/"), request.json())
        if request.method != "GET":
            return Answer(405, {"detail": "Method Not Allowed"})
        if path == SUBSCRIPTION_PATH:
            return Answer(200, self.subscription)
        if path == WEBHOOKS_PATH:
            return Answer(200, {"webhooks": self.webhooks})
        if path == SETTINGS_PATH:
            return Answer(200, self.settings)
        if match := _AGENT.match(path):
            agent_id = match.group(1)
            if not self.knows_agent(agent_id):
                return not_found("agent_not_found", f"Agent with id {agent_id} not found")
            return Answer(200, agent(agent_id, **self.agent_settings))
        if match := _PHONE_NUMBER.match(path):
            number_id = match.group(1)
            if not self.knows_number(number_id):
                return not_found(
                    "phone_number_not_found", f"Phone number with id {number_id} not found"
                )
            return Answer(200, self.phone_number(number_id))
        if match := _CONVERSATION.match(path):
            return self.read_conversation(match.group(1))
        return Answer(404, {"detail": "Not Found"})

    def patch_webhook(self, webhook_id: str, body: Any) -> Answer:
        """``PATCH /v1/workspace/webhooks/{webhook_id}``: ``is_disabled`` and ``name`` are
        required (a 422 otherwise, as ElevenLabs' validation answers), ``retry_enabled`` and
        ``events`` optional; answers ``{"status": "ok"}``."""
        hook = next((h for h in self.webhooks if h.get("webhook_id") == webhook_id), None)
        if hook is None:
            return not_found("webhook_not_found", f"Webhook with id {webhook_id} not found")
        fields = body if isinstance(body, dict) else {}
        missing = [name for name in ("is_disabled", "name") if name not in fields]
        if missing:
            return Answer(
                422,
                {
                    "detail": [
                        {"loc": ["body", name], "msg": "field required", "type": "missing"}
                        for name in missing
                    ]
                },
            )
        hook.update({k: v for k, v in fields.items() if k in ("is_disabled", "name")})
        if fields.get("retry_enabled") is not None:
            hook["retry_enabled"] = bool(fields["retry_enabled"])
        if not fields["is_disabled"]:
            hook["is_auto_disabled"] = False
        return Answer(200, {"status": "ok"})

    def read_conversation(self, conversation_id: str) -> Answer:
        state = self.conversations.get(conversation_id)
        if state is None or state.get("known") is False:
            # Reconstructed: no example of this route's 404 is published; the body follows
            # ElevenLabs' other not-found answers ({"detail": {"status", "message"}}).
            return not_found(
                "conversation_not_found", f"Conversation with id {conversation_id} not found"
            )
        return Answer(200, conversation(conversation_id, state))

    def keep_conversation(self, conversation_id: str, state: dict[str, Any]) -> None:
        self.conversations[conversation_id] = state
        self.conversations.move_to_end(conversation_id)
        while len(self.conversations) > LOG_LIMIT:
            self.conversations.popitem(last=False)

    def knows_agent(self, agent_id: str) -> bool:
        return not self.agent_id or agent_id == self.agent_id

    def knows_number(self, number_id: str) -> bool:
        return not self.phone_number_id or number_id == self.phone_number_id

    def phone_number(self, number_id: str) -> dict[str, Any]:
        # A SIP trunk number also says which LiveKit stack carries it (SDK
        # GetPhoneNumberSipTrunkResponseModel).
        sip = {"livekit_stack": "standard"} if self.number.get("provider") == "sip_trunk" else {}
        return {
            **sip,
            **self.number,
            "phone_number_id": number_id,
            "assigned_agent": {
                "agent_id": self.agent_id or "agent_fake",
                "agent_name": self.agent_settings["name"],
            },
        }

    def outbound_call(self, request: Request, telephony: str) -> Answer:
        body = request.json()
        if not isinstance(body, dict):
            return Answer(
                422,
                {"detail": [{"loc": ["body"], "msg": "invalid JSON", "type": "value_error"}]},
            )
        missing = [name for name in REQUIRED_FIELDS if not isinstance(body.get(name), str)]
        if missing:
            return missing_fields(*missing)
        client_data = body.get("conversation_initiation_client_data")
        variables = client_data.get("dynamic_variables") if isinstance(client_data, dict) else {}
        if client_data is not None and not isinstance(client_data, dict):
            return _invalid(["body", "conversation_initiation_client_data"], "not an object")
        if variables is not None and (
            not isinstance(variables, dict)
            or any(isinstance(v, dict | list) for v in variables.values())
        ):
            return _invalid(
                ["body", "conversation_initiation_client_data", "dynamic_variables"],
                "values must be strings, numbers, booleans or null",
            )
        if not self.knows_agent(body["agent_id"]):
            return not_found("agent_not_found", f"Agent with id {body['agent_id']} not found")
        if not self.knows_number(body["agent_phone_number_id"]):
            return not_found(
                "phone_number_not_found",
                f"Phone number with id {body['agent_phone_number_id']} not found",
            )
        started = {
            "to_number": body["to_number"],
            "telephony": telephony,
            "conversation_id": conversation_id(),
            "call_sid": "CA" + secrets.token_hex(16)
            if telephony == "twilio"
            else str(uuid.uuid4()),
            "body": body,
            "at": time.time(),
        }
        self.calls.append(started)
        variables = variables if isinstance(variables, dict) else {}
        self.keep_conversation(
            started["conversation_id"],
            {
                "status": "done",
                "lead_id": str(variables.get("lead_id") or ""),
                "agent_id": body["agent_id"],
                "to_number": body["to_number"],
                "call_sid": started["call_sid"] if telephony == "twilio" else None,
            },
        )
        call_id_field = "callSid" if telephony == "twilio" else "sip_call_id"
        return Answer(
            200,
            {
                "success": True,
                "message": "Success",
                "conversation_id": started["conversation_id"],
                call_id_field: started["call_sid"],
            },
        )

    def control(self, method: str, what: str, data: Any, query: dict[str, str]) -> Answer:
        settings = data if isinstance(data, dict) else {}
        if what == "calls" and method == "GET":
            to_number = query.get("to_number")
            return Answer(
                200, [c for c in self.calls if to_number is None or c["to_number"] == to_number]
            )
        if what.startswith("conversations/") and method == "PUT":
            conversation_id = what.removeprefix("conversations/")
            state = self.conversations.get(conversation_id, {"status": "done"})
            state.update({k: v for k, v in settings.items() if k in CONVERSATION_SETTINGS})
            self.keep_conversation(conversation_id, state)
            return Answer(200, conversation(conversation_id, state))
        if what == "webhooks" and method == "PUT":
            self.webhooks = list(data) if isinstance(data, list) else []
            return Answer(200, {"webhooks": self.webhooks})
        if what == "settings" and method == "PUT":
            self.settings["webhooks"].update(
                {k: v for k, v in settings.items() if k in WEBHOOK_SETTINGS}
            )
            return Answer(200, self.settings)
        if what == "subscription" and method == "PUT":
            self.subscription.update(settings)
            return Answer(200, self.subscription)
        if what == "agent" and method == "PUT":
            if settings.get("voicemail_detection", "built_in") not in VOICEMAIL_MODES:
                return Answer(400, {"error": f"voicemail_detection is one of {VOICEMAIL_MODES}"})
            self.agent_settings.update(
                {
                    k: v
                    for k, v in settings.items()
                    if k
                    in (
                        "name",
                        "voicemail_detection",
                        "first_message",
                        "language",
                        "webhook_overrides",
                    )
                }
            )
            return Answer(200, self.agent_settings)
        if what == "phone_number" and method == "PUT":
            self.number.update(settings)
            return Answer(200, self.number)
        return super().control(method, what, data, query)


def _invalid(loc: list[str], message: str) -> Answer:
    return Answer(422, {"detail": [{"loc": loc, "msg": message, "type": "value_error"}]})


def main() -> None:
    parser = argparse.ArgumentParser(description="Local fake of the ElevenLabs API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = ElevenLabsFake(
        os.environ.get("ELEVENLABS_API_KEY") or None,
        os.environ.get("ELEVENLABS_AGENT_ID") or None,
        os.environ.get("ELEVENLABS_PHONE_NUMBER_ID") or None,
    )
    serve(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
