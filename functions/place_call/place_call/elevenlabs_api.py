"""The ElevenLabs Agents Platform client: starts an outbound call by the agent, reads a
conversation (when its post-call webhook did not come), and reads the subscription (credits), an
agent and a phone number for `make doctor`. Requests carry the API key in ``xi-api-key``; every
failure is a :class:`~lib.errors.ProviderFailure` whose message tells the operator what to do
(codes ``elevenlabs_*``).

- Outbound call: https://elevenlabs.io/docs/api-reference/twilio/outbound-call (and
  ``/sip-trunk/outbound-call``); docs/PROVIDERS.md section 3.1
- Conversation (the polling fallback for a lost post-call webhook):
  https://elevenlabs.io/docs/api-reference/conversations/get; docs/PROVIDERS.md section 3.4
- Subscription: https://elevenlabs.io/docs/api-reference/user/subscription/get
- Agent, phone number: https://elevenlabs.io/docs/api-reference/agents/get,
  https://elevenlabs.io/docs/api-reference/phone-numbers/get
- Errors: ``{"detail": {"status", "message"}}`` (401 ``invalid_api_key``, ``quota_exceeded``,
  ``missing_permissions`` …) or, for a 422, ``{"detail": [{"loc", "msg", "type"}]}``
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import Any
from urllib.parse import quote

import httpx

from lib.errors import ConfigError, FailureClass, ProviderFailure
from lib.log import mask_phone
from lib.outbound import Api, request_json
from place_call.elevenlabs_errors import IDS_HELP, classify_elevenlabs_error, malformed

ELEVENLABS = Api(name="the ElevenLabs API", code="elevenlabs", url_setting="ELEVENLABS_API_URL")
# ELEVENLABS_TELEPHONY → (outbound-call path, the answer's call id field).
TELEPHONY = {
    "twilio": ("/v1/convai/twilio/outbound-call", "callSid"),
    "sip_trunk": ("/v1/convai/sip-trunk/outbound-call", "sip_call_id"),
}


@dataclass(frozen=True)
class OutboundCall:
    """A call ElevenLabs started: its conversation (the post-call webhook's
    ``conversation_id``) and the telephony provider's call id."""

    conversation_id: str | None
    call_sid: str | None  # from camelCase callSid (twilio) or sip_call_id (sip trunk)
    message: str


