"""ElevenLabs' error answers as failures, without I/O: a table from the HTTP status (and, for a
401 or 402, ElevenLabs' ``detail.status``) to the failure's class, which decides the retry, its
stable code, and a message that tells the operator what to do, with ElevenLabs' own words.
"""

from __future__ import annotations

from typing import Any

from lib.errors import FailureClass, ProviderFailure

API_KEY_HELP = (
    "ELEVENLABS_API_KEY is invalid or revoked: create an API key in ElevenLabs > Developers > "
    "API Keys (with access to ElevenLabs Agents) and set it"
)
IDS_HELP = (
    "check ELEVENLABS_AGENT_ID (ElevenLabs > Agents, the agent's id) and "
    "ELEVENLABS_PHONE_NUMBER_ID (ElevenLabs > Phone Numbers, the number's id)"
)
_QUOTA_STATUSES = ("quota_exceeded", "insufficient_credits", "payment_required")
_ERRORS_KEPT = 10  # validation errors kept in a failure's details

# (class, code, message): the message's {action} is what was attempted ("placing the call"),
# {quoted} the HTTP status with ElevenLabs' words, {not_found} what to check on a 404.
Entry = tuple[FailureClass, str, str]
QUOTA: Entry = (
    FailureClass.QUOTA,
    "elevenlabs_quota_exceeded",
    "ElevenLabs refused {action}: out of credits ({quoted}): top up in ElevenLabs > "
    "Subscription (or raise the plan); calls are retried with backoff meanwhile.",
)
PERMISSION: Entry = (
    FailureClass.PERMISSION,
    "elevenlabs_permission_denied",
    "ElevenLabs refused {action}: the API key lacks a permission ({quoted}). In "
    "ElevenLabs > Developers > API Keys, give ELEVENLABS_API_KEY access to ElevenLabs "
    "Agents (read and write) and User (read), or create a key without restrictions.",
)
BY_STATUS: dict[int, Entry] = {
    401: (
        FailureClass.AUTH,
        "elevenlabs_api_key_invalid",
        "ElevenLabs refused the API key while {action} ({quoted}). " + API_KEY_HELP + ".",
    ),
    403: PERMISSION,
    404: (
        FailureClass.CONFIG,
        "elevenlabs_not_found",
        "ElevenLabs does not know what {action} asked for ({quoted}); {not_found}.",
    ),
    422: (
        FailureClass.CONFIG,
        "elevenlabs_request_invalid",
        "ElevenLabs refused {action} as invalid ({quoted}); " + IDS_HELP + ".",
    ),
    429: (
        FailureClass.THROTTLED,
        "elevenlabs_rate_limited",
        "ElevenLabs is at the account's limit of concurrent calls or requests ({quoted}); "
        "retried with backoff. If it lasts, raise the plan's concurrency or lower "
        "CALL_SWEEP_BATCH_SIZE.",
    ),
}
SERVER: Entry = (
    FailureClass.TRANSIENT,
    "elevenlabs_unavailable",
    "ElevenLabs had a temporary error while {action} ({quoted}); retried automatically.",
)
OTHER: Entry = (
    FailureClass.INVALID,
    "elevenlabs_request_refused",
    "ElevenLabs refused {action} ({quoted}); it is not retried.",
)


def classify_elevenlabs_error(
    status: int, body: Any, *, action: str, not_found: str = IDS_HELP
) -> ProviderFailure:
    """An ElevenLabs error answer as a failure (see the table above)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = _validation_errors(detail)
    if isinstance(detail, dict):
        code = str(detail.get("status") or detail.get("code") or "").strip()
        text = str(detail.get("message") or "").strip()
    else:
        code, text = "", detail.strip() if isinstance(detail, str) else ""
    said = "; ".join(part for part in (text, *errors) if part)
    quoted = f"HTTP {status}" + (f': "{said}"' if said else "")
    info: dict[str, Any] = {"http_status": status}
    if code:
        info["elevenlabs_status"] = code
    if text:
        info["elevenlabs_message"] = text
    if errors:
        info["errors"] = errors
    lowered = f"{code} {text}".lower()
    if status in (401, 402) and (
        code in _QUOTA_STATUSES or "credit" in lowered or "quota" in lowered
    ):
        entry = QUOTA
    elif status == 401 and code == "missing_permissions":
        entry = PERMISSION
    else:
        entry = BY_STATUS.get(status) or (SERVER if status >= 500 else OTHER)
    failure_class, failure_code, message = entry
    return ProviderFailure(
        failure_class,
        failure_code,
        message.format(action=action, quoted=quoted, not_found=not_found),
        info,
    )


def _validation_errors(detail: Any) -> list[str]:
    """``loc: msg`` of each error of a 422's ``detail`` list (never its ``input``, which may
    echo the phone number)."""
    if not isinstance(detail, list):
        return []
    found = []
    for item in detail[:_ERRORS_KEPT]:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc")
        where = ".".join(str(part) for part in loc) if isinstance(loc, list) else str(loc or "")
        found.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return found


def malformed(endpoint: str, what: str, *, may_have_started: bool = False) -> ProviderFailure:
    """An answer of another shape than ElevenLabs documents."""
    return ProviderFailure(
        FailureClass.MALFORMED,
        "elevenlabs_answer_malformed",
        f"The ElevenLabs API answered {endpoint} with something unexpected ({what}); is "
        "ELEVENLABS_API_URL the ElevenLabs API (https://api.elevenlabs.io)?"
        + (
            " The call may have started: check ElevenLabs > Call History."
            if may_have_started
            else ""
        ),
        {"answer": endpoint},
    )
