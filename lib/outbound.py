"""Calls to outside APIs (database API, Graph, ElevenLabs, Calendly): one HTTP client per
function (one connection pool, one TLS context: loading the CA bundle costs ~20 ms of cold
start), and :func:`call`, which turns a network failure into a classified
:class:`~lib.errors.ProviderFailure`; :func:`request_json` also reads the JSON answer, and a
refusal is classified by the provider's own table (``<provider>_errors``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx

from lib.errors import FailureClass, ProviderFailure
from lib.settings import Settings, get_settings

# The database answers within this even when the provider timeout is set lower; provider
# clients pass their own (HTTP_TIMEOUT_SECONDS) per request.
_DATABASE_TIMEOUT_SECONDS = 10.0


@cache
def outbound_client() -> httpx.Client:
    timeout = max(get_settings(Settings).http_timeout_seconds, _DATABASE_TIMEOUT_SECONDS)
    return httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=32))


@dataclass(frozen=True)
class Api:
    """An outside API as the operator knows it: ``name`` for messages ("the Graph API"),
    ``code`` as the prefix of failure codes (``graph_timeout``), ``url_setting`` the variable
    holding its base URL."""

    name: str
    code: str
    url_setting: str

    @property
    def subject(self) -> str:
        """``name`` at the start of a sentence."""
        return self.name[:1].upper() + self.name[1:]


def call(
    api: Api,
    method: str,
    url: str,
    *,
    timeout: float,
    idempotent: bool = True,
    client: httpx.Client | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; any answer is returned as it is, a network failure raises
    :class:`ProviderFailure`. A timeout after the request was sent is ``ambiguous`` unless the
    request is ``idempotent`` (it may have taken effect: do not repeat it at once)."""
    try:
        return (client or outbound_client()).request(method, url, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
        ambiguous = sent and not idempotent
        raise ProviderFailure(
            FailureClass.AMBIGUOUS if ambiguous else FailureClass.TRANSIENT,
            f"{api.code}_timeout",
            f"{api.subject} did not answer within {timeout:g} s "
            "(HTTP_TIMEOUT_SECONDS); "
            + (
                "it may have gone through, so it is retried only after the retry wait."
                if ambiguous
                else "retried automatically."
            ),
            {"exception": type(exc).__name__},
        ) from None
    except httpx.TransportError as exc:
        raise ProviderFailure(
            FailureClass.TRANSIENT,
            f"{api.code}_unreachable",
            f"{api.subject} is unreachable ({type(exc).__name__}); "
            f"check {api.url_setting} and outbound network. Retried automatically.",
            {"exception": type(exc).__name__},
        ) from None


def request_json(
    api: Api,
    method: str,
    url: str,
    *,
    timeout: float,
    classify: Callable[[int, Any], ProviderFailure],
    malformed: Callable[[], ProviderFailure] | None = None,
    idempotent: bool = True,
    client: httpx.Client | None = None,
    success: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send one request (:func:`call`) and read its answer: a JSON object of a ``success``
    status (default: any 2xx; ``{}`` for a 204). Any other status raises ``classify(status,
    body)`` (body: the JSON, else None); a success that is not a JSON object raises
    ``malformed()`` (default: ``classify`` too)."""
    response = call(
        api, method, url, timeout=timeout, idempotent=idempotent, client=client, **kwargs
    )
    status = response.status_code
    if not (status in success if success is not None else 200 <= status < 300):
        raise classify(status, None if status == 204 else _json(response))
    if status == 204:
        return {}
    body = _json(response)
    if not isinstance(body, dict):
        raise malformed() if malformed else classify(status, body)
    return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
