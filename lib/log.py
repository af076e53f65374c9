"""Structured logs: one JSON object per line on stdout, in the shape Cloud Logging reads
(https://cloud.google.com/logging/docs/structured-logging). Never a secret; a field named for an
email or a phone number (:data:`MASKED`) is masked by :func:`emit` itself."""

from __future__ import annotations

import json
import secrets
import sys
import traceback
from contextvars import ContextVar
from typing import Any

# The trace id of the request being handled (lib/http.py sets it): every log line of the request
# carries it, and the database client forwards it, so one id finds all a request did.
current_trace: ContextVar[str | None] = ContextVar("current_trace", default=None)


def trace_headers(trace: str | None = None) -> dict[str, str]:
    """A W3C ``traceparent`` header carrying ``trace`` (by default the current request's), for
    an outbound request that should be tied to the request that made it; empty without one."""
    trace = trace or current_trace.get()
    return {"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"} if trace else {}


# Fields that hold a person's contact details, and how each is masked.
MASKED = {"email": "email", "phone": "phone", "to_number": "phone", "from_number": "phone"}


def emit(severity: str, message: str, **fields: Any) -> None:
    record: dict[str, Any] = {"severity": severity, "message": message}
    trace = current_trace.get()
    if trace is not None:
        record["trace_id"] = trace
    for key, value in fields.items():
        if value is None:
            continue
        kind = MASKED.get(key)
        if kind is not None:
            value = mask_email(str(value)) if kind == "email" else mask_phone(str(value))
        record[key] = value
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    emit("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    emit("WARNING", message, **fields)


def error(message: str, *, exc: BaseException | None = None, **fields: Any) -> None:
    if exc is not None:
        fields["stack_trace"] = "".join(traceback.format_exception(exc))
    emit("ERROR", message, **fields)


def mask_email(email: str | None) -> str | None:
    """``z***@example.com``: the first letter and the domain, enough to tell leads apart."""
    if not email:
        return None
    local, at, domain = email.partition("@")
    if not at or not local:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str | None:
    """``+14*******71``: the country code's start and the last two digits; anything too short
    to keep a part of is all stars."""
    if not phone:
        return None
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 5) + phone[-2:]
