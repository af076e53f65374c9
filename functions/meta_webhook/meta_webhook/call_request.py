"""Ask place_call for a lead's call the moment the lead is stored with a phone (speed to lead).

The call is already queued in the database in the same transaction as the lead, so this is
only the fast path: a short timeout, failures logged and nothing else — place_call's sweep
(every minute) places whatever this missed, and its claim is atomic, so a lead is never called
twice.
"""

from __future__ import annotations

import httpx

from lib import fanout, log
from lib.outbound import outbound_client
from meta_webhook.settings import settings


def _ask(url: str, token: str, lead_id: str, timeout: float) -> None:
    try:
        response = outbound_client().post(
            url,
            json={"lead_id": lead_id},
            # The delivery's trace id goes along: place_call's log lines carry it too.
            headers={"Authorization": f"Bearer {token}", **log.trace_headers()},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        log.warning(
            "place_call did not answer; its sweep will place the call",
            function="meta_webhook",
            lead_id=lead_id,
            reason=type(exc).__name__,
        )
        return
    if not response.is_success:
        log.warning(
            "place_call refused the request; its sweep will place the call",
            function="meta_webhook",
            lead_id=lead_id,
            http_status=response.status_code,
            answer=response.text[:300],
        )


def request_calls(lead_ids: list[str]) -> None:
    """POST ``{"lead_id"}`` to PLACE_CALL_URL for each lead (concurrently when several); nothing
    when PLACE_CALL_URL or INTERNAL_TOKEN is unset (the sweep then does it all)."""
    config = settings()
    # The first of INTERNAL_TOKEN's values (``new,old`` while it is rotated) is the one to send.
    raw = config.internal_token.get_secret_value() if config.internal_token else ""
    token = next((part.strip() for part in raw.split(",") if part.strip()), "")
    if not lead_ids or not config.place_call_url or not token:
        return
    url, token, timeout = (
        config.place_call_url,
        token,
        config.place_call_timeout_seconds,
    )
    fanout.each(lambda lead_id: _ask(url, token, lead_id, timeout), lead_ids, threads=8)
