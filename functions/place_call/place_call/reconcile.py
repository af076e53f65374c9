"""The polling fallback for post-call webhooks that never came.

ElevenLabs sends a post-call webhook once and never retries it ("For HIPAA compliance, if a
webhook fails we can not retry the webhook": https://elevenlabs.io/docs/eleven-agents/workflows/
post-call-webhooks, docs/PROVIDERS.md 3.2), so a call whose webhook was lost (misconfigured, our
function down) would keep its lead in ``calling`` for ever. The sweep claims the calls placed at
least CALL_RECONCILE_AFTER_MINUTES ago that have no outcome (SQL ``call_claim_unreported``: row
locks, SKIP LOCKED, a lease that is also the backoff), reads each conversation from
``GET /v1/convai/conversations/{id}`` and:

- ``done`` / ``failed``: records the outcome the webhook would have given (``post_call``'s
  parsing: voicemail, the missed voicemail) through ``call_record_outcome``, the webhook's own
  function (SQL ``call_record_polled``), with a ``call.reconciled`` log row telling the operator
  to check the post-call webhook;
- still ``initiated`` / ``in-progress`` / ``processing``, or unknown to ElevenLabs (404): read
  again later, until CALL_RECONCILE_GIVE_UP_MINUTES after the call started, when it is recorded
  as ``unknown`` so the lead gets its next attempt under the usual rules;
- the API failing (key, credits, 5xx, timeout): left for a later sweep, one ``error`` log row
  per sweep.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from lib import fanout, log
from lib.db import Database
from lib.errors import ConfigError, FailureClass, ProviderFailure
from place_call.elevenlabs_api import get_elevenlabs
from place_call.elevenlabs_events import FINISHED, from_conversation, phrase_list
from place_call.settings import PlaceCallSettings

COUNTS = ("reconciled", "still_running", "not_found", "unknown", "poll_failed", "deferred")
_POLL_THREADS = 8
_IDS_LOGGED = 10
WEBHOOK_HELP = (
    "Check the post-call webhook with `make doctor`, and in ElevenLabs > Agents > Settings > "
    "Post-call webhook: its URL (<place_call URL>/webhook), the transcript and call initiation "
    "failure events, its secret (ELEVENLABS_WEBHOOK_SECRET); place_call's own log shows any "
    "delivery it refused."
)


def sweep(db: Database, config: PlaceCallSettings, *, deadline: float) -> dict[str, int]:
    """Claim up to CALL_RECONCILE_BATCH_SIZE calls whose webhook is late, and read each one's
    conversation before ``deadline`` (``time.monotonic()``); counts of what came of them
    (``reconcile_`` prefixed ``claimed`` and ``remaining``, and :data:`COUNTS`)."""
    counts = dict.fromkeys(("reconcile_claimed", "reconcile_remaining", *COUNTS), 0)
    if time.monotonic() >= deadline:
        return counts
    due = db.rpc(
        "call_claim_unreported",
        {
            "p_limit": config.call_reconcile_batch_size,
            "p_after_minutes": config.call_reconcile_after_minutes,
            "p_give_up_minutes": config.call_reconcile_give_up_minutes,
        },
    )
    claims: list[dict[str, Any]] = list(due["claimed"])
    counts.update(reconcile_claimed=len(claims), reconcile_remaining=due["remaining"])
    if not claims:
        return counts
    call_rules = config.call_rules()

    def poll_one(claim: dict[str, Any]) -> tuple[str, ProviderFailure | None]:
        if time.monotonic() >= deadline:
            return "deferred", None  # read again once its lease (reconcile_at) is over
        return poll(db, config, claim, call_rules)

    results = fanout.each(poll_one, claims, threads=_POLL_THREADS)
    for state, _ in results:
        if state in counts:
            counts[state] += 1
    failures = [
        (claim, failure)
        for claim, (_, failure) in zip(claims, results, strict=True)
        if failure is not None
    ]
    if failures:
        _log_failures(db, failures)
    log.info("Call reconcile", function="place_call", **counts)
    return counts


def poll(
    db: Database, config: PlaceCallSettings, claim: dict[str, Any], call_rules: dict[str, Any]
) -> tuple[str, ProviderFailure | None]:
    """Read one claimed call's conversation and record its outcome if it is known (or given
    up on): the state for the counts, and the failure when the API could not be read."""
    conversation_id = str(claim["conversation_id"])
    try:
        conversation = get_elevenlabs().conversation(conversation_id)
    except ConfigError as err:
        return "poll_failed", ProviderFailure.from_config(err)
    except ProviderFailure as failure:
        if failure.failure_class is not FailureClass.NOT_FOUND:
            return "poll_failed", failure
        if not claim["give_up"]:
            return "not_found", None
        return _give_up(db, config, claim, call_rules, "does not know the conversation"), None
    status = str(conversation["status"])
    if status not in FINISHED:
        if not claim["give_up"]:
            return "still_running", None
        return _give_up(db, config, claim, call_rules, f"still reports it as {status}"), None
    record = from_conversation(
        conversation_id,
        conversation,
        voicemail_phrases=phrase_list(config.voicemail_phrases),
        opt_out_field=config.call_opt_out_field,
    )
    if record["outcome"] is None:  # no transcript in the API's answer either
        if not claim["give_up"]:
            return "still_running", None
        return _give_up(db, config, claim, call_rules, "gives no transcript for it"), None
    record["lead_id"] = record["lead_id"] or claim["lead_id"]
    message = (
        f"ElevenLabs' post-call webhook for call {claim['attempt']} (conversation "
        f"{conversation_id}) did not arrive; its outcome ({record['outcome']}) was read from the "
        f"conversation API instead. {WEBHOOK_HELP}"
    )
    return _record(db, claim, record, call_rules, message, "reconciled"), None


def _give_up(
    db: Database,
    config: PlaceCallSettings,
    claim: dict[str, Any],
    call_rules: dict[str, Any],
    what: str,
) -> str:
    hours = f"{config.call_reconcile_give_up_minutes / 60:g} h"
    record = {
        # A type of its own: the real webhook, should it come after all, is not its duplicate
        # and replaces this unknown (call_record_outcome's precedence).
        "type": "reconcile_give_up",
        "conversation_id": claim["conversation_id"],
        "lead_id": claim["lead_id"],
        "outcome": "unknown",
        "message": f"Outcome unknown: no post-call webhook came, and {hours} after the call "
        f"started ElevenLabs {what} (CALL_RECONCILE_GIVE_UP_MINUTES).",
        "payload": {"reconciled": "gave_up", "elevenlabs": what, "checks": claim["checks"]},
    }
    message = (
        f"ElevenLabs' post-call webhook for call {claim['attempt']} (conversation "
        f"{claim['conversation_id']}) did not arrive, and {hours} after the call started the "
        f"conversation API {what}: recorded as unknown, so the lead gets its next attempt "
        f"under the usual rules. {WEBHOOK_HELP}"
    )
    return _record(db, claim, record, call_rules, message, "unknown")


def _record(
    db: Database,
    claim: dict[str, Any],
    record: dict[str, Any],
    call_rules: dict[str, Any],
    message: str,
    state: str,
) -> str:
    result = db.rpc(
        "call_record_polled",
        {
            "p_call_id": claim["call_id"],
            "p_event": record,
            "p_rules": call_rules,
            "p_message": message,
        },
    )
    if result.get("duplicate") or result.get("ignored"):
        return "duplicate"  # the webhook came meanwhile
    log.info(
        "Call outcome read from the conversation API",
        function="place_call",
        lead_id=claim["lead_id"],
        conversation_id=claim["conversation_id"],
        outcome=record["outcome"],
    )
    return state


def _log_failures(db: Database, failures: list[tuple[dict[str, Any], ProviderFailure]]) -> None:
    """One integration_logs row for every call this sweep could not read."""
    first = failures[0][1]
    db.log(
        provider="elevenlabs",
        event="call.reconcile_failed",
        status="error",
        error_code=first.code,
        message=f"Could not read {len(failures)} call(s) from the ElevenLabs conversation API to "
        f"recover their outcome (their post-call webhook has not come): {first.message} They "
        "are read again at a later sweep.",
        details={
            "codes": dict(Counter(failure.code for _, failure in failures)),
            "failure_class": first.failure_class.value,
            "conversation_ids": [claim["conversation_id"] for claim, _ in failures][:_IDS_LOGGED],
        },
    )
