"""One soak run, start to end: the stack and meta_webhook up, the load with its faults, the
drain, the checks and the figures. Everything it starts it stops, whatever happens."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from tools.build.bundle import build
from tools.fakes.fake_api import FakeClient
from tools.soak import report
from tools.soak.checks import Check, gather, run_checks
from tools.soak.drain import Drain, Sweeper, drain
from tools.soak.faults import Fault, FaultSchedule, graph_faults, kill_function, restart_postgres
from tools.soak.load import Load, Outcome
from tools.soak.plan import plan_deliveries, unique_ids
from tools.soak.server import FunctionServer, function_env
from tools.stack import local as local_stack


@dataclass(frozen=True)
class Settings:
    """A run's knobs (``python -m tools.soak --help`` describes each)."""

    deliveries: int = 10_000
    concurrency: int = 32
    repeat_share: float = 0.2
    graph_fault_every: int = 10
    kill_at: float = 0.3
    pg_restart_at: float = 0.6
    pg_down: float = 3.0
    http_timeout: float = 2.0
    sweep_every: float = 60.0
    max_seconds: float = 420.0
    drain_seconds: float = 120.0
    seed: int = 0


@contextlib.contextmanager
def served_stack(
    state_dir: Path, *, http_timeout: float
) -> Iterator[tuple[local_stack.Stack, FunctionServer]]:
    """The embedded stack, and meta_webhook served from its bundle against it."""
    stack = local_stack.start(state_dir, environ={})
    server: FunctionServer | None = None
    try:
        bundle = build("meta_webhook", state_dir / "bundle")
        env = function_env(stack.env, http_timeout=http_timeout)
        server = FunctionServer(bundle, local_stack.free_port(), env, state_dir / "function.log")
        server.start()
        yield stack, server
    finally:
        if server is not None:
            server.stop()
        stack.stop()


def say(message: str) -> None:
    print(f"soak: {message}", flush=True)


def describe(settings: Settings) -> str:
    return (
        f"concurrency {settings.concurrency}, {settings.repeat_share:.0%} repeats, Graph 503 "
        f"every {settings.graph_fault_every}th fetch, SIGKILL at {settings.kill_at:.0%} and "
        f"Postgres down {settings.pg_down:g} s at {settings.pg_restart_at:.0%} of the deliveries"
    )


def run_load(
    settings: Settings, stack: local_stack.Stack, server: FunctionServer, load: Load
) -> tuple[list[Outcome], FaultSchedule, Drain]:
    """The load, with the Graph faults on, the kill and the restart fired during it, and the
    sweep called every ``sweep_every`` seconds as the scheduler would."""
    schedule = FaultSchedule(
        [
            Fault(settings.kill_at, "SIGKILL", lambda: kill_function(server, load.clock)),
            Fault(
                settings.pg_restart_at,
                "Postgres restart",
                lambda: restart_postgres(stack.postgres, settings.pg_down, load.clock),
            ),
        ],
        load.progress,
        on_outage=lambda outage: say(f"{outage.what} at {outage.at:.1f} s, {outage.seconds:.1f} s"),
    )
    sweeper = Sweeper(f"{server.url}/sweep", stack.env["INTERNAL_TOKEN"], settings.sweep_every)
    graph = FakeClient(stack.env["META_GRAPH_URL"])
    graph_faults(graph, settings.graph_fault_every)
    schedule.start()
    if settings.sweep_every > 0:
        sweeper.start()
    try:
        outcomes = load.run()
    finally:
        schedule.join(timeout=120)
        if sweeper.is_alive():
            sweeper.stop()
        graph_faults(graph, 0)
    return outcomes, schedule, sweeper.result


def graph_requests(stack: local_stack.Stack) -> int:
    """How many lead fetches the Graph fake has served (its log's last sequence number)."""
    requests = FakeClient(stack.env["META_GRAPH_URL"]).requests()
    return max((int(r["seq"]) for r in requests), default=0)


def error_trail(database_url: str) -> dict[str, int]:
    """The integration_logs rows of status error or rejected (the stack is the run's own), by
    event and error code: what an operator would find after the run."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select event || ' ' || coalesce(error_code, '-'), count(*) "
            "from public.integration_logs where status in ('error', 'rejected') "
            "group by 1 order by 1"
        ).fetchall()
    return {str(key): int(count) for key, count in rows}


def postgres_version(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]) if row else "?"


def soak(settings: Settings, state_dir: Path) -> tuple[dict[str, Any], list[Check]]:
    """Run the soak in ``state_dir``; its figures and checks."""
    load_average = os.getloadavg()
    say(f"starting the embedded stack in {state_dir}")
    with served_stack(state_dir, http_timeout=settings.http_timeout) as (stack, server):
        env = stack.env
        deliveries = plan_deliveries(
            settings.deliveries,
            repeat_share=settings.repeat_share,
            secret=env["META_APP_SECRET"],
            seed=settings.seed,
        )
        ids = unique_ids(deliveries)
        deadline = time.monotonic() + settings.max_seconds
        load = Load(server.url, deliveries, concurrency=settings.concurrency, deadline=deadline)
        say(f"{len(deliveries)} deliveries ({len(ids)} ids) to {server.url}; {describe(settings)}")
        outcomes, schedule, swept = run_load(settings, stack, server, load)
        load_ended = time.monotonic()
        say(f"load done in {load.seconds:.1f} s; sweeping until nothing is pending")
        drained = drain(
            f"{server.url}/sweep",
            env["INTERNAL_TOKEN"],
            env["DATABASE_URL"],
            ids,
            deadline=time.monotonic() + settings.drain_seconds,
        )
        drained_after = time.monotonic() - load_ended
        facts = gather(env["DATABASE_URL"], ids)
        figures = {
            "machine": machine_figures(env["DATABASE_URL"], load_average),
            # functions-framework's defaults (WORKERS and THREADS are not set): 1 worker, 4
            # threads per CPU.
            "config": {**asdict(settings), "workers": 1, "threads": (os.cpu_count() or 1) * 4},
            "load": report.load_figures(load, outcomes),
            "outages": report.outage_figures(schedule.outages, outcomes),
            "sweeps_during_load": report.drain_figures(swept),
            "drain": {
                **report.drain_figures(drained),
                "after_load_seconds": round(drained_after, 2),
            },
            "database": report.database_figures(facts, graph_requests(stack)),
            "error_trail": error_trail(env["DATABASE_URL"]),
        }
    checks = run_checks(facts, outcomes, schedule.outages, schedule.missed, faults=2)
    return figures, checks


def machine_figures(database_url: str, load_average: tuple[float, float, float]) -> dict[str, Any]:
    """The machine, Postgres' version, and the load averages before and after the run (the
    machine may be shared: a busy one lowers throughput and raises latency)."""
    return {
        **report.machine(),
        "postgres": postgres_version(database_url),
        "load_average_before": [round(x, 2) for x in load_average],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
