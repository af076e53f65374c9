"""HS256 JSON Web Tokens, as Supabase signs its anon and service-role keys (local stack only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

# The JWT secret of Supabase's own local stack (`supabase start`); public, for local use only.
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


class InvalidToken(Exception):
    """The token is malformed, badly signed or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], *, secret: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def decode(token: str, *, secret: str, now: float | None = None) -> dict[str, Any]:
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
        signature = _unb64(signature_b64)
    except (ValueError, TypeError) as exc:
        raise InvalidToken("JWSError (CompactDecodeError Invalid number of parts)") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise InvalidToken("JWSError JWSInvalidSignature")
    expected = hmac.new(
        secret.encode(), f"{header_b64}.{payload_b64}".encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(signature, expected):
        raise InvalidToken("JWSError JWSInvalidSignature")
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < (time.time() if now is None else now):
        raise InvalidToken("JWT expired")
    return claims


def local_key(role: str, *, secret: str = LOCAL_JWT_SECRET) -> str:
    """A long-lived key for `role` (anon or service_role), shaped like Supabase's local keys."""
    return encode({"iss": "supabase-demo", "role": role, "exp": 1983812996}, secret=secret)
