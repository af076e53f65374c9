"""Recording outcomes: a post-call webhook's outcome (``call_record_outcome``, one round trip),
read from the conversation API when the webhook could not decide it."""

from __future__ import annotations

from typing import Any

from lib import log
from lib.db import Database
from lib.errors import ConfigError, ProviderFailure
from place_call.elevenlabs_api import get_elevenlabs
from place_call.elevenlabs_events import (
    FINISHED,
    HANDLED,
    PostCallEvent,
    from_conversation,
    phrase_list,
)
from place_call.settings import PlaceCallSettings


def _read_undecided(config: PlaceCallSettings, event: PostCallEvent) -> dict[str, Any] | None:
    """The record of a webhook that could not decide its outcome (no transcript: the workspace's
    exclude_transcript), from the conversation API; None when that cannot decide either."""
    assert event.record is not None and event.conversation_id is not None
    try:
        conversation = get_elevenlabs().conversation(event.conversation_id)
    except (ConfigError, ProviderFailure) as failure:
        log.warning("Conversation not readable", function="place_call", reason=str(failure)[:200])
        return None
    if str(conversation.get("status")) not in FINISHED:
        return None
    record = from_conversation(
        event.conversation_id,
        conversation,
        voicemail_phrases=phrase_list(config.voicemail_phrases),
        opt_out_field=config.call_opt_out_field,
    )
    if record["outcome"] is None:
        return None
    record["lead_id"] = record["lead_id"] or event.record.get("lead_id")
    record["message"] += " (The webhook carried no transcript: read from the conversation API.)"
    return record


def record_outcome(db: Database, config: PlaceCallSettings, event: PostCallEvent) -> dict[str, Any]:
    """Record a post-call webhook (one round trip), or log an event type that is not handled."""
    if event.record is None:
        db.log(
            provider="elevenlabs",
            event=event.kind,
            status="ignored",
            message=f"Ignored a '{event.kind}' webhook"
            + (" (audio is never stored)" if event.kind == "post_call_audio" else "")
            + f": only {', '.join(HANDLED)} are recorded.",
            external_id=event.conversation_id,
        )
        return {"status": "ignored", "type": event.kind}
    record: dict[str, Any] | None = event.record
    if event.record.get("outcome") is None:
        record = _read_undecided(config, event)
        if record is None:
            db.log(
                provider="elevenlabs",
                event=event.kind,
                status="ok",
                message="The webhook gave no outcome (no transcript, call_result or successful "
                "evaluation) and the conversation API could not give one yet: the sweep reads it "
                "(CALL_RECONCILE_AFTER_MINUTES); the lead is not called meanwhile.",
                external_id=event.conversation_id,
            )
            return {"status": "deferred", "type": event.kind}
    result = dict(
        db.rpc("call_record_outcome", {"p_event": record, "p_rules": config.call_rules()})
    )
    # kept: the call's recorded outcome ranks higher than this event's, and stays; parked: the
    # event came before its call was recorded, and is applied when it is.
    flags = {name: result.pop(name, False) for name in ("duplicate", "ignored", "parked", "kept")}
    status = next((name for name, on in flags.items() if on), "recorded")
    return {"status": status, "type": event.kind, **result}
