"""HTTP plumbing shared by the functions: the route table, responses, body limits,
private-endpoint auth, and the one place where errors become JSON (:func:`endpoint`).

A function's entry point is a route table::

    @functions_framework.http
    @endpoint(provider="meta")
    def meta_webhook() -> Routes:
        return {
            ("GET", "/"): Route(handshake),
            ("POST", "/"): Route(receive_delivery),
            ("POST", "/sweep"): Route(run_sweep, auth=internal_token),
        }

The decorated function's name is the function's name (in logs and integration_logs); an unknown
subpath answers 404, a known one with another method 405 with ``Allow``.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Request, Response

from lib import audit, log, safejson
from lib.errors import (
    AppError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from lib.settings import Private, get_settings
from lib.signatures import token_matches

Handler = Callable[[Request], Response]
Auth = Callable[[Request], None]


@dataclass(frozen=True)
class Route:
    """A handler, what authenticates its caller before it runs (``None``: a public route that
    verifies its own provider signature), and the provider its log rows name (``None``: the
    endpoint's)."""

    handler: Handler
    auth: Auth | None = None
    provider: str | None = None


Routes = Mapping[tuple[str, str], Route]


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def text_response(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def error_response(err: AppError) -> Response:
    response = json_response({"error": {"code": err.code, "message": err.message}}, err.status)
    if isinstance(err, MethodNotAllowed) and err.allow:
        response.headers["Allow"] = ", ".join(err.allow)
    return response


def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes (413) before reading it all."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Body of {request.content_length} bytes is over {limit} bytes.")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"Body is over {limit} bytes.")
    return body


def body_chunks(request: Request, *, limit: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """The raw body in chunks of at most ``size`` bytes, read only as they are drawn; over
    ``limit`` bytes in all is refused (413), by Content-Length before the first byte is read."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Body of {request.content_length} bytes is over {limit} bytes.")
    read = 0
    while chunk := request.stream.read(min(size, limit + 1 - read)):
        read += len(chunk)
        if read > limit:
            raise PayloadTooLarge(f"Body is over {limit} bytes.")
        yield chunk


def subpath(request: Request) -> str:
    """The path below the function's own URL: ``/sweep`` for ``.../meta_webhook/sweep``."""
    return "/" + request.path.strip("/")


_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def trace_id(request: Request) -> str | None:
    """The request's trace id: W3C ``traceparent``, else Google's ``X-Cloud-Trace-Context``
    (set by the front end of Cloud Functions), so a log row leads to the request's own logs."""
    traceparent = (request.headers.get("traceparent") or "").split("-")
    candidate = traceparent[1] if len(traceparent) == 4 else None
    if candidate is None:
        candidate = (request.headers.get("X-Cloud-Trace-Context") or "").split("/")[0]
    candidate = candidate.strip().lower()
    return candidate if _TRACE_ID.fullmatch(candidate) else None


def internal_token(request: Request) -> None:
    """Auth of the private routes: ``Authorization: Bearer $INTERNAL_TOKEN`` (constant-time).
    INTERNAL_TOKEN may hold ``new,old`` while it is rotated: either is accepted; callers send the
    first."""
    accepted = get_settings(Private).secrets("INTERNAL_TOKEN")
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    given = token.strip()
    # Every candidate is compared (no early exit): the time does not say which one matched.
    matched = [token_matches(given, expected=expected) for expected in accepted]
    if scheme.lower() != "bearer" or not any(matched):
        raise Unauthorized("Missing or wrong bearer token: use INTERNAL_TOKEN.")


def match(routes: Routes, request: Request) -> Route:
    """The route for the request's method and subpath; 404 or 405 (with ``Allow``) otherwise."""
    path = subpath(request)
    route = routes.get((request.method, path))
    if route is not None:
        return route
    allow = sorted(method for method, route_path in routes if route_path == path)
    if allow:
        raise MethodNotAllowed(
            f"{_clip(request.method, 16)} is not supported on {path}: use {' or '.join(allow)}.",
            allow=allow,
        )
    known = ", ".join(sorted({route_path for _, route_path in routes}))
    raise NotFound(f"No route {_clip(path, 100)}; this function answers {known}.")


def endpoint(*, provider: str) -> Callable[[Callable[[], Routes]], Handler]:
    """Turn a function returning its route table into the function's entry point.

    Each request is matched to its route, authenticated, and handled; an :class:`AppError`
    becomes its JSON answer and, unless the database is the problem, a row in integration_logs
    under the route's provider; anything else is logged with its traceback and answered with a
    generic 500 that leaks nothing."""

    def wrap(table: Callable[[], Routes]) -> Handler:
        routes = table()
        function = table.__name__

        @functools.wraps(table)
        def view(request: Request) -> Response:
            started = time.perf_counter()
            route_provider = provider
            token = log.current_trace.set(trace_id(request))
            try:
                route = match(routes, request)
                route_provider = route.provider or provider
                if route.auth is not None:
                    route.auth(request)
                return route.handler(request)
            except AppError as err:
                _record(function, route_provider, request, err, started)
                return _body_left_unread(error_response(err))
            except Exception as exc:  # noqa: BLE001 - the one place that catches everything
                log.error("Unexpected error", exc=exc, function=function, path=request.path)
                internal = AppError("Internal error; the function's logs have the details.")
                details = {"exception": type(exc).__name__}
                _record(function, route_provider, request, internal, started, details=details)
                return _body_left_unread(error_response(internal))
            finally:
                log.current_trace.reset(token)

        view.routes = routes  # type: ignore[attr-defined]  # what the tools deploy
        return view

    return wrap


def _body_left_unread(response: Response) -> Response:
    """The response as a streamed one (its bytes as an iterator, its length declared).

    functions-framework reads the whole request body into memory after every response that is
    not streamed (its ``read_request`` hook), so a refusal sent before the body was read (a
    missing signature, a body over the limit) would still read whatever a stranger sends. The
    server discards what is left unread in small chunks instead.
    https://github.com/GoogleCloudPlatform/functions-framework-python (``read_request``)"""
    data = response.get_data()
    response.response = iter([data])
    response.headers["Content-Length"] = str(len(data))
    return response


def _clip(text: str, limit: int = 200) -> str:
    """A request-supplied string as it may be logged: storable, at most ``limit`` characters."""
    return safejson.text(text, limit=limit)


def _record(
    function: str,
    provider: str,
    request: Request,
    err: AppError,
    started: float,
    details: dict[str, Any] | None = None,
) -> None:
    """Every refused or failed request, recorded by lib.audit (its method and path bounded)."""
    audit.refused(
        function,
        provider,
        err,
        method=_clip(request.method, 16),
        path=_clip(subpath(request)),
        duration_ms=int((time.perf_counter() - started) * 1000),
        details=details,
    )
