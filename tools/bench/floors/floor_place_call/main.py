"""place_call's floor: the same requests as place_call for a lead (call_claim, ElevenLabs'
outbound call, call_started), nothing else. Not deployed; `make bench` only."""

import json
import os

import flask  # noqa: F401 - the function's packages, imported as it imports them
import functions_framework
import httpx
import pydantic  # noqa: F401
import pydantic_core  # noqa: F401
import pydantic_settings  # noqa: F401
from postgrest import SyncPostgrestClient

_KEY = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
_HTTP = httpx.Client(timeout=10.0)
_DB = SyncPostgrestClient(
    f"{os.environ['SUPABASE_URL']}/rest/v1",
    headers={"apikey": _KEY, "Authorization": f"Bearer {_KEY}"},
    http_client=_HTTP,
    retry_enabled=False,
)
_CALL = f"{os.environ['ELEVENLABS_API_URL']}/v1/convai/twilio/outbound-call"
_HEADERS = {"xi-api-key": os.environ["ELEVENLABS_API_KEY"], "Accept": "application/json"}
_AGENT = os.environ["ELEVENLABS_AGENT_ID"]
_NUMBER = os.environ["ELEVENLABS_PHONE_NUMBER_ID"]
# The call rules as place_call sends them (the bench computes them from its settings).
_RULES = json.loads(os.environ["FLOOR_CALL_RULES"])
# The dynamic variables place_call adds from its settings (business_name, disclosure).
_SAID = json.loads(os.environ["FLOOR_CALL_VARIABLES"])


@functions_framework.http
def floor_place_call(request):
    lead_id = json.loads(request.get_data())["lead_id"]
    claim = _DB.rpc("call_claim", {"p_lead_id": lead_id, "p_rules": _RULES}).execute().data
    if claim["decision"] != "place":
        return claim
    name = claim.get("full_name") or ""
    body = {
        "agent_id": _AGENT,
        "agent_phone_number_id": _NUMBER,
        "to_number": claim["to_number"],
        "conversation_initiation_client_data": {
            "dynamic_variables": {
                "lead_id": lead_id,
                "lead_name": name,
                "first_name": name.split(" ")[0],
                "attempt": claim["attempt"],
                **_SAID,
            },
            "user_id": lead_id,
        },
    }
    placed = _HTTP.post(_CALL, json=body, headers=_HEADERS, timeout=5.0).json()
    result = {
        "ok": True,
        "conversation_id": placed["conversation_id"],
        "call_sid": placed["callSid"],
        "message": placed["message"],
    }
    params = {"p_call_id": claim["call_id"], "p_result": result, "p_rules": _RULES}
    _DB.rpc("call_started", params).execute()
    return {"decision": "placed"}
