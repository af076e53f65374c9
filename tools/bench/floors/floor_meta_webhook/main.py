"""meta_webhook's floor: the same requests as meta_webhook for a delivery (meta_ingest, the Graph
fetch of each lead to fetch, meta_complete), nothing else. Not deployed; `make bench` only."""

import hashlib
import hmac
import json
import os
from urllib.parse import urlencode

import flask  # noqa: F401 - the function's packages, imported as it imports them
import functions_framework
import httpx
import phonenumbers  # noqa: F401
import pydantic  # noqa: F401
import pydantic_settings  # noqa: F401
from postgrest import SyncPostgrestClient

FIELDS = (
    "id,created_time,ad_id,ad_name,adset_id,campaign_id,campaign_name,form_id,"
    "is_organic,platform,field_data,custom_disclaimer_responses"
)
FORM_FIELDS = (
    "id,name,status,locale,legal_content{id,custom_disclaimer{title,body{text},"
    "checkboxes{id,key,text,is_required,is_checked_by_default}}}"
)
_FORMS = {}  # read once per form, as meta_webhook does
_KEY = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
_HTTP = httpx.Client(timeout=10.0)
_DB = SyncPostgrestClient(
    f"{os.environ['SUPABASE_URL']}/rest/v1",
    headers={"apikey": _KEY, "Authorization": f"Bearer {_KEY}"},
    http_client=_HTTP,
    retry_enabled=False,
)
_TOKEN = os.environ["META_ACCESS_TOKEN"]
_SECRET = os.environ["META_APP_SECRET"].split(",")[0].strip()
_PROOF = hmac.new(_SECRET.encode(), _TOKEN.encode(), hashlib.sha256).hexdigest()
_CREDENTIALS = urlencode({"access_token": _TOKEN, "appsecret_proof": _PROOF})
_GRAPH = f"{os.environ['META_GRAPH_URL']}/{os.environ['META_GRAPH_VERSION']}"


def _form(form_id):
    if form_id not in _FORMS:
        url = f"{_GRAPH}/{form_id}?{urlencode({'fields': FORM_FIELDS})}&{_CREDENTIALS}"
        _FORMS[form_id] = _HTTP.get(url, timeout=5.0).json()
    return _FORMS[form_id]


def _lead(node):
    answers = {field["name"]: field["values"][0] for field in node["field_data"]}
    form = _form(node["form_id"])
    boxes = {b["key"]: b for b in form["legal_content"]["custom_disclaimer"]["checkboxes"]}
    consents = [
        {
            "form_id": node["form_id"],
            "checkbox_key": r["checkbox_key"],
            "checkbox_text": boxes[r["checkbox_key"]]["text"],
            "is_checked": r["is_checked"] == "1",
            "checked_by_default": boxes[r["checkbox_key"]]["is_checked_by_default"],
            "disclaimer": form["legal_content"]["custom_disclaimer"]["body"]["text"],
            "given_at": node["created_time"],
            "evidence": {"response": r},
        }
        for r in node["custom_disclaimer_responses"]
    ]
    return {
        "consents": consents,
        "full_name": answers.get("full_name"),
        "email": answers.get("email"),
        "phone": answers.get("phone_number", "").replace(" ", ""),
        "answers": answers,
        "form_id": node.get("form_id"),
        "ad_id": node.get("ad_id"),
        "adset_id": node.get("adset_id"),
        "campaign_id": node.get("campaign_id"),
        "ad_name": node.get("ad_name"),
        "campaign_name": node.get("campaign_name"),
        "platform": node.get("platform"),
        "is_organic": node.get("is_organic"),
    }


@functions_framework.http
def floor_meta_webhook(request):
    if request.method == "GET":
        return request.args.get("hub.challenge", "")
    delivery = json.loads(request.get_data())
    leads = []
    for entry in delivery["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            leads.append(
                {
                    "leadgen_id": str(value["leadgen_id"]),
                    "page_id": str(value["page_id"]),
                    "form_id": str(value["form_id"]),
                    "ad_id": value.get("ad_id"),
                    "adgroup_id": value.get("adgroup_id"),
                    "created_time": value.get("created_time"),
                    "payload": {
                        "entry_id": entry["id"],
                        "entry_time": entry["time"],
                        "value": value,
                    },
                    "warnings": [],
                }
            )
    params = {"p_leads": leads, "p_skipped": [], "p_claim_limit": 20}
    stored = _DB.rpc("meta_ingest", params).execute().data
    results = []
    for claim in stored["to_fetch"]:
        url = f"{_GRAPH}/{claim['leadgen_id']}?{urlencode({'fields': FIELDS})}&{_CREDENTIALS}"
        node = _HTTP.get(url, timeout=5.0).json()
        results.append(
            {
                "ok": True,
                "lead": _lead(node),
                "details": {},
                "message": "",
                "lead_id": claim["lead_id"],
                "duration_ms": 0,
            }
        )
    if results:
        _DB.rpc("meta_complete", {"p_results": results}).execute()
    return {"received": len(leads)}
