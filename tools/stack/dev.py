"""`make dev`: the whole product on this machine.

Starts the stack (embedded by default, or `supabase start` with ``--stack supabase``), serves every
function at ``http://127.0.0.1:$PORT/functions/v1/<name>`` (``GET /health`` answers once ready),
writes ``.local/dev.env`` and runs the sweep every minute, as pg_cron does in production.
Local by construction: supabase/.env (the deployer's file) is never read. A variable set in
this command's own environment wins over the generated one (to point one run at the real Graph
API, say), and each such URL that leaves this machine is printed loudly at start. Ctrl-C (or
SIGTERM, or SIGHUP: the terminal closed) stops everything it started. After an unclean stop
(``kill -9``) the next run stops the Postgres left running and takes the ports ``dev.env``
records again.

    python -m tools.stack.dev [--stack embedded|supabase] [--state-dir .local] [--sweep-every 60]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

import tools
from tools.stack import envfile
from tools.stack import local as stack

ROOT = envfile.ROOT
# The CRM dataset of `make dev`: the Graph fake accepts any id.
DEV_DATASET_ID = "100000000000001"


def supabase_stack(
    environ: dict[str, str], state: Path
) -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    """`supabase start` (needs Docker) and its API, keys and database; plus the Graph fake."""
    subprocess.run([str(stack.SUPABASE_CLI), "start", "--workdir", str(ROOT)], check=True)
    out = subprocess.run(
        [str(stack.SUPABASE_CLI), "status", "-o", "env", "--workdir", str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    status = {
        k: v.strip('"') for k, _, v in (line.partition("=") for line in out.splitlines()) if v
    }
    env = stack.local_secrets(environ)
    env.update(
        {
            "SUPABASE_URL": status["API_URL"],
            "SUPABASE_SERVICE_ROLE_KEY": status["SERVICE_ROLE_KEY"],
            "DATABASE_URL": status["DB_URL"],
        }
    )
    for name, key in (
        ("SUPABASE_SECRET_KEY", "SECRET_KEY"),
        ("SUPABASE_PUBLISHABLE_KEY", "PUBLISHABLE_KEY"),
    ):
        if key in status:
            env[name] = status[key]
    graph_port = stack.free_port(54329)
    graph = stack.spawn(
        "tools.fakes.graph_fake",
        "--port",
        str(graph_port),
        env={**env, **environ},
        log=state / "graph.log",
    )
    env["META_GRAPH_URL"] = f"http://127.0.0.1:{graph_port}"
    return env, [graph]


def sweep_forever(url: str, token: str, every: float, stop: threading.Event) -> None:
    name = url.rsplit("/", 2)[-2]
    while not stop.wait(every):
        try:
            response = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
            print(f"sweep {name}: {response.status_code} {response.text}", flush=True)
        except httpx.HTTPError as exc:
            print(f"sweep {name}: failed ({type(exc).__name__}); trying again later", flush=True)


def _stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def recorded_port(previous: Mapping[str, str], key: str, default: int) -> int:
    """The loopback port ``dev.env`` recorded for ``key`` (an earlier run's), else ``default``."""
    try:
        url = urlsplit(previous.get(key, ""))
        port = url.port
    except ValueError:
        return default
    return port if port and url.hostname in ("127.0.0.1", "localhost") else default


def lock_state_dir(state: Path) -> IO[str]:
    """Hold ``state/dev.lock`` while running: one `make dev` per state directory (a second one
    would stop the first one's Postgres). The lock ends with the process, however it ends."""
    state.mkdir(parents=True, exist_ok=True)
    lock = (state / "dev.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        raise stack.StackError(
            f"another make dev (pid {lock.read().strip() or '?'}) uses {state.parent}; stop it "
            "first, or give this one another --state-dir"
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=("embedded", "supabase"), default="embedded")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=envfile.DEV_ENV_FILE.parent,
        help="where dev.env and the stack's data and logs go (.local)",
    )
    parser.add_argument("--sweep-every", type=float, default=60.0, help="seconds (60)")
    args = parser.parse_args()
    # SIGINT explicitly: a background job of a non-interactive shell starts with SIGINT ignored,
    # and Python then leaves it ignored (make itself keeps ignoring it: README, `make dev`).
    # SIGHUP: the terminal was closed; stop as for Ctrl-C rather than leave the ports taken.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    state: Path = args.state_dir.resolve() / "stack"
    env_file: Path = args.state_dir.resolve() / "dev.env"

    # Local by construction: supabase/.env (production's) is never read; only what this command's
    # own environment sets wins. Secrets generated by an earlier run (in dev.env) are reused so
    # that they stay stable between runs.
    user = dict(os.environ)
    for name in envfile.URL_NAMES:
        if user.get(name) and not envfile.is_local(user[name]):
            print(
                f"make dev: WARNING: {name}={envfile.where(user[name])} comes from your "
                "environment and leaves this machine: this run talks to it, not to the local "
                "stack. Unset it to stay local.",
                file=sys.stderr,
                flush=True,
            )
    previous = envfile.read(env_file)
    reused = (*stack.LOCAL_SECRET_NAMES, *stack.API_KEY_PREFIXES)
    seed = {**{k: v for k, v in previous.items() if k in reused}, **user}
    port = int(user.get("PORT", "8080"))
    processes: list[subprocess.Popen[bytes]] = []
    local: stack.Stack | None = None
    stop = threading.Event()
    exit_code = 0
    try:
        _lock = lock_state_dir(state)  # held until the process ends
        if args.stack == "supabase":
            generated, processes = supabase_stack(seed, state)
        else:
            local = stack.start(
                state,
                environ=seed,
                pg_port=recorded_port(previous, "DATABASE_URL", 54322),
                rest_port=recorded_port(previous, "SUPABASE_URL", 54321),
                graph_port=recorded_port(previous, "META_GRAPH_URL", 54329),
                elevenlabs_port=recorded_port(previous, "ELEVENLABS_API_URL", 54333),
                calendly_port=recorded_port(previous, "CALENDLY_API_URL", 54331),
            )
            generated = local.env
        # Locally a lead is called at any hour (the ElevenLabs fake dials nobody); set
        # CALL_HOURS_START/END and CALL_PLACE_RULES=true to see the calling-hours rules at work.
        # Lead stages go to the Graph fake's Conversions API (GET /_fake/events lists them).
        env = {
            "PORT": str(port),
            "PLACE_CALL_URL": f"http://127.0.0.1:{port}/functions/v1/place_call",
            "CALL_HOURS_START": "00:00",
            "CALL_HOURS_END": "24:00",
            "CALL_PLACE_RULES": "false",
            "META_DATASET_ID": DEV_DATASET_ID,
            **generated,
            **user,
        }
        dev_env = {
            key: env[key]
            for key in [
                *generated,
                "META_GRAPH_VERSION",
                "DEFAULT_PHONE_REGION",
                "HTTP_TIMEOUT_SECONDS",
                "PLACE_CALL_URL",
                "CALL_HOURS_START",
                "CALL_HOURS_END",
                "CALL_PLACE_RULES",
                "META_DATASET_ID",
                "PORT",
            ]
            if key in env
        }
        envfile.write(env_file, dev_env)

        server = stack.spawn(
            "tools.stack.serve",
            "--port",
            str(port),
            env={**env, "PYTHONPATH": tools.PYTHONPATH},
            log=state / "functions.log",
        )
        processes.append(server)
        stack.wait_until(stack.http_ok(f"http://127.0.0.1:{port}/health"), what="the functions")
        base = f"http://127.0.0.1:{port}/functions/v1"
        print(
            json.dumps(
                {
                    "functions": f"{base}/<name>",
                    "health": f"http://127.0.0.1:{port}/health",
                    "env_file": str(env_file),
                    "logs": str(state),
                },
                indent=2,
            ),
            flush=True,
        )
        print("Ready. `make send-test-event` posts a signed lead; Ctrl-C stops.", flush=True)
        for sweep in ("meta_webhook/sweep", "place_call/sweep"):
            threading.Thread(
                target=sweep_forever,
                daemon=True,
                args=(f"{base}/{sweep}", env["INTERNAL_TOKEN"], args.sweep_every, stop),
            ).start()
        server.wait()
        print(f"The functions server exited; see {state / 'functions.log'}", flush=True)
        exit_code = 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
    except stack.StackError as exc:
        print(f"make dev: {exc}", file=sys.stderr, flush=True)
        exit_code = 1
    finally:
        stop.set()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if local is not None:
            local.stop()
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
