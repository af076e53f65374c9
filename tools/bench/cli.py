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

from meta_webhook.settings import MetaWebhookSettings
from place_call.settings import PlaceCallSettings
from tools import ROOT
from tools.bench import cold, cold_lead, memory, quota, report, report_size, speed, steady
from tools.bench.load import (
    LoadError,
    Wrk,
    calendly_deliveries,
    ensure_wrk,
    meta_deliveries,
    place_call_requests,
    wrk_version,
)
from tools.bench.roundtrips import RpcCounter
from tools.bench.serve import (
    CALENDLY,
    FLOORS,
    HELLO,
    META,
    PLACE_CALL,
    Probes,
    ServeError,
    build_bundles,
    server_env,
)
from tools.stack import local as local_stack

# Leadgen id ranges, one per purpose, so that no id is ever sent twice in a run.
COLD_IDS = 3_000_000_000_000_000
LOAD_IDS = 4_000_000_000_000_000
SPEED_IDS = 5_000_000_000_000_000
# The Graph fake gives a lead a phone from its id's last digits (one person per phone): these ids
# give numbers no other lead of the run has, so each cold lead is called (not a cooldown).
COLD_LEAD_IDS = 6_000_000_500_000_000
DATABASE = ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
# What each function gets from the stack, and nothing else.
SETTINGS = {
    # The database API, the Graph API (the fake) and the Meta secrets: the judged flow is
    # delivery -> meta_ingest -> Graph fetch -> meta_complete (no PLACE_CALL_URL, so no call
    # request either; speed to lead adds it).
    META: (
        *DATABASE,
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
        "META_ACCESS_TOKEN",
        "META_GRAPH_URL",
    ),
    CALENDLY: (*DATABASE, "CALENDLY_SIGNING_KEY"),
    PLACE_CALL: (
        *DATABASE,
        "INTERNAL_TOKEN",
        "ELEVENLABS_API_URL",
        "ELEVENLABS_API_KEY",
        "ELEVENLABS_AGENT_ID",
        "ELEVENLABS_PHONE_NUMBER_ID",
        "ELEVENLABS_WEBHOOK_SECRET",
    ),
}
# Beyond the stack's: Calendly's deliveries are signed when the run starts, so their timestamps
# must stay within tolerance for the whole run; calls are placed whatever the time of day.
OVERRIDES = {
    CALENDLY: {"CALENDLY_TOLERANCE_SECONDS": "3600"},
    PLACE_CALL: {
        "CALL_HOURS_START": "00:00",
        "CALL_HOURS_END": "24:00",
        "CALL_PLACE_RULES": "false",
    },
}


