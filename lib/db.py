"""The database: Postgres functions called over PostgREST with supabase-py's client.

Every data rule lives in SQL (supabase/migrations); Python only calls ``rpc()``. Only the
PostgREST part of supabase-py is imported (``postgrest``, which ``supabase`` installs and wraps
as ``Client.rpc``): the functions use nothing else, and auth, storage and realtime would cost
each cold start about 0.1 s for nothing.
"""

from __future__ import annotations

import random
import time
from functools import cache
from typing import Any

import httpx
from postgrest import APIError, SyncPostgrestClient

from lib import log
from lib.errors import DatabaseError, DatabaseUnavailable
from lib.outbound import outbound_client
from lib.settings import Settings, get_settings

# Answers meaning "the database cannot be reached now; nothing was written, a retry may
# succeed": connection errors (08*), insufficient resources (53*), operator intervention (57P*),
# a statement over the role's statement_timeout (57014: rolled back), PostgREST's PGRST000-003,
# and the gateway's own 5xx pages (HTML bodies: postgrest-py reports their HTTP status as code).
_UNAVAILABLE_PREFIXES = (
    "08",
    "53",
    "57P",
    "57014",
    "PGRST000",
    "PGRST001",
    "PGRST002",
    "PGRST003",
    "502",
    "503",
    "504",
    "520",
    "521",
    "522",
    "523",
    "524",
)

# A deadlock (40P01) or a serialization failure (40001): Postgres rolled the transaction back,
# so nothing was written and the same call may succeed at once (PostgREST answers both 500).
_CONFLICT_CODES = ("40001", "40P01")
_CONFLICT_TRIES = 3


class _Conflict(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


_KEY_HINT = (
    "check that SUPABASE_SERVICE_ROLE_KEY is the project's secret key (sb_secret_…) or legacy "
    "service_role key, never the publishable or anon one"
)
# Codes that say the key is the problem; an answer with no code at all is the API gateway's own
# (401 {"message": "Invalid API key"}).
_KEY_CODES = {"", "PGRST301", "PGRST302", "PGRST303", "42501", "401", "403"}
_MIGRATION_CODES = {"PGRST202", "PGRST205", "42883", "42P01", "42703"}


def _refused(function: str, code: str, message: str | None) -> DatabaseError:
    if code in _KEY_CODES:
        hint = _KEY_HINT
    elif code in _MIGRATION_CODES:
        hint = "are all migrations applied? (`make doctor`)"
    else:
        hint = "the function's logs have the details"
    return DatabaseError(
        f"The database refused {function} ({code or 'no code'}: {message}); {hint}.",
        details={"function": function, "db_code": code},
    )


def _unreachable(function: str, exc: Exception) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"The database API is unreachable ({type(exc).__name__}); nothing was written. Check "
        "SUPABASE_URL and the project's status.",
        details={"function": function},
    )


class Database:
    """A thin typed wrapper over ``SyncPostgrestClient.rpc`` with the project's error mapping."""

    def __init__(
        self,
        url: str,
        service_role_key: str,
        *,
        http_client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._client = SyncPostgrestClient(
            f"{url.rstrip('/')}/rest/v1",
            headers={"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"},
            http_client=http_client or httpx.Client(timeout=timeout),
            retry_enabled=False,
        )

    def rpc(self, function: str, params: dict[str, Any]) -> Any:
        """Call ``public.<function>`` with named arguments; its JSON result. A deadlock or a
        serialization failure (Postgres rolled the whole call back) is tried again, at most
        :data:`_CONFLICT_TRIES` times in all, then answered as unavailable (503: retryable)."""
        for tries_left in range(_CONFLICT_TRIES - 1, -1, -1):
            try:
                return self._rpc_once(function, params)
            except _Conflict as conflict:
                if not tries_left:
                    raise DatabaseUnavailable(
                        f"The database rolled {function} back {_CONFLICT_TRIES} times because "
                        f"of concurrent changes ({conflict.code}); nothing was written. A retry "
                        "is safe.",
                        code="database_conflict",
                        details={"function": function, "db_code": conflict.code},
                    ) from conflict
                time.sleep(random.uniform(0.01, 0.05))  # jitter, so conflicting callers part
        raise AssertionError("unreachable")

    def _rpc_once(self, function: str, params: dict[str, Any]) -> Any:
        call = self._client.rpc(function, params)
        # W3C trace context: the API's logs (and the local stand-in's) tie the call to the
        # request that made it.
        call.request.headers.update(log.trace_headers())
        try:
            return call.execute().data
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise _unreachable(function, exc) from exc
            # Sent, and no answer in time: the call may still have committed. Every write is
            # idempotent, so the sender's redelivery is safe; never claim nothing was written.
            raise DatabaseUnavailable(
                f"The database API did not answer {function} in time ({type(exc).__name__}); "
                "it may have completed. A redelivery is safe: every write is idempotent.",
                code="database_timeout",
                details={"function": function},
            ) from exc
        except httpx.TransportError as exc:
            raise _unreachable(function, exc) from exc
        except APIError as exc:
            code = str(exc.code or "")
            if code in _CONFLICT_CODES:
                raise _Conflict(code) from exc
            if code.startswith(_UNAVAILABLE_PREFIXES):
                raise DatabaseUnavailable(
                    f"The database is unavailable ({code}: {exc.message}); nothing was written.",
                    details={"function": function, "db_code": code},
                ) from exc
            raise _refused(function, code, exc.message) from exc

    def log(
        self,
        *,
        provider: str,
        event: str,
        status: str,
        message: str,
        external_id: str | None = None,
        lead_id: str | None = None,
        error_code: str | None = None,
        details: dict[str, Any] | None = None,
        duration_ms: int | None = None,
    ) -> None:
        """One row in integration_logs."""
        self.rpc(
            "log_event",
            {
                "p_provider": provider,
                "p_event": event,
                "p_status": status,
                "p_message": message,
                "p_external_id": external_id,
                "p_lead_id": lead_id,
                "p_error_code": error_code,
                "p_details": details or {},
                "p_duration_ms": duration_ms,
            },
        )


@cache
def get_db() -> Database:
    """The process's database client, built on first use from the configuration."""
    url, key = get_settings(Settings).require("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    return Database(url, key, http_client=outbound_client())
