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

_CONSENTS = 20  # checkbox answers kept per lead (a form has a handful)
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


def _checked(value: Any) -> bool:
    # The SDK types is_checked as a string ("1"); a boolean is read too. Anything else: unchecked.
    return value is True or (isinstance(value, str) and value.strip().lower() in ("1", "true"))


def consent_responses(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lead's answers to its form's disclaimer checkboxes, as Meta sent them (bounded)."""
    responses = node.get("custom_disclaimer_responses")
    if isinstance(responses, dict):  # a Graph edge: {"data": [...]}
        responses = responses.get("data")
    if not isinstance(responses, list):
        return []
    return [r for r in responses if isinstance(r, dict)][:_CONSENTS]


def disclaimer(form: Mapping[str, Any] | None) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The disclaimer as shown (title, body, checkbox texts), and its checkboxes by key."""
    legal = form.get("legal_content") if form else None
    custom = legal.get("custom_disclaimer") if isinstance(legal, dict) else None
    if not isinstance(custom, dict):
        return None, {}
    body = custom.get("body")
    checkboxes = custom.get("checkboxes")
    if isinstance(checkboxes, dict):
        checkboxes = checkboxes.get("data")
    boxes = {
        str(box["key"]): box
        for box in (checkboxes if isinstance(checkboxes, list) else [])
        if isinstance(box, dict) and _scalar(box.get("key"))
    }
    parts = [
        _scalar(custom.get("title")),
        _scalar(body.get("text")) if isinstance(body, dict) else None,
        *(_scalar(box.get("text")) for box in boxes.values()),
    ]
    shown = "\n".join(part for part in parts if part)
    return shown or None, boxes


def map_consents(node: Mapping[str, Any], form: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One consent row per checkbox answer: checked or not, pre-checked by the form or not (a
    pre-checked box is never consent; unknown when the form does not list the box), the
    disclaimer as shown and the raw evidence."""
    shown, boxes = disclaimer(form)
    legal = form.get("legal_content") if form else None
    if not isinstance(legal, dict):
        legal = None
    consents = []
    for response in consent_responses(node):
        key = _scalar(response.get("checkbox_key"))
        box = boxes.get(key or "")
        default = box.get("is_checked_by_default") if box else None
        consents.append(
            {
                "form_id": _scalar(node.get("form_id")),
                "checkbox_key": key,
                "checkbox_text": _scalar(box.get("text")) if box else None,
                "is_checked": _checked(response.get("is_checked")),
                "checked_by_default": default if isinstance(default, bool) else None,
                "disclaimer": shown,
                "given_at": _scalar(node.get("created_time")),
                "evidence": {
                    "response": {k: _scalar(v) for k, v in list(response.items())[:10]},
                    "checkbox": {k: v for k, v in box.items() if k != "text"} if box else None,
                    "legal_content_id": _scalar(legal.get("id")) if legal else None,
                },
            }
        )
    return consents


def map_lead(
    node: Mapping[str, Any], *, default_region: str, form: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A Graph lead node as the columns of ``leads`` (with its consent answers, read against
    ``form``, the form's node), and warnings for the operator."""
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
        "consents": map_consents(node, form),
    }
    for key in _COLUMNS:
        value = _scalar(node.get(key)) if not isinstance(node.get(key), float) else None
        if value is not None:
            lead[key] = value[:500]
    if isinstance(node.get("is_organic"), bool):
        lead["is_organic"] = node["is_organic"]
    return lead, warnings
