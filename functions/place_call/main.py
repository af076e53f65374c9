"""place_call: outbound AI calls through ElevenLabs, and their outcomes.

- ``POST /`` ``{"lead_id": …}`` (private, ``Authorization: Bearer $INTERNAL_TOKEN``): place the
  lead's call if the rules allow it now; the answer says what was done and why.
- ``POST /sweep`` (private): place every due call (the scheduler runs it every minute), then
  read from the conversation API the outcome of calls whose post-call webhook never came
  (``reconcile``: ElevenLabs never retries a webhook).
- ``POST /webhook`` (public, ``ElevenLabs-Signature``): the post-call webhook.

Deployed as this folder (this file, the ``place_call`` package, ``requirements.txt``) plus a copy
of ``lib/``; functions-framework puts the folder on ``sys.path``, so ``place_call`` and ``lib``
import by the same names in the bundle, the tests and the tools.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import functions_framework
from flask import Request, Response

from lib import log, safejson
from lib.db import get_db
from lib.errors import BadRequest
from lib.http import (
    Route,
    Routes,
    body_chunks,
    endpoint,
    internal_token,
    json_response,
    read_body,
)
from lib.signatures import verify_elevenlabs_chunks
from place_call import outcomes, placing, reconcile
from place_call.elevenlabs_events import PostCallEvent, parse, phrase_list, sniff_type
from place_call.settings import settings

# A post_call_audio webhook carries the whole call as base64 MP3: it must be read (to check its
# signature) and answered 200, or ElevenLabs disables the webhook after repeated failures. It is
# hashed as it streams; only the first WEBHOOK_PARSE_BYTES are kept (a transcript is far smaller),
# so memory stays bounded whatever a sender sends.
WEBHOOK_MAX_BYTES = 64 * 1024 * 1024
WEBHOOK_PARSE_BYTES = 4 * 1024 * 1024
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def place_one(request: Request) -> Response:
    """Place one lead's call (meta_webhook asks for it the moment a lead with a phone is stored)."""
    config = settings()
    body = read_body(request, limit=config.max_body_bytes)
    try:
        lead_id = json.loads(body)["lead_id"]
    except (ValueError, KeyError, TypeError):
        raise BadRequest('Body must be {"lead_id": "<uuid>"}.', code="invalid_payload") from None
    if not isinstance(lead_id, str) or not _UUID.fullmatch(lead_id):
        shown = safejson.text(str(lead_id), limit=80)
        raise BadRequest(f"lead_id must be a lead's UUID, not {shown!r}.", code="invalid_payload")
    return json_response(placing.place(get_db(), config, lead_id))


def run_sweep(request: Request) -> Response:
    """Place every due call (bounded per run), then, within SWEEP_TIME_BUDGET_SECONDS, read the
    outcome of calls whose post-call webhook is late from the conversation API."""
    config, db = settings(), get_db()
    deadline = time.monotonic() + config.sweep_time_budget_seconds
    # Reconcile runs even when placing failed (and the other way round): a late call's outcome
    # never waits for the queue to be healthy. The first failure is then answered.
    counts: dict[str, Any] = {}
    failures: list[Exception] = []
    for step in (
        lambda: placing.sweep(db, config),
        lambda: reconcile.sweep(db, config, deadline=deadline),
    ):
        try:
            counts.update(step())
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the other step ran
            failures.append(exc)
    for later in failures[1:]:
        log.error("Call sweep step failed", exc=later, function="place_call")
    if failures:
        raise failures[0]
    return json_response(counts)


def receive_webhook(request: Request) -> Response:
    """A signed ElevenLabs post-call webhook: verify, parse, record (one round trip)."""
    config = settings()
    signed = verify_elevenlabs_chunks(
        body_chunks(request, limit=WEBHOOK_MAX_BYTES),
        request.headers,
        secrets=config.secrets("ELEVENLABS_WEBHOOK_SECRET"),
        now=time.time(),
        tolerance=config.elevenlabs_tolerance_seconds,
        keep=WEBHOOK_PARSE_BYTES,
    )
    if not signed.complete:
        event = PostCallEvent(sniff_type(signed.data))  # audio: never parsed nor stored
    else:
        event = parse(
            signed.data,
            voicemail_phrases=phrase_list(config.voicemail_phrases),
            opt_out_field=config.call_opt_out_field,
        )
    return json_response(outcomes.record_outcome(get_db(), config, event))


@functions_framework.http
@endpoint(provider="elevenlabs")
def place_call() -> Routes:
    """ElevenLabs: place calls (private) and record their outcomes (signed webhook)."""
    return {
        ("POST", "/"): Route(place_one, auth=internal_token),
        ("POST", "/sweep"): Route(run_sweep, auth=internal_token),
        ("POST", "/webhook"): Route(receive_webhook),
    }
