"""Calendly webhook deliveries shaped as Calendly documents them today, signed as Calendly signs
them: for the tests, `make send-test-event` (``calendly``) and `make bench`.

- Payload: https://developer.calendly.com/api-docs/calendly-api/webhooks (the "Webhook Payload"
  page; docs/PROVIDERS.md section 2.3): the envelope ``{created_at, created_by, event, payload}``,
  the invitee with ``scheduled_event``, ``tracking``, ``text_reminder_number``,
  ``questions_and_answers``, and ``cancellation`` (with ``canceler_type``) when canceled.
- Reschedules: https://developer.calendly.com/docs/api-guides/see-how-webhook-payloads-change-when-invitees-reschedule-events
  (``invitee.canceled`` with ``rescheduled: true`` and ``new_invitee``, then ``invitee.created``
  with ``old_invitee``).
- Signature: https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from lib.signatures import CALENDLY_HEADER, sign_calendly

API = "https://api.calendly.com"
HOST_USER = f"{API}/users/AAAAAAAAAAAAAAAA"
EVENT_TYPE = f"{API}/event_types/BBBBBBBBBBBBBBBB"
INVITEE_EVENTS = ("invitee.created", "invitee.canceled")


def _id() -> str:
    return uuid.uuid4().hex[:16].upper()


def invitee_uri() -> str:
    """A fresh invitee URI, ``…/scheduled_events/<uuid>/invitees/<uuid>``."""
    return f"{API}/scheduled_events/{_id()}/invitees/{_id()}"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def calendly_invitee_event(
    event: str = "invitee.created",
    *,
    uri: str | None = None,
    email: str | None = None,
    name: str = "Test Invitee",
    phone: str | None = None,
    lead_id: str | None = None,
    rescheduled: bool = False,
    other_invitee: str | None = None,
    start: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An ``invitee.created`` or ``invitee.canceled`` delivery (the parsed JSON).

    ``lead_id`` goes in ``tracking.utm_content`` (the scheduling link's ``?utm_content=``);
    ``phone`` in ``text_reminder_number`` and the outbound-call location. With ``rescheduled``,
    a canceled invitee is ``rescheduled: true`` with ``new_invitee`` = ``other_invitee`` (fresh
    when None); a created one has ``old_invitee`` = ``other_invitee``.
    """
    if event not in INVITEE_EVENTS:
        raise ValueError(f"event must be one of {', '.join(INVITEE_EVENTS)}")
    canceled = event == "invitee.canceled"
    now = now or datetime.now(UTC)
    start = start or (now + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    uri = uri or invitee_uri()
    scheduled_event = uri.split("/invitees/")[0]
    other = (other_invitee or invitee_uri()) if rescheduled else None
    booked = now - timedelta(minutes=5) if canceled else now
    location: dict[str, Any] = (
        {"type": "outbound_call", "location": phone}
        if phone
        else {
            "type": "google_conference",
            "status": "pushed",
            "join_url": "https://meet.google.com/abc-defg-hij",
        }
    )
    payload: dict[str, Any] = {
        "cancel_url": f"https://calendly.com/cancellations/{_id()}",
        "created_at": _time(booked),
        "email": email or f"test.invitee.{uuid.uuid4().hex[:8]}@example.com",
        "event": scheduled_event,
        "first_name": None,
        "last_name": None,
        "name": name,
        "new_invitee": other if canceled else None,
        "old_invitee": None if canceled else other,
        "no_show": None,
        "payment": None,
        "questions_and_answers": [
            {"question": "What would you like to talk about?", "answer": "Pricing", "position": 0}
        ],
        "reconfirmation": None,
        "reschedule_url": f"https://calendly.com/reschedulings/{_id()}",
        "rescheduled": rescheduled and canceled,
        "routing_form_submission": None,
        "scheduling_method": None,
        "invitee_scheduled_by": None,
        "status": "canceled" if canceled else "active",
        "text_reminder_number": phone,
        "timezone": "America/New_York",
        "tracking": {
            "utm_campaign": None,
            "utm_source": None,
            "utm_medium": None,
            "utm_content": lead_id,
            "utm_term": None,
            "salesforce_uuid": None,
        },
        "updated_at": _time(now),
        "uri": uri,
        "scheduled_event": {
            "uri": scheduled_event,
            "name": "15 Minute Meeting",
            "meeting_notes_plain": None,
            "meeting_notes_html": None,
            "status": "canceled" if canceled else "active",
            "start_time": _time(start),
            "end_time": _time(start + timedelta(minutes=15)),
            "event_type": EVENT_TYPE,
            "location": location,
            "invitees_counter": {"total": 1, "active": 0 if canceled else 1, "limit": 1},
            "created_at": _time(booked),
            "updated_at": _time(now),
            "event_memberships": [
                {"user": HOST_USER, "user_email": "host@example.com", "user_name": "Test Host"}
            ],
            "event_guests": [],
        },
    }
    if canceled:
        payload["cancellation"] = {
            "canceled_by": name,
            "reason": "Rescheduled" if rescheduled else "Something came up",
            "canceler_type": "invitee",
            "created_at": _time(now),
        }
    return {
        "created_at": _time(now),
        "created_by": HOST_USER,
        "event": event,
        "payload": payload,
    }


def encode(event: dict[str, Any]) -> bytes:
    """A delivery's bytes as Calendly posts them (compact JSON, UTF-8)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def calendly_headers(body: bytes, *, secret: str, timestamp: int) -> dict[str, str]:
    """The headers Calendly sends with ``body``, signed with ``secret`` at ``timestamp``."""
    return {
        "Content-Type": "application/json",
        CALENDLY_HEADER: sign_calendly(body, secret=secret, timestamp=timestamp),
    }
