"""The Graph fake's lead and form nodes are shaped as the official Meta Business SDK
(facebook-business) types them: every field the fake answers is a field of the SDK's model, of
the SDK's type, down to the consent checkboxes. Pure: no stack."""

from __future__ import annotations

from typing import Any

import pytest

from meta_webhook.graph_api import FORM_FIELDS, LEAD_FIELDS
from tools.fakes.graph_fake import default_form, default_lead

_SCALARS: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "bool": bool,
    "int": int,
    "unsigned int": int,
    "datetime": str,
    "Object": (dict, list, str),
}


def _model(name: str) -> Any:
    module = __import__(f"facebook_business.adobjects.{name.lower()}", fromlist=[name])
    return getattr(module, name)


def problems(value: Any, sdk_type: str, where: str) -> list[str]:
    """Where ``value`` does not fit ``sdk_type`` (an SDK field type: a scalar, a model name, or
    list<…>)."""
    if sdk_type.startswith("list<") and sdk_type.endswith(">"):
        if not isinstance(value, list):
            return [f"{where}: a list expected, got {type(value).__name__}"]
        inner = sdk_type[5:-1]
        return [p for i, item in enumerate(value) for p in problems(item, inner, f"{where}[{i}]")]
    if sdk_type in _SCALARS:
        ok = isinstance(value, _SCALARS[sdk_type]) and not (
            sdk_type == "int" and isinstance(value, bool)
        )
        return [] if ok else [f"{where}: {sdk_type} expected, got {value!r}"]
    if not isinstance(value, dict):
        return [f"{where}: a {sdk_type} object expected, got {type(value).__name__}"]
    fields = _model(sdk_type)._field_types
    found = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{where}.{key}: not a field of {sdk_type}")
        else:
            found += problems(item, fields[key], f"{where}.{key}")
    return found


def test_default_lead_is_an_sdk_lead() -> None:
    assert problems(default_lead("1234567890123456"), "Lead", "lead") == []


@pytest.mark.parametrize("consent", [True, False])
def test_default_form_is_an_sdk_leadgen_form(consent: bool) -> None:
    assert problems(default_form("172036835026334", consent=consent), "LeadgenForm", "form") == []


def test_the_checker_catches_a_wrong_shape() -> None:
    form = default_form("1")
    form["legal_content"]["custom_disclaimer"]["checkboxes"] = {"data": []}  # an edge, not a list
    form["legal_content"]["custom_disclaimer"]["colour"] = "red"
    assert problems(form, "LeadgenForm", "form") == [
        "form.legal_content.custom_disclaimer.checkboxes: a list expected, got dict",
        "form.legal_content.custom_disclaimer.colour: not a field of LeadGenCustomDisclaimer",
    ]


def parse_fields(text: str) -> dict[str, Any]:
    """Graph's ``fields=`` syntax (``a,b{c,d{e}}``) as a tree: field -> its subfields."""
    tree: dict[str, Any] = {}
    stack = [tree]
    name = ""
    for char in text + ",":
        if char in ",{}":
            if name:
                stack[-1][name] = {}
            if char == "{":
                stack.append(stack[-1][name])
            elif char == "}":
                stack.pop()
            name = ""
        else:
            name += char
    return tree


def unknown_fields(tree: dict[str, Any], model: str, where: str) -> list[str]:
    fields = _model(model)._field_types
    found = []
    for name, sub in tree.items():
        if name not in fields:
            found.append(f"{where}.{name}")
        elif sub:
            inner = fields[name].removeprefix("list<").removesuffix(">")
            found += unknown_fields(sub, inner, f"{where}.{name}")
    return found


def test_the_fields_requested_are_sdk_fields() -> None:
    assert unknown_fields(parse_fields(LEAD_FIELDS), "Lead", "lead") == []
    form = parse_fields(FORM_FIELDS)
    assert "checkboxes" in form["legal_content"]["custom_disclaimer"]
    assert unknown_fields(form, "LeadgenForm", "form") == []
    assert unknown_fields(parse_fields("id,legal_content{colour}"), "LeadgenForm", "form") == [
        "form.legal_content.colour"
    ]
