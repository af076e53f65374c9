"""A Graph lead node as the columns of ``leads``, without I/O.

Read defensively: a value of the wrong shape costs only itself (a warning names it), a NUL or a
lone surrogate is replaced, and a node with no usable answer at all is a
:class:`~lib.errors.ProviderFailure` (class ``malformed``, retried up to the cap), never a lead
silently marked complete.
https://developers.facebook.com/docs/marketing-api/guides/lead-ads/retrieving
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lib.errors import FailureClass, ProviderFailure
from lib.phone import time_zones, to_e164
from lib.safejson import text

_ANSWER_CHARS = 10_000  # longer answers are cut (Meta caps a custom answer far below this)
_COLUMNS = ("form_id", "ad_id", "adset_id", "campaign_id", "ad_name", "campaign_name", "platform")


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return text(str(value), limit=_ANSWER_CHARS)


def _answers(field_data: Any, warnings: list[str]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for index, item in enumerate(field_data):
        name = _scalar(item.get("name")) if isinstance(item, dict) else None
        if not name or not name.strip():
            warnings.append(f"field_data[{index}] has no name; skipped.")
            continue
        raw = item.get("values")
        raw_values = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw_values, list):
            warnings.append(f"field_data[{index}] ({name[:64]}) has no list of values; skipped.")
            continue
        values = [v for v in (_scalar(v) for v in raw_values) if v is not None]
        if len(values) != len(raw_values):
            warnings.append(f"field_data[{index}] ({name[:64]}) had values of the wrong type.")
        elif values != [str(v) for v in raw_values] or name != item.get("name"):
            warnings.append(
                f"field_data[{index}] ({name[:64]}): a NUL or an invalid character was "
                "replaced, or an over-long answer cut."
            )
        answers[name.strip()] = values[0] if len(values) == 1 else values
    return answers


def map_lead(node: Mapping[str, Any], *, default_region: str) -> tuple[dict[str, Any], list[str]]:
    """A Graph lead node as the columns of ``leads``, and warnings for the operator."""
    warnings: list[str] = []
    field_data = node.get("field_data")
    answers = _answers(field_data, warnings) if isinstance(field_data, list) else {}
    if not answers:
        raise ProviderFailure(
            FailureClass.MALFORMED,
            "graph_lead_malformed",
            "The Graph API answered this lead without any usable answer ("
            + ("no field_data" if field_data is None else "field_data of the wrong shape")
            + "); it stays fetch_pending and is retried up to the attempt cap.",
            {"warnings": warnings[:10], "field_data_type": type(field_data).__name__},
        )
    first = {
        name.lower(): value if isinstance(value, str) else value[0]
        for name, value in answers.items()
        if value
    }
    full_name = (
        first.get("full_name")
        or " ".join(part for part in (first.get("first_name"), first.get("last_name")) if part)
        or None
    )
    email = (first.get("email") or "").strip().lower() or None
    raw_phone = first.get("phone_number") or first.get("phone")
    phone = to_e164(raw_phone, default_region=default_region)
    if raw_phone and phone is None:
        warnings.append(
            f"The phone answer is not a valid number (read in region "
            f"{default_region.upper()}, DEFAULT_PHONE_REGION); kept in answers only."
        )
    # Calling hours hold in every zone the number may be in (SQL call_window).
    zones = time_zones(phone)
    lead: dict[str, Any] = {
        "full_name": full_name.strip()[:500] if full_name else None,
        "email": email[:320] if email else None,
        "phone": phone,
        "timezone": zones[0] if len(zones) == 1 else None,
        "timezones": zones,
        "answers": answers,
    }
    for key in _COLUMNS:
        value = _scalar(node.get(key)) if not isinstance(node.get(key), float) else None
        if value is not None:
            lead[key] = value[:500]
    if isinstance(node.get("is_organic"), bool):
        lead["is_organic"] = node["is_organic"]
    return lead, warnings
