"""`make dev` as a user runs it: in the background of a script, the stack comes up and the
functions answer; SIGINT to its process group or SIGTERM to make stops all of it; after `kill -9`
the next run takes the same ports.

One `make dev` is shared by the tests that only use it (here and in test_secrets.py, through
:func:`running_dev`); the tests that stop it leave the next one to start again on the same state
directory, as a user's next `make dev` does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

import tools
from lib.signatures import sign_meta
from tools.fakes.samples import leadgen_delivery, new_leadgen_id
from tools.stack import envfile
from tools.stack import local as local_stack

from .conftest import Tripwire

URL_KEYS = ("DATABASE_URL", "SUPABASE_URL", "META_GRAPH_URL")


def _as_background_job() -> None:
    """What a non-interactive shell does to `make dev &`: SIGINT and SIGQUIT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


@dataclass
class DevRun:
    """One `make dev`, in its own process group (``setsid make dev &``)."""

    state_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    output_file: Path
    recorded: dict[str, int]  # the ports dev.env recorded before it started

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return f"{self.base}/functions/v1/meta_webhook{path}"

    def env(self) -> dict[str, str]:
        return envfile.read(self.state_dir / "dev.env")

    def ports(self) -> dict[str, int]:
        """Every port this run serves on: the functions' and those dev.env records."""
        return {"PORT": self.port, **recorded_ports(self.state_dir)}

    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"make dev did not stop:\n{self.output()}") from None

    def kill(self) -> None:
        """SIGKILL to the whole group, as an unclean stop; Postgres (pg_ctl detaches it) stays."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def recorded_ports(state_dir: Path) -> dict[str, int]:
    env = envfile.read(state_dir / "dev.env")
    return {key: int(urlsplit(env[key]).port or 0) for key in URL_KEYS if key in env}


def start_dev(state_dir: Path, port: int, extra: dict[str, str] | None = None) -> DevRun:
    """`make dev` (with --state-dir and a fast sweep through STACK, the variable the Makefile
    passes on), as a background job of a script; returns once /health answers."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    output_file = state_dir / f"make-dev-{time.monotonic_ns()}.out"
    recorded = recorded_ports(state_dir)
    with output_file.open("wb") as out:
        process = subprocess.Popen(
            [
                "make",
                "--no-print-directory",
                "dev",
                f"STACK=embedded --state-dir {state_dir} --sweep-every 0.2",
            ],
            cwd=local_stack.ROOT,
            env={**env, **(extra or {}), "PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_as_background_job,
        )
    run = DevRun(state_dir, port, process, output_file, recorded)
    _STARTED.append(run)
    deadline = time.monotonic() + 90
    while not local_stack.http_ok(f"{run.base}/health")():
        if not run.alive() or time.monotonic() > deadline:
            run.kill()
            raise AssertionError(f"make dev did not come up:\n{run.output()}")
        time.sleep(0.1)
    return run


_STARTED: list[DevRun] = []
_shared: dict[str, DevRun] = {}


def running_dev(tmp_path_factory: pytest.TempPathFactory) -> DevRun:
    """The shared `make dev`, started (again, on the same state directory) when not running.

    A first run finds a dev.env recording free ports, as an earlier run would leave it, so that
    it keeps off the default ports a developer's own `make dev` uses.
    """
    current = _shared.get("run")
    if current is not None and current.alive():
        return current
    if current is None:
        state_dir = tmp_path_factory.mktemp("dev")
        envfile.write(
            state_dir / "dev.env",
            {
                "DATABASE_URL": f"postgresql://postgres:postgres@127.0.0.1:"
                f"{local_stack.free_port()}/postgres",
                "SUPABASE_URL": f"http://127.0.0.1:{local_stack.free_port()}",
                "META_GRAPH_URL": f"http://127.0.0.1:{local_stack.free_port()}",
            },
        )
        port = local_stack.free_port()
    else:
        state_dir, port = current.state_dir, current.port
    _shared["run"] = start_dev(state_dir, port)
    return _shared["run"]


@pytest.fixture(scope="session")
def dev_cleanup() -> Iterator[None]:
    """Whatever `make dev` a test left running is stopped at the end of the session."""
    yield
    for run in _STARTED:
        if run.alive():
            os.kill(run.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=60)
        run.kill()  # whatever of its group a failed test left behind
        local_stack.Postgres(run.state_dir / "stack" / "pg", 0).stop()


@pytest.fixture
def dev(tmp_path_factory: pytest.TempPathFactory, dev_cleanup: None) -> DevRun:
    return running_dev(tmp_path_factory)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def bindable_without_reuse(port: int) -> bool:
    """Whether a plain bind (no SO_REUSEADDR) gets ``port``: not while connections of a killed
    server still hold it."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return False
        return True


def assert_stopped_everything(run: DevRun, ports: dict[str, int]) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(run.process.pid, 0)  # no process of its group is left
    assert not (run.state_dir / "stack" / "pg" / "postmaster.pid").exists()
    assert [name for name, port in ports.items() if listening(port)] == []


def test_dev_serves_handshake_delivery_and_sweep_on_recorded_ports(dev: DevRun) -> None:
    dev_env = dev.env()
    assert {
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_PUBLISHABLE_KEY",
        "DATABASE_URL",
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
        "META_ACCESS_TOKEN",
        "META_GRAPH_URL",
        "INTERNAL_TOKEN",
    } <= set(dev_env)
    assert dev.ports() == {"PORT": dev.port, **dev.recorded}
    assert all(listening(port) for port in dev.ports().values())

    handshake = httpx.get(
        dev.url(),
        params={
            "hub.mode": "subscribe",
            "hub.challenge": "7",
            "hub.verify_token": dev_env["META_VERIFY_TOKEN"],
        },
    )
    assert (handshake.status_code, handshake.text) == (200, "7")
    lid = new_leadgen_id()
    body = leadgen_delivery(lid)
    delivery = httpx.post(
        dev.url(),
        content=body,
        headers={"X-Hub-Signature-256": sign_meta(body, secret=dev_env["META_APP_SECRET"])},
    )
    assert delivery.status_code == 200
    with psycopg.connect(dev_env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "select fetched_at, phone from leads where meta_leadgen_id = %s", (lid,)
        ).fetchone()
    assert row is not None
    assert row[0] is not None  # its answers fetched from the Graph fake (whatever comes next)
    assert row[1] is not None and row[1].startswith("+1")
    local_stack.wait_until(
        lambda: "sweep meta_webhook: 200" in dev.output(), what="a sweep", timeout=10
    )


def run_tool(
    dev: DevRun, module: str, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m tools.ops.<module>`` as an operator runs it beside `make dev` (its settings come
    from .local/dev.env, here the test's state dir)."""
    return subprocess.run(
        [sys.executable, "-m", f"tools.ops.{module}", *args],
        env={
            **os.environ,
            **dev.env(),
            "PORT": str(dev.port),
            "PYTHONPATH": tools.PYTHONPATH,
            **(extra or {}),
        },
        cwd=local_stack.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dev_lead_flows_from_meta_to_a_call_and_its_outcome_in_the_trail(dev: DevRun) -> None:
    lid = new_leadgen_id()
    sent = run_tool(dev, "send_event", "meta", "--leadgen-id", lid)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    dev_env = dev.env()
    with psycopg.connect(dev_env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "select l.id::text, l.phone, l.status, c.conversation_id from leads l "
            "join calls c on c.lead_id = l.id where l.meta_leadgen_id = %s",
            (lid,),
        ).fetchone()
    assert row is not None, "no call was placed for the lead"
    lead_id, phone, status, conversation = row
    assert status == "calling"
    calls = httpx.get(f"{dev_env['ELEVENLABS_API_URL']}/_fake/requests", params={"key": phone})
    assert len(calls.json()) == 1  # the call request reached the ElevenLabs fake
    outcome = run_tool(
        dev,
        "send_event",
        "elevenlabs",
        "--type",
        "transcription",
        "--conversation-id",
        conversation,
        "--lead-id",
        lead_id,
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    trail = run_tool(dev, "logs", "--lead", lead_id)
    assert trail.returncode == 0, trail.stderr
    events = [line.split()[3] for line in trail.stdout.splitlines()[1:]]
    assert events == ["lead.received", "lead.fetched", "call.initiated", "call.answered"]


def test_dev_second_run_on_the_same_state_dir_refused_first_untouched(dev: DevRun) -> None:
    second = subprocess.Popen(
        [sys.executable, "-m", "tools.stack.dev", "--state-dir", str(dev.state_dir)],
        cwd=local_stack.ROOT,
        env={**os.environ, "PORT": str(local_stack.free_port())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = second.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second.pid, signal.SIGKILL)  # whatever it started, had it not been refused
    assert second.returncode == 1
    assert b"another make dev (pid " in output
    assert httpx.get(f"{dev.base}/health").status_code == 200
    with psycopg.connect(dev.env()["DATABASE_URL"]) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_dev_after_kill_9_restarts_on_the_same_ports(
    dev: DevRun, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = dev.ports()
    with httpx.Client() as client:  # connections open when the servers die
        for port in (before["PORT"], before["SUPABASE_URL"], before["META_GRAPH_URL"]):
            assert client.get(f"http://127.0.0.1:{port}/health").status_code == 200
        dev.kill()
    # What pushed a restart to other ports: the killed servers' connections hold their ports
    # (TIME_WAIT), and Postgres, detached by pg_ctl, still runs.
    assert not bindable_without_reuse(before["SUPABASE_URL"])
    assert listening(before["DATABASE_URL"])

    restarted = running_dev(tmp_path_factory)
    assert restarted is not dev
    assert restarted.ports() == before
    assert httpx.get(f"{restarted.base}/health").status_code == 200


def test_dev_sigint_to_its_process_group_stops_everything(dev: DevRun) -> None:
    ports = dev.ports()
    os.killpg(dev.process.pid, signal.SIGINT)
    assert dev.wait() == 0, dev.output()
    assert "Stopping" in dev.output()
    assert_stopped_everything(dev, ports)


def test_dev_sighup_closing_the_terminal_stops_everything(dev: DevRun) -> None:
    # Closing the terminal sends SIGHUP to its foreground process group: make exits at once,
    # and make dev must still stop Postgres (detached by pg_ctl) and free every port.
    ports = dev.ports()
    os.killpg(dev.process.pid, signal.SIGHUP)
    dev.wait()

    def group_gone() -> bool:
        try:
            os.killpg(dev.process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    local_stack.wait_until(group_gone, what="make dev's processes to stop", timeout=60)
    assert "Stopping" in dev.output()
    assert_stopped_everything(dev, ports)


def test_dev_sigterm_to_make_stops_everything(dev: DevRun) -> None:
    ports = dev.ports()
    os.kill(dev.process.pid, signal.SIGTERM)  # make passes SIGTERM on to its recipe
    assert dev.wait() == -signal.SIGTERM, dev.output()
    assert "Stopping" in dev.output()
    assert_stopped_everything(dev, ports)


def test_postgres_stops_after_another_session_closed_its_parent(tmp_path: Path) -> None:
    # Another pytest session resets /tmp/pytest-of-<user> to 0700 when it begins: a stop must
    # still reach the data directory (as the postgres user), or the server and its
    # postmaster.pid outlive `make dev` (the sigterm test saw it under load).
    outer = tmp_path / "closed"
    postgres = local_stack.Postgres(outer / "pg", local_stack.free_port())
    postgres.start()
    try:
        outer.chmod(0o700)
        tmp_path.chmod(0o700)
        postgres.stop()
        assert not (outer / "pg" / "postmaster.pid").exists()
    finally:
        tmp_path.chmod(0o755)
        outer.chmod(0o755)
        postgres.stop()


def test_a_filled_supabase_env_never_reaches_make_dev_nor_the_local_tools(
    tmp_path: Path, dev_cleanup: None
) -> None:
    # supabase/.env filled as "Going live" says, every URL at a tripwire: `make dev`, the
    # ENV=local tools beside it (send-test-event, sweep, logs, doctor) send it nothing.
    wire = Tripwire()
    url = f"http://127.0.0.1:{wire.port}"
    database = f"postgresql://postgres:production@127.0.0.1:{wire.port}/postgres"
    production = tmp_path / "supabase.env"
    envfile.write(
        production,
        {
            "SUPABASE_URL": url,
            "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_production",
            "SUPABASE_DB_URL": database,
            "DATABASE_URL": database,
            "META_GRAPH_URL": url,
            "ELEVENLABS_API_URL": url,
            "CALENDLY_API_URL": url,
            "PLACE_CALL_URL": f"{url}/place_call",
            "META_APP_SECRET": "production-app-secret",
            "INTERNAL_TOKEN": "production-internal-token",
            "CALL_HOURS_START": "09:00",
            "CALL_HOURS_END": "20:00",
        },
    )
    state = tmp_path / "state"
    state.mkdir()
    run = start_dev(state, local_stack.free_port(), {"PROJECT_ENV_FILE": str(production)})
    try:
        written = run.env()
        assert all(envfile.is_local(written[n]) for n in envfile.URL_NAMES if n in written)
        assert "production" not in "".join(written.values())
        assert written["CALL_HOURS_START"] == "00:00" and written["PORT"] == str(run.port)
        files = {"PROJECT_ENV_FILE": str(production), "LOCAL_ENV_FILE": str(state / "dev.env")}
        for args in (["send_event", "meta"], ["sweep"], ["logs"], ["doctor"]):
            done = run_tool(run, *args, extra=files)
            assert done.stderr.startswith("target: local ("), (args, done.stderr)
            assert args[0] == "doctor" or done.returncode == 0, (args, done.stdout, done.stderr)
    finally:
        os.kill(run.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.process.wait(timeout=60)
        run.kill()
        wire.close()
    assert wire.connections == 0


def test_operator_commands_name_their_target_and_never_fall_back(tmp_path: Path) -> None:
    local_file = tmp_path / "dev.env"
    envfile.write(local_file, {"DATABASE_URL": "postgresql://p:p@127.0.0.1:5/postgres"})
    production = tmp_path / "supabase.env"
    envfile.write(
        production,
        {
            "SUPABASE_URL": "https://abcd.supabase.co",
            "SUPABASE_DB_URL": "postgresql://postgres.abcd:pw@aws-0.pooler.supabase.com:5432/x",
        },
    )
    files = {"LOCAL_ENV_FILE": str(local_file), "PROJECT_ENV_FILE": str(production)}

    local = envfile.target(environ=files)
    assert local.line().startswith("target: local (") and "127.0.0.1:5/postgres" in local.line()
    chosen = envfile.target(environ={**files, "ENV": "production"})
    assert chosen.env["DATABASE_URL"].endswith("pooler.supabase.com:5432/x")
    assert "pw" not in chosen.line() and "aws-0.pooler.supabase.com:5432" in chosen.line()
    # A production URL exported in the shell is refused locally, never used.
    with pytest.raises(envfile.TargetError, match="leaves this machine"):
        envfile.target(environ={**files, "SUPABASE_URL": "https://abcd.supabase.co"})
    # Production without its own database does not take the local one.
    envfile.write(production, {"SUPABASE_URL": "https://abcd.supabase.co"})
    bare = envfile.target(
        environ={
            **files,
            "ENV": "production",
            "DATABASE_URL": "postgresql://p:p@127.0.0.1:5/postgres",
        }
    )
    assert bare.env["DATABASE_URL"] == ""
    with pytest.raises(envfile.TargetError, match="does not exist"):
        envfile.target(environ={"ENV": "production", "PROJECT_ENV_FILE": str(tmp_path / "x")})
    with pytest.raises(envfile.TargetError, match="neither local nor production"):
        envfile.target(environ={**files, "ENV": "staging"})
