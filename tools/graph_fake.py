"""A local fake of the Meta Graph API endpoints this project calls, for `make dev` and the tests.

Shapes follow Meta's documentation (PROVIDERS.md section 1): a lead node
``GET /{version}/{leadgen_id}`` with ``field_data``; errors as
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``; ``debug_token`` and
``/{page_id}/subscribed_apps`` for `make doctor`.

It checks ``access_token`` and ``appsecret_proof`` as Graph does when "Require App Secret" is on.
Any lead id it was not told about answers a plausible lead, so a signed test event flows end to
end with no account. Tests script it over HTTP (never deployed):

- ``PUT /_fake/leads/{leadgen_id}`` ``{"lead": {...}}`` or ``{"responses": [{"status", "body",
  "delay"}]}``: the responses are served in order, then the lead (or the default one).
- ``GET /_fake/requests``: every Graph request received (``DELETE`` clears them and the scripts).
- ``PUT /_fake/token`` ``{"is_valid", "expires_at", "scopes", "subscribed_fields"}``: what
  debug_token and subscribed_apps answer.

    python -m tools.graph_fake --port 54329
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_VERSIONED = re.compile(r"^/(v\d+\.\d+)/(.+)$")


def graph_error(
    message: str, code: int, *, type_: str = "OAuthException", subcode: int | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": type_,
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def default_lead(leadgen_id: str) -> dict[str, Any]:
    """A lead as the Graph API returns it, for an id the fake was not told about."""
    suffix = leadgen_id[-4:].rjust(4, "0")
    return {
        "id": leadgen_id,
        "created_time": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()),
        "ad_id": "120210000000000001",
        "ad_name": "Spring offer - video",
        "adset_id": "120210000000000002",
        "campaign_id": "120210000000000003",
        "campaign_name": "Spring offer",
        "form_id": "172036835026334",
        "is_organic": False,
        "platform": "fb",
        "field_data": [
            {"name": "full_name", "values": [f"Test Lead {suffix}"]},
            {"name": "email", "values": [f"test.lead.{suffix}@example.com"]},
            {"name": "phone_number", "values": [f"+1 212 555 {suffix}"]},
            {"name": "when_do_you_want_to_start?", "values": ["this_month"]},
        ],
    }


class GraphFake:
    def __init__(self, access_token: str | None, app_secret: str | None) -> None:
        self.access_token = access_token
        self.app_secret = app_secret.split(",")[0].strip() if app_secret else None
        self.leads: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.token_info: dict[str, Any] = {
            "is_valid": True,
            "expires_at": 0,
            "scopes": [
                "leads_retrieval",
                "pages_show_list",
                "pages_read_engagement",
                "pages_manage_metadata",
                "ads_management",
            ],
            "subscribed_fields": ["leadgen"],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload, delay = self.handle(
            scope["method"],
            scope["path"],
            dict(parse_qsl(scope.get("query_string", b"").decode())),
            body,
        )
        if delay:
            await asyncio.sleep(delay)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json; charset=UTF-8")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    def handle(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, Any, float]:
        if path == "/health":
            return 200, {"status": "ok"}, 0
        if path.startswith("/_fake/"):
            return (*self.control(method, path.removeprefix("/_fake/"), body), 0)
        match = _VERSIONED.match(path)
        if method != "GET" or match is None:
            return (
                400,
                graph_error(
                    "Unsupported request - method type: " + method.lower(),
                    100,
                    type_="GraphMethodException",
                ),
                0,
            )
        node = match.group(2)
        self.requests.append({"path": path, "node": node, "query": query})
        denied = self.check_credentials(query)
        if denied is not None:
            return 400, denied, 0
        if node == "debug_token":
            return (
                200,
                {
                    "data": {
                        "app_id": "1234567890",
                        "type": "PAGE",
                        "application": "Speed to lead",
                        "is_valid": self.token_info["is_valid"],
                        "expires_at": self.token_info["expires_at"],
                        "data_access_expires_at": 0,
                        "scopes": self.token_info["scopes"],
                    }
                },
                0,
            )
        if node.endswith("/subscribed_apps"):
            return (
                200,
                {
                    "data": [
                        {
                            "name": "Speed to lead",
                            "id": "1234567890",
                            "subscribed_fields": self.token_info["subscribed_fields"],
                        }
                    ]
                },
                0,
            )
        script = self.scripts.get(node)
        if script:
            step = script.pop(0)
            return int(step.get("status", 200)), step.get("body", {}), float(step.get("delay", 0))
        return 200, self.leads.get(node) or default_lead(node), 0

    def check_credentials(self, query: dict[str, str]) -> dict[str, Any] | None:
        token = query.get("access_token") or query.get("input_token")
        if self.access_token and query.get("access_token") != self.access_token:
            return graph_error(
                "Invalid OAuth access token - Cannot parse access token", 190, subcode=None
            )
        if self.app_secret and token:
            proof = hmac.new(
                self.app_secret.encode(), (query.get("access_token") or "").encode(), hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(proof, query.get("appsecret_proof", "")):
                return graph_error(
                    "Invalid appsecret_proof provided in the API argument",
                    100,
                    type_="GraphMethodException",
                )
        return None

    def control(self, method: str, what: str, body: bytes) -> tuple[int, Any]:
        data = json.loads(body) if body.strip() else {}
        if what == "requests" and method == "GET":
            return 200, self.requests
        if what == "requests" and method == "DELETE":
            self.requests.clear()
            self.scripts.clear()
            self.leads.clear()
            return 200, {"cleared": True}
        if what == "token" and method == "PUT":
            self.token_info.update(data)
            return 200, self.token_info
        if what.startswith("leads/") and method == "PUT":
            leadgen_id = what.removeprefix("leads/")
            if "lead" in data:
                self.leads[leadgen_id] = data["lead"]
            self.scripts[leadgen_id] = list(data.get("responses", []))
            return 200, {"leadgen_id": leadgen_id}
        return 404, {"error": "unknown control endpoint"}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Local fake of the Meta Graph API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = GraphFake(os.environ.get("META_ACCESS_TOKEN"), os.environ.get("META_APP_SECRET"))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
