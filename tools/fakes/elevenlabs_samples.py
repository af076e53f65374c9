"""ElevenLabs post-call webhook bodies shaped as ElevenLabs documents them, signed as ElevenLabs
signs them: for the tests and `make send-test-event` (``elevenlabs``).

- Envelope ``{"type", "event_timestamp", "data"}`` and the three types:
  https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks (docs/PROVIDERS.md section
  3.2; tests/fixtures/elevenlabs/elevenlabs_post_call_transcription_2025.json and
  elevenlabs_post_call_audio.json are the docs' own examples, which these follow key for key);
- the voicemail_detection tool turn: the reconstructed
  tests/fixtures/elevenlabs/elevenlabs_transcript_turn_voicemail_detection_reconstructed.json
  (docs/PROVIDERS.md section 3.3);
- signature ``ElevenLabs-Signature: t=<unix>,v0=<hex>``: :func:`lib.signatures.sign_elevenlabs`.

The lead id travels as the outbound call sent it, in
``data.conversation_initiation_client_data.dynamic_variables.lead_id``.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from lib.signatures import ELEVENLABS_HEADER, sign_elevenlabs

# The runbook's agent ("Laura") and number; any values work against the local fake.
AGENT_ID = "agent_4101kf6gqfgpfrganck3s1m0ap3v"
AGENT_NUMBER = "+17863212663"
PHONE_NUMBER_ID = "phnum_0000000000000000000000000"
TO_NUMBER = "+12125550123"
FAILURE_REASONS = ("busy", "no-answer", "unknown")
EVENT_TYPES = ("post_call_transcription", "call_initiation_failure", "post_call_audio")

VOICEMAIL_REASON = "Automated greeting detected with request to leave message"
# The turn in which the agent calls the voicemail_detection system tool (reconstructed from the
# SDK's models: tests/fixtures/elevenlabs/…_voicemail_detection_reconstructed.json).
VOICEMAIL_TURN: dict[str, Any] = {
    "role": "agent",
    "message": None,
    "tool_calls": [
        {
            "type": "system",
            "request_id": "voicemail_detection_0",
            "tool_name": "voicemail_detection",
            "params_as_json": json.dumps({"reason": VOICEMAIL_REASON}),
            "tool_has_been_called": True,
        }
    ],
    "tool_results": [
        {
            "type": "system",
            "request_id": "voicemail_detection_0",
            "tool_name": "voicemail_detection",
            "result_value": "",
            "is_error": False,
            "tool_has_been_called": True,
            "result": {
                "result_type": "voicemail_detection_success",
                "status": "success",
                "voicemail_message": None,
                "reason": VOICEMAIL_REASON,
            },
        }
    ],
    "feedback": None,
    "time_in_call_secs": 7,
    "conversation_turn_metrics": None,
}

FIRST_MESSAGE = (
    "Hola, soy Laura. Vi que pediste información sobre nuestra oferta. ¿Tienes un minuto?"
)
ANSWERED = (
    ("agent", FIRST_MESSAGE),
    ("user", "Sí, claro. Quería saber los precios."),
    ("agent", "Perfecto. Te propongo una llamada con un asesor; ¿te va bien mañana a las diez?"),
    ("user", "Sí, mañana a las diez está bien."),
)
VOICEMAIL_GREETING = (
    ("agent", FIRST_MESSAGE),
    ("user", "El número que usted marcó no está disponible. Deje su mensaje después del tono."),
)
ANSWERED_SUMMARY = (
    "Laura called the lead, who asked about prices and agreed to a call with an advisor "
    "tomorrow at ten."
)
VOICEMAIL_SUMMARY = "The call reached a voicemail greeting; the agent ended the call."
# termination_reason's values are not documented (docs/PROVIDERS.md 3.2; the docs' example has ""):
# the end_call text is what real payloads in public code show; the voicemail one is by analogy,
# unconfirmed (detect voicemail by the tool result, never by this text).
END_CALL_REASON = "end_call tool was called."
VOICEMAIL_TERMINATION = "voicemail_detection tool was called."


def new_conversation_id() -> str:
    """A fresh conversation id, shaped as ElevenLabs' (``conv_`` and 25 characters)."""
    alphabet = string.ascii_lowercase + string.digits
    return "conv_" + "".join(secrets.choice(alphabet) for _ in range(25))


