"""ElevenLabs post-call webhooks, without I/O: what happened on the line.

https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks (docs/PROVIDERS.md
section 3.2)

- ``post_call_transcription``: answered, or voicemail when the ``voicemail_detection`` system tool
  ran (its result ``voicemail_detection_success``), or **voicemail the agent did not hang up on**:
  the callee's first turns read like a voicemail greeting (``VOICEMAIL_PHRASES``) but the tool
  was not called. That call is recorded as voicemail, flagged ``voicemail_missed``, and the
  message quotes the greeting and says which words to add to the agent's prompt.
- ``call_initiation_failure``: busy, no answer, or unknown.
- ``answering_machine_detection``: voicemail (a later transcription that shows a person outranks
  it: call_record_outcome's precedence).
- A transcription without a transcript and no other decisive signal has no ``outcome``
  (``None``): place_call reads the conversation from the API before deciding.
- ``post_call_audio`` and anything else: ignored (audio is never stored).

:func:`from_conversation` builds the same ``post_call_transcription`` record from a conversation
read from the API, for a call whose webhook never came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from lib import safejson
from lib.errors import BadRequest
from lib.safejson import read_dict, read_int, read_text
from place_call import opt_out, voicemail

# A conversation read from the API that has its outcome (initiated, in-progress, processing:
# not yet).
FINISHED = ("done", "failed")
HANDLED = ("post_call_transcription", "call_initiation_failure", "answering_machine_detection")
_FAILURE_OUTCOMES = {"busy": "busy", "no-answer": "no_answer", "no_answer": "no_answer"}


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    event_timestamp: Any = None
    data: Any = None


@dataclass(frozen=True)
class PostCallEvent:
    """One webhook: its type, and for a handled type what call_record_outcome takes."""

    kind: str
    conversation_id: str | None = None
    record: dict[str, Any] | None = None


def _turns(transcript: Any) -> list[dict[str, Any]]:
    return [
        turn
        for turn in (transcript if isinstance(transcript, list) else [])
        if isinstance(turn, dict)
    ]


def voicemail_tool_called(transcript: list[dict[str, Any]]) -> bool:
    """The ``voicemail_detection`` system tool ran (a tool call or its success result)."""
    for turn in transcript:
        for call in turn.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("tool_name") == "voicemail_detection":
                return True
        for result in turn.get("tool_results") or []:
            outcome = read_dict(result).get("result")
            if read_dict(outcome).get("result_type") == "voicemail_detection_success":
                return True
            if isinstance(result, dict) and result.get("tool_name") == "voicemail_detection":
                return True
    return False


def _started_at(metadata: dict[str, Any]) -> str | None:
    seconds = read_int(metadata.get("start_time_unix_secs"))
    if seconds is None or seconds < 10**9:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _duration_text(seconds: int | None) -> str:
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds is not None else "unknown length"


def _lead_id(data: dict[str, Any]) -> str | None:
    """The lead id place_call sent: the ``lead_id`` dynamic variable, else the ``user_id`` (sent
    too, and echoed back even when the agent forwards no dynamic variables)."""
    client_data = read_dict(data.get("conversation_initiation_client_data"))
    return (
        read_text(read_dict(client_data.get("dynamic_variables")).get("lead_id"), 64)
        or read_text(client_data.get("user_id"), 64)
        or read_text(data.get("user_id"), 64)
    )


def _transcription(
    data: dict[str, Any], phrases: list[str], *, from_api: bool = False, opt_out_field: str = ""
) -> dict[str, Any]:
    transcript = _turns(data.get("transcript"))
    metadata = read_dict(data.get("metadata"))
    analysis = read_dict(data.get("analysis"))
    duration = read_int(metadata.get("call_duration_secs"))
    summary = read_text(analysis.get("transcript_summary"), 5_000)
    record: dict[str, Any] = {
        "status": read_text(data.get("status"), 20),
        "started_at": _started_at(metadata),
        "duration_secs": duration,
        "termination_reason": read_text(metadata.get("termination_reason")),
        "call_successful": read_text(analysis.get("call_successful"), 20),
        "summary": summary,
        "analysis": safejson.storable(
            {
                "call_successful": analysis.get("call_successful"),
                "call_summary_title": analysis.get("call_summary_title"),
                "data_collection_results": analysis.get("data_collection_results"),
                "evaluation_criteria_results": analysis.get("evaluation_criteria_results"),
            },
            max_string=2_000,
            max_items=50,
        )[0],
    }
    turns = voicemail.turns_of(data.get("transcript"))
    if not turns and not from_api:
        turns = None  # a webhook without its transcript (exclude_transcript): read the API
    # The callee's words asking not to be called again: call_record_outcome makes the person
    # do-not-call, whatever the outcome.
    record["opt_out"] = opt_out.said(turns) or opt_out.collected(
        read_dict(analysis.get("data_collection_results")), opt_out_field
    )
    call_result = read_text(read_dict(metadata.get("phone_call")).get("call_result"), 20)
    if str(record["status"]) == "failed" and call_result is None:
        record.update(outcome="failed", message="The call failed (ElevenLabs status failed).")
        return record
    verdict = voicemail.classify(
        voicemail.Signals(
            turns,
            call_result=call_result,
            call_successful=record["call_successful"],
            voicemail_tool=voicemail_tool_called(transcript),
            extra_phrases=tuple(phrases),
        )
    )
    record["outcome"] = verdict.outcome
    if verdict.outcome is None:
        record["message"] = f"Outcome not decided from the webhook: {verdict.why}."
    elif verdict.missed and verdict.greeting is not None:
        record.update(
            voicemail_missed=True,
            greeting=verdict.greeting,
            phrase=verdict.phrase,
            message=f'Voicemail the agent did not hang up on: the call opened with "'
            f'{verdict.greeting}" ({_duration_text(duration)} spent talking to a machine). Add '
            f'words like "{verdict.phrase}" to the voicemail cues in the agent\'s prompt, and '
            "check that the voicemail_detection tool is enabled.",
        )
    elif verdict.outcome == "voicemail":
        record["message"] = f"Voicemail ({verdict.why})."
    elif verdict.outcome == "answered":
        record["message"] = (
            f"Call answered ({_duration_text(duration)}, call_successful "
            f"{record['call_successful'] or 'unknown'})"
            + (f": {summary[:300]}" if summary else ".")
        )
    elif verdict.outcome == "unknown":
        record["message"] = "The call connected but nobody spoke."
    else:
        record["message"] = f"Call {verdict.outcome.replace('_', ' ')} ({verdict.why})."
    return record


def _initiation_failure(data: dict[str, Any]) -> dict[str, Any]:
    reason = read_text(data.get("failure_reason"), 40) or "unknown"
    outcome = _FAILURE_OUTCOMES.get(reason, "unknown")
    body = read_dict(read_dict(data.get("metadata")).get("body"))
    detail = read_text(body.get("CallStatus") or body.get("sip_status") or body.get("error_reason"))
    return {
        "outcome": outcome,
        "message": f"The call did not connect: {reason}" + (f" ({detail})" if detail else "") + ".",
    }


def parse(body: bytes, *, voicemail_phrases: list[str], opt_out_field: str = "") -> PostCallEvent:
    """The webhook's event; :class:`BadRequest` when the body is not JSON or not an event, or a
    handled event has no conversation id. ``opt_out_field``: CALL_OPT_OUT_FIELD."""
    envelope = _envelope(body)
    kind = safejson.text(envelope.type, limit=80)
    data = read_dict(envelope.data)
    conversation_id = read_text(data.get("conversation_id"), 200)
    if kind not in HANDLED:
        return PostCallEvent(kind, conversation_id)
    if conversation_id is None:
        raise BadRequest(f"A {kind} event without a conversation_id.", code="invalid_payload")
    return PostCallEvent(
        kind,
        conversation_id,
        _record(kind, conversation_id, data, voicemail_phrases, opt_out_field=opt_out_field),
    )


def from_conversation(
    conversation_id: str,
    conversation: dict[str, Any],
    *,
    voicemail_phrases: list[str],
    opt_out_field: str = "",
) -> dict[str, Any]:
    """The record a ``post_call_transcription`` webhook would have given (what
    call_record_outcome takes), from the conversation as ``GET
    /v1/convai/conversations/{conversation_id}`` answers it (GetConversationResponseModel: the
    same shape as the webhook's ``data``, docs/PROVIDERS.md 3.2 and 3.4). For a conversation whose
    ``status`` is ``done`` or ``failed``."""
    kind = "post_call_transcription"
    return _record(
        kind,
        conversation_id,
        conversation,
        voicemail_phrases,
        from_api=True,
        opt_out_field=opt_out_field,
    )


_TYPE = re.compile(rb'"type"\s*:\s*"([A-Za-z0-9_.-]{1,80})"')


def sniff_type(prefix: bytes) -> str:
    """The event type of a body too large to parse, from its first bytes (ElevenLabs writes
    ``type`` first), for the log; ``oversized`` when it cannot be seen."""
    found = _TYPE.search(prefix[:4096])
    return found.group(1).decode() if found else "oversized"


def phrase_list(setting: str) -> list[str]:
    """VOICEMAIL_PHRASES (comma-separated) as a list."""
    return [phrase.strip() for phrase in setting.split(",") if phrase.strip()]


def _record(
    kind: str,
    conversation_id: str,
    data: dict[str, Any],
    voicemail_phrases: list[str],
    *,
    from_api: bool = False,
    opt_out_field: str = "",
) -> dict[str, Any]:
    if kind == "post_call_transcription":
        outcome = _transcription(
            data, voicemail_phrases, from_api=from_api, opt_out_field=opt_out_field
        )
    elif kind == "answering_machine_detection":
        # ElevenLabs' own detection; a transcription showing a person outranks it later.
        outcome = {
            "outcome": "voicemail",
            "message": "Voicemail: ElevenLabs' answering machine detection reported a machine.",
        }
    else:
        outcome = _initiation_failure(data)
    payload = {key: value for key, value in data.items() if key != "transcript"}
    return {
        "type": kind,
        "conversation_id": conversation_id,
        "lead_id": _lead_id(data),
        **outcome,
        "payload": safejson.storable(payload, max_string=2_000, max_items=100)[0],
    }


def _envelope(body: bytes) -> _Envelope:
    return safejson.envelope(_Envelope, body, what="an ElevenLabs webhook event")
