"""Refused and failed requests, recorded: one line on stdout, and a count in integration_logs.

Routing (lib.http) decides what is refused; this module only records it, bounded, so strangers
cannot grow the storage: ``log_refused`` keeps one row per provider, event, code and minute.
"""

from __future__ import annotations

from typing import Any

from lib import log, safejson
from lib.db import get_db
from lib.errors import AppError, DatabaseUnavailable


def refused(
    function: str,
    provider: str,
    err: AppError,
    *,
    method: str,
    path: str,
    duration_ms: int,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a refused or failed request (``method`` and ``path`` already bounded). Nothing is
    written to the database when the database is the problem."""
    severity = "WARNING" if err.status < 500 else "ERROR"
    log.emit(
        severity,
        err.message,
        function=function,
        error_code=err.code,
        status=err.status,
        path=path,
        method=method,
        duration_ms=duration_ms,
    )
    if isinstance(err, DatabaseUnavailable):
        return
    bounded, _ = safejson.storable({**err.details, **(details or {})}, max_string=200, max_items=10)
    try:
        get_db().rpc(
            "log_refused",
            {
                "p_provider": provider,
                "p_event": f"{function}.request",
                "p_status": err.log_status,
                "p_error_code": err.code,
                "p_message": safejson.text(err.message, limit=500),
                "p_details": {"method": method, "path": path, "http_status": err.status, **bounded},
                "p_trace_id": log.current_trace.get(),
            },
        )
    except AppError as log_err:
        log.error(
            "Could not write integration_logs",
            function=function,
            error_code=log_err.code,
            reason=log_err.message,
        )
