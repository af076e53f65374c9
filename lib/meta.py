"""Meta Lead Ads: the webhook's parsing, the Graph API lead fetch, and the flow between them.

- Webhooks: https://developers.facebook.com/docs/graph-api/webhooks/getting-started
- Leads: https://developers.facebook.com/docs/marketing-api/guides/lead-ads/retrieving
- Errors: https://developers.facebook.com/docs/graph-api/guides/error-handling
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lib import log
from lib.config import get_config
from lib.db import Database
from lib.errors import (
    BadRequest,
    ConfigError,
    DatabaseError,
    DatabaseUnavailable,
    Forbidden,
)
from lib.outbound import outbound_client
from lib.phone import to_e164
from lib.signatures import appsecret_proof, token_matches

LEAD_FIELDS = (
    "id,created_time,ad_id,ad_name,adset_id,campaign_id,campaign_name,form_id,"
    "is_organic,platform,field_data"
)
_FETCH_THREADS = 8


class _Model(BaseModel):
    # Meta adds fields without notice and sends ids as numbers or strings.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class LeadgenValue(_Model):
    """A leadgen change's value. Only ``leadgen_id`` is required: an odd optional field must
    not cost the lead (the Graph fetch fills in what the webhook did not say)."""

    leadgen_id: str = Field(min_length=1, max_length=64, pattern=r"^\s*[0-9A-Za-z_.:-]+\s*$")
    page_id: str | None = None
    form_id: str | None = None
    ad_id: str | None = None
    adgroup_id: str | None = None
    created_time: int | None = None

    @field_validator("page_id", "form_id", "ad_id", "adgroup_id", mode="before")
    @classmethod
    def _id_or_none(cls, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None
        return str(value).strip() or None

    @field_validator("created_time", mode="before")
    @classmethod
    def _unix_seconds_or_none(cls, value: Any) -> int | None:
        try:
            seconds = int(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return seconds if 0 < seconds < 2**31 else None

    @field_validator("leadgen_id", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class Change(_Model):
    field: str
    value: Any = None


class Entry(_Model):
    id: str | None = None
    time: int | None = None
    changes: list[Change] = []


class Delivery(_Model):
    object: str
    entry: list[Entry]


@dataclass
class ParsedDelivery:
    """What meta_ingest takes: the leads to store and the changes only to log."""

    leads: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def verify_subscription(args: Mapping[str, str], *, verify_token: str) -> str:
    """The ``hub.challenge`` to echo for a valid subscription handshake; Forbidden otherwise."""
    challenge = args.get("hub.challenge")
    if (
        args.get("hub.mode") != "subscribe"
        or not challenge
        or not token_matches(args.get("hub.verify_token"), expected=verify_token)
    ):
        raise Forbidden(
            "Webhook verification refused: hub.mode must be 'subscribe' and hub.verify_token "
            "must equal META_VERIFY_TOKEN (the Verify Token typed in App Dashboard > Webhooks).",
            code="verification_failed",
        )
    return challenge


def parse_delivery(body: bytes) -> ParsedDelivery:
    """Every leadgen change of a delivery; other fields and unusable changes become log items."""
    try:
        delivery = Delivery.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise BadRequest("Body is not valid JSON.", code="malformed_json") from None
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(
            f"Body is not a Meta webhook delivery: {where}: {first['msg']}.",
            code="invalid_payload",
        ) from None
    parsed = ParsedDelivery()
    if delivery.object != "page":
        parsed.skipped.append(
            _skip(
                "webhook.object",
                "ignored",
                f"Ignored a delivery for object '{delivery.object}': "
                "only 'page' leadgen changes are handled.",
                details={"object": delivery.object},
            )
        )
        return parsed
    for entry in delivery.entry:
        for change in entry.changes:
            if change.field != "leadgen":
                parsed.skipped.append(
                    _skip(
                        f"webhook.{change.field}",
                        "ignored",
                        f"Ignored a '{change.field}' change: only 'leadgen' is handled. "
                        "Unsubscribe the field in App Dashboard > Webhooks if nothing needs it.",
                        external_id=entry.id,
                    )
                )
                continue
            try:
                value = LeadgenValue.model_validate(change.value)
            except ValidationError:
                parsed.skipped.append(
                    _skip(
                        "lead.received",
                        "rejected",
                        "Skipped a leadgen change without a usable leadgen_id; the rest of the "
                        "delivery was processed. The raw change is in details.",
                        error_code="invalid_change",
                        external_id=entry.id,
                        details={"value": change.value},
                    )
                )
                continue
            parsed.leads.append(
                {
                    "leadgen_id": value.leadgen_id,
                    "page_id": value.page_id or entry.id,
                    "form_id": value.form_id,
                    "ad_id": value.ad_id,
                    "adgroup_id": value.adgroup_id,
                    "created_time": value.created_time,
                    "payload": {
                        "entry_id": entry.id,
                        "entry_time": entry.time,
                        "value": change.value,
                    },
                }
            )
    return parsed


def _skip(
    event: str,
    status: str,
    message: str,
    *,
    error_code: str | None = None,
    external_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "event": event,
        "status": status,
        "message": message,
        "error_code": error_code,
        "external_id": external_id,
        "details": details or {},
    }


@dataclass
class GraphError(Exception):
    """A failed lead fetch, classified: ``error_class`` decides the retry (SQL
    meta_next_fetch_at), ``message`` tells the operator what to do."""

    error_class: str
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


_THROTTLE_CODES = {4, 17, 32, 341, 613} | set(range(80000, 80015))


def classify_graph_error(status: int, body: Any) -> GraphError:
    """Turn a Graph error answer into a :class:`GraphError` (branching on ``error.code``)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(
            "transient",
            "graph_unavailable",
            f"The Graph API answered HTTP {status} without an error object; "
            "Meta may be having an outage. Retried automatically.",
            {"http_status": status},
        )
    code = error.get("code")
    subcode = error.get("error_subcode")
    text = str(error.get("message", ""))
    details = {
        "http_status": status,
        "graph_code": code,
        "graph_subcode": subcode,
        "graph_message": text,
        "fbtrace_id": error.get("fbtrace_id"),
    }
    label = f"Graph error {code}" + (f"/{subcode}" if subcode else "") + f": {text}"
    if code in (190, 102):
        return GraphError(
            "auth",
            "graph_token_invalid",
            f"The Meta access token is expired or invalid ({label}). Renew "
            "META_ACCESS_TOKEN with a long-lived Page token (`make doctor` checks "
            "it); pending leads are fetched by the sweep once it works.",
            details,
        )
    if code == 100 and "appsecret_proof" in text:
        return GraphError(
            "auth",
            "graph_appsecret_proof_invalid",
            f"Meta rejected the appsecret_proof ({label}). META_APP_SECRET must be "
            "the App Secret of the app that issued META_ACCESS_TOKEN.",
            details,
        )
    if code == 10 or (isinstance(code, int) and 200 <= code <= 299):
        return GraphError(
            "permission",
            "graph_permission_denied",
            f"The access token may not read this lead ({label}). Grant the "
            "leads_retrieval permission to the token and allow this app in the "
            "Page's Leads Access Manager (Page settings > Leads access).",
            details,
        )
    if code in _THROTTLE_CODES:
        return GraphError(
            "throttled",
            "graph_rate_limited",
            f"Meta is throttling Graph calls ({label}). Nothing to do: the lead "
            "is retried automatically with backoff.",
            details,
        )
    if code == 100:
        return GraphError(
            "unknown_lead",
            "graph_unknown_lead",
            f"The Graph API does not know this lead id ({label}). Expected for "
            "the App Dashboard's test button; for a real lead, check that "
            "META_ACCESS_TOKEN is a token of the Page that owns the form.",
            details,
        )
    if code in (1, 2) or status >= 500:
        return GraphError(
            "transient",
            "graph_unavailable",
            f"The Graph API had a temporary error ({label}). Retried automatically.",
            details,
        )
    return GraphError(
        "transient",
        "graph_error",
        f"The Graph API refused the lead fetch ({label}). Retried automatically; "
        "if it persists, look the code up in Meta's error reference.",
        details,
    )


