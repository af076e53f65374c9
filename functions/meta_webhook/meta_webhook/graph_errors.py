"""Graph API error answers, classified without I/O: each becomes a
:class:`~lib.errors.ProviderFailure` whose class decides the retry and whose message tells the
operator what to do.

https://developers.facebook.com/docs/graph-api/guides/error-handling
"""

from __future__ import annotations

from typing import Any

from lib.errors import FailureClass, ProviderFailure

_THROTTLE_CODES = {4, 17, 32, 341, 613} | set(range(80000, 80015))


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
    if code in (190, 102):
        return ProviderFailure(
            FailureClass.AUTH,
            "graph_token_invalid",
            f"The Meta access token is expired or invalid ({label}). Renew "
            "META_ACCESS_TOKEN with a long-lived Page token (`make doctor` checks "
            "it); pending leads are fetched by the sweep once it works.",
            details,
        )
    if code == 100 and "appsecret_proof" in text:
        return ProviderFailure(
            FailureClass.AUTH,
            "graph_appsecret_proof_invalid",
            f"Meta rejected the appsecret_proof ({label}). META_APP_SECRET must be "
            "the App Secret of the app that issued META_ACCESS_TOKEN.",
            details,
        )
    if code == 10 or (isinstance(code, int) and 200 <= code <= 299):
        return ProviderFailure(
            FailureClass.PERMISSION,
            "graph_permission_denied",
            f"The access token may not read this lead ({label}). Grant the "
            "leads_retrieval permission to the token and allow this app in the "
            "Page's Leads Access Manager (Page settings > Leads access).",
            details,
        )
    if code in _THROTTLE_CODES:
        return ProviderFailure(
            FailureClass.THROTTLED,
            "graph_rate_limited",
            f"Meta is throttling Graph calls ({label}). Nothing to do: the lead "
            "is retried automatically with backoff.",
            details,
        )
    if code == 100:
        return ProviderFailure(
            FailureClass.NOT_FOUND,
            "graph_unknown_lead",
            f"The Graph API does not know this lead id ({label}). Expected for "
            "the App Dashboard's test button; for a real lead, check that "
            "META_ACCESS_TOKEN is a token of the Page that owns the form.",
            details,
        )
    if code in (1, 2) or status >= 500:
        return ProviderFailure(
            FailureClass.TRANSIENT,
            "graph_unavailable",
            f"The Graph API had a temporary error ({label}). Retried automatically.",
            details,
        )
    return ProviderFailure(
        FailureClass.TRANSIENT,
        "graph_error",
        f"The Graph API refused the lead fetch ({label}). Retried automatically; "
        "if it persists, look the code up in Meta's error reference.",
        details,
    )
