"""calendly_webhook: Calendly bookings in, tied to their leads.

Deployed as this folder (this file, the ``calendly_webhook`` package, ``requirements.txt``) plus a
copy of ``lib/``; functions-framework puts the folder on ``sys.path``, so ``calendly_webhook`` and
``lib`` import by the same names in the bundle, the tests and the tools.
"""

from __future__ import annotations

import time

import functions_framework
from flask import Request, Response

from calendly_webhook import bookings
from calendly_webhook.calendly_events import parse_event
from calendly_webhook.settings import settings
from lib.db import get_db
from lib.http import Route, Routes, endpoint, json_response, read_body
from lib.signatures import verify_calendly


def receive_event(request: Request) -> Response:
    """A signed Calendly event: verify, parse, record (one round trip), answer."""
    config = settings()
    body = read_body(request, limit=config.max_body_bytes)
    verify_calendly(
        body,
        request.headers,
        secrets=config.secrets("CALENDLY_SIGNING_KEY"),
        now=time.time(),
        tolerance=config.calendly_tolerance_seconds,
    )
    event = parse_event(body, default_region=config.default_phone_region)
    return json_response(bookings.record(get_db(), event))


@functions_framework.http
@endpoint(provider="calendly")
def calendly_webhook() -> Routes:
    """Calendly: invitee.created / .canceled and no-show events."""
    return {("POST", "/"): Route(receive_event)}
