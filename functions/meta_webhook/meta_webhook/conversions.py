"""Outcomes back to Meta: the lead stages of the SQL outbox (``meta_conversions``, written by
triggers in the stage change's own transaction) sent to the Conversions API for CRM
("Conversion Leads"), by the sweep.

``POST /{dataset_id}/events`` with ``{"data": [...]}``, each event: ``event_name`` (the stage's
name, META_STAGE_<STAGE>), ``event_time`` (Unix seconds), ``action_source:
"system_generated"``, ``event_id`` (Meta deduplicates on it), ``user_data.lead_id`` (the
leadgen id, not hashed), ``custom_data.event_source: "crm"`` and ``lead_event_source``
(META_CRM_NAME). At most 1,000 events a request. One bad event makes Meta reject its whole
batch, so a rejected batch is split in halves until the bad event is alone: it is parked with a
log row and every other event of the batch is sent. Any other failure (a token, an outage) is
retried with backoff, as the SQL says.
https://developers.facebook.com/docs/marketing-api/conversions-api/conversion-leads-integration
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from lib import log
from lib.db import Database
from lib.errors import ConfigError, DatabaseError, DatabaseUnavailable, ProviderFailure
from meta_webhook.graph_api import GraphClient, graph_for
from meta_webhook.settings import MetaWebhookSettings, settings

MAX_BATCH = 1000  # Meta's limit per request
LEASE_SECONDS = 120  # longer than a sweep's sends; then a crashed sweep's batch is sent again


def event(row: dict[str, Any], config: MetaWebhookSettings) -> dict[str, Any]:
    """One outbox row as a Conversions API event."""
    stage = str(row["stage"])
    return {
        "event_name": getattr(config, f"meta_stage_{stage}"),
        "event_time": int(row["event_time"]),
        "action_source": "system_generated",
        "event_id": row["event_id"],
        # Meta's lead ids are numbers; anything else is sent as it is, and refused alone.
        "user_data": {"lead_id": int(lead) if (lead := str(row["leadgen_id"])).isdigit() else lead},
        "custom_data": {"event_source": "crm", "lead_event_source": config.meta_crm_name},
    }


# Requests one sweep may spend finding bad events in rejected batches; the rest waits.
MAX_REQUESTS = 64
# The time a sweep gives the sending at least, whatever the leads before it took (the function's
# timeout leaves this much beyond SWEEP_TIME_BUDGET_SECONDS).
MIN_SECONDS = 5.0


def rejected(err: ProviderFailure) -> bool:
    """Whether Meta refused the batch's content (an invalid parameter, code 100), not the
    request itself: an unknown dataset (subcode 33) or a wrong appsecret_proof is the request's
    fault, and every event of it is retried instead."""
    details = err.details
    return (
        details.get("http_status") == 400
        and details.get("graph_code") == 100
        and details.get("graph_subcode") != 33
        and "appsecret_proof" not in str(details.get("graph_message") or "")
    )


def _leads(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``rows`` (a lead's stages together, in their order) split by lead."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["lead_id"], []).append(row)
    return list(groups.values())


class Sender:
    """Sends claimed rows and keeps what happened to each: ``sent`` and ``failed`` (for SQL
    meta_conversions_done), each with the claim's ``attempts``."""

    def __init__(
        self, graph: GraphClient, config: MetaWebhookSettings, budget_seconds: float = 60.0
    ) -> None:
        self.graph, self.config = graph, config
        self.deadline = time.monotonic() + budget_seconds
        self.sent: list[dict[str, int]] = []
        self.failed: list[dict[str, Any]] = []
        self.requests = 0

    def send_all(self, rows: list[dict[str, Any]]) -> None:
        """Send ``rows``, one request per Test events code (a test lead's own, else
        META_TEST_EVENT_CODE, else none), each lead's stages in their order. When nothing at
        all was accepted, a "bad event" was the request's fault after all (a dataset or token
        Meta refuses with an invalid parameter): nothing is parked, everything is retried."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            code = row.get("test_event_code") or self.config.meta_test_event_code
            groups.setdefault(code, []).append(row)
        for code, group in groups.items():
            self.send(group, code)
        if not self.sent:
            for failure in self.failed:
                failure["park"] = False

    def send(self, rows: list[dict[str, Any]], code: str = "") -> bool:
        """Send ``rows`` (at most MAX_BATCH). A rejected batch is split between leads, never
        inside one, to find its bad event; a lead's own stages are then sent one by one in
        their order, and after a stage that must be retried the later ones wait too. Whether
        every row was sent."""
        if self.requests >= MAX_REQUESTS or time.monotonic() >= self.deadline:
            self._fail(rows, "not sent: this sweep's time is spent", "meta_batch_deferred")
            return False
        body: dict[str, Any] = {"data": [event(row, self.config) for row in rows]}
        if code:
            body["test_event_code"] = code
        self.requests += 1
        try:
            self.graph.post(f"{self.config.meta_dataset_id}/events", body)
        except ProviderFailure as err:
            said = str(err.details.get("graph_message") or err.message)
            if not rejected(err) or len(rows) == 1:
                self._fail(rows, said, err.code, park=rejected(err))
                return False
            leads = _leads(rows)
            if len(leads) > 1:
                half = len(leads) // 2
                left = [row for lead in leads[:half] for row in lead]
                right = [row for lead in leads[half:] for row in lead]
                return self.send(left, code) & self.send(right, code)
            for index, row in enumerate(rows):  # one lead: its stages in order
                if not self.send([row], code) and not self.failed[-1]["park"]:
                    self._fail(rows[index + 1 :], said, err.code)
                    return False
            return False
        self.sent += [{"id": int(row["id"]), "attempts": int(row["attempts"])} for row in rows]
        return True

    def _fail(self, rows: list[dict[str, Any]], error: str, code: str, park: bool = False) -> None:
        self.failed += [
            {"id": row["id"], "attempts": row["attempts"], "error": error, "code": code,
             "park": park}
            for row in rows
        ]  # fmt: skip


@cache
def conversions_graph() -> GraphClient:
    """The Graph client of META_CONVERSIONS_TOKEN (else META_ACCESS_TOKEN); ConfigError when
    neither is set."""
    config = settings()
    try:
        (token,) = config.require("META_CONVERSIONS_TOKEN")
    except ConfigError:
        (token,) = config.require("META_ACCESS_TOKEN")
    return graph_for(config, token)


def sweep(
    db: Database,
    config: MetaWebhookSettings,
    graph: GraphClient | None = None,
    *,
    limit: int = MAX_BATCH,
    budget_seconds: float = MIN_SECONDS,
) -> dict[str, Any]:
    """Claim the stages due, send them within ``budget_seconds`` (MIN_SECONDS at least), record
    what happened; nothing is sent when META_DATASET_ID is unset. A failure costs only this
    sweep's batch (the lease returns it)."""
    if not config.meta_dataset_id:
        # Nothing is sent; the stages Meta would refuse anyway (over 7 days old) are dropped.
        try:
            db.rpc("meta_conversions_drop_expired", {"p_limit": MAX_BATCH})
        except (DatabaseUnavailable, DatabaseError) as err:
            log.error(
                "Meta conversions cleanup failed", function="meta_webhook", error_code=err.code
            )
        return {}
    try:
        claimed = db.rpc(
            "meta_conversions_claim",
            {
                "p_limit": min(limit, MAX_BATCH),
                "p_lease_seconds": LEASE_SECONDS,
                "p_attended_grace_hours": config.meta_attended_grace_hours,
            },
        )
        rows = list(claimed["claimed"])
        counts: dict[str, Any] = {
            "claimed": len(rows),
            "attended": claimed["attended"],
            "expired": claimed["parked"],
        }
        if not rows:
            return counts
        sender = Sender(graph or conversions_graph(), config, max(budget_seconds, MIN_SECONDS))
        sender.send_all(rows)
        done = db.rpc("meta_conversions_done", {"p_sent": sender.sent, "p_failed": sender.failed})
    except (DatabaseUnavailable, DatabaseError, ConfigError) as err:
        # The claimed rows' lease runs out and the next sweep claims them again.
        log.error("Meta conversions sweep failed", function="meta_webhook", error_code=err.code)
        return {"error": err.code}
    counts.update(done, requests=sender.requests)
    log.info("Meta conversions sweep", function="meta_webhook", **counts)
    return counts