class GraphClient:
    """Reads lead nodes from the Graph API, with ``appsecret_proof`` and a timeout."""

    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        access_token: str,
        app_secret: str,
        timeout: float,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/{version.strip('/')}"
        self._params = {
            "access_token": access_token,
            "appsecret_proof": appsecret_proof(access_token, app_secret=app_secret),
        }
        self._timeout = timeout
        self._http = http_client or httpx.Client(timeout=timeout)

    def get(self, path: str, **params: str) -> Any:
        """GET ``/{version}/{path}``: its JSON, or :class:`GraphError`."""
        try:
            response = self._http.get(
                f"{self._base}/{path}", params={**params, **self._params}, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise GraphError(
                "transient",
                "graph_timeout",
                "The Graph API did not answer in time; retried automatically.",
                {"exception": type(exc).__name__},
            ) from None
        except httpx.TransportError as exc:
            raise GraphError(
                "transient",
                "graph_unreachable",
                f"The Graph API is unreachable ({type(exc).__name__}); check "
                "META_GRAPH_URL and outbound network. Retried automatically.",
                {"exception": type(exc).__name__},
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            raise classify_graph_error(response.status_code, body)
        return body

    def fetch_lead(self, leadgen_id: str) -> dict[str, Any]:
        return dict(self.get(leadgen_id, fields=LEAD_FIELDS))


@cache
def get_graph() -> GraphClient:
    config = get_config()
    token, _ = config.require("META_ACCESS_TOKEN", "META_APP_SECRET")
    return GraphClient(
        base_url=config.meta_graph_url,
        version=config.meta_graph_version,
        access_token=token,
        app_secret=config.secrets("META_APP_SECRET")[0],
        timeout=config.http_timeout_seconds,
        http_client=outbound_client(),
    )


def map_lead(node: Mapping[str, Any], *, default_region: str) -> tuple[dict[str, Any], list[str]]:
    """A Graph lead node as the columns of ``leads``, and warnings for the operator."""
    answers: dict[str, Any] = {}
    first: dict[str, str] = {}
    for item in node.get("field_data") or []:
        name = str(item.get("name", "")).strip()
        values = [str(v) for v in (item.get("values") or [])]
        if not name:
            continue
        answers[name] = values[0] if len(values) == 1 else values
        if values:
            first.setdefault(name.lower(), values[0].strip())
    full_name = (
        first.get("full_name")
        or " ".join(part for part in (first.get("first_name"), first.get("last_name")) if part)
        or None
    )
    email = (first.get("email") or "").lower() or None
    raw_phone = first.get("phone_number") or first.get("phone")
    phone = to_e164(raw_phone, default_region=default_region)
    warnings = []
    if raw_phone and phone is None:
        warnings.append(
            f"The phone answer is not a valid number (read in region "
            f"{default_region.upper()}, DEFAULT_PHONE_REGION); kept in answers only."
        )
    lead = {"full_name": full_name, "email": email, "phone": phone, "answers": answers}
    for key in (
        "form_id",
        "ad_id",
        "adset_id",
        "campaign_id",
        "ad_name",
        "campaign_name",
        "platform",
    ):
        if isinstance(node.get(key), (str, int)) and not isinstance(node[key], bool):
            lead[key] = str(node[key])
    if isinstance(node.get("is_organic"), bool):
        lead["is_organic"] = node["is_organic"]
    return lead, warnings


def _fetch_one(graph: GraphClient, claim: Mapping[str, Any], region: str) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"lead_id": claim["lead_id"]}
    try:
        lead, warnings = map_lead(graph.fetch_lead(str(claim["leadgen_id"])), default_region=region)
    except GraphError as err:
        result.update(
            ok=False,
            error_class=err.error_class,
            error_code=err.code,
            message=err.message,
            details=err.details,
        )
    else:
        result.update(
            ok=True,
            lead=lead,
            details={"warnings": warnings} if warnings else {},
            message=f"Lead answers fetched from the Graph API ({len(lead['answers'])} "
            f"answers{', phone invalid' if warnings else ''}).",
        )
    result["duration_ms"] = int((time.perf_counter() - started) * 1000)
    return result


def fetch_leads(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fetch the claimed leads (concurrently when several), as meta_complete's results."""
    if not claims:
        return []
    try:
        graph = get_graph()
    except ConfigError as err:
        return [
            {
                "lead_id": c["lead_id"],
                "ok": False,
                "error_class": "config",
                "error_code": err.code,
                "message": err.message,
                "details": err.details,
            }
            for c in claims
        ]
    region = get_config().default_phone_region
    if len(claims) == 1:
        return [_fetch_one(graph, claims[0], region)]
    with ThreadPoolExecutor(max_workers=min(_FETCH_THREADS, len(claims))) as pool:
        return list(pool.map(lambda claim: _fetch_one(graph, claim, region), claims))


def _complete(db: Database, results: list[dict[str, Any]]) -> dict[str, Any]:
    if not results:
        return {"completed": 0, "failed": 0, "skipped": 0}
    try:
        return dict(db.rpc("meta_complete", {"p_results": results}))
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


def process_delivery(db: Database, parsed: ParsedDelivery, *, inline_limit: int) -> dict[str, Any]:
    """Store the delivery (round trip 1), fetch the new leads, record the results (round trip 2).
    New leads past ``inline_limit`` are left due for the sweep."""
    stored = db.rpc(
        "meta_ingest",
        {"p_leads": parsed.leads, "p_skipped": parsed.skipped, "p_claim_limit": inline_limit},
    )
    outcome = _complete(db, fetch_leads(stored["to_fetch"]))
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


def sweep(db: Database, *, limit: int) -> dict[str, Any]:
    """Fetch up to ``limit`` fetch_pending leads whose retry time has come."""
    claimed = db.rpc("meta_claim_due", {"p_limit": limit})
    outcome = _complete(db, fetch_leads(claimed["claimed"]))
    counts = {
        "claimed": len(claimed["claimed"]),
        "completed": outcome["completed"],
        "failed": outcome["failed"],
        "remaining": claimed["remaining"],
    }
    if counts["claimed"]:
        log.info("Meta sweep", function="meta_webhook", **counts)
    return counts
