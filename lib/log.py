"""Structured logs: one JSON object per line on stdout, in the shape Cloud Logging reads
(https://cloud.google.com/logging/docs/structured-logging). Never a secret; emails and phone
numbers are masked with :func:`mask_email` and :func:`mask_phone` before they get here."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any


def emit(severity: str, message: str, **fields: Any) -> None:
    record = {"severity": severity, "message": message}
    record.update({k: v for k, v in fields.items() if v is not None})
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
    if not email or "@" not in email:
        return None if not email else "***"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    return phone[:3] + "*" * max(len(phone) - 5, 0) + phone[-2:]
