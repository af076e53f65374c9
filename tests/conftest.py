"""Shared fixtures: one embedded stack (real Postgres, real migrations via the Supabase CLI, the
PostgREST stand-in, the Graph fake) and the functions served over real HTTP, per test session."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from lib.signatures import sign_meta
from tools import stack as local_stack

FIXTURES = Path(__file__).parent / "fixtures"
_ids = itertools.count(int(time.time() * 1000) % 10**9 * 1000)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def new_leadgen_id() -> str:
    """A leadgen id no other test uses (Meta's are 15-16 digit numbers)."""
    return str(1_000_000_000_000_000 + next(_ids))


def leadgen_delivery(
    *leadgen_ids: str,
    page_id: str = "138124712925158",
    form_id: str = "172036835026334",
    numeric: bool = False,
) -> bytes:
    """A delivery shaped like Meta's, one entry with one leadgen change per id."""

    def cast(value: str) -> Any:
        return int(value) if numeric else value

    changes = [
        {
            "field": "leadgen",
            "value": {
                "leadgen_id": cast(lid),
                "page_id": cast(page_id),
                "form_id": cast(form_id),
                "created_time": 1630087926,
            },
        }
        for lid in leadgen_ids
    ]
    return json.dumps(
        {"object": "page", "entry": [{"id": cast(page_id), "time": 1630087927, "changes": changes}]}
    ).encode()


def batch_delivery(first: str, second: str, third: str, fourth: str) -> bytes:
    """The batch shape of Meta's docs: two entries, several changes each, numeric ids in the
    first entry and strings in the second, an ``ad_id`` on the first lead only, no ``page_id``
    on the later ones, and a non-leadgen field between them."""
    leadgen: dict[str, Any] = {"field": "leadgen"}
    return json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": 1,
                    "time": 2,
                    "changes": [
                        {
                            **leadgen,
                            "value": {
                                "leadgen_id": int(first),
                                "page_id": 1,
                                "form_id": 5,
                                "ad_id": 7,
                                "adgroup_id": 7,
                                "created_time": 1630087926,
                            },
                        },
                        {"field": "feed", "value": {"item": "status"}},
                        {**leadgen, "value": {"leadgen_id": int(second), "form_id": 5}},
                    ],
                },
                {
                    "id": "2",
                    "time": 3,
                    "changes": [
                        {**leadgen, "value": {"leadgen_id": third, "form_id": "6"}},
                        {**leadgen, "value": {"leadgen_id": fourth, "form_id": "6"}},
                    ],
                },
            ],
        }
    ).encode()


@pytest.fixture
def dead_database_api(tmp_path: Path) -> Iterator[str]:
    """The URL of a PostgREST stand-in whose database is down (a closed port)."""
    port = local_stack.free_port()
    dead = f"postgresql://authenticator:x@127.0.0.1:{local_stack.free_port()}/postgres"
    process = local_stack.spawn(
        "tools.rest_standin",
        "--port",
        str(port),
        "--db-url",
        dead,
        env={},
        log=tmp_path / "dead-rest.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        local_stack.wait_until(local_stack.http_ok(f"{url}/health"), what="stand-in")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.Stack]:
    started = local_stack.start(tmp_path_factory.mktemp("stack"), environ={})
    yield started
    started.stop()


@dataclass
class Functions:
    """The functions served over HTTP by tools.serve, with helpers to call them."""

    base: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def url(self, name: str, path: str = "") -> str:
        return f"{self.base}/functions/v1/{name}{path}"

    def post_meta(self, body: bytes, *, secret: str | None = None, **kwargs: Any) -> httpx.Response:
        signature = sign_meta(body, secret=secret or self.env["META_APP_SECRET"])
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        return httpx.post(
            self.url("meta_webhook"), content=body, headers=headers, timeout=30, **kwargs
        )

    def sweep(self) -> httpx.Response:
        return httpx.post(
            self.url("meta_webhook", "/sweep"),
            timeout=60,
            headers={"Authorization": f"Bearer {self.env['INTERNAL_TOKEN']}"},
        )


def serve_functions(env: dict[str, str], log: Path) -> Functions:
    port = local_stack.free_port()
    process = local_stack.spawn(
        "tools.serve",
        "--port",
        str(port),
        log=log,
        env={**env, "PYTHONPATH": str(local_stack.ROOT)},
    )
    base = f"http://127.0.0.1:{port}"
    local_stack.wait_until(local_stack.http_ok(f"{base}/health"), what="tools.serve")
    return Functions(base, env, process)


@pytest.fixture(scope="session")
def functions(
    stack: local_stack.Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Functions]:
    env = {**stack.env, "HTTP_TIMEOUT_SECONDS": "1", "DEFAULT_PHONE_REGION": "US"}
    served = serve_functions(env, tmp_path_factory.mktemp("functions") / "functions.log")
    yield served
    served.process.terminate()
    served.process.wait(timeout=10)


@pytest.fixture
def db(stack: local_stack.Stack) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection to the stack's database, for assertions and setup."""
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        yield conn


class GraphFake:
    """The Graph fake's control API."""

    def __init__(self, base: str) -> None:
        self.base = base

    def script(
        self, leadgen_id: str, *responses: dict[str, Any], lead: dict[str, Any] | None = None
    ) -> None:
        body: dict[str, Any] = {"responses": list(responses)}
        if lead is not None:
            body["lead"] = lead
        httpx.put(f"{self.base}/_fake/leads/{leadgen_id}", json=body).raise_for_status()

    def fetches(self, leadgen_id: str) -> int:
        requests = httpx.get(f"{self.base}/_fake/requests").json()
        return sum(1 for r in requests if r["node"] == leadgen_id)

    def set_token(self, **info: Any) -> None:
        httpx.put(f"{self.base}/_fake/token", json=info).raise_for_status()


@pytest.fixture(scope="session")
def graph(stack: local_stack.Stack) -> GraphFake:
    return GraphFake(stack.env["META_GRAPH_URL"])


@pytest.fixture(autouse=True)
def _no_real_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests build their configuration explicitly; nothing leaks in from the shell."""
    for key in list(os.environ):
        if key.startswith(("META_", "SUPABASE_", "INTERNAL_TOKEN")):
            monkeypatch.delenv(key, raising=False)


__all__ = [
    "FIXTURES",
    "Functions",
    "GraphFake",
    "fixture_bytes",
    "leadgen_delivery",
    "new_leadgen_id",
    "serve_functions",
]
