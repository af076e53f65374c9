"""Calendly's error answers as failures, without I/O: a table from the HTTP status to the
failure's class, its stable code, and a message that tells the operator what to do."""

from __future__ import annotations

from typing import Any

from lib.errors import FailureClass, ProviderFailure

CREDENTIALS_HELP = (
    "CALENDLY_API_TOKEN is invalid or revoked: create a personal access token in "
    "Calendly > Integrations > API & Webhooks"
)
SUBSCRIPTION_EXISTS = "calendly_subscription_exists"

# (class, code, message): {action} is what was attempted, {status} the HTTP status, {quoted}
# Calendly's own words.
Entry = tuple[FailureClass, str, str]
BY_STATUS: dict[int, Entry] = {
    401: (
        FailureClass.AUTH,
        "calendly_token_invalid",
        "Calendly refused the token while {action} (HTTP 401{quoted}). " + CREDENTIALS_HELP + ".",
    ),
    403: (
        FailureClass.PERMISSION,
        "calendly_permission_denied",
        "Calendly refused {action} (HTTP 403{quoted}). Webhooks need a paid Calendly plan, and an "
        "organization-scope subscription needs an owner or admin's token.",
    ),
    404: (
        FailureClass.NOT_FOUND,
        "calendly_not_found",
        "Calendly does not know what {action} asked for (HTTP 404{quoted}); check "
        "CALENDLY_API_URL (https://api.calendly.com).",
    ),
    409: (
        FailureClass.INVALID,
        SUBSCRIPTION_EXISTS,
        "Calendly already has a webhook subscription for this URL (HTTP 409{quoted}).",
    ),
    429: (
        FailureClass.THROTTLED,
        "calendly_rate_limited",
        "Calendly is rate limiting this token (HTTP 429{quoted}); try again in a minute.",
    ),
}
SERVER: Entry = (
    FailureClass.TRANSIENT,
    "calendly_unavailable",
    "Calendly had a temporary error while {action} (HTTP {status}{quoted}); try again in a few "
    "minutes.",
)
OTHER: Entry = (
    FailureClass.INVALID,
    "calendly_request_refused",
    "Calendly refused {action} (HTTP {status}{quoted}).",
)


def classify_calendly_error(status: int, body: Any, *, action: str) -> ProviderFailure:
    """A Calendly error answer as a failure (see the table above), with Calendly's own
    ``title``, ``message`` and ``details``. ``action`` says what was attempted ("creating the
    webhook subscription")."""
    error = body if isinstance(body, dict) else {}
    title = str(error.get("title") or "").strip()
    text = str(error.get("message") or "").strip()
    raw_details = error.get("details")
    details = (
        [item for item in raw_details if isinstance(item, dict)]
        if isinstance(raw_details, list)
        else []
    )
    said = "; ".join(
        part
        for part in (
            text or title,
            *(
                f"{item['parameter']}: {item.get('message')}"
                if item.get("parameter")
                else str(item.get("message"))
                for item in details
            ),
        )
        if part
    )
    quoted = f': "{said}"' if said else ""
    info: dict[str, Any] = {"http_status": status, "title": title, "calendly_message": text}
    if details:
        info["details"] = details
    entry = BY_STATUS.get(status) or (SERVER if status >= 500 else OTHER)
    failure_class, code, message = entry
    return ProviderFailure(
        failure_class, code, message.format(action=action, status=status, quoted=quoted), info
    )


def malformed(action: str, what: str) -> ProviderFailure:
    return ProviderFailure(
        FailureClass.MALFORMED,
        "calendly_answer_malformed",
        f"The Calendly API answered {action} with something unexpected ({what}); "
        "is CALENDLY_API_URL the Calendly API (https://api.calendly.com)?",
        {"answer": action},
    )
