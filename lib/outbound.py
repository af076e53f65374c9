"""The one HTTP client a function uses for every outbound call (database API, provider APIs):
one connection pool and one TLS context (loading the CA bundle costs ~20 ms of cold start)."""

from __future__ import annotations

from functools import cache

import httpx

from lib.config import get_config

# The database answers within this even when the provider timeout is set lower; provider
# clients pass their own (HTTP_TIMEOUT_SECONDS) per request.
_DATABASE_TIMEOUT_SECONDS = 10.0


@cache
def outbound_client() -> httpx.Client:
    timeout = max(get_config().http_timeout_seconds, _DATABASE_TIMEOUT_SECONDS)
    return httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=32))