class ElevenLabsClient:
    """Calls the ElevenLabs API at ``base_url`` (ELEVENLABS_API_URL) with ``api_key``;
    ``telephony`` (ELEVENLABS_TELEPHONY, ``twilio`` or ``sip_trunk``) picks the outbound-call
    endpoint; ``http_client`` defaults to the function's one outbound client."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        telephony: str = "twilio",
        http_client: httpx.Client | None = None,
    ) -> None:
        kind = telephony.strip().lower().replace("-", "_")
        if kind not in TELEPHONY:
            raise ConfigError([], invalid=["ELEVENLABS_TELEPHONY"])
        self._outbound_path, self._call_id_field = TELEPHONY[kind]
        self._base = base_url.rstrip("/")
        self._headers = {"xi-api-key": api_key, "Accept": "application/json"}
        self._timeout = timeout
        self._http = http_client

    def outbound_call(
        self,
        *,
        agent_id: str,
        phone_number_id: str,
        to_number: str,
        dynamic_variables: Mapping[str, str | int | float | bool | None],
        user_id: str | None = None,
    ) -> OutboundCall:
        """Ask the agent to call ``to_number`` (E.164) from the number ``phone_number_id``, with
        ``dynamic_variables`` for its prompt (they come back in the post-call webhook) and
        ``user_id`` (the lead id: it comes back as the conversation's ``user_id`` even when the
        agent forwards no dynamic variables).

        Not idempotent: a timeout after sending is ``ambiguous`` (the call may be ringing), so
        the caller must not call again before its retry wait. ``success: false`` is a failure
        coded ``elevenlabs_call_refused`` (class ``invalid``: this attempt is over).
        """
        body = {
            "agent_id": agent_id,
            "agent_phone_number_id": phone_number_id,
            "to_number": to_number,
            "conversation_initiation_client_data": {
                "dynamic_variables": dict(dynamic_variables),
                **({"user_id": user_id} if user_id else {}),
            },
        }
        endpoint = f"POST {self._outbound_path}"
        answer = self._request(
            "POST",
            self._outbound_path,
            action="placing the call",
            not_found=IDS_HELP,
            idempotent=False,
            json=body,
        )
        success = answer.get("success")
        message = answer.get("message")
        conversation_id = answer.get("conversation_id")
        call_sid = answer.get(self._call_id_field)
        if not isinstance(success, bool) or not isinstance(message, str | None):
            raise malformed(endpoint, "no boolean success and message", may_have_started=True)
        if not success:
            said = (message or "").strip()
            raise ProviderFailure(
                FailureClass.INVALID,
                "elevenlabs_call_refused",
                "ElevenLabs did not start the call"
                + (f': "{said}"' if said else " (no reason given)")
                + ". This attempt is over; the call queue decides the next one. If every call is "
                "refused, check the number in ElevenLabs > Phone Numbers (outbound calls "
                "enabled, its Twilio or SIP trunk credentials) and the agent.",
                {
                    "elevenlabs_message": said,
                    "to_number": mask_phone(to_number),
                    "conversation_id": conversation_id
                    if isinstance(conversation_id, str)
                    else None,
                },
            )
        if not isinstance(conversation_id, str | None) or not isinstance(call_sid, str | None):
            raise malformed(
                endpoint,
                f"conversation_id or {self._call_id_field} is not a string",
                may_have_started=True,
            )
        if not conversation_id:
            # The API may answer success with conversation_id null: the call is ringing, but
            # nothing can follow it (no conversation to read if its webhook is lost). Recorded
            # as unknown, as a timeout is: the post-call webhook still finds it by the lead id,
            # and without one the lead is called again after the wait rather than never.
            raise ProviderFailure(
                FailureClass.AMBIGUOUS,
                "elevenlabs_call_untracked",
                "ElevenLabs said the call started but gave no conversation_id, so only its "
                "post-call webhook (matched by the lead id) can record how it went; the attempt "
                "is recorded as unknown. Check the call in ElevenLabs > Call History.",
                {"to_number": mask_phone(to_number), "call_sid": call_sid},
            )
        return OutboundCall(
            conversation_id=conversation_id,
            call_sid=call_sid or None,
            message=message or "",
        )

    def subscription(self) -> dict[str, Any]:
        """``GET /v1/user/subscription``: the plan (``tier``, ``status``) and its credits
        (``character_count`` used of ``character_limit``). Needs the key's ``user_read``."""
        return self._request(
            "GET",
            "/v1/user/subscription",
            action="reading the subscription",
            not_found="check ELEVENLABS_API_URL (https://api.elevenlabs.io)",
        )

    def workspace_webhooks(self) -> dict[str, Any]:
        """``GET /v1/workspace/webhooks``: the workspace's webhooks (``webhooks``: url, whether
        disabled or auto-disabled, the most recent failure), for `make doctor`."""
        return self._request(
            "GET",
            "/v1/workspace/webhooks?include_usages=true",
            action="reading the workspace webhooks",
            not_found="check ELEVENLABS_API_URL (https://api.elevenlabs.io)",
        )

    def convai_settings(self) -> dict[str, Any]:
        """``GET /v1/convai/settings``: the workspace's agent settings, among them ``webhooks``
        (``post_call_webhook_id``, ``events``, ``exclude_transcript``, ``transcript_format``),
        for `make doctor` and `make elevenlabs-webhook`."""
        return self._request(
            "GET",
            "/v1/convai/settings",
            action="reading the agents' settings",
            not_found="check ELEVENLABS_API_URL (https://api.elevenlabs.io)",
        )

    def update_workspace_webhook(
        self, webhook_id: str, *, name: str, is_disabled: bool, retry_enabled: bool
    ) -> dict[str, Any]:
        """``PATCH /v1/workspace/webhooks/{webhook_id}`` (``name`` and ``is_disabled`` are
        required by the API, so the caller passes the current ones to keep them)."""
        return self._request(
            "PATCH",
            f"/v1/workspace/webhooks/{quote(webhook_id, safe='')}",
            action="updating the workspace webhook",
            not_found="the webhook is gone: list them with `make doctor`",
            json={"name": name, "is_disabled": is_disabled, "retry_enabled": retry_enabled},
        )

    def agent(self, agent_id: str) -> dict[str, Any]:
        """``GET /v1/convai/agents/{agent_id}``: the agent, with its ``conversation_config``."""
        return self._request(
            "GET",
            f"/v1/convai/agents/{quote(agent_id, safe='')}",
            action="reading the agent",
            not_found="check ELEVENLABS_AGENT_ID (ElevenLabs > Agents, the agent's id)",
        )

    def phone_number(self, phone_number_id: str) -> dict[str, Any]:
        """``GET /v1/convai/phone-numbers/{phone_number_id}``: the number (``phone_number``,
        ``label``, ``provider``, ``assigned_agent`` …)."""
        return self._request(
            "GET",
            f"/v1/convai/phone-numbers/{quote(phone_number_id, safe='')}",
            action="reading the phone number",
            not_found=(
                "check ELEVENLABS_PHONE_NUMBER_ID (ElevenLabs > Phone Numbers, the number's id)"
            ),
        )

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """``GET /v1/convai/conversations/{conversation_id}``: the conversation
        (GetConversationResponseModel, the shape of a ``post_call_transcription``'s ``data``),
        with its ``status`` (``initiated``, ``in-progress``, ``processing``, ``done``,
        ``failed``). Read when the post-call webhook did not come (docs/PROVIDERS.md 3.2, 3.4:
        https://elevenlabs.io/docs/api-reference/conversations/get).

        A conversation ElevenLabs does not know (404) is a failure of class ``not_found``
        (code ``elevenlabs_conversation_not_found``); an answer without a string ``status`` is
        ``malformed``."""
        path = f"/v1/convai/conversations/{quote(conversation_id, safe='')}"
        try:
            answer = self._request(
                "GET",
                path,
                action="reading a conversation",
                not_found="the conversation is unknown to ElevenLabs",
            )
        except ProviderFailure as failure:
            if failure.details.get("http_status") != 404:
                raise
            raise ProviderFailure(
                FailureClass.NOT_FOUND,
                "elevenlabs_conversation_not_found",
                f"ElevenLabs does not know the conversation {conversation_id} (HTTP 404): it "
                "was deleted, or belongs to another workspace than ELEVENLABS_API_KEY's.",
                {**failure.details, "conversation_id": conversation_id},
            ) from None
        if not isinstance(answer.get("status"), str):
            raise malformed(f"GET {path}", "no string status")
        return answer

    def _request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        not_found: str,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return request_json(
            ELEVENLABS,
            method,
            f"{self._base}{path}",
            timeout=self._timeout,
            classify=partial(classify_elevenlabs_error, action=action, not_found=not_found),
            malformed=partial(
                malformed,
                f"{method} {path}",
                "the answer is not a JSON object",
                may_have_started=not idempotent,
            ),
            idempotent=idempotent,
            client=self._http,
            headers=self._headers,
            **kwargs,
        )


@cache
def get_elevenlabs() -> ElevenLabsClient:
    """The process's ElevenLabs client, built on first use from the configuration;
    :class:`ConfigError` when ELEVENLABS_API_KEY is unset (or ELEVENLABS_TELEPHONY unknown)."""
    from place_call.settings import settings

    config = settings()
    (api_key,) = config.require("ELEVENLABS_API_KEY")
    return ElevenLabsClient(
        base_url=config.elevenlabs_api_url,
        api_key=api_key,
        timeout=config.http_timeout_seconds,
        telephony=config.elevenlabs_telephony,
    )
