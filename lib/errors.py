"""The error tree.

- :class:`AppError` and its subclasses are what a function answers deliberately: each carries its
  HTTP status and a stable ``code``; lib/http.py turns them into JSON. How one is recorded in
  integration_logs (``log_status``) follows from the status: ``rejected`` for a 4xx (the caller's
  request was refused), ``error`` for a 5xx (ours to fix).
- :class:`ProviderFailure` is a failed call to an outside API (Graph, ElevenLabs, Calendly),
  classified by a :class:`FailureClass` that the SQL queues act on (retry or not), with a stable
  code and a message that tells the operator what to do.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class AppError(Exception):
    """Base of every error a function answers deliberately."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    @property
    def log_status(self) -> str:
        """``rejected`` for the caller's bad request (4xx), ``error`` for our failure (5xx)."""
        return "rejected" if self.status < 500 else "error"


class BadRequest(AppError):
    """The request is malformed; a retry of the same request will not help."""

    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class InvalidSignature(Unauthorized):
    """The request's signature is missing, malformed, stale or wrong (never says which part)."""

    code = "invalid_signature"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: list[str] | None = None) -> None:
        super().__init__(message, details={"allow": allow or []})
        self.allow = allow or []


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class ConfigError(AppError):
    """Settings are missing or invalid. The message names the variables, never their values."""

    code = "missing_configuration"

    def __init__(
        self, missing: list[str], *, invalid: list[str] | dict[str, str] | None = None
    ) -> None:
        """``missing``: variables not set; ``invalid``: variables whose value is wrong, each
        with what is wrong (a mapping) or not (a list)."""
        reasons = invalid if isinstance(invalid, dict) else dict.fromkeys(invalid or [], "")
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if reasons:
            parts.append(
                "invalid "
                + ", ".join(f"{name} ({why})" if why else name for name, why in reasons.items())
            )
        super().__init__(
            "Configuration error: "
            + "; ".join(parts)
            + ". Set them in the function's environment (supabase/.env.example lists them all).",
            details={"missing": missing, "invalid": list(reasons), "reasons": reasons},
        )
        self.missing = missing
        self.invalid = reasons


class DatabaseUnavailable(AppError):
    """The database could not be reached: transient, the sender should retry."""

    status = 503
    code = "database_unavailable"


class DatabaseError(AppError):
    """The database refused a call: a bug or a migration not applied."""

    code = "database_error"


class FailureClass(StrEnum):
    """Why a call to a provider failed: the closed set the SQL queues act on (the Postgres enum
    ``public.failure_class`` holds the same values; a test keeps them equal)."""

    AUTH = "auth"  # credentials refused: fix the key or token; retried with backoff meanwhile
    PERMISSION = "permission"  # the credentials lack a permission; retried with backoff
    CONFIG = "config"  # one of our settings is missing or wrong; retried with backoff
    QUOTA = "quota"  # the account is out of credits or over its plan; retried with backoff
    THROTTLED = "throttled"  # rate limited; retried with backoff
    TRANSIENT = "transient"  # outage, 5xx, timeout before anything happened; retried
    AMBIGUOUS = "ambiguous"  # timed out after sending: it may have happened; retried after a wait
    MALFORMED = "malformed"  # the answer is not of the documented shape; retried up to the cap
    NOT_FOUND = "not_found"  # the provider does not know the object: never retried
    INVALID = "invalid"  # the provider refused the request or answered garbage: never retried


class ProviderFailure(Exception):
    """A failed call to an outside API, classified. Raised by the provider clients; recorded by
    the SQL queue (retry by ``failure_class``) and in integration_logs (``code``, ``message``)."""

    def __init__(
        self,
        failure_class: FailureClass,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.code = code
        self.message = message
        self.details = details or {}

    def result(self) -> dict[str, Any]:
        """The failure as the SQL queue functions take it (``ok: false``)."""
        return {
            "ok": False,
            "error_class": self.failure_class.value,
            "error_code": self.code,
            "message": self.message,
            "details": self.details,
        }

    @classmethod
    def from_config(cls, err: ConfigError) -> ProviderFailure:
        """A missing or invalid setting, met while about to call a provider."""
        return cls(FailureClass.CONFIG, err.code, err.message, err.details)
