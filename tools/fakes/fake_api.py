"""The small base every local fake shares (the Graph API's now; ElevenLabs' and the Calendly
API's next), and the control client the tests and tools drive them with. Never deployed.

A fake is an ASGI app (:class:`FakeApi`) that answers its provider's routes in
:meth:`FakeApi.handle` and, on every fake alike:

- ``GET /health``: 200 once it serves;
- ``GET /_fake/requests[?key=K][&contains=S][&trace=T][&after=N]``: the provider requests it
  received (after the one numbered N), oldest first (the last :data:`LOG_LIMIT`), each
  ``{"seq", "at", "trace", "method", "path", "key", "query", "headers", "body"}``; ``key`` is
  what the fake files the request under (the Graph fake: the node, i.e. the lead id) and ``at``
  when it was received (Unix time, after its body); ``contains`` keeps those whose body holds S,
  ``trace`` those of one W3C trace id;
- ``PUT /_fake/script/{key}`` ``{"responses": [{"status", "body", "delay"}, …]}``: the answers to
  the next requests filed under ``key``, in order, before the fake's own answer comes back;
- ``PUT /_fake/faults`` ``{"every": N, "status", "body", "delay"}``: from now on every Nth
  provider request (of any key) gets that answer instead, for load and fault runs
  (``{"every": 0}`` stops it);
- ``DELETE /_fake/requests``: forget the requests, the scripts, the faults and what
  :meth:`FakeApi.reset` clears.

:class:`FakeClient` is the same control surface seen from a test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

LOG_LIMIT = 10_000  # requests kept per fake, so a long `make dev` does not grow without bound
_BODY_KEPT = 4_096  # characters of each request body kept in the log


@dataclass
class Request:
    """A request as a fake sees it: headers lower-cased, the query as a flat dict."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def trace(self) -> str | None:
        """The trace id of a W3C ``traceparent`` header, if any."""
        parts = self.headers.get("traceparent", "").split("-")
        return parts[1] if len(parts) == 4 else None

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None


@dataclass
class Answer:
    """What a fake answers: a status, a JSON body (or ``text`` as HTML), after ``delay`` s."""

    status: int = 200
    body: Any = field(default_factory=dict)
    delay: float = 0.0
    text: str | None = None

    @classmethod
    def scripted(cls, step: dict[str, Any]) -> Answer:
        return cls(
            status=int(step.get("status", 200)),
            body=step.get("body", {}),
            delay=float(step.get("delay", 0)),
            text=step.get("text"),
        )


class RequestLog:
    """The requests a local server received, bounded, readable over ``/_fake/requests``."""

    def __init__(self) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._seq = itertools.count(1)

    def record(self, request: Request, key: str | None) -> None:
        self.requests.append(
            {
                "seq": next(self._seq),
                "at": time.time(),
                "trace": request.trace(),
                "method": request.method,
                "path": request.path,
                "key": key,
                "query": request.query,
                "headers": request.headers,
                "body": request.body[:_BODY_KEPT].decode(errors="replace"),
            }
        )

    def listing(self, query: dict[str, str]) -> list[dict[str, Any]]:
        key, contains, trace = query.get("key"), query.get("contains"), query.get("trace")
        after = int(query["after"]) if query.get("after", "").isdigit() else 0
        return [
            r
            for r in self.requests
            if r["seq"] > after
            and (key is None or r["key"] == key)
            and (contains is None or contains in r["body"])
            and (trace is None or r["trace"] == trace)
        ]


class FakeApi(RequestLog):
    """Base of the provider fakes: subclasses implement :meth:`key` and :meth:`handle`, and may
    extend :meth:`control` and :meth:`reset`."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.faults: dict[str, Any] = {"every": 0}
        self._served = itertools.count(1)

    def key(self, request: Request) -> str | None:
        """What the request is filed under in the log and the scripts (None: not recorded)."""
        return request.path

    def handle(self, request: Request, key: str | None) -> Answer:
        """The provider's own answer."""
        return Answer(404, {"error": "not found"})

    def reset(self) -> None:
        """Forget what tests told the fake (the base forgets requests and scripts)."""

    def control(self, method: str, what: str, data: Any, query: dict[str, str]) -> Answer:
        """``/_fake/<what>``; subclasses handle their own and fall back to this."""
        if what == "requests" and method == "GET":
            return Answer(200, self.listing(query))
        if what == "requests" and method == "DELETE":
            self.requests.clear()
            self.scripts.clear()
            self.faults = {"every": 0}
            self.reset()
            return Answer(200, {"cleared": True})
        if what == "faults" and method == "PUT":
            self.faults = {"every": int((data or {}).get("every", 0)), **(data or {})}
            return Answer(200, self.faults)
        if what.startswith("script/") and method == "PUT":
            key = what.removeprefix("script/")
            self.scripts[key] = list((data or {}).get("responses", []))
            return Answer(200, {"key": key, "responses": len(self.scripts[key])})
        return Answer(404, {"error": f"unknown control endpoint {method} /_fake/{what}"})

    def answer(self, request: Request) -> Answer:
        if request.path == "/health":
            return Answer(200, {"status": "ok"})
        if request.path.startswith("/_fake/"):
            return self.control(
                request.method, request.path.removeprefix("/_fake/"), request.json(), request.query
            )
        key = self.key(request)
        if key is not None:
            self.record(request, key)
            script = self.scripts.get(key)
            if script:
                return Answer.scripted(script.pop(0))
            every = self.faults["every"]
            if every > 0 and next(self._served) % every == 0:
                return Answer.scripted(self.faults)
        return self.handle(request, key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = Request(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope.get("query_string", b"").decode())),
            headers={k.decode().lower(): v.decode() for k, v in scope.get("headers", [])},
            body=b"".join(chunks),
        )
        answer = self.answer(request)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.text is not None:
            content_type, payload = b"text/html; charset=utf-8", answer.text.encode()
        else:
            content_type, payload = (
                b"application/json; charset=UTF-8",
                json.dumps(answer.body).encode(),
            )
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class FakeClient:
    """A fake's control API, for tests and tools, on one keep-alive HTTP client (a new client
    per call would build a TLS context each time)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def requests(
        self,
        key: str | None = None,
        *,
        contains: str | None = None,
        trace: str | None = None,
        after: int | None = None,
    ) -> list[dict[str, Any]]:
        wanted = {"key": key, "contains": contains, "trace": trace, "after": after}
        params = {k: v for k, v in wanted.items() if v is not None}
        response = self.http.get("/_fake/requests", params=params)
        response.raise_for_status()
        return list(response.json())

    def count(self, key: str) -> int:
        """How many requests the fake filed under ``key``."""
        return len(self.requests(key))

    def script(self, key: str, *responses: dict[str, Any]) -> None:
        self.put(f"script/{key}", {"responses": list(responses)})

    def reset(self) -> None:
        self.http.delete("/_fake/requests").raise_for_status()

    def faults(self, every: int, **answer: Any) -> None:
        """Answer every ``every``-th provider request with ``answer`` (status, body, delay)."""
        self.put("faults", {"every": every, **answer})

    def put(self, what: str, body: dict[str, Any]) -> Any:
        response = self.http.put(f"/_fake/{what}", json=body)
        response.raise_for_status()
        return response.json()


def serve(app: Callable[..., Awaitable[None]], *, host: str, port: int) -> None:
    """Serve a fake with uvicorn, quietly (its requests are in its log)."""
    import uvicorn

    # Idle connections outlive the clients' (httpx: 5 s): no reuse of one being closed.
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=75
    )
