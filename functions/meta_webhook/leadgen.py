"""Meta Lead Ads webhooks, without I/O: the subscription handshake and a delivery's leadgen
changes, parsed tolerantly (Meta adds fields without notice and sends ids as numbers or strings).

https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lib.errors import BadRequest, Forbidden
from lib.signatures import token_matches


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
