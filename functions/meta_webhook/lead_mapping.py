"""A Graph lead node as the columns of ``leads``, without I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lib.phone import to_e164


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
