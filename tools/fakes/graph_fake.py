"""A local fake of the Meta Graph API endpoints this project calls, for `make dev` and the tests.

Shapes follow Meta's documentation (docs/PROVIDERS.md section 1): a lead node
``GET /{version}/{leadgen_id}`` with ``field_data``; errors as
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``; ``debug_token`` and
``/{page_id}/subscribed_apps`` for `make doctor`.

It checks ``access_token`` and ``appsecret_proof`` as Graph does when "Require App Secret" is on.
Any lead id it was not told about answers a plausible lead, so a signed test event flows end to
end with no account. Requests are filed under their node (the lead id). Besides the control
routes every fake has (tools/fakes/fake_api.py: requests, scripts), tests use (never deployed):

- ``PUT /_fake/leads/{leadgen_id}`` ``{"lead": {...}, "responses": [...]}``: the lead it answers
  for that id, after the scripted responses, if any;
- ``PUT /_fake/forms/{form_id}`` ``{...}``: the form node it answers for that id (its
  ``legal_content``), and lists in ``/{page_id}/leadgen_forms``;
- ``PUT /_fake/token`` ``{"is_valid", "expires_at", "scopes", "subscribed_fields"}``: what
  debug_token and subscribed_apps answer;
- ``GET /{version}/{dataset_id}?fields=…last_fired_time…``: the dataset node (`make doctor`);
- ``GET /{version}/{app_id}/subscriptions`` (with the app token ``<app id>|<app secret>`` or
  the page token): the app's Page subscription; ``PUT /_fake/app_subscription`` ``{"active",
  "callback_url", "fields"}`` changes it, ``null`` removes it;
- ``PUT /_fake/form_leads/{form_id}`` ``{"leads": [lead node, …]}``: what ``GET
  /{form-id}/leads`` lists (filtered on ``time_created``, newest first, cursor paging), each
  lead also answering ``GET /{leadgen_id}``;
- ``GET /_fake/events``: the Conversions API events ``POST /{version}/{dataset_id}/events``
  accepted, oldest first, each with its ``dataset_id`` and the batch's ``test_event_code``;
  ``PUT /_fake/events_reject`` ``{"lead_ids": [...]}``: events of those leads are invalid, so
  a batch holding one is rejected whole (400, code 100), as Meta rejects a batch with one bad
  event. Every event is checked as Meta's Conversion Leads specification says: ``event_name``,
  ``event_time`` (Unix seconds, at most 7 days old, not in the future), ``action_source``
  ``system_generated``, ``user_data.lead_id`` a number, ``custom_data.event_source`` ``crm`` and
  ``lead_event_source``; at most 1,000 events a request.

    python -m tools.fakes.graph_fake --port 54329
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import time
from collections import deque
from datetime import datetime
from typing import Any

from tools.fakes.fake_api import LOG_LIMIT, Answer, FakeApi, Request, serve
from tools.fakes.samples import FORM_ID

_VERSIONED = re.compile(r"^/(v\d+\.\d+)/(.+)$")
_EVENTS = re.compile(r"^([0-9]+)/events$")
MAX_EVENTS = 1000
WEEK_SECONDS = 7 * 86_400


def event_problem(event: Any, now: float) -> str | None:
    """What is wrong with one Conversion Leads event, as Meta would refuse it; None if fine."""
    if not isinstance(event, dict):
        return "an event is not an object"
    if not isinstance(event.get("event_name"), str) or not event["event_name"]:
        return "event_name is required"
    at = event.get("event_time")
    if not isinstance(at, int) or isinstance(at, bool):
        return "event_time must be a Unix timestamp in seconds"
    if at < now - WEEK_SECONDS:
        return "event_time is more than 7 days in the past"
    if at > now + 60:
        return "event_time is in the future"
    if event.get("action_source") != "system_generated":
        return "action_source must be system_generated"
    user = event.get("user_data")
    lead_id = user.get("lead_id") if isinstance(user, dict) else None
    if not isinstance(lead_id, int) or isinstance(lead_id, bool):
        return "user_data.lead_id must be the lead's id, a number"
    custom = event.get("custom_data")
    if not isinstance(custom, dict) or custom.get("event_source") != "crm":
        return "custom_data.event_source must be crm"
    if not isinstance(custom.get("lead_event_source"), str) or not custom["lead_event_source"]:
        return "custom_data.lead_event_source is required"
    return None


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
    # One person per lead id (leads sharing a phone or an email are one person, called once at a
    # time): a New York number and an address made from the whole id.
    digits = "".join(ch for ch in leadgen_id if ch.isdigit()) or "0"
    local = str(2_000_000 + int(digits[-12:]) % 8_000_000)
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
            {"name": "email", "values": [f"test.lead.{leadgen_id[-24:]}@example.com"]},
            {"name": "phone_number", "values": [f"+1 212 {local[:3]} {local[3:]}"]},
            {"name": "when_do_you_want_to_start?", "values": ["this_month"]},
        ],
        # The person checked the form's consent box (the SDK types is_checked as a string).
        "custom_disclaimer_responses": [{"checkbox_key": CONSENT_KEY, "is_checked": "1"}],
    }


CONSENT_KEY = "ai_call_consent"


def default_form(form_id: str, *, consent: bool = True) -> dict[str, Any]:
    """An Instant Form as ``GET /{form-id}?fields=…legal_content…`` answers it: a custom
    disclaimer with a consent checkbox the person must tick (``consent``), or none."""
    checkboxes = [
        {
            "id": "901",
            "key": CONSENT_KEY,
            "text": "Acepto que me llame una asistente de inteligencia artificial de la empresa "
            "sobre mi solicitud, y que la llamada pueda ser grabada.",
            "is_required": False,
            "is_checked_by_default": False,
        }
    ]
    return {
        "id": form_id,
        "name": "Spring offer form",
        "status": "ACTIVE",
        "locale": "es_ES",
        "legal_content": {
            "id": "7700" + form_id[-6:],
            "custom_disclaimer": {
                "title": "Condiciones",
                "body": {"text": "Tus datos se usan para contactarte sobre tu solicitud."},
                "checkboxes": checkboxes if consent else [],
            },
        },
    }


APP_ID = "1234567890"
# GET /{app-id}/subscriptions: the app's Page subscription, as App Dashboard > Webhooks set it.
_DEFAULT_APP_SUBSCRIPTION: dict[str, Any] = {
    "object": "page",
    "callback_url": "https://example.test/functions/v1/meta_webhook",
    "active": True,
    "fields": [{"name": "leadgen", "version": "v25.0"}],
}
_DEFAULT_TOKEN_INFO: dict[str, Any] = {
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


class GraphFake(FakeApi):
    def __init__(self, access_token: str | None, app_secret: str | None) -> None:
        super().__init__()
        self.access_token = access_token
        self.app_secret = app_secret.split(",")[0].strip() if app_secret else None
        self.leads: dict[str, dict[str, Any]] = {}
        self.forms: dict[str, dict[str, Any]] = {}
        self.token_info: dict[str, Any] = dict(_DEFAULT_TOKEN_INFO)
        self.app_subscription: dict[str, Any] | None = dict(_DEFAULT_APP_SUBSCRIPTION)
        self.events: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.reject_leads: set[int] = set()
        self.form_leads: dict[str, list[dict[str, Any]]] = {}

    def key(self, request: Request) -> str | None:
        match = _VERSIONED.match(request.path)
        if match and request.method == "POST" and _EVENTS.match(match.group(2)):
            return match.group(2)
        return match.group(2) if match and request.method == "GET" else None

    def reset(self) -> None:
        self.leads.clear()
        self.forms.clear()
        self.events.clear()
        self.reject_leads.clear()
        self.form_leads.clear()
        self.app_subscription = dict(_DEFAULT_APP_SUBSCRIPTION)

    def list_form_leads(self, form_id: str, query: dict[str, str]) -> Answer:
        """``GET /{form-id}/leads``: the form's leads, newest first as Graph lists them,
        filtered on ``time_created`` GREATER_THAN, ``limit`` a page, cursor paging."""
        leads = sorted(
            self.form_leads.get(form_id, []), key=lambda n: n["created_time"], reverse=True
        )
        since = 0
        try:
            for rule in json.loads(query.get("filtering") or "[]"):
                if rule.get("field") == "time_created" and rule.get("operator") == "GREATER_THAN":
                    since = int(rule["value"])
        except (ValueError, TypeError, KeyError, AttributeError):
            return Answer(400, graph_error("(#100) filtering is not valid JSON rules", 100))
        leads = [n for n in leads if _unix(n["created_time"]) > since]
        limit = max(1, min(int(query.get("limit") or 25), 100))
        start = int(query["after"]) if (query.get("after") or "").isdigit() else 0
        page = leads[start : start + limit]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + limit)}}
        if start + limit < len(leads):
            paging["next"] = f"https://graph.facebook.com/{form_id}/leads?after={start + limit}"
        return Answer(200, {"data": page, "paging": paging})

    def receive_events(self, dataset_id: str, request: Request) -> Answer:
        """``POST /{dataset_id}/events``: the whole batch accepted, or refused for one event."""
        body = request.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_EVENTS:
            return Answer(400, graph_error("(#100) data must hold 1 to 1000 events", 100))
        now = time.time()
        for index, event in enumerate(data):
            problem = event_problem(event, now)
            lead_id = event.get("user_data", {}).get("lead_id") if problem is None else None
            if problem is None and lead_id in self.reject_leads:
                problem = "the lead is not a lead of this dataset's pages"
            if problem is not None:
                error = graph_error(f"Invalid parameter: event {index}: {problem}", 100)
                error["error"]["error_user_msg"] = problem
                return Answer(400, error)
        code = body.get("test_event_code")
        self.events.extend(
            {**event, "dataset_id": dataset_id, "test_event_code": code} for event in data
        )
        return Answer(
            200, {"events_received": len(data), "messages": [], "fbtrace_id": "AbCdEfGhIjK"}
        )

    def handle(self, request: Request, key: str | None) -> Answer:
        if key is not None and request.method == "POST" and (events := _EVENTS.match(key)):
            return self.receive_events(events.group(1), request)
        if key is None:
            return Answer(
                400,
                graph_error(
                    "Unsupported request - method type: " + request.method.lower(),
                    100,
                    type_="GraphMethodException",
                ),
            )
        if key == "debug_token":
            return Answer(
                200,
                {
                    "data": {
                        "app_id": APP_ID,
                        "type": "PAGE",
                        "application": "Speed to lead",
                        "is_valid": self.token_info["is_valid"],
                        "expires_at": self.token_info["expires_at"],
                        "data_access_expires_at": 0,
                        "scopes": self.token_info["scopes"],
                    }
                },
            )
        if key == f"{APP_ID}/subscriptions":
            return Answer(200, {"data": [self.app_subscription] if self.app_subscription else []})
        if key.endswith("/subscribed_apps"):
            return Answer(
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
            )
        if key.endswith("/leads"):
            return self.list_form_leads(key.removesuffix("/leads"), request.query)
        if key.endswith("/leadgen_forms"):
            forms = self.forms or {FORM_ID: default_form(FORM_ID)}
            return Answer(200, {"data": [_listed(form) for form in forms.values()]})
        if "last_fired_time" in request.query.get("fields", ""):  # a dataset (AdsPixel) node
            fired = max((e["event_time"] for e in self.events), default=None)
            return Answer(
                200,
                {
                    "id": key,
                    "name": "Speed to lead CRM",
                    **(
                        {
                            "last_fired_time": time.strftime(
                                "%Y-%m-%dT%H:%M:%S+0000", time.gmtime(fired)
                            )
                        }
                        if fired
                        else {}
                    ),
                },
            )
        if "legal_content" in request.query.get("fields", ""):
            return Answer(200, self.forms.get(key) or default_form(key))
        return Answer(200, self.leads.get(key) or default_lead(key))

    def answer(self, request: Request) -> Answer:
        # Credentials are checked before any scripted answer, as Graph checks them first.
        key = self.key(request)
        if key is not None and not request.path.startswith("/_fake/"):
            denied = self.check_credentials(request.query)
            if denied is not None:
                self.record(request, key)
                return Answer(400, denied)
        return super().answer(request)

    def check_credentials(self, query: dict[str, str]) -> dict[str, Any] | None:
        token = query.get("access_token") or query.get("input_token")
        app_token = f"{APP_ID}|{self.app_secret}" if self.app_secret else None
        if (
            self.access_token
            and query.get("access_token") != self.access_token
            and query.get("access_token") != app_token
        ):
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

    def control(self, method: str, what: str, data: Any, query: dict[str, str]) -> Answer:
        if what == "app_subscription" and method == "PUT":
            self.app_subscription = (
                None if data is None else {**_DEFAULT_APP_SUBSCRIPTION, **dict(data)}
            )
            return Answer(200, {"subscription": self.app_subscription})
        if what.startswith("form_leads/") and method == "PUT":
            form_id = what.removeprefix("form_leads/")
            nodes = [dict(n) for n in (data or {}).get("leads", [])]
            self.form_leads[form_id] = nodes
            for node in nodes:  # each also answers GET /{leadgen_id}, as on Graph
                self.leads[str(node["id"])] = node
            return Answer(200, {"form_id": form_id, "leads": len(nodes)})
        if what == "events" and method == "GET":
            return Answer(200, list(self.events))
        if what == "events_reject" and method == "PUT":
            self.reject_leads = {int(x) for x in (data or {}).get("lead_ids", [])}
            return Answer(200, {"lead_ids": sorted(self.reject_leads)})
        if what == "token" and method == "PUT":
            self.token_info.update(data or {})
            return Answer(200, self.token_info)
        if what.startswith("forms/") and method == "PUT":
            self.forms[what.removeprefix("forms/")] = dict(data or {})
            return Answer(200, {"form_id": what.removeprefix("forms/")})
        if what.startswith("leads/") and method == "PUT":
            leadgen_id = what.removeprefix("leads/")
            if "lead" in (data or {}):
                self.leads[leadgen_id] = data["lead"]
            self.scripts[leadgen_id] = list((data or {}).get("responses", []))
            return Answer(200, {"leadgen_id": leadgen_id})
        return super().control(method, what, data, query)


def _unix(created_time: Any) -> int:
    """A lead's ``created_time`` (ISO 8601 with +0000, as Graph writes it) in Unix seconds."""
    if isinstance(created_time, int):
        return created_time
    return int(datetime.strptime(str(created_time), "%Y-%m-%dT%H:%M:%S%z").timestamp())


def _listed(form: dict[str, Any]) -> dict[str, Any]:
    """A form as ``/{page-id}/leadgen_forms?fields=…`` lists it."""
    return {k: form[k] for k in ("id", "name", "status", "locale", "legal_content") if k in form}


def main() -> None:
    parser = argparse.ArgumentParser(description="Local fake of the Meta Graph API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = GraphFake(os.environ.get("META_ACCESS_TOKEN"), os.environ.get("META_APP_SECRET"))
    serve(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