def floor_settings(name: str, settings: dict[str, str]) -> dict[str, str]:
    """What the floor of ``name`` reads beside its function's settings: the values the function
    computes from them (the call rules, the Graph version), so the requests are the same."""
    if name == PLACE_CALL:
        loaded = PlaceCallSettings.load(settings)
        said = {"business_name": loaded.call_business_name, "disclosure": loaded.disclosure}
        return {
            **settings,
            "FLOOR_CALL_RULES": json.dumps(loaded.call_rules()),
            "FLOOR_CALL_VARIABLES": json.dumps(said),
        }
    if name == META:
        version = MetaWebhookSettings.load(settings).meta_graph_version
        return {**settings, "META_GRAPH_VERSION": version}
    return settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="meta_webhook, calendly_webhook and place_call judged against a bare "
        "functions-framework function, side by side: CPU per request, cold start, database round "
        "trips; and speed to lead (docs/PERFORMANCE.md).",
    )
    add = parser.add_argument
    add("--rounds", type=int, default=4, help="load windows per function, alternating (4)")
    add("--window", type=int, default=3, help="seconds of each load window (3)")
    add("--warmup", type=int, default=2, help="seconds of warm-up load per function (2)")
    add("--connections", type=int, default=16, help="wrk connections (16)")
    add("--wrk-threads", type=int, default=1, help="wrk client threads (1)")
    add("--cold-runs", type=int, default=15, help="counted cold starts per function (15)")
    add(
        "--report-leads",
        type=int,
        default=1_000_000,
        help="leads over twelve months for the report's 30-day queries (1000000; 0 skips)",
    )
    add(
        "--cpu-quota",
        type=float,
        default=0.333,
        help="vCPU of each function for the cold speed to lead measured again under a cgroup "
        "CPU quota, as a 512Mi Cloud Functions instance has (0.333; 0 skips it)",
    )
    add("--workers", type=int, default=1, help="WORKERS of both servers (1)")
    add(
        "--threads",
        type=int,
        default=(os.cpu_count() or 1) * 4,
        help="THREADS of both servers (functions-framework's default: 4 per CPU)",
    )
    add(
        "--bodies",
        type=int,
        default=20_000,
        help="distinct prepared requests per judged function (20000)",
    )
    add("--speed-leads", type=int, default=240, help="leads timed for speed to lead (240)")
    add("--speed-rate", type=float, default=10.0, help="leads per second, speed to lead (10)")
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
        "speed_leads": (1, 10_000),
        "speed_rate": (0.1, 200),
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
        envs = {HELLO: server_env({}, workers=args.workers, threads=args.threads)}
        for name, keys in SETTINGS.items():
            settings = {key: stack.env[key] for key in keys} | OVERRIDES.get(name, {})
            envs[name] = server_env(settings, workers=args.workers, threads=args.threads)
            envs[FLOORS[name]] = server_env(
                floor_settings(name, settings), workers=args.workers, threads=args.threads
            )
        print("bench: preparing the requests ...", flush=True)
        requests = {
            META: meta_deliveries(
                work / "meta.txt",
                first_id=LOAD_IDS,
                count=args.bodies,
                secret=stack.env["META_APP_SECRET"],
            ),
            CALENDLY: calendly_deliveries(
                work / "calendly.txt",
                first=0,
                count=args.bodies,
                secret=stack.env["CALENDLY_SIGNING_KEY"],
            ),
            PLACE_CALL: place_call_requests(
                work / "place_call.txt",
                lead_ids=counter.queue_calls(args.bodies, label="load"),
                token=stack.env["INTERNAL_TOKEN"],
            ),
        }
        # Each floor's own requests, as many, each new work as the function's are.
        requests = {
            META: requests[META],
            FLOORS[META]: meta_deliveries(
                work / "floor_meta.txt",
                first_id=LOAD_IDS + args.bodies,
                count=args.bodies,
                secret=stack.env["META_APP_SECRET"],
            ),
            CALENDLY: requests[CALENDLY],
            FLOORS[CALENDLY]: calendly_deliveries(
                work / "floor_calendly.txt",
                first=args.bodies,
                count=args.bodies,
                secret=stack.env["CALENDLY_SIGNING_KEY"],
            ),
            PLACE_CALL: requests[PLACE_CALL],
            FLOORS[PLACE_CALL]: place_call_requests(
                work / "floor_place_call.txt",
                lead_ids=counter.queue_calls(args.bodies, label="floor load"),
                token=stack.env["INTERNAL_TOKEN"],
            ),
        }
        probes = Probes(
            stack.env,
            first_id=COLD_IDS,
            # place_call's cold starts and its floor's, the priming launch of each included.
            queued=counter.queue_calls(2 * (args.cold_runs + 1), label="cold start"),
        )
        colds = cold.measure(bundles, envs, probes, runs=args.cold_runs, logs=work / "logs")
        loads, trips = steady.measure(
            bundles,
            envs,
            probes,
            wrk,
            stack=stack,
            counter=counter,
            work=work,
            requests=requests,
            rounds=args.rounds,
            window=args.window,
            warmup=args.warmup,
        )
        print("bench: vacuum analyze after the load windows ...", flush=True)
        counter.catch_up()
        to_lead = speed.measure(
            bundles,
            envs,
            probes,
            counter=counter,
            elevenlabs_url=stack.env["ELEVENLABS_API_URL"],
            database_url=stack.env["SUPABASE_URL"],
            graph_url=stack.env["META_GRAPH_URL"],
            work=work,
            first_id=SPEED_IDS,
            leads=args.speed_leads,
            rate=args.speed_rate,
        )
        print("bench: cold speed to lead ...", flush=True)
        lead_cold = cold_lead.measure(
            bundles,
            envs,
            counter=counter,
            elevenlabs_url=stack.env["ELEVENLABS_API_URL"],
            logs=work / "logs",
            first_id=COLD_LEAD_IDS,
            runs=args.cold_runs,
        )
        lead_quota: cold_lead.ColdLead | str | None = None
        if args.cpu_quota > 0:
            print(f"bench: cold speed to lead at {args.cpu_quota:g} vCPU ...", flush=True)
            with quota.cpu_groups((META, PLACE_CALL), args.cpu_quota) as groups:
                lead_quota = (
                    groups
                    if isinstance(groups, str)
                    else cold_lead.measure(
                        bundles,
                        envs,
                        counter=counter,
                        elevenlabs_url=stack.env["ELEVENLABS_API_URL"],
                        logs=work / "logs",
                        first_id=COLD_LEAD_IDS + args.cold_runs,
                        runs=args.cold_runs,
                        groups=groups,
                    )
                )
        print("bench: memory under strangers' big bodies ...", flush=True)
        strangers = memory.measure(
            bundles, envs, probes, logs=work / "logs", names=(HELLO, PLACE_CALL)
        )
        at_size: report_size.Size | None = None
        if args.report_leads > 0:
            # Last: it fills the database with a year of leads.
            print(f"bench: the report over {args.report_leads:,} leads ...", flush=True)
            at_size = report_size.measure(
                stack.env["DATABASE_URL"], leads=args.report_leads, runs=3
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

    judged = report.verdicts(loads, colds, trips, to_lead)
    invalid = report.problems(loads, trips, to_lead)
    invalid += [f"cold speed to lead: {problem}" for problem in lead_cold.problems]
    if isinstance(lead_quota, cold_lead.ColdLead):
        invalid += [f"cold speed to lead under quota: {p}" for p in lead_quota.problems]
    print(
        f"\ncommit {info['commit']}; {info['nproc']} CPUs, Python {info['python']}, "
        f"{info['platform']}; functions-framework {info['functions_framework']}, gunicorn "
        f"{info['gunicorn']} (WORKERS={args.workers}, THREADS={args.threads}); {info['wrk']} "
        f"({args.wrk_threads} thread, {args.connections} connections); {args.rounds} windows "
        f"of {args.window:g} s per function after {args.warmup:g} s of warm-up; "
        f"{args.cold_runs} cold starts each; speed to lead: {args.speed_leads} leads at "
        f"{args.speed_rate:g}/s"
    )
    print(report.render(loads, colds, trips, to_lead, judged, invalid, nproc=info["nproc"]))
    print("\n" + "\n".join(cold_lead.lines(lead_cold, colds, lead_quota, args.cpu_quota)))
    print(memory.render(strangers, (HELLO, PLACE_CALL)))
    if at_size is not None:
        print("\n" + "\n".join(at_size.lines()))
    print(f"\nbench: done in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = report.as_json(
            loads,
            colds,
            trips,
            to_lead,
            judged,
            invalid,
            machine=info,
            config=vars(args) | {"json": None},
        )
        if at_size is not None:
            data["report_at_size"] = report_size.as_json(at_size)
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"bench: results written to {args.json}")
    size_ok = at_size is None or at_size.passed
    return 0 if all(v.passed for v in judged if v.judged) and not invalid and size_ok else 1
