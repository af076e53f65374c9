"""The smoke test of a deploy: what was deployed answers as it must, before anyone relies on it.

For each function, from its own route table (tools.build.functions):

- meta_webhook's Meta handshake (``GET /`` with META_VERIFY_TOKEN) answers 200 with the
  challenge;
- each public ``POST`` route (the provider webhooks) refuses an unsigned request: 401;
- each private route refuses a request without INTERNAL_TOKEN: 401;
- ``POST /sweep`` with INTERNAL_TOKEN answers 200.

Every probe is read-only for the product (an unsigned or unauthenticated request changes
nothing; a sweep is what the scheduler runs every minute anyway). Each row asserts its status;
a mismatch says what to fix.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from tools.build.functions import Function


@dataclass(frozen=True)
class Probe:
    function: str
    what: str
    method: str
    url: str
    expected: int
    fix: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body_is: str | None = None  # the answer's body must be this (the handshake's challenge)


@dataclass(frozen=True)
class Row:
    probe: Probe
    status: int | None  # None: no answer
    ok: bool
    detail: str


def probes(
    functions: Mapping[str, Function], urls: Mapping[str, str], *, verify_token: str, token: str
) -> list[Probe]:
    """The probes of each deployed function (``urls``: its base URL)."""
    found: list[Probe] = []
    for name, url in sorted(urls.items()):
        function = functions[name]
        base = url.rstrip("/")
        if function.has_route("GET", "/") and name == "meta_webhook":
            challenge = secrets.token_hex(8)
            found.append(
                Probe(
                    name,
                    "Meta handshake",
                    "GET",
                    base + "/",
                    200,
                    "META_VERIFY_TOKEN differs from the deployed function's: run `make deploy`",
                    params={
                        "hub.mode": "subscribe",
                        "hub.verify_token": verify_token,
                        "hub.challenge": challenge,
                    },
                    body_is=challenge,
                )
            )
        for method, path in function.routes:
            if method != "POST":
                continue
            target = base + path
            if (method, path) in function.private:
                found.append(
                    Probe(
                        name,
                        f"POST {path} without token",
                        method,
                        target,
                        401,
                        "a private route answers without INTERNAL_TOKEN: check the deployed code",
                    )
                )
                if path == "/sweep":
                    found.append(
                        Probe(
                            name,
                            "POST /sweep with token",
                            method,
                            target,
                            200,
                            "the sweep refuses INTERNAL_TOKEN or fails: run `make deploy`, then "
                            "read the function's logs",
                            headers={"Authorization": f"Bearer {token}"},
                        )
                    )
            else:
                found.append(
                    Probe(
                        name,
                        f"POST {path} unsigned",
                        method,
                        target,
                        401,
                        "a webhook answers an unsigned request: check the deployed code and "
                        "its signing secret",
                    )
                )
    return found


def run(found: list[Probe], client: httpx.Client) -> list[Row]:
    rows = []
    for probe in found:
        try:
            answer = client.request(
                probe.method,
                probe.url,
                headers=probe.headers,
                params=probe.params or None,
                json={} if probe.method == "POST" else None,
            )
        except httpx.HTTPError as exc:
            rows.append(Row(probe, None, False, f"no answer ({type(exc).__name__})"))
            continue
        ok = answer.status_code == probe.expected and (
            probe.body_is is None or answer.text.strip() == probe.body_is
        )
        detail = "" if ok else (answer.text.strip().splitlines() or [""])[0][:120]
        rows.append(Row(probe, answer.status_code, ok, detail))
    return rows


def table(rows: list[Row]) -> list[str]:
    """The rows as lines: function, probe, expected, got, and what to fix on a mismatch."""
    lines = [f"  {'function':<18} {'probe':<28} {'expect':>6} {'got':>5}"]
    for row in rows:
        got = str(row.status) if row.status is not None else "-"
        line = f"  {row.probe.function:<18} {row.probe.what:<28} {row.probe.expected:>6} {got:>5}"
        lines.append(line + ("  ok" if row.ok else f"  MISMATCH: {row.probe.fix} ({row.detail})"))
    return lines