def new_lead_id() -> str:
    """A fresh lead id (a uuid, as ``leads.id``), which matches no stored lead."""
    return str(uuid.uuid4())


def turn(role: str, message: str, time_in_call_secs: int) -> dict[str, Any]:
    """A plain transcript turn, as in the docs' example."""
    return {
        "role": role,
        "message": message,
        "tool_calls": None,
        "tool_results": None,
        "feedback": None,
        "time_in_call_secs": time_in_call_secs,
        "conversation_turn_metrics": None,
    }


def _transcript(turns: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [turn(role, message, index * 3) for index, (role, message) in enumerate(turns)]


def opt_out_transcript(words: str) -> list[dict[str, Any]]:
    """An answered call in which the callee says ``words`` (an opt-out, or not)."""
    return _transcript(
        (("agent", FIRST_MESSAGE), ("user", words), ("agent", "Entendido. Gracias, adiós."))
    )


def client_data(lead_id: str | int, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``conversation_initiation_client_data`` as the webhook echoes it back."""
    return {
        "conversation_config_override": {
            "agent": {"prompt": None, "first_message": None, "language": None},
            "tts": {"voice_id": None},
        },
        "custom_llm_extra_body": {},
        # place_call sends the lead id as the user_id too, which comes back even when the agent
        # forwards no dynamic variables.
        "user_id": str(lead_id) if lead_id != "" else None,
        "dynamic_variables": {"lead_id": lead_id, **(extra or {})},
    }


def _envelope(kind: str, data: dict[str, Any], event_timestamp: int | None) -> dict[str, Any]:
    return {
        "type": kind,
        "event_timestamp": int(time.time()) if event_timestamp is None else event_timestamp,
        "data": data,
    }


def post_call_transcription(
    conversation_id: str,
    *,
    lead_id: str | int,
    agent_id: str = AGENT_ID,
    status: str = "done",
    duration: int | None = None,
    call_successful: str = "success",
    summary: str | None = None,
    transcript: Sequence[dict[str, Any]] | None = None,
    voicemail_tool: bool = False,
    termination_reason: str | None = None,
    to_number: str = TO_NUMBER,
    call_sid: str = "CA00000000000000000000000000000000",
    dynamic_variables: Mapping[str, Any] | None = None,
    event_timestamp: int | None = None,
) -> dict[str, Any]:
    """A ``post_call_transcription`` event: an answered call by default; with
    ``voicemail_tool`` a voicemail greeting and the agent's voicemail_detection tool turn
    (appended to ``transcript`` when one is given). ``duration``, ``summary`` and
    ``termination_reason`` default to values that fit either story."""
    if transcript is None:
        turns = _transcript(VOICEMAIL_GREETING if voicemail_tool else ANSWERED)
    else:
        turns = [copy.deepcopy(dict(t)) for t in transcript]
    if voicemail_tool:
        tool_turn = copy.deepcopy(VOICEMAIL_TURN)
        tool_turn["time_in_call_secs"] = (turns[-1]["time_in_call_secs"] + 2) if turns else 0
        turns.append(tool_turn)
    if duration is None:
        duration = 9 if voicemail_tool else 42
    if summary is None:
        summary = VOICEMAIL_SUMMARY if voicemail_tool else ANSWERED_SUMMARY
    if termination_reason is None:
        termination_reason = VOICEMAIL_TERMINATION if voicemail_tool else END_CALL_REASON
    start = (int(time.time()) if event_timestamp is None else event_timestamp) - duration - 5
    data = {
        "agent_id": agent_id,
        "conversation_id": conversation_id,
        "status": status,
        "user_id": None,
        "transcript": turns,
        "metadata": {
            "start_time_unix_secs": start,
            "call_duration_secs": duration,
            "cost": duration * 10,
            "deletion_settings": {
                "deletion_time_unix_secs": None,
                "deleted_logs_at_time_unix_secs": None,
                "deleted_audio_at_time_unix_secs": None,
                "deleted_transcript_at_time_unix_secs": None,
                "delete_transcript_and_pii": False,
                "delete_audio": False,
            },
            "feedback": {"overall_score": None, "likes": 0, "dislikes": 0},
            "authorization_method": "authorization_header",
            "charging": {"dev_discount": False},
            "phone_call": {
                "type": "twilio",
                "direction": "outbound",
                "phone_number_id": PHONE_NUMBER_ID,
                "agent_number": AGENT_NUMBER,
                "external_number": to_number,
                "stream_sid": "MZ" + call_sid[2:],
                "call_sid": call_sid,
            },
            "termination_reason": termination_reason,
        },
        "analysis": {
            "evaluation_criteria_results": {},
            "data_collection_results": {},
            "call_successful": call_successful,
            "transcript_summary": summary,
        },
        "conversation_initiation_client_data": client_data(lead_id, dynamic_variables),
        "has_audio": True,
        "has_user_audio": True,
        "has_auxiliary_audio": False,
        "has_response_audio": True,
    }
    return _envelope("post_call_transcription", data, event_timestamp)


# Twilio's StatusCallback for each failure_reason: CallStatus, SipResponseCode.
_TWILIO_STATUS = {
    "busy": ("busy", "486"),
    "no-answer": ("no-answer", "487"),
    "unknown": ("failed", "500"),
}
_SIP_STATUS = {
    "busy": (486, "Busy Here"),
    "no-answer": (480, "Temporarily Unavailable"),
    "unknown": (500, "Server Internal Error"),
}


def call_initiation_failure(
    conversation_id: str,
    *,
    failure_reason: str = "busy",
    lead_id: str | int | None,
    provider: str = "twilio",
    agent_id: str = AGENT_ID,
    to_number: str = TO_NUMBER,
    call_sid: str = "CA00000000000000000000000000000000",
    event_timestamp: int | None = None,
) -> dict[str, Any]:
    """A ``call_initiation_failure`` event (``failure_reason`` busy, no-answer or unknown) with
    the telephony provider's ``metadata`` (``twilio``: Twilio's StatusCallback fields; ``sip``).

    ElevenLabs' example carries no ``conversation_initiation_client_data``; with a ``lead_id``
    it is added (as on a transcription), with ``lead_id=None`` the event is the documented
    minimal shape, matched only by its ``conversation_id``."""
    if failure_reason not in FAILURE_REASONS:
        raise ValueError(f"failure_reason is one of {FAILURE_REASONS}")
    when = int(time.time()) if event_timestamp is None else event_timestamp
    if provider == "twilio":
        status, sip_code = _TWILIO_STATUS[failure_reason]
        body: dict[str, Any] = {
            "AccountSid": "AC00000000000000000000000000000000",
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": status,
            "CallDuration": "0",
            "Duration": "0",
            "Direction": "outbound-api",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": "2",
            "SipResponseCode": sip_code,
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when)),
            "From": AGENT_NUMBER,
            "Caller": AGENT_NUMBER,
            "To": to_number,
            "Called": to_number,
        }
    elif provider == "sip":
        code, reason = _SIP_STATUS[failure_reason]
        body = {
            "from_number": AGENT_NUMBER,
            "to_number": to_number,
            "sip_status_code": code,
            "error_reason": reason,
            "call_sid": call_sid,
        }
    else:
        raise ValueError("provider is twilio or sip")
    data: dict[str, Any] = {
        "agent_id": agent_id,
        "conversation_id": conversation_id,
        "failure_reason": failure_reason,
        "metadata": {"type": provider, "body": body},
    }
    if lead_id is not None:
        data["conversation_initiation_client_data"] = client_data(lead_id)
    return _envelope("call_initiation_failure", data, event_timestamp)


def post_call_audio(
    conversation_id: str, *, agent_id: str = AGENT_ID, event_timestamp: int | None = None
) -> dict[str, Any]:
    """A ``post_call_audio`` event: only the ids and ``full_audio`` (base64 MP3; here an ID3
    header and silence)."""
    audio = base64.b64encode(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(64)).decode()
    data = {"agent_id": agent_id, "conversation_id": conversation_id, "full_audio": audio}
    return _envelope("post_call_audio", data, event_timestamp)


def encode(event: Mapping[str, Any]) -> bytes:
    """The bytes to post (compact JSON, non-ASCII as is, as ElevenLabs sends it)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """``ElevenLabs-Signature`` over ``body`` at ``timestamp`` (default: now), and the JSON
    content type."""
    when = int(time.time()) if timestamp is None else timestamp
    return {
        ELEVENLABS_HEADER: sign_elevenlabs(body, secret=secret, timestamp=when),
        "Content-Type": "application/json",
    }
