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

from functools import cache
from typing import Any

from lib import log
from lib.db import Database
from lib.errors import ConfigError, DatabaseError, DatabaseUnavailable, ProviderFailure
from meta_webhook.graph_api import GraphClient
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


def rejected(err: ProviderFailure) -> bool:
    """Whether Meta refused the batch's content (an invalid parameter), not the request: then
    one of its events is bad, and the others can still be sent."""
    return err.details.get("http_status") == 400 and err.details.get("graph_code") == 100


class Sender:
    def __init__(self, graph: GraphClient, config: MetaWebhookSettings) -> None:
        self.graph, self.config = graph, config
        self.sent: list[int] = []
        self.failed: list[dict[str, Any]] = []
        self.requests = 0

    def send_all(self, rows: list[dict[str, Any]]) -> None:
        """Send ``rows``, one request per Test events code (a test lead's own, else
        META_TEST_EVENT_CODE, else none), each lead's stages in their order."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            code = row.get("test_event_code") or self.config.meta_test_event_code
            groups.setdefault(code, []).append(row)
        for code, group in groups.items():
            self.send(group, code)

    def send(self, rows: list[dict[str, Any]], code: str = "") -> None:
        """Send ``rows`` (at most MAX_BATCH), splitting a rejected batch to find its bad event."""
        body: dict[str, Any] = {"data": [event(row, self.config) for row in rows]}
        if code:
            body["test_event_code"] = code
        self.requests += 1
        try:
            self.graph.post(f"{self.config.meta_dataset_id}/events", body)
        except ProviderFailure as err:
            if rejected(err) and len(rows) > 1:
                half = len(rows) // 2
                self.send(rows[:half], code)
                self.send(rows[half:], code)
                return
            said = str(err.details.get("graph_message") or err.message)
            self.failed += [
                {"id": row["id"], "error": said, "code": err.code, "park": rejected(err)}
                for row in rows
            ]
            return
        self.sent += [int(row["id"]) for row in rows]


@cache
def conversions_graph() -> GraphClient:
    """The Graph client of META_CONVERSIONS_TOKEN (else META_ACCESS_TOKEN); ConfigError when
    neither is set."""
    config = settings()
    try:
        (token,) = config.require("META_CONVERSIONS_TOKEN")
    except ConfigError:
        (token,) = config.require("META_ACCESS_TOKEN")
    return GraphClient(
        base_url=config.meta_graph_url,
        version=config.meta_graph_version,
        access_token=token,
        app_secret=config.secrets("META_APP_SECRET")[0],
        timeout=config.http_timeout_seconds,
    )


def sweep(
    db: Database,
    config: MetaWebhookSettings,
    graph: GraphClient | None = None,
    *,
    limit: int = MAX_BATCH,
) -> dict[str, Any]:
    """Claim the stages due, send them, record what happened; nothing when META_DATASET_ID is
    unset. A failure costs only this sweep's batch (the lease returns it)."""
    if not config.meta_dataset_id:
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
        sender = Sender(graph or conversions_graph(), config)
        sender.send_all(rows)
        done = db.rpc("meta_conversions_done", {"p_sent": sender.sent, "p_failed": sender.failed})
    except (DatabaseUnavailable, DatabaseError, ConfigError) as err:
        # The claimed rows' lease runs out and the next sweep claims them again.
        log.error("Meta conversions sweep failed", function="meta_webhook", error_code=err.code)
        return {"error": err.code}
    counts.update(done, requests=sender.requests)
    log.info("Meta conversions sweep", function="meta_webhook", **counts)
    return counts
