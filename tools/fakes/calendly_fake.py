"""A local fake of the Calendly API endpoints this project calls, for `make dev` and the tests.

Shapes follow Calendly's OpenAPI (docs/PROVIDERS.md section 2.4; tests/fixtures/calendly):
``GET /users/me``; ``GET``/``POST /webhook_subscriptions`` (``{"collection", "pagination"}``,
201 ``{"resource"}``); ``GET``/``DELETE /webhook_subscriptions/{uuid}`` (204); errors as
``{"title", "message", "details"?}``. URIs are Calendly's (``…/webhook_subscriptions/<uuid>``)
under the fake's own base URL.

As Calendly does, it checks the bearer token (401), refuses a second subscription for a callback
URL in the same organization (409 "Hook with this url already exists", whatever the state of the
first), requires ``user`` for the user scope, and pages lists by ``count`` with a ``next_page``
URL. Requests are filed under their operation, ``"<METHOD> <path>"`` (``POST
/webhook_subscriptions``), so a test scripts one operation's answers and reads the order of the
calls. Besides the control routes every fake has (tools/fakes/fake_api.py: requests, scripts,
faults), tests use (never deployed):

- ``GET /_fake/subscriptions``: every subscription, each with the ``signing_key`` it was created
  with (Calendly never shows it again; a test compares it with the stored one);
- ``PUT /_fake/subscriptions/{uuid}`` ``{"state": "disabled", "retry_started_at": …}``: change a
  subscription as Calendly's delivery retries do (``disabled`` without a ``retry_started_at``
  sets one 24 hours ago);
- ``PUT /_fake/plan`` ``{"webhooks": false, "message": …}``: a plan without webhooks, so creating
  a subscription answers 403 "Please upgrade your Calendly account to Professional".

    CALENDLY_API_TOKEN=… python -m tools.fakes.calendly_fake --port 54331

Without CALENDLY_API_TOKEN any bearer token is accepted (a missing one is still a 401).
"""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tools.fakes.fake_api import Answer, FakeApi, Request, serve

EVENTS = (
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
    "routing_form_submission.created",
    "event_type.created",
    "event_type.deleted",
    "event_type.updated",
)
USER_UUID = "FAKEUSER00000001"
ORGANIZATION_UUID = "FAKEORG000000001"
UPGRADE_MESSAGE = "Please upgrade your Calendly account to Professional"
_PAGE_SIZE = 20  # Calendly's default count


def error(title: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "message": message, **extra}


UNAUTHENTICATED = error("Unauthenticated", "The access token is invalid")
NOT_FOUND = error("Resource Not Found", "The server could not find the requested resource.")
ALREADY_EXISTS = error("Already Exists", "Hook with this url already exists")


def invalid(*problems: tuple[str, str]) -> Answer:
    return Answer(
        400,
        error(
            "Invalid Argument",
            "The supplied parameters are invalid.",
            details=[{"parameter": name, "message": text} for name, text in problems],
        ),
    )


