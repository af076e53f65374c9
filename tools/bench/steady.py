"""The steady state: hello and the judged functions served at once, loaded in turn by wrk, with
the CPU of every process metered over each window.

After a warm-up of each, ``rounds`` rounds each load hello for one window, then each judged
function for one window (every request distinct: a new delivery, a new invitee, a lead whose
call is due), so a change in the machine's load during the run hits every function alike. Each
window yields the function's own CPU per request (the judged figure), and, for information, its
throughput, latency and the CPU of the stack's processes and of the whole machine."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.bench import load as wrk_load
from tools.bench.cpu import CpuMeter, Window
from tools.bench.load import Load, Requests, Wrk
from tools.bench.roundtrips import FLOWS, RoundTrips, RpcCounter, between
from tools.bench.serve import HELLO, Probes, serve_ready
from tools.stack.local import Stack

FUNCTION = "function (gunicorn)"


@dataclass
class Steady:
    """One function's windows: the wrk run and the CPU of each, and its warm-up run."""

    warmup: Load | None = None
    loads: list[Load] = field(default_factory=list)
    cpu: list[Window] = field(default_factory=list)

    @property
    def function_ms(self) -> list[float]:
        """The function's own CPU milliseconds per request, window by window."""
        return [window.ms_per_request[FUNCTION] for window in self.cpu]

    @property
    def function_ms_median(self) -> float:
        return statistics.median(self.function_ms)

    def cpu_ms_median(self) -> dict[str, float]:
        """CPU ms per request of each process (and the machine), median over the windows."""
        names = self.cpu[0].ms_per_request if self.cpu else {}
        return {
            name: statistics.median(window.ms_per_request[name] for window in self.cpu)
            for name in names
        }

    @property
    def rps(self) -> float:
        """2xx answers per second over all the windows."""
        seconds = sum(load.seconds for load in self.loads)
        ok = sum(load.requests - load.non_2xx for load in self.loads)
        return ok / seconds if seconds else 0.0

    def latency_ms(self) -> tuple[float, float]:
        """p50 and p99, medians over the windows."""
        return (
            statistics.median(load.p50_ms for load in self.loads),
            statistics.median(load.p99_ms for load in self.loads),
        )


def stack_roots(stack: Stack) -> dict[str, int]:
    """The root pid of each stack process worth naming in the CPU table."""
    labels = {
        "tools.stack.rest_standin": "PostgREST stand-in",
        "tools.fakes.graph_fake": "Graph fake",
        "tools.fakes.elevenlabs_fake": "ElevenLabs fake",
    }
    roots = {}
    for process in stack.processes:
        args = [str(arg) for arg in process.args] if isinstance(process.args, list) else []
        for module, label in labels.items():
            if module in args:
                roots[label] = process.pid
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid_file = stack.postgres.data_dir / "postmaster.pid"
        roots["Postgres"] = int(pid_file.read_text().split()[0])
    return roots


def measure(
    bundles: Mapping[str, Path],
    envs: Mapping[str, Mapping[str, str]],
    probes: Probes,
    wrk: Wrk,
    *,
    stack: Stack,
    counter: RpcCounter,
    work: Path,
    requests: Mapping[str, Requests],
    rounds: int,
    window: int,
    warmup: int,
) -> tuple[dict[str, Steady], dict[str, RoundTrips]]:
    """Serve hello and every function of ``requests``, warm them up, then ``rounds`` rounds of
    one window each, in turn."""
    hello_script = work / "hello.lua"
    hello_script.write_text(wrk_load.WRK_SUMMARY)
    load_script = work / "requests.lua"
    load_script.write_text(wrk_load.WRK_SUMMARY + wrk_load.WRK_DELIVERIES)
    names = [HELLO, *requests]
    # Each prepared-requests file, in ranges: one for the warm-up, one per window.
    warm_lines = {
        name: int(prepared.count * warmup / (warmup + rounds * window))
        for name, prepared in requests.items()
    }
    window_lines = {
        name: (prepared.count - warm_lines[name]) // rounds for name, prepared in requests.items()
    }

    def run(name: str, url: str, seconds: int, first: int, count: int) -> Load:
        if name == HELLO:
            return wrk.run(url, hello_script, seconds, [])
        return wrk.run(url, load_script, seconds, requests[name].args(first, count, wrk.threads))

    results = {name: Steady() for name in names}
    roots = stack_roots(stack)
    with contextlib.ExitStack() as running:
        urls, pids = {}, {}
        for name in names:
            log = work / "logs" / f"{name}.load.log"
            process, port = serve_ready(running, name, bundles[name], envs[name], log, probes)
            urls[name], pids[name] = f"http://127.0.0.1:{port}/", process.pid
        for name in requests:
            counter.settle(name)

        before = counter.snapshot()
        if warmup:
            for name in names:
                results[name].warmup = run(name, urls[name], warmup, 0, warm_lines.get(name, 0))
                if name != HELLO:
                    counter.settle(name)
        for round_ in range(rounds):
            for name in names:
                meter = CpuMeter({FUNCTION: pids[name], **roots})
                if name == HELLO:
                    start = meter.read()
                    loaded = run(name, urls[name], window, 0, 0)
                    served_requests = loaded.requests
                else:
                    first = warm_lines[name] + round_ * window_lines[name]
                    units = counter.units(name)
                    start = meter.read()
                    loaded = run(name, urls[name], window, first, window_lines[name])
                    # The requests wrk stopped waiting for are still processed (and cost CPU):
                    # count every unit of work the function completed in the window.
                    served_requests = counter.settle(name) - units
                results[name].cpu.append(CpuMeter.window(start, meter.read(), served_requests))
                results[name].loads.append(loaded)
            print(
                f"bench: window {round_ + 1}/{rounds}: "
                + ", ".join(
                    f"{name} {results[name].loads[-1].rps:.0f} rps, "
                    f"{results[name].function_ms[-1]:.2f} CPU ms/request"
                    for name in names
                ),
                flush=True,
            )
        for name in requests:
            counter.settle(name)
        after = counter.snapshot()
    # A function and its floor make the same RPCs: the round trips count both (each must cost
    # its function's number per unit for the figure to hold).
    return results, {name: between(name, before, after) for name in requests if name in FLOWS}
