"""JSON from outside, made storable: Postgres refuses a NUL character or a lone surrogate in
``jsonb`` and ``text``, JSON has no NaN or infinity, and numbers or nesting beyond reason break
parsers. One bad value must cost only the item that holds it (or nothing), never its neighbours.

- :func:`loads` parses a body that a strict parser refused, cutting what is nested deeper than
  :data:`MAX_DEPTH` and keeping huge numbers and NaN as :class:`Poison` markers;
- :func:`storable` returns a value that Postgres and ``json.dumps`` accept, and the list of what
  it had to change, each naming where.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lib.errors import BadRequest

M = TypeVar("M", bound=BaseModel)

MAX_DEPTH = 64  # containers nested deeper than this are cut (Meta's deliveries nest 5 deep)
MAX_INT_DIGITS = 30
DEEP = "<nested deeper than 64 levels: cut>"

# A JSON string (escapes included), or a bracket: enough to track nesting without recursion.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


class Poison:
    """A value a strict parser could not represent (a 5,000-digit number, NaN), kept as text."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"Poison({self.what!r})"


def _int(digits: str) -> int | Poison:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        return Poison(f"an integer of {len(digits.lstrip('-'))} digits")
    return int(digits)


def _constant(name: str) -> Poison:
    return Poison(name)


def cut_deep(body: bytes, *, limit: int = MAX_DEPTH) -> bytes:
    """``body`` with every container nested deeper than ``limit`` replaced by :data:`DEEP`
    (a JSON string), found without recursion. Invalid JSON stays invalid."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return body
    out: list[bytes] = []
    last = depth = 0
    cut_from: int | None = None
    for match in _TOKEN.finditer(body):
        token = match.group()
        if token[0] == 0x22:  # a string: brackets inside it do not count
            continue
        if token in (b"[", b"{"):
            depth += 1
            if depth == limit + 1 and cut_from is None:
                cut_from = match.start()
        else:
            if depth == limit + 1 and cut_from is not None:
                out += [body[last:cut_from], b'"' + DEEP.encode() + b'"']
                last, cut_from = match.end(), None
            depth -= 1
    out.append(body[last:])
    return b"".join(out)


def loads(body: bytes) -> Any:
    """Parse ``body`` tolerantly: what is too deep is cut, huge numbers and NaN/Infinity become
    :class:`Poison`. Raises ValueError when the body is not JSON at all."""
    try:
        return json.loads(cut_deep(body), parse_int=_int, parse_constant=_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def text(value: str, *, limit: int) -> str:
    """``value`` without NUL characters or lone surrogates (each becomes U+FFFD), at most
    ``limit`` characters."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value if len(value) <= limit else value[:limit] + "…"


def storable(
    value: Any, *, where: str = "", max_string: int = 10_000, max_items: int | None = None
) -> tuple[Any, list[str]]:
    """``value`` as Postgres' jsonb and ``json.dumps`` accept it, and what was changed where:
    NUL and lone surrogates replaced, strings cut to ``max_string``, NaN/infinity and huge
    numbers as text, containers deeper than :data:`MAX_DEPTH` cut, and (with ``max_items``)
    containers cut to their first ``max_items`` items."""
    problems: list[str] = []

    def some(items: list[Any], path: str) -> list[Any]:
        if max_items is None or len(items) <= max_items:
            return items
        problems.append(f"{path or 'value'}: {len(items)} items, the first {max_items} kept")
        return items[:max_items]

    def walk(item: Any, path: str, depth: int) -> Any:
        if item is None or isinstance(item, bool):
            return item
        if isinstance(item, str):
            if item == DEEP:
                problems.append(f"{path or 'value'}: nested deeper than {MAX_DEPTH} levels")
                return item
            clean = text(item, limit=max_string)
            if clean != item:
                problems.append(f"{path or 'value'}: a NUL, an invalid character or too long")
            return clean
        if isinstance(item, int):
            if len(str(abs(item))) <= MAX_INT_DIGITS:
                return item
            problems.append(f"{path or 'value'}: an integer of over {MAX_INT_DIGITS} digits")
            return f"<integer of over {MAX_INT_DIGITS} digits>"
        if isinstance(item, float):
            if math.isfinite(item):
                return item
            problems.append(f"{path or 'value'}: {item} is not a JSON number")
            return str(item)
        if isinstance(item, Poison):
            problems.append(f"{path or 'value'}: {item.what}")
            return f"<{item.what}>"
        if depth >= MAX_DEPTH:
            problems.append(f"{path or 'value'}: nested deeper than {MAX_DEPTH} levels")
            return DEEP
        if isinstance(item, dict):
            return {
                text(str(key), limit=200): walk(
                    val, f"{path}.{key}" if path else str(key), depth + 1
                )
                for key, val in item.items()
            }
        if isinstance(item, list | tuple):
            return [walk(val, f"{path}[{i}]", depth + 1) for i, val in enumerate(item)]
        problems.append(f"{path or 'value'}: a {type(item).__name__}")
        return text(str(item), limit=200)

    return walk(value, where, 0), problems


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse(model: type[M], body: bytes) -> M:
    """``body`` validated as ``model``: by the strict parser first (fast), and when it refuses
    the JSON itself (too deep, a huge number), by :func:`loads`. Raises
    :class:`pydantic.ValidationError` when the body is not of the model's shape, and ValueError
    when it is not JSON at all (catch the former first: it is a ValueError too)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if exc.errors()[0]["type"] != "json_invalid":
            raise
    return model.model_validate(loads(body))


def envelope(model: type[M], body: bytes, *, what: str) -> M:
    """``body`` as ``model`` (the outer shape of a provider's delivery), or the 400 the sender
    gets: ``malformed_json`` when it is not JSON, ``invalid_payload`` naming where it is not
    ``what`` ("a Calendly event")."""
    try:
        return parse(model, body)
    except ValidationError as exc:
        raise not_a(what, exc.errors()[0]) from None
    except ValueError:
        raise BadRequest("Body is not valid JSON.", code="malformed_json") from None


def not_a(what: str, error: Any) -> BadRequest:
    """The 400 for a body that is not ``what``: where (a pydantic error's ``loc``) and why."""
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return BadRequest(
        text(f"Body is not {what}: {where}: {error['msg']}.", limit=300), code="invalid_payload"
    )


# Tolerant readers of a provider's JSON: a missing, mistyped or absurd value is None (or {}),
# never an error, so one odd field costs only itself.


def read_text(value: Any, limit: int = 500) -> str | None:
    """A string, number or the like as storable text of at most ``limit`` characters."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return text(str(value), limit=limit).strip() or None


def read_int(value: Any, below: int = 10**7) -> int | None:
    """A whole number in ``[0, below)`` from a number or numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if 0 <= number < below else None


def read_dict(value: Any) -> dict[str, Any]:
    """An object, or an empty one."""
    return value if isinstance(value, dict) else {}
