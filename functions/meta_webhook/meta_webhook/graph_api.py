"""The Graph API client: reads lead nodes, with ``appsecret_proof`` and a timeout.

https://developers.facebook.com/docs/marketing-api/guides/lead-ads/retrieving
"""

from __future__ import annotations

import json
import threading
from functools import cache
from typing import Any
from urllib.parse import urlencode

import httpx

from lib.outbound import Api, request_json
from lib.signatures import appsecret_proof
from meta_webhook.graph_errors import classify_graph_error
from meta_webhook.settings import MetaWebhookSettings, settings

GRAPH = Api(name="the Graph API", code="graph", url_setting="META_GRAPH_URL")
LEAD_FIELDS = (
    "id,created_time,ad_id,ad_name,adset_id,campaign_id,campaign_name,form_id,"
    "is_organic,platform,field_data,custom_disclaimer_responses"
)
# A form's custom disclaimer: the text and the checkboxes a consent was given under.
# https://developers.facebook.com/docs/marketing-api/reference/leadgen-form/
FORM_FIELDS = (
    "id,name,status,locale,legal_content{id,custom_disclaimer{title,body{text},"
    "checkboxes{id,key,text,is_required,is_checked_by_default}}}"
)


class GraphClient:
    """Reads nodes from the Graph API, with ``appsecret_proof`` and a timeout; ``http_client``
    defaults to the function's one outbound client."""

    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        access_token: str,
        app_secret: str,
        timeout: float,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/{version.strip('/')}"
        # The credentials' query string, encoded once: httpx's params= would parse and re-encode
        # the whole URL on every request.
        self._credentials = urlencode(
            {
                "access_token": access_token,
                "appsecret_proof": appsecret_proof(access_token, app_secret=app_secret),
            }
        )
        self._timeout = timeout
        self._http = http_client
        # Forms read, by id: a published Instant Form cannot be edited, so its text is read once.
        self._forms: dict[str, dict[str, Any]] = {}
        self._forms_lock = threading.Lock()

    def get(self, path: str, **params: str) -> dict[str, Any]:
        """GET ``/{version}/{path}``: its JSON object, or :class:`ProviderFailure`."""
        query = f"{urlencode(params)}&{self._credentials}" if params else self._credentials
        body = request_json(
            GRAPH,
            "GET",
            f"{self._base}/{path}?{query}",
            timeout=self._timeout,
            classify=classify_graph_error,
            client=self._http,
            success=(200,),  # as Meta answers a node; any other status is classified
        )
        if "error" in body:
            raise classify_graph_error(200, body)
        return body

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON to ``/{version}/{path}``: its JSON object, or
        :class:`ProviderFailure`. Only for requests Meta deduplicates (Conversions API events
        carry their ``event_id``), as a timeout is retried."""
        return request_json(
            GRAPH,
            "POST",
            f"{self._base}/{path}?{self._credentials}",
            timeout=self._timeout,
            classify=classify_graph_error,
            client=self._http,
            json=body,
        )

    def fetch_lead(self, leadgen_id: str) -> dict[str, Any]:
        return self.get(leadgen_id, fields=LEAD_FIELDS)

    def lead_forms(self, page_id: str, *, max_pages: int = 20) -> list[dict[str, Any]]:
        """The Page's Instant Forms (``/{page-id}/leadgen_forms``) with their legal content,
        every page of the answer (cursor paging, at most ``max_pages`` of 100)."""
        forms: list[dict[str, Any]] = []
        params = {"fields": FORM_FIELDS, "limit": "100"}
        for _ in range(max_pages):
            answer = self.get(f"{page_id}/leadgen_forms", **params)
            forms.extend(form for form in answer.get("data") or [] if isinstance(form, dict))
            paging = answer.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if not paging.get("next") or not isinstance(after, str):
                break
            params["after"] = after
        return forms

    def form_leads(
        self, form_id: str, *, since: int, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the form's leads created after ``since`` (Unix seconds), with the fields
        the webhook path fetches (``GET /{form-id}/leads``, filtered on ``time_created``), and
        the cursor of the next page (None: the last)."""
        params = {
            "fields": LEAD_FIELDS,
            "limit": str(limit),
            "filtering": json.dumps(
                [{"field": "time_created", "operator": "GREATER_THAN", "value": since}]
            ),
        }
        if after:
            params["after"] = after
        answer = self.get(f"{form_id}/leads", **params)
        leads = [node for node in answer.get("data") or [] if isinstance(node, dict)]
        paging = answer.get("paging")
        paging = paging if isinstance(paging, dict) else {}
        cursors = paging.get("cursors")
        following = cursors.get("after") if isinstance(cursors, dict) else None
        return leads, following if paging.get("next") and isinstance(following, str) else None

    def lead_form(self, form_id: str) -> tuple[dict[str, Any], bool]:
        """The form's node with its legal content, and whether it was read now (False: this
        process had read it before)."""
        with self._forms_lock:
            form = self._forms.get(form_id)
        if form is not None:
            return form, False
        form = self.get(form_id, fields=FORM_FIELDS)
        with self._forms_lock:
            self._forms[form_id] = form
        return form, True


def graph_for(
    config: MetaWebhookSettings, token: str, http_client: httpx.Client | None = None
) -> GraphClient:
    """A Graph client of ``token`` with the Graph URL, version, app secret (the first of a
    rotated pair) and timeout of ``config``."""
    return GraphClient(
        base_url=config.meta_graph_url,
        version=config.meta_graph_version,
        access_token=token,
        app_secret=config.secrets("META_APP_SECRET")[0],
        timeout=config.http_timeout_seconds,
        http_client=http_client,
    )


@cache
def get_graph() -> GraphClient:
    """The process's Graph client, built on first use from the configuration."""
    config = settings()
    token, _ = config.require("META_ACCESS_TOKEN", "META_APP_SECRET")
    return graph_for(config, token)