def timestamp(moment: datetime | None = None) -> str:
    """A date-time as Calendly writes it: ``2019-08-24T14:15:22.123456Z``."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CalendlyFake(FakeApi):
    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.token = token
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.signing_keys: dict[str, str | None] = {}
        self.plan: dict[str, Any] = {"webhooks": True}

    def key(self, request: Request) -> str | None:
        return f"{request.method} {request.path.rstrip('/')}"

    def reset(self) -> None:
        self.subscriptions.clear()
        self.signing_keys.clear()
        self.plan = {"webhooks": True}

    def answer(self, request: Request) -> Answer:
        # The token is checked before any scripted answer, as Calendly checks it first.
        if request.path != "/health" and not request.path.startswith("/_fake/"):
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not token or (self.token and token != self.token):
                self.record(request, self.key(request))
                return Answer(401, UNAUTHENTICATED)
        return super().answer(request)

    def handle(self, request: Request, key: str | None) -> Answer:
        base = self.base_url(request)
        path, method = request.path.rstrip("/"), request.method
        if path == "/users/me" and method == "GET":
            return Answer(200, {"resource": self.user(base)})
        if path == "/webhook_subscriptions" and method == "GET":
            return self.list_subscriptions(request, base)
        if path == "/webhook_subscriptions" and method == "POST":
            return self.create(request.json(), base)
        if path.startswith("/webhook_subscriptions/"):
            found = self.subscriptions.get(path.removeprefix("/webhook_subscriptions/"))
            if found is None:
                return Answer(404, NOT_FOUND)
            if method == "GET":
                return Answer(200, {"resource": found})
            if method == "DELETE":
                uuid_ = path.removeprefix("/webhook_subscriptions/")
                del self.subscriptions[uuid_]
                return Answer(204, text="")
        return Answer(404, NOT_FOUND)

    @staticmethod
    def base_url(request: Request) -> str:
        return f"http://{request.headers.get('host', '127.0.0.1')}"

    @staticmethod
    def user(base: str) -> dict[str, Any]:
        return {
            "uri": f"{base}/users/{USER_UUID}",
            "name": "Fake Host",
            "slug": "fake-host",
            "email": "host@example.com",
            "scheduling_url": "https://calendly.com/fake-host",
            "timezone": "America/New_York",
            "avatar_url": None,
            "created_at": "2019-01-02T03:04:05.678123Z",
            "updated_at": "2019-08-07T06:05:04.321123Z",
            "current_organization": f"{base}/organizations/{ORGANIZATION_UUID}",
        }

    def list_subscriptions(self, request: Request, base: str) -> Answer:
        query = request.query
        organization, scope, user = (query.get(k) for k in ("organization", "scope", "user"))
        missing = [("organization", "is required")] if not organization else []
        if scope not in ("organization", "user"):
            missing.append(("scope", "must be one of organization, user"))
        if scope == "user" and not user:
            missing.append(("user", "is required when scope is user"))
        if missing:
            return invalid(*missing)
        try:
            count = max(1, min(100, int(query.get("count") or _PAGE_SIZE)))
            start = int(query.get("page_token") or 0)
        except ValueError:
            return invalid(("page_token", "is invalid"))
        matching = [
            s
            for s in self.subscriptions.values()
            if s["organization"] == organization
            and s["scope"] == scope
            and (scope != "user" or s["user"] == user)
        ]
        page = matching[start : start + count]
        more = start + count < len(matching)
        here = {"organization": organization, "scope": scope, "count": count}
        if user:
            here["user"] = user

        def link(token: int) -> str:
            return f"{base}/webhook_subscriptions?{urlencode({**here, 'page_token': token})}"

        return Answer(
            200,
            {
                "collection": page,
                "pagination": {
                    "count": len(page),
                    "next_page": link(start + count) if more else None,
                    "previous_page": link(max(0, start - count)) if start else None,
                    "next_page_token": str(start + count) if more else None,
                    "previous_page_token": str(max(0, start - count)) if start else None,
                },
            },
        )

    def create(self, body: Any, base: str) -> Answer:
        if not self.plan.get("webhooks", True):
            return Answer(
                403, error("Permission Denied", str(self.plan.get("message") or UPGRADE_MESSAGE))
            )
        body = body if isinstance(body, dict) else {}
        problems = [(name, "is required") for name in ("url", "organization") if not body.get(name)]
        events = body.get("events")
        if not isinstance(events, list) or not events:
            problems.append(("events", "is required"))
        elif unknown := [e for e in events if e not in EVENTS]:
            problems.append(("events", f"unknown events {', '.join(map(str, unknown))}"))
        scope, user = body.get("scope"), body.get("user")
        if scope not in ("organization", "user"):
            problems.append(("scope", "must be one of organization, user"))
        if scope == "user" and not user:
            problems.append(("user", "is required when scope is user"))
        if problems:
            return invalid(*problems)
        me = self.user(base)
        if body["organization"] != me["current_organization"] or (user and user != me["uri"]):
            return Answer(
                403,
                error("Permission Denied", "You do not have permission to access this resource."),
            )
        # "In one organization, subscriptions for the same user cannot share a URL."
        if any(
            s["callback_url"] == body["url"] and s["organization"] == body["organization"]
            for s in self.subscriptions.values()
        ):
            return Answer(409, ALREADY_EXISTS)
        uuid_ = uuid.uuid4().hex[:16].upper()
        now = timestamp()
        resource = {
            "uri": f"{base}/webhook_subscriptions/{uuid_}",
            "callback_url": body["url"],
            "created_at": now,
            "updated_at": now,
            "retry_started_at": None,
            "state": "active",
            "events": list(dict.fromkeys(events)),
            "scope": scope,
            "organization": body["organization"],
            "user": me["uri"] if scope == "user" else None,
            "creator": me["uri"],
        }
        self.subscriptions[uuid_] = resource
        self.signing_keys[uuid_] = body.get("signing_key")
        return Answer(201, {"resource": resource})

    def control(self, method: str, what: str, data: Any, query: dict[str, str]) -> Answer:
        if what == "subscriptions" and method == "GET":
            return Answer(
                200,
                [
                    {**s, "signing_key": self.signing_keys.get(uuid_)}
                    for uuid_, s in self.subscriptions.items()
                ],
            )
        if what.startswith("subscriptions/") and method == "PUT":
            found = self.subscriptions.get(what.removeprefix("subscriptions/"))
            if found is None:
                return Answer(404, NOT_FOUND)
            changes = {k: v for k, v in (data or {}).items() if k in ("state", "retry_started_at")}
            if changes.get("state") == "disabled" and "retry_started_at" not in changes:
                changes["retry_started_at"] = timestamp(datetime.now(UTC) - timedelta(days=1))
            found.update(changes, updated_at=timestamp())
            return Answer(200, found)
        if what == "plan" and method == "PUT":
            self.plan = {"webhooks": True, **(data or {})}
            return Answer(200, self.plan)
        return super().control(method, what, data, query)


def main() -> None:
    parser = argparse.ArgumentParser(description="Local fake of the Calendly API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(CalendlyFake(os.environ.get("CALENDLY_API_TOKEN")), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
