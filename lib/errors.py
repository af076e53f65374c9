"""The error tree: every error carries its HTTP status, a stable ``code`` and, for the operator,
``log_status`` (how it is recorded in integration_logs). lib/http.py turns them into JSON."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error a function answers deliberately."""

    status: int = 500
    code: str = "internal_error"
    log_status: str = "error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class BadRequest(AppError):
    """The request is malformed; a retry of the same request will not help."""

    status = 400
    code = "bad_request"
    log_status = "rejected"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    log_status = "rejected"


class InvalidSignature(Unauthorized):
    """The request's signature is missing, malformed, stale or wrong (never says which part)."""

    code = "invalid_signature"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    log_status = "rejected"


class NotFound(AppError):
    status = 404
    code = "not_found"
    log_status = "rejected"


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"
    log_status = "rejected"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    log_status = "rejected"


class ConfigError(AppError):
    """Settings are missing or invalid. The message names the variables, never their values."""

    code = "missing_configuration"

    def __init__(self, missing: list[str], *, invalid: list[str] | None = None) -> None:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if invalid:
            parts.append("invalid " + ", ".join(invalid))
        super().__init__(
            "Configuration error: "
            + "; ".join(parts)
            + ". Set them in the function's environment (supabase/.env.example lists them all).",
            details={"missing": missing, "invalid": invalid or []},
        )
        self.missing = missing


class DatabaseUnavailable(AppError):
    """The database could not be reached: transient, the sender should retry."""

    status = 503
    code = "database_unavailable"


class DatabaseError(AppError):
    """The database refused a call: a bug or a migration not applied."""

    code = "database_error"
