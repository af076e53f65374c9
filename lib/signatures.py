"""Webhook signature checks: pure functions over the raw body bytes.

Each verifier takes the bytes exactly as received, the headers and ``*, secrets`` (several, so a
secret can be rotated) and, for timestamped schemes (Calendly, ElevenLabs), ``now``; it returns
None, or raises :class:`InvalidSignature` for every kind of failure. Comparisons are constant-time
over bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lib.errors import InvalidSignature

__all__ = [
    "CALENDLY_HEADER",
    "ELEVENLABS_HEADER",
    "InvalidSignature",
    "SignedBody",
    "appsecret_proof",
    "header",
    "sign_calendly",
    "sign_elevenlabs",
    "sign_meta",
    "sign_timestamped",
    "token_matches",
    "verify_calendly",
    "verify_elevenlabs",
    "verify_elevenlabs_chunks",
    "verify_meta",
    "verify_timestamped",
    "verify_timestamped_chunks",
]

META_HEADER = "X-Hub-Signature-256"
CALENDLY_HEADER = "Calendly-Webhook-Signature"
ELEVENLABS_HEADER = "ElevenLabs-Signature"

# ASCII digits only (``int()`` would also take "+1", " 1", "1_0" and non-ASCII digits) and at most
# 12 of them (year 33658): an absurd timestamp is malformed rather than a big integer to convert.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


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


_header = header  # verify_timestamped's ``header`` keyword shadows the function


def sign_meta(body: bytes, *, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_meta(body: bytes, headers: Headers, *, secrets: Sequence[str]) -> None:
    """Check Meta's ``X-Hub-Signature-256`` over the raw body.

    https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
    """
    value = header(headers, META_HEADER)
    if not value:
        raise InvalidSignature(f"Missing {META_HEADER} header: not a delivery signed by Meta.")
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
    raise InvalidSignature(
        f"{META_HEADER} does not match the body: if this is Meta, META_APP_SECRET is not the "
        "App Secret of the app (App Dashboard > Settings > Basic)."
    )


def sign_timestamped(body: bytes, *, secret: str, timestamp: int, scheme: str) -> str:
    """The header value a timestamped sender puts on ``body``: ``t=<timestamp>,<scheme>=<hex>``.

    The hex is the HMAC-SHA256, keyed by ``secret``, of ``b"<timestamp>." + body``.
    """
    if not 0 <= timestamp < 10**12:
        raise ValueError("timestamp must be Unix seconds, 0 <= timestamp < 10**12")
    return f"t={timestamp},{scheme}={_timestamped_digest(body, str(timestamp), secret).hex()}"


def sign_calendly(body: bytes, *, secret: str, timestamp: int) -> str:
    """The ``Calendly-Webhook-Signature`` value Calendly sends for ``body`` at ``timestamp``."""
    return sign_timestamped(body, secret=secret, timestamp=timestamp, scheme="v1")


def sign_elevenlabs(body: bytes, *, secret: str, timestamp: int) -> str:
    """The ``ElevenLabs-Signature`` value ElevenLabs sends for ``body`` at ``timestamp``."""
    return sign_timestamped(body, secret=secret, timestamp=timestamp, scheme="v0")


def verify_timestamped(
    body: bytes,
    headers: Headers,
    *,
    hint: str = "",
    header: str,
    scheme: str,
    secrets: Sequence[str],
    now: float,
    tolerance: float,
) -> None:
    """Check a ``t=<unix seconds>,<scheme>=<hex>`` signature header over the raw body.

    The signed content is ``b"<t>." + body`` with ``<t>`` exactly as it appears in the header; the
    signature is the lowercase hex HMAC-SHA256 keyed by the secret. Parts may come in any order,
    with whitespace around them; parts with other names are ignored, but one malformed
    ``<scheme>=`` value refuses the header. The header may carry several ``<scheme>=`` values and
    ``secrets`` several secrets: any matching pair passes; an empty secret never matches. The
    timestamp must lie within ``tolerance`` seconds of ``now``, in either direction (both
    boundaries included); it is checked after the signature, so only an authentic but late (or
    early) delivery is refused as outside the tolerance. ``now`` is an argument: nothing here
    reads the clock.
    """
    timestamp, given = _parse_timestamped(headers, header=header, scheme=scheme)
    keys = _keys(secrets)
    expected = [_timestamped_digest(body, timestamp, key) for key in keys]
    if not any(hmac.compare_digest(g, e) for g in given for e in expected):
        raise InvalidSignature(f"{header} does not match the body{hint}.")
    _check_timestamp(timestamp, header=header, now=now, tolerance=tolerance)


@dataclass(frozen=True)
class SignedBody:
    """A body whose signature checked out: its first ``keep`` bytes, and whether that is all."""

    data: bytes
    complete: bool


def verify_timestamped_chunks(
    chunks: Iterable[bytes],
    headers: Headers,
    *,
    hint: str = "",
    header: str,
    scheme: str,
    secrets: Sequence[str],
    now: float,
    tolerance: float,
    keep: int,
) -> SignedBody:
    """:func:`verify_timestamped` over a body read as it streams, for bodies too large to hold:
    the header is parsed and its timestamp checked **before the first chunk is drawn** (a
    missing, malformed or stale header costs no body byte), the HMACs are fed chunk by chunk,
    and only the first ``keep`` bytes are kept."""
    timestamp, given = _parse_timestamped(headers, header=header, scheme=scheme)
    _check_timestamp(timestamp, header=header, now=now, tolerance=tolerance)
    macs = [
        hmac.new(key.encode(), timestamp.encode() + b".", hashlib.sha256) for key in _keys(secrets)
    ]
    kept = bytearray()
    complete = True
    for chunk in chunks:
        for mac in macs:
            mac.update(chunk)
        room = keep - len(kept)
        if len(chunk) > room:
            complete = False
        if room > 0:
            kept += chunk[:room]
    if not any(hmac.compare_digest(g, mac.digest()) for g in given for mac in macs):
        raise InvalidSignature(f"{header} does not match the body{hint}.")
    return SignedBody(bytes(kept), complete)


def _parse_timestamped(headers: Headers, *, header: str, scheme: str) -> tuple[str, list[bytes]]:
    """The header's timestamp (as written) and its ``<scheme>`` signatures; InvalidSignature when
    it is missing or malformed."""
    value = _header(headers, header)
    if not value:
        raise InvalidSignature(f"Missing {header} header.")
    timestamps: list[str] = []
    given: list[bytes] = []
    for part in value.split(","):
        name, equals, item = part.strip().partition("=")
        if not equals:
            raise InvalidSignature(f"Malformed {header} header.")
        if name == "t":
            timestamps.append(item)
        elif name == scheme:
            if not _HEX_SHA256.fullmatch(item):
                raise InvalidSignature(f"Malformed {header} header.")
            given.append(bytes.fromhex(item))
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise InvalidSignature(f"Malformed {header} header.")
    if not given:
        raise InvalidSignature(f"No {scheme} signature in the {header} header.")
    return timestamps[0], given


def _keys(secrets: Sequence[str]) -> list[str]:
    keys = [secret for secret in secrets if secret]
    if not keys:
        raise InvalidSignature("No secret to check the signature with.")
    return keys


def _check_timestamp(timestamp: str, *, header: str, now: float, tolerance: float) -> None:
    # Written so that a NaN ``now`` or ``tolerance`` refuses too.
    if not now - tolerance <= int(timestamp) <= now + tolerance:
        raise InvalidSignature(f"{header} timestamp is outside the tolerance.")


# What a signature that does not match says to fix, when the sender is the provider.
CALENDLY_HINT = (
    ": if this is Calendly, CALENDLY_SIGNING_KEY is not the subscription's signing key "
    "(`make calendly-subscribe` stores it; a re-created subscription has a new one)"
)
ELEVENLABS_HINT = (
    ": if this is ElevenLabs, ELEVENLABS_WEBHOOK_SECRET is not the post-call webhook's HMAC "
    "secret (ElevenLabs > workspace settings > Webhooks)"
)


def verify_calendly(
    body: bytes,
    headers: Headers,
    *,
    secrets: Sequence[str],
    now: float,
    tolerance: float = 180.0,
) -> None:
    """Check Calendly's ``Calendly-Webhook-Signature: t=<unix>,v1=<hex>`` over the raw body.

    Calendly's sample refuses only old timestamps, with a 3-minute tolerance; this also refuses
    timestamps more than ``tolerance`` in the future.
    https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures
    """
    verify_timestamped(
        body,
        headers,
        header=CALENDLY_HEADER,
        scheme="v1",
        hint=CALENDLY_HINT,
        secrets=secrets,
        now=now,
        tolerance=tolerance,
    )


def verify_elevenlabs(
    body: bytes,
    headers: Headers,
    *,
    secrets: Sequence[str],
    now: float,
    tolerance: float = 1800.0,
) -> None:
    """Check ElevenLabs' ``ElevenLabs-Signature: t=<unix>,v0=<hex>`` over the raw body.

    ElevenLabs' SDK refuses only old timestamps, with a 30-minute tolerance; this also refuses
    timestamps more than ``tolerance`` in the future.
    https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks
    """
    verify_timestamped(
        body,
        headers,
        header=ELEVENLABS_HEADER,
        scheme="v0",
        hint=ELEVENLABS_HINT,
        secrets=secrets,
        now=now,
        tolerance=tolerance,
    )


def verify_elevenlabs_chunks(
    chunks: Iterable[bytes],
    headers: Headers,
    *,
    secrets: Sequence[str],
    now: float,
    tolerance: float = 1800.0,
    keep: int,
) -> SignedBody:
    """:func:`verify_elevenlabs` over a streamed body (:func:`verify_timestamped_chunks`): a
    post_call_audio webhook carries a whole call as base64 MP3."""
    return verify_timestamped_chunks(
        chunks,
        headers,
        header=ELEVENLABS_HEADER,
        scheme="v0",
        hint=ELEVENLABS_HINT,
        secrets=secrets,
        now=now,
        tolerance=tolerance,
        keep=keep,
    )


def _timestamped_digest(body: bytes, timestamp: str, secret: str) -> bytes:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).digest()


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
