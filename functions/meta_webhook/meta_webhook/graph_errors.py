"""Graph API error answers, classified without I/O: a table from Meta's ``error.code`` to a
:class:`~lib.errors.ProviderFailure` whose class decides the retry and whose message tells the
operator what to do.

https://developers.facebook.com/docs/graph-api/guides/error-handling
"""

from __future__ import annotations

from typing import Any

from lib.errors import FailureClass, ProviderFailure

# (class, code, message): the message's {label} is Meta's own "Graph error <code>[/<subcode>]:
# <message>". The table is read by error.code, after the two cases a code alone cannot tell.
Entry = tuple[FailureClass, str, str]
TOKEN_INVALID: Entry = (
    FailureClass.AUTH,
    "graph_token_invalid",
    "The Meta access token is expired or invalid ({label}). Renew META_ACCESS_TOKEN with a "
    "long-lived Page token (`make doctor` checks it); pending leads are fetched by the sweep once "
    "it works.",
)
APPSECRET_PROOF: Entry = (
    FailureClass.AUTH,
    "graph_appsecret_proof_invalid",
    "Meta rejected the appsecret_proof ({label}). META_APP_SECRET must be the App Secret of the "
    "app that issued META_ACCESS_TOKEN.",
)
PERMISSION: Entry = (
    FailureClass.PERMISSION,
    "graph_permission_denied",
    "The access token may not read this lead ({label}). Grant the leads_retrieval permission to "
    "the token and allow this app in the Page's Leads Access Manager (Page settings > Leads "
    "access).",
)
THROTTLED: Entry = (
    FailureClass.THROTTLED,
    "graph_rate_limited",
    "Meta is throttling Graph calls ({label}). Nothing to do: the lead is retried automatically "
    "with backoff.",
)
UNKNOWN_LEAD: Entry = (
    FailureClass.NOT_FOUND,
    "graph_unknown_lead",
    "The Graph API does not know this lead id ({label}). Expected for the App Dashboard's test "
    "button; for a real lead, check that META_ACCESS_TOKEN is a token of the Page that owns the "
    "form.",
)
UNAVAILABLE: Entry = (
    FailureClass.TRANSIENT,
    "graph_unavailable",
    "The Graph API had a temporary error ({label}). Retried automatically.",
)
OTHER: Entry = (
    FailureClass.TRANSIENT,
    "graph_error",
    "The Graph API refused the lead fetch ({label}). Retried automatically; if it persists, look "
    "the code up in Meta's error reference.",
)
BY_CODE: dict[int, Entry] = {
    190: TOKEN_INVALID,
    102: TOKEN_INVALID,
    10: PERMISSION,
    **dict.fromkeys(range(200, 300), PERMISSION),
    **dict.fromkeys((4, 17, 32, 341, 613, *range(80000, 80015)), THROTTLED),
    100: UNKNOWN_LEAD,
    1: UNAVAILABLE,
    2: UNAVAILABLE,
}


def classify_graph_error(status: int, body: Any) -> ProviderFailure:
    """A Graph error answer (or an answer that is not a lead) as a failure, by ``error.code``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ProviderFailure(
            FailureClass.TRANSIENT,
            "graph_unavailable",
            f"The Graph API answered HTTP {status} without an error object; "
            "Meta may be having an outage. Retried automatically.",
            {"http_status": status},
        )
    code = error.get("code")
    subcode = error.get("error_subcode")
    text = str(error.get("message", ""))
    details = {
        "http_status": status,
        "graph_code": code,
        "graph_subcode": subcode,
        "graph_message": text,
        "fbtrace_id": error.get("fbtrace_id"),
    }
    label = f"Graph error {code}" + (f"/{subcode}" if subcode else "") + f": {text}"
    if code == 100 and "appsecret_proof" in text:
        entry = APPSECRET_PROOF
    elif isinstance(code, int) and code in BY_CODE:
        entry = BY_CODE[code]
    else:
        entry = UNAVAILABLE if status >= 500 else OTHER
    failure_class, failure_code, message = entry
    return ProviderFailure(failure_class, failure_code, message.format(label=label), details)
