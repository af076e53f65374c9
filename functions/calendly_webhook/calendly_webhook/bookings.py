"""Calendly events recorded: one database round trip each (``calendly_record``), or one log row
for an event type this project does not handle."""

from __future__ import annotations

from typing import Any

from calendly_webhook.calendly_events import HANDLED, CalendlyEvent
from lib import log
from lib.db import Database


def record(db: Database, event: CalendlyEvent) -> dict[str, Any]:
    """Store the event and tie its appointment to a lead; the answer says what happened."""
    if event.record is None:
        db.log(
            provider="calendly",
            event=event.kind,
            status="ignored",
            message=f"Ignored a '{event.kind}' event: only {', '.join(HANDLED)} are handled. "
            "Leave it out of the webhook subscription if nothing needs it.",
        )
        return {"status": "ignored", "event": event.kind}
    result = dict(db.rpc("calendly_record", {"p_event": event.record}))
    # parked: a no-show before its booking, applied when the booking comes.
    flags = {name: result.pop(name, False) for name in ("duplicate", "ignored", "parked")}
    status = next((name for name, on in flags.items() if on), "recorded")
    log.info(
        "Calendly event",
        function="calendly_webhook",
        event=event.kind,
        status=status,
        lead_id=result.get("lead_id"),
        matched_by=result.get("matched_by"),
    )
    return {"status": status, "event": event.kind, **result}
