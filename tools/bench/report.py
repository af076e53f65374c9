"""The targets, the verdict on each, and the printed report.

Judged on each function process alone (the gunicorn arbiter and its worker), side by side with
its floor in the same run (tools/bench/floors: the same packages imported, the same requests
made with the same clients, none of our code), for meta_webhook, calendly_webhook and place_call
alike:

- CPU per request: the function's CPU ms per unit of work (a delivery, a placed call) / its
  floor's <= 1.3 (our own code's share);
- cold start, launch to the first 200 of real work: the function / its floor <= 1.25 (medians);
- database round trips per unit: meta_webhook 2 (``meta_ingest``, ``meta_complete``),
  calendly_webhook 1 (``calendly_record``), place_call 2 (``call_claim``, ``call_started``).

And speed to lead, end to end (a Meta delivery leaving the client → the ElevenLabs fake receiving
the call request): p50 <= 12x and p99 <= 30x the median round trip of the bare function in the
same run.

Throughput, latency and the CPU of the stack's processes are printed for information: on one
machine the stand-ins share the CPUs with the functions, so they measure the machine, not the
function."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from tools.bench.cold import ColdStarts
from tools.bench.cpu import CLIENT, MACHINE, OTHER
from tools.bench.roundtrips import FLOWS, RoundTrips
from tools.bench.serve import FLOORS, HELLO
from tools.bench.speed import SpeedToLead, percentile
from tools.bench.steady import Steady

TARGET_FLOOR_CPU = 1.3
TARGET_FLOOR_COLD = 1.25
TARGET_LEAD_P50 = 12.0
TARGET_LEAD_P99 = 30.0


@dataclass
class Verdict:
    target: str
    value: str
    passed: bool
    detail: str
    judged: bool = True  # False: information, printed beside the judged lines

    def line(self) -> str:
        mark = ("PASS" if self.passed else "FAIL") if self.judged else "info"
        return f"{mark}  {self.target}: {self.value}  ({self.detail})"


def _spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def judged_names(steady: dict[str, Steady]) -> list[str]:
    return [name for name in steady if name in FLOORS]


def verdicts(
    steady: dict[str, Steady],
    cold: dict[str, ColdStarts],
    trips: dict[str, RoundTrips],
    speed: SpeedToLead | None,
) -> list[Verdict]:
    hello_ms = steady[HELLO].function_ms_median
    found = []
    for name in judged_names(steady):
        floor = FLOORS[name]
        ms, floor_ms = steady[name].function_ms_median, steady[floor].function_ms_median
        cpu_ratio = ms / floor_ms
        cold_ratio = cold[name].median / cold[floor].median
        found += [
            Verdict(
                f"{name}: CPU per request, {name} / its floor <= {TARGET_FLOOR_CPU:g}x",
                f"{cpu_ratio:.2f}x",
                cpu_ratio <= TARGET_FLOOR_CPU,
                f"{ms:.3f} / {floor_ms:.3f} ms, function process, medians of "
                f"{len(steady[name].cpu)} windows (ranges {_spread(steady[name].function_ms, 3)}"
                f" / {_spread(steady[floor].function_ms, 3)})",
            ),
            Verdict(
                f"{name}: CPU per request, {name} / bare hello",
                f"{ms / hello_ms:.1f}x",
                True,
                f"{ms:.3f} / {hello_ms:.3f} ms",
                judged=False,
            ),
            Verdict(
                f"{name}: cold start, {name} / its floor <= {TARGET_FLOOR_COLD:g}x",
                f"{cold_ratio:.2f}x",
                cold_ratio <= TARGET_FLOOR_COLD,
                f"{cold[name].median:.0f} / {cold[floor].median:.0f} ms, medians of "
                f"{len(cold[name].ms)} interleaved launches (ranges {_spread(cold[name].ms, 0)}"
                f" / {_spread(cold[floor].ms, 0)} ms)",
            ),
            Verdict(
                f"{name}: cold start, {name} / bare hello",
                f"{cold[name].median / cold[HELLO].median:.2f}x",
                True,
                f"{cold[name].median:.0f} / {cold[HELLO].median:.0f} ms",
                judged=False,
            ),
        ]
        if name in trips:
            done, per = trips[name], trips[name].per_unit
            calls = ", ".join(f"{rpc} {count}" for rpc, count in done.rpc_calls.items() if count)
            target = FLOWS[name].per_unit
            found.append(
                Verdict(
                    f"{name}: database round trips per {done.unit} = {target}",
                    "-" if per is None else f"{per:.2f}",
                    per == target,
                    f"{calls or 'no RPCs'} for {done.units} {done.unit_plural}",
                )
            )
    if speed is not None and (figures := speed.summary()):
        hello = figures["hello_p50_ms"]
        for label, key, target in (
            ("p50", "lead_p50_ms", TARGET_LEAD_P50),
            ("p99", "lead_p99_ms", TARGET_LEAD_P99),
        ):
            ratio = figures[key] / hello
            found.append(
                Verdict(
                    f"speed to lead {label} <= {target:g}x the bare round trip",
                    f"{ratio:.1f}x",
                    ratio <= target,
                    f"{figures[key]:.1f} ms / {hello:.2f} ms (hello's median round trip), "
                    f"{len(speed.lead_ms)} leads at {speed.rate:g}/s",
                )
            )
    return found


def problems(
    steady: dict[str, Steady], trips: dict[str, RoundTrips], speed: SpeedToLead | None
) -> list[str]:
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
                found.append(f"{name} {label}: sent a request twice; raise --bodies")
    for name, done in trips.items():
        if done.pending:
            found.append(f"{name}: {done.pending} {done.unit_plural} still in flight after the run")
        if done.bad:
            found.append(f"{name}: {done.bad} {done.unit_plural} of the run ended in an error")
        if done.units == 0:
            found.append(f"{name}: the load completed no {done.unit}")
    if speed is not None:
        found += [f"speed to lead: {problem}" for problem in speed.problems]
    return found


def judged_table(steady: dict[str, Steady], cold: dict[str, ColdStarts]) -> str:
    names = list(steady)
    hello = steady[HELLO]

    def row(label: str, cells: list[str]) -> str:
        return f"{label:<30}" + "".join(f"{cell:>24}" for cell in cells)

    cpu = [steady[name].function_ms_median for name in names]
    rows = [
        row("", [f"{name} (bare)" if name == HELLO else name for name in names]),
        row("function CPU ms per request", [f"{ms:.3f}" for ms in cpu]),
        row("  range over the windows", [_spread(steady[n].function_ms, 3) for n in names]),
        row(
            "  bare / function",
            [
                "" if n == HELLO else f"{hello.function_ms_median / ms:.3f}x"
                for n, ms in zip(names, cpu, strict=True)
            ],
        ),
        row(
            "  function / its floor",
            [
                f"{ms / steady[FLOORS[n]].function_ms_median:.2f}x" if n in FLOORS else ""
                for n, ms in zip(names, cpu, strict=True)
            ],
        ),
        row("cold start ms, to first 200", [f"{cold[n].median:.0f}" for n in names]),
        row("  range over the launches", [_spread(cold[n].ms, 0) for n in names]),
        row(
            "  function / bare",
            ["" if n == HELLO else f"{cold[n].median / cold[HELLO].median:.2f}x" for n in names],
        ),
        row(
            "  function / its floor",
            [
                f"{cold[n].median / cold[FLOORS[n]].median:.2f}x" if n in FLOORS else ""
                for n in names
            ],
        ),
    ]
    return "\n".join(rows)


def trips_lines(trips: dict[str, RoundTrips]) -> list[str]:
    return [
        f"{name}: {done.per_unit or 0:.2f} database round trips per {done.unit} "
        f"({done.units} {done.unit_plural})"
        for name, done in trips.items()
    ]


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
    lines = [f"{'CPU ms per request':<30}" + "".join(f"{name:>18}" for name in steady)]
    for name in [*names, CLIENT, OTHER, MACHINE]:
        cells = [per.get(name) for per in medians.values()]
        lines.append(
            f"{name:<30}" + "".join(f"{c:>18.3f}" if c is not None else f"{'-':>18}" for c in cells)
        )
    return "\n".join(lines)


def speed_lines(speed: SpeedToLead | None) -> list[str]:
    if speed is None:
        return []
    figures = speed.summary()
    if not figures:
        return ["Speed to lead: nothing measured"]
    return [
        f"Speed to lead ({len(speed.lead_ms)} of {speed.sent} leads at {speed.rate:g}/s, "
        "Meta delivery sent -> ElevenLabs call request received)",
        "",
        f"{'':<30}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}",
        f"{'lead to call request':<30}{figures['lead_p50_ms']:>10.1f}"
        f"{figures['lead_p99_ms']:>10.1f}{figures['lead_max_ms']:>10.1f}",
        f"{'  (Meta delivery answered)':<30}{figures['answer_p50_ms']:>10.1f}",
        f"{'hello round trip (bare)':<30}{figures['hello_p50_ms']:>10.2f}"
        f"{figures['hello_p99_ms']:>10.2f}",
        "",
        "  where a lead's time goes (each stage ends when the next hop received its request):",
        *(
            f"  {stage:<28}{percentile(ms, 50):>10.1f}{percentile(ms, 99):>10.1f}"
            for stage, ms in speed.stages.items()
        ),
        "",
    ]


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
    trips: dict[str, RoundTrips],
    speed: SpeedToLead | None,
    judged: list[Verdict],
    invalid: list[str],
    *,
    nproc: int,
) -> str:
    """The report: the judged figures, the end-to-end information, the verdicts."""
    return "\n".join(
        [
            "",
            "Judged: each function process alone (gunicorn arbiter + worker)",
            "",
            judged_table(steady, cold),
            "",
            *trips_lines(trips),
            "",
            *speed_lines(speed),
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
    trips: dict[str, RoundTrips],
    speed: SpeedToLead | None,
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
        "round_trips": {
            name: {**asdict(done), "per_unit": done.per_unit} for name, done in trips.items()
        },
        "speed_to_lead": None
        if speed is None
        else {
            **speed.summary(),
            "rate": speed.rate,
            "sent": speed.sent,
            "leads_ms": speed.lead_ms,
            "stages_ms": speed.stages,
        },
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
