"""Meta Lead Ads webhooks, without I/O: the subscription handshake and a delivery's leadgen
changes, parsed tolerantly (Meta adds fields without notice and sends ids as numbers or strings).

https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lib import safejson
from lib.errors import Forbidden
from lib.signatures import token_matches

_ID = re.compile(r"[0-9A-Za-z_.:-]{1,64}")


def _id_or_none(value: Any) -> str | None:
    """An id Meta sent as a string or a number; anything else (a float, NaN, a NUL, an object)
    is None: an odd optional field must not cost the lead."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip() if isinstance(value, str) or abs(value) < 10**64 else ""
    return text if _ID.fullmatch(text) else None


def _unix_seconds_or_none(value: Any) -> int | None:
    """A plausible Unix time in whole seconds, else None (``1.5``, ``1e30``, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        return None
    return int(seconds) if seconds.is_integer() and 0 < seconds < 2**31 else None


class _Model(BaseModel):
    # Meta adds fields without notice and sends ids as numbers or strings.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class LeadgenValue(_Model):
    """A leadgen change's value. Only ``leadgen_id`` (digits, as Meta's ids are) is required:
    an odd optional field must not cost the lead (the Graph fetch fills in what the webhook did
    not say)."""

    leadgen_id: str = Field(pattern=r"^\s*[0-9]{1,30}\s*$")
    page_id: str | None = None
    form_id: str | None = None
    ad_id: str | None = None
    adgroup_id: str | None = None
    created_time: int | None = None

    @field_validator("page_id", "form_id", "ad_id", "adgroup_id", mode="before")
    @classmethod
    def _optional_id(cls, value: Any) -> str | None:
        return _id_or_none(value)

    @field_validator("created_time", mode="before")
    @classmethod
    def _optional_time(cls, value: Any) -> int | None:
        return _unix_seconds_or_none(value)

    @field_validator("leadgen_id", mode="before")
    @classmethod
    def _digits_only(cls, value: Any) -> Any:
        # Not a float: NaN or 1e30 would read as text that passes the pattern.
        return None if isinstance(value, bool | float) else value

    @field_validator("leadgen_id", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class Entry(_Model):
    """One entry of a delivery; its fields are read tolerantly, its changes one by one."""

    id: Any = None
    time: Any = None
    changes: list[Any] = []


class Delivery(_Model):
    """The envelope: only its shape is checked here, each entry and change on its own later."""

    object: str
    entry: list[Any]


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
    """Every leadgen change of a delivery; other fields and unusable changes become log items.

    One bad value (a NUL, NaN, a huge number, deep nesting, an entry or a change of the wrong
    shape) costs only its own change, never its siblings: a change whose ``leadgen_id`` is good
    is stored with the bad values replaced (``warnings`` says where), one whose ``leadgen_id`` is
    unusable is logged as rejected with the reason. A body that is not JSON, or not a delivery
    at all, is a :class:`BadRequest`."""
    delivery = _envelope(body)
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
    for e, raw_entry in enumerate(delivery.entry):
        try:
            entry = Entry.model_validate(raw_entry)
        except ValidationError:
            parsed.skipped.append(_rejected(f"entry[{e}]", "is not an entry object", raw_entry))
            continue
        entry_id = _id_or_none(entry.id)
        for c, raw_change in enumerate(entry.changes):
            where = f"entry[{e}].changes[{c}]"
            if not isinstance(raw_change, dict) or not isinstance(raw_change.get("field"), str):
                parsed.skipped.append(
                    _rejected(where, "is not a change with a field name", raw_change, entry_id)
                )
                continue
            field_name = raw_change["field"]
            if field_name != "leadgen":
                name = safejson.text(field_name, limit=64)
                parsed.skipped.append(
                    _skip(
                        f"webhook.{name}",
                        "ignored",
                        f"Ignored a '{name}' change: only 'leadgen' is handled. "
                        "Unsubscribe the field in App Dashboard > Webhooks if nothing needs it.",
                        external_id=entry_id,
                    )
                )
                continue
            try:
                value = LeadgenValue.model_validate(raw_change.get("value"))
            except ValidationError:
                parsed.skipped.append(
                    _rejected(where, "has no usable leadgen_id", raw_change.get("value"), entry_id)
                )
                continue
            payload, warnings = safejson.storable(
                {
                    "entry_id": entry_id,
                    "entry_time": _unix_seconds_or_none(entry.time),
                    "value": raw_change.get("value"),
                },
                where=where,
            )
            parsed.leads.append(
                {
                    "leadgen_id": value.leadgen_id,
                    "page_id": value.page_id or entry_id,
                    "form_id": value.form_id,
                    "ad_id": value.ad_id,
                    "adgroup_id": value.adgroup_id,
                    "created_time": value.created_time,
                    "payload": payload,
                    "warnings": warnings,
                }
            )
    return parsed


def _envelope(body: bytes) -> Delivery:
    return safejson.envelope(Delivery, body, what="a Meta webhook delivery")


def _rejected(where: str, reason: str, raw: Any, external_id: str | None = None) -> dict[str, Any]:
    return _skip(
        "lead.received",
        "rejected",
        f"Skipped {where}: it {reason}; the rest of the delivery was processed. "
        "The raw change (made storable) is in details.",
        error_code="invalid_change",
        external_id=external_id,
        details={"where": where, "reason": reason, "value": raw},
    )


def _skip(
    event: str,
    status: str,
    message: str,
    *,
    error_code: str | None = None,
    external_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A log item for meta_ingest, storable whatever the delivery held (details are cut to a
    few kB: one log row per change, not a copy of the change)."""
    item, _ = safejson.storable(
        {
            "event": event,
            "status": status,
            "message": message,
            "error_code": error_code,
            "external_id": external_id,
            "details": details or {},
        },
        max_string=1_000,
        max_items=50,
    )
    return dict(item)
