"""The Meta lead flow: store a delivery (round trip 1), fetch the new leads from the Graph API,
record the results (round trip 2); the sweep retries what is due the same way."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lib import fanout, log
from lib.db import Database
from lib.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnavailable,
    FailureClass,
    ProviderFailure,
)
from meta_webhook.call_request import request_calls
from meta_webhook.graph_api import GraphClient, get_graph
from meta_webhook.lead_mapping import consent_responses, map_lead
from meta_webhook.meta_events import ParsedDelivery
from meta_webhook.settings import settings

_FETCH_THREADS = 8


def _consent_note(consents: list[dict[str, Any]]) -> str:
    if not consents:
        return ", no consent checkbox"
    checked = [c["checkbox_key"] for c in consents if c["is_checked"]]
    return f", consent checkboxes checked: {', '.join(checked) if checked else 'none'}"


def _fetch_one(
    graph: GraphClient,
    claim: Mapping[str, Any],
    region: str,
    node: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One claimed lead fetched (unless its ``node`` was read already, by listing its form) and
    mapped, as a meta_complete result."""
    started = time.perf_counter()
    form: dict[str, Any] | None = None
    read_now = False
    try:
        if node is None:
            node = graph.fetch_lead(str(claim["leadgen_id"]))
        form_id = node.get("form_id")
        if consent_responses(node) and isinstance(form_id, str | int) and str(form_id).isdigit():
            # The text the consent was given under: the form's disclaimer, read once per form.
            form, read_now = graph.lead_form(str(form_id))
        lead, warnings = map_lead(node, default_region=region, form=form)
    except ProviderFailure as failure:
        result = failure.result()
    except Exception as exc:  # noqa: BLE001 - one lead's surprise must not cost its batch
        log.error("Unexpected error reading a lead", exc=exc, lead_id=claim["lead_id"])
        result = ProviderFailure(
            FailureClass.MALFORMED,
            "graph_lead_unreadable",
            f"The Graph API's answer for this lead could not be read ({type(exc).__name__}); "
            "retried up to the attempt cap. The function's logs have the details.",
            {"exception": type(exc).__name__},
        ).result()
    else:
        result = {
            "ok": True,
            "lead": lead,
            "details": {"warnings": warnings} if warnings else {},
            "message": f"Lead answers fetched from the Graph API ({len(lead['answers'])} answers"
            + _consent_note(lead["consents"])
            + ")."
            + (f" Warning: {' '.join(warnings[:3])}" if warnings else ""),
        }
        if read_now and form is not None:
            result["form"] = form  # stored once in lead_forms
    result["lead_id"] = claim["lead_id"]
    result["duration_ms"] = int((time.perf_counter() - started) * 1000)
    return result


def fetch_leads(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fetch the claimed leads (concurrently when several), as meta_complete's results."""
    if not claims:
        return []
    try:
        graph = get_graph()
    except ConfigError as err:
        failure = ProviderFailure.from_config(err).result()
        return [{**failure, "lead_id": claim["lead_id"]} for claim in claims]
    region = settings().default_phone_region
    return fanout.each(
        lambda claim: _fetch_one(graph, claim, region), claims, threads=_FETCH_THREADS
    )


def complete_read(
    graph: GraphClient,
    claims: list[dict[str, Any]],
    nodes: Mapping[str, dict[str, Any]],
    region: str,
) -> list[dict[str, Any]]:
    """The claimed leads whose nodes were read already (by listing their form), mapped as
    meta_complete's results: no second fetch."""
    return [_fetch_one(graph, c, region, nodes[str(c["leadgen_id"])]) for c in claims]


def complete(db: Database, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Record ``results`` (meta_complete, round trip 2), then ask place_call for the leads it
    queued."""
    if not results:
        return {"completed": 0, "failed": 0, "skipped": 0}
    try:
        outcome = dict(db.rpc("meta_complete", {"p_results": results}))
    except (DatabaseUnavailable, DatabaseError) as err:
        # The leads are stored and claimed: the sweep fetches them again after the lease, and a
        # redelivery would change nothing, so the delivery is still answered 200.
        log.error(
            "Could not record Graph results; the sweep will retry",
            function="meta_webhook",
            error_code=err.code,
            reason=err.message,
            leads=[r["lead_id"] for r in results],
        )
        return {"completed": 0, "failed": 0, "skipped": len(results)}
    request_calls([str(lead_id) for lead_id in outcome.pop("queued", [])])
    return outcome


def process_delivery(db: Database, parsed: ParsedDelivery, *, inline_limit: int) -> dict[str, Any]:
    """Store the delivery (round trip 1), fetch the new leads, record the results (round trip 2).
    New leads past ``inline_limit`` are left due for the sweep."""
    stored = db.rpc(
        "meta_ingest",
        {"p_leads": parsed.leads, "p_skipped": parsed.skipped, "p_claim_limit": inline_limit},
    )
    outcome = complete(db, fetch_leads(stored["to_fetch"]))
    counts = {
        "received": len(parsed.leads),
        "new": len(stored["to_fetch"]) + len(stored["deferred"]),
        "duplicates": len(stored["duplicates"]),
        "fetched": outcome["completed"],
        "pending": len(parsed.leads) - len(stored["duplicates"]) - outcome["completed"],
        "ignored": sum(1 for s in parsed.skipped if s["status"] == "ignored"),
        "rejected": sum(1 for s in parsed.skipped if s["status"] == "rejected"),
    }
    log.info("Meta delivery processed", function="meta_webhook", **counts)
    return counts


RETENTION_BATCH = 2000  # rows of each table a sweep deletes at most (every minute)


def retention(db: Database, *, days: int) -> dict[str, Any]:
    """Delete a batch of the integration_logs and webhook_events rows older than ``days`` (SQL
    ``retention_sweep`` keeps the evidence rows); a failure is logged and costs only itself."""
    try:
        done = dict(db.rpc("retention_sweep", {"p_days": days, "p_limit": RETENTION_BATCH}))
    except (DatabaseUnavailable, DatabaseError) as err:
        log.error("Retention sweep failed", function="meta_webhook", error_code=err.code)
        return {"error": err.code}
    if done.get("logs") or done.get("events"):
        log.info("Retention sweep", function="meta_webhook", **done)
    return done


def sweep(
    db: Database, *, limit: int, budget_seconds: float, retry_pending: bool = False
) -> dict[str, Any]:
    """Fetch the fetch_pending leads whose retry time has come, ``limit`` at a time, until none
    is due, ``budget_seconds`` are spent (within the platform's request timeout), or a batch
    completes nothing (a token or an outage: the backoff takes over). ``retry_pending`` first
    makes every pending lead due (``make retry``, after fixing a credential)."""
    started = time.monotonic()
    retried = db.rpc("meta_retry_pending", {}) if retry_pending else 0
    counts = {"claimed": 0, "completed": 0, "failed": 0, "remaining": 0, "batches": 0}
    while True:
        claimed = db.rpc("meta_claim_due", {"p_limit": limit})
        outcome = complete(db, fetch_leads(claimed["claimed"]))
        counts["batches"] += 1
        counts["claimed"] += len(claimed["claimed"])
        counts["completed"] += outcome["completed"]
        counts["failed"] += outcome["failed"]
        counts["remaining"] = claimed["remaining"]
        if (
            not claimed["remaining"]
            or not outcome["completed"]
            or time.monotonic() - started >= budget_seconds
        ):
            break
    if counts["claimed"] or retried:
        log.info("Meta sweep", function="meta_webhook", retried=retried, **counts)
    return {**counts, "retried": retried} if retry_pending else counts
