"""Webhook signature checks: pure functions over the raw body bytes.

Each verifier takes the bytes exactly as received, the headers and ``*, secrets`` (several, so a
secret can be rotated) and returns None, or raises :class:`InvalidSignature` for every kind of
failure. Comparisons are constant-time over bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Protocol

from lib.errors import InvalidSignature

__all__ = [
    "InvalidSignature",
    "appsecret_proof",
    "header",
    "sign_meta",
    "token_matches",
    "verify_meta",
]

META_HEADER = "X-Hub-Signature-256"


class Headers(Protocol):
    """What a verifier reads of the headers: a dict, or Flask/Werkzeug's ``Headers``."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


def header(headers: Headers, name: str) -> str | None:
    """``headers[name]``, case-insensitively (Flask headers are; plain dicts in tests are not)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def sign_meta(body: bytes, *, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_meta(body: bytes, headers: Headers, *, secrets: Sequence[str]) -> None:
    """Check Meta's ``X-Hub-Signature-256`` over the raw body.

    https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
    """
    value = header(headers, META_HEADER)
    if not value:
        raise InvalidSignature(f"Missing {META_HEADER} header.")
    scheme, _, hexdigest = value.strip().partition("=")
    if scheme != "sha256" or len(hexdigest) != 64:
        raise InvalidSignature(f"Malformed {META_HEADER} header.")
    try:
        given = bytes.fromhex(hexdigest)
    except ValueError:
        raise InvalidSignature(f"Malformed {META_HEADER} header.") from None
    if not secrets:
        raise InvalidSignature("No secret to check the signature with.")
    for secret in secrets:
        if hmac.compare_digest(given, hmac.new(secret.encode(), body, hashlib.sha256).digest()):
            return
    raise InvalidSignature(f"{META_HEADER} does not match the body.")


def appsecret_proof(access_token: str, *, app_secret: str) -> str:
    """Graph API ``appsecret_proof``: hex HMAC-SHA256 of the token keyed by the app secret.

    https://developers.facebook.com/docs/graph-api/securing-requests#appsecret_proof
    """
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def token_matches(given: str | None, *, expected: str) -> bool:
    """Constant-time check of a bearer token (the private endpoints' INTERNAL_TOKEN)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
