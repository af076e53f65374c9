"""Shared fixtures: one embedded stack (real Postgres, real migrations via the Supabase CLI, the
PostgREST stand-in, the Graph fake) and the functions served over real HTTP, per test session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import tools
from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import meta_headers
from tools.stack import local as local_stack

FIXTURES = Path(__file__).parent / "fixtures"
CALENDLY_KEYS = ("calendly-test-signing-key-new", "calendly-test-signing-key-old")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def dead_database_api(tmp_path: Path) -> Iterator[str]:
    """The URL of a PostgREST stand-in whose database is down (a closed port)."""
    port = local_stack.free_port()
    dead = f"postgresql://authenticator:x@127.0.0.1:{local_stack.free_port()}/postgres"
    process = local_stack.spawn(
        "tools.stack.rest_standin",
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
    # The ElevenLabs settings the tests sign and check with; everything else is generated.
    started = local_stack.start(tmp_path_factory.mktemp("stack"), environ=ELEVENLABS)
    yield started
    started.stop()


@dataclass
class Functions:
    """The functions served over HTTP by tools.stack.serve, with helpers to call them."""

    base: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def url(self, name: str, path: str = "") -> str:
        return f"{self.base}/functions/v1/{name}{path}"

    def post_meta(
        self,
        body: bytes,
        *,
        secret: str | None = None,
        headers_extra: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = meta_headers(body, secret=secret or self.env["META_APP_SECRET"])
        headers.update(headers_extra or {})
        return httpx.post(
            self.url("meta_webhook"), content=body, headers=headers, timeout=30, **kwargs
        )

    def sweep(self) -> httpx.Response:
        return httpx.post(
            self.url("meta_webhook", "/sweep"),
            timeout=60,
            headers={"Authorization": f"Bearer {self.env['INTERNAL_TOKEN']}"},
        )


def serve_functions(env: dict[str, str], log: Path, port: int | None = None) -> Functions:
    port = port or local_stack.free_port()
    process = local_stack.spawn(
        "tools.stack.serve",
        "--port",
        str(port),
        log=log,
        env={**env, "PYTHONPATH": tools.PYTHONPATH},
    )
    base = f"http://127.0.0.1:{port}"
    local_stack.wait_until(local_stack.http_ok(f"{base}/health"), what="tools.stack.serve")
    return Functions(base, env, process)


ELEVENLABS = {
    "ELEVENLABS_API_KEY": "sk_test_elevenlabs_key",
    "ELEVENLABS_AGENT_ID": "agent_4101kf6gqfgpfrganck3s1m0ap3v",
    "ELEVENLABS_PHONE_NUMBER_ID": "phnum_test_laura",
    "ELEVENLABS_WEBHOOK_SECRET": "wsec_test_new, wsec_test_old",
}


@pytest.fixture(scope="session")
def elevenlabs_url(stack: local_stack.Stack) -> str:
    """The stack's ElevenLabs fake (tools/fakes/elevenlabs_fake.py)."""
    return stack.env["ELEVENLABS_API_URL"]


@pytest.fixture(scope="session")
def functions(
    stack: local_stack.Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Functions]:
    port = local_stack.free_port()
    env = {
        **stack.env,
        "HTTP_TIMEOUT_SECONDS": "1",
        "DEFAULT_PHONE_REGION": "US",
        # Two keys, as while one is rotated: the newest signs, both verify.
        "CALENDLY_SIGNING_KEY": f"{CALENDLY_KEYS[0]}, {CALENDLY_KEYS[1]}",
        "PLACE_CALL_URL": f"http://127.0.0.1:{port}/functions/v1/place_call",
        # Calls at any hour, so tests do not depend on the clock (test_calls covers the hours).
        "CALL_HOURS_START": "00:00",
        "CALL_HOURS_END": "24:00",
    }
    served = serve_functions(env, tmp_path_factory.mktemp("functions") / "functions.log", port)
    yield served
    served.process.terminate()
    served.process.wait(timeout=10)


@pytest.fixture
def db(stack: local_stack.Stack) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection to the stack's database, for assertions and setup."""
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        yield conn


class GraphFake(FakeClient):
    """The Graph fake's control API: requests are filed under the node (the lead id)."""

    def script(
        self, leadgen_id: str, *responses: dict[str, Any], lead: dict[str, Any] | None = None
    ) -> None:
        body: dict[str, Any] = {"responses": list(responses)}
        if lead is not None:
            body["lead"] = lead
        self.put(f"leads/{leadgen_id}", body)

    def fetches(self, leadgen_id: str) -> int:
        return self.count(leadgen_id)

    def set_token(self, **info: Any) -> None:
        self.put("token", info)


@pytest.fixture(scope="session")
def graph(stack: local_stack.Stack) -> GraphFake:
    return GraphFake(stack.env["META_GRAPH_URL"])


@pytest.fixture(scope="session")
def database_api(stack: local_stack.Stack) -> FakeClient:
    """The PostgREST stand-in's log of the RPCs it served, filed under the function's name."""
    return FakeClient(stack.env["SUPABASE_URL"])


@pytest.fixture(autouse=True)
def _no_real_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests build their configuration explicitly; nothing leaks in from the shell."""
    for key in list(os.environ):
        if key.startswith(("META_", "SUPABASE_", "INTERNAL_TOKEN")):
            monkeypatch.delenv(key, raising=False)


__all__ = [
    "CALENDLY_KEYS",
    "ELEVENLABS",
    "FIXTURES",
    "Functions",
    "GraphFake",
    "fixture_bytes",
    "serve_functions",
]
