"""The Calendly API client: the current user and webhook subscriptions, with a personal access
token (``Authorization: Bearer CALENDLY_API_TOKEN``) and a timeout. Every failure is a
:class:`~lib.errors.ProviderFailure` whose message tells the operator what to do.

- Subscriptions: https://developer.calendly.com/api-docs/calendly-api/webhooks/create-webhook-subscription
  (and list-, get-, delete-webhook-subscription); docs/PROVIDERS.md section 2.4
- Errors are ``{"title", "message", "details"?}``: tests/fixtures/calendly/calendly_error_*.json
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from lib.errors import FailureClass, ProviderFailure
from lib.outbound import Api, request_json
from tools.ops.calendly_errors import (
    classify_calendly_error,
    malformed,
)

CALENDLY = Api(name="the Calendly API", code="calendly", url_setting="CALENDLY_API_URL")
PAGE_SIZE = 100  # the largest `count` Calendly takes
MAX_PAGES = 50  # 5,000 subscriptions: past that, a pagination loop is the likelier story
_SUBSCRIPTION_PATH = re.compile(r"/webhook_subscriptions/([A-Za-z0-9-]{1,64})/?$")


class CalendlyClient:
    """Calls the Calendly API at ``base_url`` (CALENDLY_API_URL) with a personal access token;
    ``http_client`` defaults to the function's one outbound client."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._timeout = timeout
        self._http = http_client

    def me(self) -> dict[str, Any]:
        """``GET /users/me``: the token's user (``uri``, ``name``, ``current_organization`` …)."""
        resource = self._request("GET", "/users/me", action="reading the current user")
        return _resource(resource, "uri", "current_organization", action="GET /users/me")

    def list_subscriptions(
        self, organization: str, scope: str, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Every webhook subscription of ``organization`` in ``scope`` (``organization`` or
        ``user``, then of ``user``), following ``pagination.next_page``."""
        params = {"organization": organization, "scope": scope, "count": str(PAGE_SIZE)}
        if user is not None:
            params["user"] = user
        found: list[dict[str, Any]] = []
        url = f"{self._base}/webhook_subscriptions"
        for _ in range(MAX_PAGES):
            page = self._request(
                "GET", url, params=params, action="listing the webhook subscriptions"
            )
            collection = page.get("collection")
            pagination = page.get("pagination")
            if not isinstance(collection, list) or not isinstance(pagination, dict):
                raise malformed("GET /webhook_subscriptions", "no collection and pagination")
            found.extend(item for item in collection if isinstance(item, dict))
            next_page = pagination.get("next_page")
            if not next_page:
                return found
            url, params = self._next_page(str(next_page), params)
        raise malformed("GET /webhook_subscriptions", f"still a next_page after {MAX_PAGES} pages")

    def get_subscription(self, uri: str) -> dict[str, Any]:
        """``GET /webhook_subscriptions/{uuid}`` of the subscription ``uri``."""
        answer = self._request(
            "GET", self._subscription_path(uri), action="reading the webhook subscription"
        )
        return _resource(answer, "uri", "state", action="GET /webhook_subscriptions/{uuid}")

    def create_subscription(
        self,
        *,
        url: str,
        events: Sequence[str],
        organization: str,
        scope: str,
        user: str | None,
        signing_key: str,
    ) -> dict[str, Any]:
        """``POST /webhook_subscriptions``: the new subscription (201 ``{"resource": …}``).
        A subscription for ``url`` that already exists is a failure coded
        :data:`SUBSCRIPTION_EXISTS` (Calendly answers 409)."""
        body: dict[str, Any] = {
            "url": url,
            "events": list(events),
            "organization": organization,
            "scope": scope,
            "signing_key": signing_key,
        }
        if user is not None:
            body["user"] = user
        answer = self._request(
            "POST",
            "/webhook_subscriptions",
            json=body,
            idempotent=False,
            action="creating the webhook subscription",
        )
        return _resource(answer, "uri", "state", action="POST /webhook_subscriptions")

    def delete_subscription(self, uri: str) -> None:
        """``DELETE /webhook_subscriptions/{uuid}`` of the subscription ``uri`` (204)."""
        self._request(
            "DELETE", self._subscription_path(uri), action="deleting the webhook subscription"
        )

    def _subscription_path(self, uri: str) -> str:
        # The request goes to CALENDLY_API_URL whatever host ``uri`` names: the token is only
        # ever sent there.
        match = _SUBSCRIPTION_PATH.search(urlsplit(uri).path)
        if match is None:
            raise ProviderFailure(
                FailureClass.INVALID,
                "calendly_subscription_uri_invalid",
                f"{uri!r} is not a webhook subscription URI "
                "(https://api.calendly.com/webhook_subscriptions/<uuid>).",
            )
        return f"/webhook_subscriptions/{match.group(1)}"

    def _next_page(self, next_page: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The URL and query of ``next_page``: its own query (``page_token`` …) over the first
        page's, which Calendly's example ``next_page`` leaves out (``organization``, ``scope``)."""
        base = urlsplit(self._base)
        page = urlsplit(next_page)
        if (page.scheme, page.netloc) != (base.scheme, base.netloc):
            # Following it would send the token to another host.
            raise malformed(
                "GET /webhook_subscriptions", f"next_page {next_page!r} is not under {self._base}"
            )
        return page._replace(query="", fragment="").geturl(), {
            **params,
            **dict(parse_qsl(page.query)),
        }

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        action: str,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        url = path_or_url if "://" in path_or_url else f"{self._base}{path_or_url}"
        return request_json(
            CALENDLY,
            method,
            url,
            timeout=self._timeout,
            classify=partial(classify_calendly_error, action=action),
            malformed=partial(
                malformed, f"{method} {urlsplit(url).path}", "the answer is not a JSON object"
            ),
            idempotent=idempotent,
            client=self._http,
            headers=self._headers,
            **kwargs,
        )


def _resource(answer: dict[str, Any], *required: str, action: str) -> dict[str, Any]:
    resource = answer.get("resource")
    if not isinstance(resource, dict) or any(not resource.get(key) for key in required):
        raise malformed(action, f"no resource with {', '.join(required)}")
    return resource
