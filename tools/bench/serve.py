"""Serving the functions as production does, and probing them.

Each function is served from its deployed bundle (tools/build/bundle.py: the function's folder with
``lib/`` copied beside ``main.py``, bytecode precompiled) in a temporary directory::

    functions-framework --target <name> --source <bundle>/main.py --host 127.0.0.1 --port <free>

with cwd = the bundle and an environment holding the system basics and the function's settings
only: no ``PYTHONPATH`` (the bundle finds ``lib/`` beside ``main.py``), nothing of the
developer's configuration. The bare baseline (tools/bench_hello) gets a bundle built the same way.
"""

from __future__ import annotations

import compileall
import contextlib
import http.client
import itertools
import json
import os
import py_compile
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlencode

from tools import ROOT
from tools.bench import quota
from tools.build import bundle
from tools.fakes.calendly_samples import calendly_headers, calendly_invitee_event, encode
from tools.fakes.samples import leadgen_delivery, meta_headers
from tools.stack.local import free_port

HELLO = "hello"
META = "meta_webhook"
CALENDLY = "calendly_webhook"
PLACE_CALL = "place_call"
# The functions judged against hello, in the order they are loaded.
JUDGED = (META, CALENDLY, PLACE_CALL)
HELLO_FOLDER = ROOT / "tools" / "bench_hello"
# Each judged function's floor (tools/bench/floors): the same requests, none of our code.
FLOORS = {name: f"floor_{name}" for name in JUDGED}
FLOORS_FOLDER = ROOT / "tools" / "bench" / "floors"
_BASE = {floor: name for name, floor in FLOORS.items()}


def base(name: str) -> str:
    """The judged function whose requests ``name`` makes (itself, or a floor's function)."""
    return _BASE.get(name, name)


# What a served function inherits from this process.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONDONTWRITEBYTECODE")

Probe = Callable[[], int | None]


class ServeError(RuntimeError):
    """A function did not start or answer; the message says which and how."""


def build_bundles(dest: Path) -> dict[str, Path]:
    """The bundles of hello, of every judged function and of each one's floor under ``dest``:
    name → folder, in the order they are loaded (a function, then its floor)."""
    built = {HELLO: _copy(HELLO_FOLDER, dest / HELLO)}
    for name in JUDGED:
        built[name] = bundle.build(name, dest / name)
        built[FLOORS[name]] = _copy(FLOORS_FOLDER / FLOORS[name], dest / FLOORS[name])
    return built


def _copy(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # Compiled as tools/build/bundle.py compiles a function's bundle.
    compileall.compile_dir(
        dest, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH
    )
    return dest


def server_env(settings: Mapping[str, str], *, workers: int, threads: int) -> dict[str, str]:
    """The environment of a served function: the system basics, ``settings``, and gunicorn's
    ``WORKERS``/``THREADS`` (the same for every function)."""
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    return {**env, **settings, "WORKERS": str(workers), "THREADS": str(threads)}


def _functions_framework() -> str:
    beside = Path(sys.executable).parent / "functions-framework"
    return str(beside) if beside.exists() else "functions-framework"


@contextlib.contextmanager
def served(
    name: str,
    folder: Path,
    port: int,
    env: Mapping[str, str],
    log: Path,
    cgroup: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Function ``name`` of bundle ``folder`` served on 127.0.0.1:``port``; stopped after.
    With ``cgroup``, its processes run in that cgroup (tools/bench/quota.py) from the start."""
    command = [
        _functions_framework(),
        "--target",
        name,
        "--source",
        str(folder / "main.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=quota.joiner(cgroup),
        )
    try:
        yield process
    finally:
        stop(process)


def serve_ready(
    running: contextlib.ExitStack,
    name: str,
    folder: Path,
    env: Mapping[str, str],
    log: Path,
    probes: Probes,
) -> tuple[subprocess.Popen[bytes], int]:
    """Serve ``name`` on a free port until ``running`` closes, once it answers its readiness
    probe; the process and the port."""
    port = free_port()
    process = running.enter_context(served(name, folder, port, env, log))
    first_200(process, probes.ready(name, port), what=name)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Its own session: the gunicorn arbiter and its worker, nothing else.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def request_status(
    port: int,
    method: str,
    path: str = "/",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> int | None:
    """The status of one request, or None when nothing listens yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        response.read()
        return response.status
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        return None
    finally:
        conn.close()


def first_200(
    process: subprocess.Popen[bytes], probe: Probe, *, what: str, timeout: float = 60
) -> None:
    """Repeat ``probe`` (every 5 ms while nothing listens) until it answers 200."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(f"{what} exited with status {process.returncode} before answering")
        last = probe()
        if last == 200:
            return
        time.sleep(0.005 if last is None else 0.05)
    raise ServeError(f"{what} did not answer 200 within {timeout:.0f} s (last status: {last})")


class Probes:
    """The requests that start each function's work, one never sent before each time:

    - hello: ``GET /``;
    - meta_webhook: a signed leadgen delivery with a new leadgen id (ids from ``first_id`` on);
    - calendly_webhook: a signed ``invitee.created`` of a new invitee, signed now;
    - place_call: ``POST / {"lead_id"}`` of a lead whose call is queued and due (taken from
      ``queued``, in order).

    ``ready`` is the cheapest request that shows a server is up: hello's ``GET /``, the Meta
    subscription handshake, a Calendly delivery, place_call asked for a lead that does not exist.
    """

    def __init__(
        self, settings: Mapping[str, str], *, first_id: int, queued: Iterable[str] = ()
    ) -> None:
        self._settings = settings
        self._ids = itertools.count(first_id)
        self._queued = iter(queued)

    def first_request(self, name: str, port: int) -> Probe:
        name = base(name)
        return {
            HELLO: self.hello,
            META: self.delivery,
            CALENDLY: self.booking,
            PLACE_CALL: self.call,
        }[name](port)

    def ready(self, name: str, port: int) -> Probe:
        name = base(name)
        if name == META:
            return self.handshake(port)
        if name == PLACE_CALL:
            return self.call(port, lead_id=str(uuid.uuid4()))
        return self.first_request(name, port)

    def hello(self, port: int) -> Probe:
        return lambda: request_status(port, "GET")

    def delivery(self, port: int) -> Probe:
        def probe() -> int | None:
            body = leadgen_delivery(str(next(self._ids)))
            headers = meta_headers(body, secret=self._settings["META_APP_SECRET"])
            return request_status(port, "POST", body=body, headers=headers)

        return probe

    def booking(self, port: int) -> Probe:
        def probe() -> int | None:
            email = f"bench.probe.{next(self._ids)}@example.org"
            body = encode(calendly_invitee_event(email=email))
            secret = self._settings["CALENDLY_SIGNING_KEY"].split(",")[0].strip()
            headers = calendly_headers(body, secret=secret, timestamp=int(time.time()))
            return request_status(port, "POST", body=body, headers=headers)

        return probe

    def call(self, port: int, *, lead_id: str | None = None) -> Probe:
        wanted = lead_id or next(self._queued, None)
        if wanted is None:
            raise ServeError("the benchmark ran out of queued leads for place_call's probes")
        body = json.dumps({"lead_id": wanted}).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self._settings['INTERNAL_TOKEN']}",
        }
        return lambda: request_status(port, "POST", body=body, headers=headers)

    def handshake(self, port: int) -> Probe:
        query = {"hub.mode": "subscribe", "hub.verify_token": self._settings["META_VERIFY_TOKEN"]}
        path = "/?" + urlencode({**query, "hub.challenge": "bench"})
        return lambda: request_status(port, "GET", path)
