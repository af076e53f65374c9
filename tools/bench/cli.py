"""``python -m tools.bench``: start the embedded stack, measure, print, judge.

Exit status: 0 when every target passes; 1 when a target fails or the measurement is invalid
(errors, a delivery sent twice, leads left unfetched); 2 when the benchmark could not run.
Everything listens on and talks to 127.0.0.1 only; every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tools import ROOT
from tools import stack as local_stack
from tools.bench import cold, report, steady
from tools.bench.load import LoadError, Wrk, ensure_wrk, write_deliveries, wrk_version
from tools.bench.roundtrips import RpcCounter
from tools.bench.serve import HELLO, META, Probes, ServeError, build_bundles, server_env

# Leadgen id ranges, one per purpose, so that no id is ever sent twice in a run.
COLD_IDS = 3_000_000_000_000_000
LOAD_IDS = 4_000_000_000_000_000
# The settings meta_webhook gets from the stack: the database API, the Graph API (the fake) and
# the Meta secrets. Nothing else: the judged flow is delivery -> meta_ingest -> Graph fetch ->
# meta_complete (no PLACE_CALL_URL, so no call request either).
META_SETTINGS = (
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "META_ACCESS_TOKEN",
    "META_GRAPH_URL",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="meta_webhook judged against a bare functions-framework function, side by "
        "side: CPU per request, cold start, database round trips (docs/PERFORMANCE.md).",
    )
    add = parser.add_argument
    add("--rounds", type=int, default=4, help="load windows per function, alternating (4)")
    add("--window", type=int, default=3, help="seconds of each load window (3)")
    add("--warmup", type=int, default=2, help="seconds of warm-up load per function (2)")
    add("--connections", type=int, default=16, help="wrk connections (16)")
    add("--wrk-threads", type=int, default=1, help="wrk client threads (1)")
    add("--cold-runs", type=int, default=7, help="counted cold starts per function (7)")
    add("--workers", type=int, default=1, help="WORKERS of both servers (1)")
    add(
        "--threads",
        type=int,
        default=(os.cpu_count() or 1) * 4,
        help="THREADS of both servers (functions-framework's default: 4 per CPU)",
    )
    add("--bodies", type=int, default=60_000, help="distinct pre-signed deliveries (60000)")
    add("--json", type=Path, help="also write the results to this file")
    add("--keep", action="store_true", help="keep the work directory (bundles, logs, stack)")
    args = parser.parse_args(argv)
    bounds = {
        "rounds": (1, 20),
        "window": (1, 60),
        "warmup": (0, 30),
        "connections": (1, 256),
        "wrk_threads": (1, 8),
        "cold_runs": (1, 20),
        "workers": (1, 16),
        "threads": (1, 64),
        "bodies": (1000, 1_000_000),
    }
    for name, (low, high) in bounds.items():
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")
    return args


def machine(wrk: str) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit,
        "nproc": os.cpu_count() or 1,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "functions_framework": version("functions-framework"),
        "gunicorn": version("gunicorn"),
        "wrk": wrk_version(wrk),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` must still stop the stack and the servers (the finally below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    (work / "logs").mkdir()
    stack = counter = None
    try:
        wrk = Wrk(ensure_wrk(), args.wrk_threads, args.connections)
        print(f"bench: building the bundles and starting the embedded stack in {work} ...")
        bundles = build_bundles(work / "bundles")
        stack = local_stack.start(work / "stack", environ={})
        counter = RpcCounter(stack.env["DATABASE_URL"])
        settings = {key: stack.env[key] for key in META_SETTINGS}
        envs = {
            HELLO: server_env({}, workers=args.workers, threads=args.threads),
            META: server_env(settings, workers=args.workers, threads=args.threads),
        }
        deliveries = work / "deliveries.txt"
        write_deliveries(
            deliveries, first_id=LOAD_IDS, count=args.bodies, secret=settings["META_APP_SECRET"]
        )
        probes = Probes(settings, first_id=COLD_IDS)
        colds = cold.measure(bundles, envs, probes, runs=args.cold_runs, logs=work / "logs")
        loads, trips = steady.measure(
            bundles,
            envs,
            probes,
            wrk,
            stack=stack,
            counter=counter,
            work=work,
            deliveries=deliveries,
            delivery_count=args.bodies,
            rounds=args.rounds,
            window=args.window,
            warmup=args.warmup,
        )
        info = machine(wrk.path)
    except (LoadError, ServeError, local_stack.StackError) as exc:
        print(f"bench: {exc}\nbench: logs are in {work / 'logs'}", file=sys.stderr)
        args.keep = True
        return 2
    finally:
        if counter is not None:
            counter.close()
        if stack is not None:
            stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    judged = report.verdicts(loads, colds, trips)
    invalid = report.problems(loads, trips)
    print(
        f"\ncommit {info['commit']}; {info['nproc']} CPUs, Python {info['python']}, "
        f"{info['platform']}; functions-framework {info['functions_framework']}, gunicorn "
        f"{info['gunicorn']} (WORKERS={args.workers}, THREADS={args.threads}); {info['wrk']} "
        f"({args.wrk_threads} thread, {args.connections} connections); {args.rounds} windows "
        f"of {args.window:g} s per function after {args.warmup:g} s of warm-up; "
        f"{args.cold_runs} cold starts each"
    )
    print(report.render(loads, colds, trips, judged, invalid, nproc=info["nproc"]))
    print(f"\nbench: done in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = report.as_json(
            loads, colds, trips, judged, invalid, machine=info, config=vars(args) | {"json": None}
        )
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"bench: results written to {args.json}")
    return 0 if all(v.passed for v in judged) and not invalid else 1
