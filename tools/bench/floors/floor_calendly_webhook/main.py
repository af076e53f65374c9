"""calendly_webhook's floor: the same request as calendly_webhook for an event (calendly_record),
nothing else. Not deployed; `make bench` only."""

import json
import os

import flask  # noqa: F401 - the function's packages, imported as it imports them
import functions_framework
import httpx
import phonenumbers  # noqa: F401
import pydantic  # noqa: F401
import pydantic_settings  # noqa: F401
from postgrest import SyncPostgrestClient

_KEY = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
_DB = SyncPostgrestClient(
    f"{os.environ['SUPABASE_URL']}/rest/v1",
    headers={"apikey": _KEY, "Authorization": f"Bearer {_KEY}"},
    http_client=httpx.Client(timeout=10.0),
    retry_enabled=False,
)


@functions_framework.http
def floor_calendly_webhook(request):
    envelope = json.loads(request.get_data())
    payload = envelope["payload"]
    scheduled = payload["scheduled_event"]
    record = {
        "event": envelope["event"],
        "external_id": payload["uri"],
        "invitee_uri": payload["uri"],
        "event_uri": scheduled["uri"],
        "status": payload["status"],
        "rescheduled": payload["rescheduled"],
        "old_invitee_uri": payload.get("old_invitee"),
        "new_invitee_uri": payload.get("new_invitee"),
        "start_time": scheduled["start_time"],
        "end_time": scheduled["end_time"],
        "timezone": payload.get("timezone"),
        "name": payload.get("name"),
        "email": payload.get("email"),
        "phone": payload.get("text_reminder_number"),
        "event_name": scheduled.get("name"),
        "event_type": scheduled.get("event_type"),
        "location": scheduled.get("location"),
        "cancel_url": payload.get("cancel_url"),
        "reschedule_url": payload.get("reschedule_url"),
        "answers": payload.get("questions_and_answers"),
        "tracking": payload.get("tracking"),
        "lead_id": None,
        "cancellation": payload.get("cancellation") or {},
        "created_at": envelope.get("created_at"),
        "payload": payload,
    }
    return _DB.rpc("calendly_record", {"p_event": record}).execute().data
