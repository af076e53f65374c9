"""meta_webhook: Meta Lead Ads webhooks in, leads out.

Deployed as this folder (this file, the ``meta_webhook`` package, ``requirements.txt``) plus a copy
of ``lib/``; functions-framework puts the folder on ``sys.path``, so ``meta_webhook`` and ``lib``
import by the same names in the bundle, the tests and the tools.
"""

from __future__ import annotations

import time

import functions_framework
from flask import Request, Response

from lib.db import get_db
from lib.http import (
    Route,
    Routes,
    endpoint,
    internal_token,
    json_response,
    read_body,
    text_response,
)
from lib.signatures import verify_meta
from meta_webhook import conversions, leads, recovery
from meta_webhook.meta_events import parse_delivery, verify_subscription
from meta_webhook.settings import settings


def handshake(request: Request) -> Response:
    """The subscription handshake: echo ``hub.challenge`` for the right verify token."""
    (verify_token,) = settings().require("META_VERIFY_TOKEN")
    return text_response(verify_subscription(request.args, verify_token=verify_token))


def receive_delivery(request: Request) -> Response:
    """A signed leadgen delivery: verify, parse, store, fetch from the Graph API, complete."""
    config = settings()
    body = read_body(request, limit=config.max_body_bytes)
    verify_meta(body, request.headers, secrets=config.secrets("META_APP_SECRET"))
    delivery = parse_delivery(body)
    return json_response(
        leads.process_delivery(get_db(), delivery, inline_limit=config.inline_fetch_limit)
    )


def run_sweep(request: Request) -> Response:
    """Complete the fetch_pending leads whose retry time has come (the scheduler calls this);
    ``?retry=pending`` first makes every pending lead due (``make retry``)."""
    config = settings()
    started = time.monotonic()
    counts = leads.sweep(
        get_db(),
        limit=config.sweep_batch_size,
        budget_seconds=config.sweep_time_budget_seconds,
        retry_pending=request.args.get("retry") == "pending",
    )

    def left() -> float:
        return config.sweep_time_budget_seconds - (time.monotonic() - started)

    counts["recovery"] = recovery.run_daily(get_db(), budget_seconds=left())
    counts["retention"] = leads.retention(get_db(), days=config.retention_days)
    counts["conversions"] = conversions.sweep(get_db(), config, budget_seconds=left())
    return json_response(counts)


@functions_framework.http
@endpoint(provider="meta")
def meta_webhook() -> Routes:
    """Meta Lead Ads: the handshake, deliveries, and the private sweep."""
    return {
        ("GET", "/"): Route(handshake),
        ("POST", "/"): Route(receive_delivery),
        ("POST", "/sweep"): Route(run_sweep, auth=internal_token),
    }
