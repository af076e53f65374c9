"""Calendly webhook events, without I/O: the envelope and the invitee payload, read defensively
(the current documented shape, older ones with a top-level ``canceled`` and no
``scheduled_event``, ``name: null``, unknown fields), normalized into what ``calendly_record``
stores.

- Payloads: https://developer.calendly.com/api-docs/webhooks (docs/PROVIDERS.md section 2.3)
- Reschedules: https://developer.calendly.com/docs/api-guides/see-how-webhook-payloads-change-when-invitees-reschedule-events

The lead a booking belongs to is found, in order, by the booking it reschedules, by a lead id
carried in the scheduling link's ``utm_content`` (``…?utm_content=<lead uuid>``), by email, by
phone (``text_reminder_number``, or a phone answer among ``questions_and_answers``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from lib import safejson
from lib.errors import BadRequest
from lib.phone import to_e164
from lib.safejson import read_dict, read_text

HANDLED = (
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
)
# Where a phone number may hide: Calendly's own field, a field name some runbooks use, and a
# custom question whose text says it is a phone.
_PHONE_FIELDS = ("text_reminder_number", "text_notification_phone_number")
_PHONE_QUESTION = re.compile(r"phone|tel[eé]fono|m[oó]vil|mobile|cell|whats ?app|celular", re.I)
_URI = re.compile(r"https?://[^\s]{1,480}")


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    event: str
    created_at: Any = None
    payload: Any = None


@dataclass(frozen=True)
class CalendlyEvent:
    """One delivery: its type, and for a handled type what calendly_record takes."""

    kind: str
    record: dict[str, Any] | None = None


def _uri(value: Any) -> str | None:
    text = read_text(value)
    return text if text and _URI.fullmatch(text) else None


def _time(value: Any) -> str | None:
    """An ISO 8601 time as Postgres reads it, or None (a missing or absurd value costs nothing)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat() if 1970 <= moment.year <= 2200 else None


def _lead_id(tracking: dict[str, Any]) -> str | None:
    candidate = read_text(tracking.get("utm_content"), 64)
    try:
        return str(uuid.UUID(candidate)) if candidate else None
    except ValueError:
        return None


def _phone(payload: dict[str, Any], answers: list[dict[str, Any]], region: str) -> str | None:
    for name in _PHONE_FIELDS:
        phone = to_e164(read_text(payload.get(name), 64), default_region=region)
        if phone:
            return phone
    for item in answers:
        if _PHONE_QUESTION.search(item.get("question") or ""):
            phone = to_e164(read_text(item.get("answer"), 64), default_region=region)
            if phone:
                return phone
    return None


def _answers(value: Any) -> list[dict[str, Any]]:
    answers = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            answers.append(
                {
                    "question": read_text(item.get("question")),
                    "answer": read_text(item.get("answer"), 5_000),
                    "position": item.get("position")
                    if isinstance(item.get("position"), int)
                    and not isinstance(item.get("position"), bool)
                    else None,
                }
            )
    return answers[:100]


def parse_event(body: bytes, *, default_region: str) -> CalendlyEvent:
    """The event of a delivery; :class:`BadRequest` when the body is not JSON, not an event, or
    a handled event without an invitee URI (a retry cannot fix those)."""
    envelope = _envelope(body)
    kind = safejson.text(envelope.event, limit=80)
    if kind not in HANDLED:
        return CalendlyEvent(kind)
    payload = read_dict(envelope.payload)
    stored, warnings = safejson.storable(payload, max_string=5_000, max_items=200)
    if kind.startswith("invitee_no_show."):
        return CalendlyEvent(kind, _no_show(kind, payload, envelope, stored))
    invitee_uri = _uri(payload.get("uri"))
    if invitee_uri is None:
        raise BadRequest(
            f"A {kind} event without a usable invitee uri; nothing to record.",
            code="invalid_payload",
        )
    scheduled = read_dict(payload.get("scheduled_event"))
    tracking = {
        key: read_text(value, 200) for key, value in read_dict(payload.get("tracking")).items()
    }
    answers = _answers(payload.get("questions_and_answers"))
    cancellation = read_dict(payload.get("cancellation"))
    name = read_text(payload.get("name")) or " ".join(
        part
        for part in (read_text(payload.get("first_name")), read_text(payload.get("last_name")))
        if part
    )
    email = read_text(payload.get("email"), 320)
    location = safejson.storable(scheduled.get("location"), max_string=500, max_items=20)[0]
    record = {
        "event": kind,
        "external_id": invitee_uri,
        "invitee_uri": invitee_uri,
        "event_uri": _uri(scheduled.get("uri")) or _uri(payload.get("event")),
        "status": read_text(payload.get("status"), 20),
        "rescheduled": payload.get("rescheduled") is True,
        "old_invitee_uri": _uri(payload.get("old_invitee")),
        "new_invitee_uri": _uri(payload.get("new_invitee")),
        "start_time": _time(scheduled.get("start_time")),
        "end_time": _time(scheduled.get("end_time")),
        "timezone": read_text(payload.get("timezone"), 64),
        "name": name or None,
        "email": email.lower() if email and "@" in email else None,
        "phone": _phone(payload, answers, default_region),
        "event_name": read_text(scheduled.get("name")),
        "event_type": _uri(scheduled.get("event_type")),
        "location": location if isinstance(location, dict) else None,
        "cancel_url": _uri(payload.get("cancel_url")),
        "reschedule_url": _uri(payload.get("reschedule_url")),
        "answers": answers,
        "tracking": tracking,
        "lead_id": _lead_id(tracking),
        "cancellation": {
            "reason": read_text(cancellation.get("reason"), 2_000),
            "canceled_by": read_text(cancellation.get("canceled_by")),
            "canceler_type": read_text(cancellation.get("canceler_type"), 20),
            "created_at": _time(cancellation.get("created_at")),
        },
        "created_at": _time(envelope.created_at) or _time(payload.get("created_at")),
        "payload": stored,
        "warnings": warnings[:20],
    }
    return CalendlyEvent(kind, record)


def _no_show(
    kind: str, payload: dict[str, Any], envelope: _Envelope, stored: Any
) -> dict[str, Any]:
    """A no-show mark or unmark. The payload is the no-show resource (``uri`` of the no-show,
    ``invitee``) or an invitee with a ``no_show`` object; either way the invitee's URI ties it
    to the appointment, and the no-show's own URI (or the event's time) makes it idempotent."""
    no_show = read_dict(payload.get("no_show"))
    invitee_uri = _uri(payload.get("invitee")) or _uri(payload.get("uri"))
    if invitee_uri is None:
        raise BadRequest(
            f"A {kind} event without a usable invitee uri; nothing to record.",
            code="invalid_payload",
        )
    marker = (
        _uri(no_show.get("uri"))
        or (_uri(payload.get("uri")) if _uri(payload.get("invitee")) else None)
        or f"{invitee_uri}#{_time(envelope.created_at) or _time(payload.get('updated_at'))}"
    )
    return {
        "event": kind,
        "external_id": marker,
        "invitee_uri": invitee_uri,
        "no_show_at": _time(no_show.get("created_at")) or _time(payload.get("created_at")),
        "created_at": _time(envelope.created_at),
        "payload": stored,
    }


def _envelope(body: bytes) -> _Envelope:
    return safejson.envelope(_Envelope, body, what="a Calendly event")
