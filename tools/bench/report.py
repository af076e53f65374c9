"""The targets, the verdict on each, and the printed report.

Judged, on the function process alone (the gunicorn arbiter and its worker), side by side with
the bare function in the same run:

- CPU per request: bare hello's CPU ms per request / meta_webhook's per delivery >= 0.18;
- cold start, launch to the first 200: meta_webhook / hello <= 2.0 (medians);
- database round trips per delivery: exactly 2 (``meta_ingest``, ``meta_complete``).

Throughput, latency and the CPU of the stack's processes are printed for information: on one
machine the stand-ins share the CPUs with the function, so they measure the machine, not the
function."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from tools.bench.cold import ColdStarts
from tools.bench.cpu import CLIENT, MACHINE, OTHER
from tools.bench.roundtrips import RoundTrips
from tools.bench.serve import HELLO, META
from tools.bench.steady import Steady

TARGET_CPU_RATIO = 0.18
TARGET_COLD_RATIO = 2.0
TARGET_ROUND_TRIPS = 2


@dataclass
class Verdict:
    target: str
    value: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.target}: {self.value}  ({self.detail})"


def _spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def verdicts(
    steady: dict[str, Steady], cold: dict[str, ColdStarts], trips: RoundTrips
) -> list[Verdict]:
    hello_ms, meta_ms = steady[HELLO].function_ms_median, steady[META].function_ms_median
    cpu_ratio = hello_ms / meta_ms
    cold_ratio = cold[META].median / cold[HELLO].median
    per = trips.per_delivery
    calls = ", ".join(f"{name} {count}" for name, count in trips.rpc_calls.items() if count)
    return [
        Verdict(
            f"CPU per request, bare / meta_webhook >= {TARGET_CPU_RATIO:.2f}x",
            f"{cpu_ratio:.3f}x",
            cpu_ratio >= TARGET_CPU_RATIO,
            f"{hello_ms:.3f} / {meta_ms:.3f} ms, function process, medians of "
            f"{len(steady[META].cpu)} windows",
        ),
        Verdict(
            f"cold start, meta_webhook / bare <= {TARGET_COLD_RATIO:.1f}x",
            f"{cold_ratio:.2f}x",
            cold_ratio <= TARGET_COLD_RATIO,
            f"{cold[META].median:.0f} / {cold[HELLO].median:.0f} ms, medians of "
            f"{len(cold[META].ms)} launches",
        ),
        Verdict(
            f"database round trips per delivery = {TARGET_ROUND_TRIPS}",
            "-" if per is None else f"{per:.2f}",
            per == TARGET_ROUND_TRIPS,
            f"{calls or 'no RPCs'} for {trips.deliveries} deliveries",
        ),
    ]


def problems(steady: dict[str, Steady], trips: RoundTrips) -> list[str]:
    """What makes the measurement itself invalid."""
    found = []
    for name, result in steady.items():
        for label, load in [("warm-up", result.warmup), *(("window", w) for w in result.loads)]:
            if load is None:
                continue
            if load.non_2xx or load.socket_errors:
                found.append(
                    f"{name} {label}: {load.non_2xx} answers not 2xx, "
                    f"{load.socket_errors} socket errors or timeouts"
                )
            if load.wrapped:
                found.append(f"{name} {label}: sent a delivery twice; raise --bodies")
    if trips.still_pending:
        found.append(
            f"meta_webhook: {trips.still_pending} leads still fetch_pending "
            "(a Graph fetch or meta_complete failed)"
        )
    if trips.deliveries == 0:
        found.append("meta_webhook: the load created no leads")
    return found


def judged_table(steady: dict[str, Steady], cold: dict[str, ColdStarts]) -> str:
    hello, meta = steady[HELLO], steady[META]
    rows = [
        ("", "hello (bare)", "meta_webhook", "ratio"),
        (
            "function CPU ms per request",
            f"{hello.function_ms_median:.3f}",
            f"{meta.function_ms_median:.3f}",
            f"{hello.function_ms_median / meta.function_ms_median:.3f}x",
        ),
        (
            "  range over the windows",
            _spread(hello.function_ms, 3),
            _spread(meta.function_ms, 3),
            "",
        ),
        (
            "cold start ms, to first 200",
            f"{cold[HELLO].median:.0f}",
            f"{cold[META].median:.0f}",
            f"{cold[META].median / cold[HELLO].median:.2f}x",
        ),
        ("  range over the launches", _spread(cold[HELLO].ms, 0), _spread(cold[META].ms, 0), ""),
    ]
    return "\n".join(f"{a:<30}{b:>14}{c:>14}{d:>10}" for a, b, c, d in rows)


def end_to_end_table(steady: dict[str, Steady]) -> str:
    lines = [f"{'':<30}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}"]
    for name, result in steady.items():
        p50, p99 = result.latency_ms()
        lines.append(f"{name:<30}{result.rps:>10.0f}{p50:>10.2f}{p99:>10.2f}")
    return "\n".join(lines)


def cpu_table(steady: dict[str, Steady]) -> str:
    """CPU ms per request by process (medians over the windows)."""
    medians = {name: result.cpu_ms_median() for name, result in steady.items()}
    names: list[str] = []
    for per in medians.values():
        names += [n for n in per if n not in names and n not in (CLIENT, OTHER, MACHINE)]
    lines = [f"{'CPU ms per request':<30}" + "".join(f"{name:>14}" for name in steady)]
    for name in [*names, CLIENT, OTHER, MACHINE]:
        cells = [per.get(name) for per in medians.values()]
        lines.append(
            f"{name:<30}" + "".join(f"{c:>14.3f}" if c is not None else f"{'-':>14}" for c in cells)
        )
    return "\n".join(lines)


def notes(steady: dict[str, Steady], nproc: int) -> list[str]:
    """How busy the machine was, and whether something outside the benchmark disturbed it."""
    lines = []
    for name, result in steady.items():
        per = result.cpu_ms_median()
        total = per[MACHINE]
        busy = statistics.median(window.machine_busy for window in result.cpu)
        lines.append(
            f"{name}: the machine's {nproc} CPUs were {busy:.0%} busy, "
            f"{total:.2f} CPU ms per request in all"
        )
        if per[OTHER] > 0.1 * total:
            busiest: dict[str, float] = {}
            for window in result.cpu:
                for process, seconds in window.elsewhere:
                    busiest[process] = busiest.get(process, 0.0) + seconds
            top = sorted(busiest.items(), key=lambda item: -item[1])[:3]
            lines.append(
                f"WARNING {name}: {per[OTHER] / total:.0%} of the machine's CPU went to the "
                f"kernel or to processes outside the benchmark ("
                + (", ".join(f"{p} {s:.1f} s" for p, s in top) or "none listed")
                + "); the figures of this run are disturbed"
            )
    return lines


def render(
    steady: dict[str, Steady],
    cold: dict[str, ColdStarts],
    trips: RoundTrips,
    judged: list[Verdict],
    invalid: list[str],
    *,
    nproc: int,
) -> str:
    """The report: the judged figures, the end-to-end information, the verdicts."""
    return "\n".join(
        [
            "",
            "Judged: the function process alone (gunicorn arbiter + worker)",
            "",
            judged_table(steady, cold),
            f"database round trips per delivery: {trips.per_delivery or 0:.2f} "
            f"({trips.deliveries} deliveries, {trips.completed} completed from the Graph fake)",
            "",
            "End to end on this machine (information, not judged: the stack shares its CPUs)",
            "",
            end_to_end_table(steady),
            "",
            cpu_table(steady),
            "",
            *notes(steady, nproc),
            "",
            *(verdict.line() for verdict in judged),
            *(f"INVALID  {problem}" for problem in invalid),
        ]
    )


def as_json(
    steady: dict[str, Steady],
    cold: dict[str, ColdStarts],
    trips: RoundTrips,
    judged: list[Verdict],
    invalid: list[str],
    **context: Any,
) -> dict[str, Any]:
    return {
        **context,
        "verdicts": [asdict(v) for v in judged],
        "invalid": invalid,
        "function_cpu_ms_per_request": {
            name: {"median": r.function_ms_median, "windows": r.function_ms}
            for name, r in steady.items()
        },
        "cold_start_ms": {name: {"median": c.median, "launches": c.ms} for name, c in cold.items()},
        "round_trips": {**asdict(trips), "per_delivery": trips.per_delivery},
        "end_to_end": {
            name: {
                "rps": round(r.rps, 1),
                "p50_ms": r.latency_ms()[0],
                "p99_ms": r.latency_ms()[1],
                "cpu_ms_per_request": r.cpu_ms_median(),
                "windows": [asdict(load) for load in r.loads],
            }
            for name, r in steady.items()
        },
    }
