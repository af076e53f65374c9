"""Each function's floor (tools/bench/floors, `make bench`) makes the same requests as its
function: the same RPCs at the database API, the same Graph and ElevenLabs calls, for one unit
of work each; and it imports the function's third-party packages. Otherwise "the function costs
at most 1.3x its floor" would compare different work."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools import PYTHONPATH, ROOT
from tools.bench import cli
from tools.bench.serve import CALENDLY, FLOORS, FLOORS_FOLDER, JUDGED, META, PLACE_CALL, served
from tools.build.functions import imports
from tools.fakes.calendly_samples import calendly_headers, calendly_invitee_event, encode
from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import leadgen_delivery, meta_headers
from tools.stack import local as local_stack

from .conftest import Conn, queued_lead

_ID = re.compile(r"/[0-9]{6,}")


@pytest.mark.parametrize("name", JUDGED)
def test_floor_imports_its_function_s_packages(name: str) -> None:
    function = set(imports(ROOT / "functions" / name))
    floor = set(imports(FLOORS_FOLDER / FLOORS[name]))
    assert function <= floor, sorted(function - floor)


@contextlib.contextmanager
def _serving(name: str, folder: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    port = local_stack.free_port()
    with served(name, folder, port, env, log):
        deadline = time.monotonic() + 60
        while not local_stack.listening(port):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(0.02)
        yield port


def _request(name: str, port: int, stack_env: dict[str, str], db: Conn) -> None:
    import httpx

    url = f"http://127.0.0.1:{port}/"
    if name == META:
        # A leadgen id whose last digits give a phone no other lead has (one person per phone).
        body = leadgen_delivery(str(7_000_000_000_000_000 + uuid.uuid4().int % 10**12))
        headers = meta_headers(body, secret=stack_env["META_APP_SECRET"])
    elif name == CALENDLY:
        body = encode(calendly_invitee_event(email=f"floor.{uuid.uuid4().hex[:12]}@example.org"))
        secret = stack_env["CALENDLY_SIGNING_KEY"].split(",")[0].strip()
        headers = calendly_headers(body, secret=secret, timestamp=int(time.time()))
    else:
        body = json.dumps({"lead_id": queued_lead(db)}).encode()
        headers = {"Authorization": f"Bearer {stack_env['INTERNAL_TOKEN']}"}
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _log(fakes: dict[str, FakeClient], marks: dict[str, int]) -> dict[str, list[Any]]:
    """What each fake received after ``marks``: the RPC names, the provider calls' paths."""
    seen = {name: fake.requests(after=marks[name]) for name, fake in fakes.items()}
    return {
        "database": [r["key"] for r in seen["database"]],
        **{
            name: [(r["method"], _ID.sub("/<id>", r["path"])) for r in seen[name]]
            for name in ("graph", "elevenlabs")
        },
    }


@pytest.mark.parametrize("name", JUDGED)
def test_floor_leaves_the_same_request_log_as_its_function(
    name: str, stack: local_stack.Stack, db: Conn, tmp_path: Path
) -> None:
    settings = {key: stack.env[key] for key in cli.SETTINGS[name]} | cli.OVERRIDES.get(name, {})
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    fakes = {
        "database": FakeClient(stack.env["SUPABASE_URL"]),
        "graph": FakeClient(stack.env["META_GRAPH_URL"]),
        "elevenlabs": FakeClient(stack.env["ELEVENLABS_API_URL"]),
    }
    logs = {}
    servers = {
        name: (ROOT / "functions" / name, {**base, **settings, "PYTHONPATH": PYTHONPATH}),
        FLOORS[name]: (
            FLOORS_FOLDER / FLOORS[name],
            {**base, **cli.floor_settings(name, settings)},
        ),
    }
    for served_name, (folder, env) in servers.items():
        with _serving(served_name, folder, env, tmp_path / f"{served_name}.log") as port:
            marks = {
                k: max((int(r["seq"]) for r in f.requests()), default=0) for k, f in fakes.items()
            }
            _request(name, port, stack.env, db)
            logs[served_name] = _log(fakes, marks)
    expected = {
        META: ["meta_ingest", "meta_complete"],
        CALENDLY: ["calendly_record"],
        PLACE_CALL: ["call_claim", "call_started"],
    }[name]
    assert logs[name]["database"] == expected
    assert logs[FLOORS[name]] == logs[name]
