"""CPU metering from Linux ``/proc``: the user+system CPU seconds of named process trees, of this
process's reaped children (wrk), and of the whole machine, between two readings.

A tree's CPU is what its live members used plus what they reaped from children that ended, so a
Postgres backend that exits during a window is still counted (by the postmaster)."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")

CLIENT = "wrk (client)"
MACHINE = "machine total"
OTHER = "other"


def available() -> bool:
    return Path("/proc/stat").exists()


@dataclass(frozen=True)
class ProcStat:
    ppid: int
    name: str
    own: float  # CPU seconds of the process itself (all its threads)
    children: float  # CPU seconds of the children it has reaped


def processes() -> dict[int, ProcStat]:
    """Every live process, from ``/proc/<pid>/stat``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        # After "pid (comm) ": state ppid ... utime(14) stime(15) cutime(16) cstime(17).
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry.name)] = ProcStat(
            ppid=int(fields[1]),
            name=text[text.index("(") + 1 : text.rindex(")")],
            own=(int(fields[11]) + int(fields[12])) / _TICK,
            children=(int(fields[13]) + int(fields[14])) / _TICK,
        )
    return found


def tree(root: int, procs: dict[int, ProcStat]) -> set[int]:
    """``root`` and its live descendants."""
    members: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in members or pid not in procs:
            continue
        members.add(pid)
        todo.extend(child for child, stat in procs.items() if stat.ppid == pid)
    return members


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all CPUs), from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq [steal ...]: busy = the first seven but idle and
    # iowait; steal (time the hypervisor gave to other guests) is not ours.
    idle = values[3] + values[4]
    return (sum(values[:7]) - idle) / _TICK


@dataclass(frozen=True)
class Reading:
    at: float  # time.monotonic()
    seconds: dict[str, float]  # CPU seconds per name, cumulative
    procs: dict[int, ProcStat]
    members: set[int]  # every pid of the named trees, and this process


@dataclass
class Window:
    """CPU milliseconds per request of each name over one metered window, and the busiest
    processes outside the named trees meanwhile (name[pid], CPU seconds)."""

    ms_per_request: dict[str, float]
    elsewhere: list[tuple[str, float]]
    machine_busy: float  # the share of all CPUs busy during the window


class CpuMeter:
    """Reads the CPU of named process trees (``roots``: name → root pid), wrk and the machine."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots

    def read(self) -> Reading:
        at = time.monotonic()
        procs = processes()
        seconds: dict[str, float] = {}
        members = {os.getpid()}
        for name, root in self.roots.items():
            pids = tree(root, procs)
            members |= pids
            seconds[name] = sum(procs[p].own + procs[p].children for p in pids)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds[CLIENT] = usage.ru_utime + usage.ru_stime
        seconds[MACHINE] = machine_busy()
        return Reading(at, seconds, procs, members)

    @staticmethod
    def window(before: Reading, after: Reading, requests: int) -> Window:
        """CPU ms per request between two readings; ``other`` is the machine's CPU that no named
        tree (nor wrk) used: the kernel, and processes outside the benchmark."""
        per = {
            name: (after.seconds[name] - before.seconds[name]) * 1000 / max(requests, 1)
            for name in before.seconds
        }
        named = sum(value for name, value in per.items() if name != MACHINE)
        per[OTHER] = max(per[MACHINE] - named, 0.0)
        used = []
        for pid, stat in after.procs.items():
            if pid in after.members or stat.name == "wrk":
                continue
            previous = before.procs.get(pid)
            delta = stat.own - (previous.own if previous else 0.0)
            if delta > 0:
                used.append((pid, stat.name, round(delta, 2)))
        used.sort(key=lambda item: -item[2])
        elsewhere = [(_describe(pid, name), seconds) for pid, name, seconds in used[:5]]
        busy = (after.seconds[MACHINE] - before.seconds[MACHINE]) / (after.at - before.at)
        return Window(per, elsewhere, busy / (os.cpu_count() or 1))


def _describe(pid: int, name: str) -> str:
    """``name[pid]`` and, while it runs, its first arguments (none that could hold a secret:
    nothing with ``=`` or ``://``)."""
    try:
        argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return f"{name}[{pid}]"
    shown = [Path(arg).name if i == 0 else arg for i, arg in enumerate(argv.split("\0")[:4])]
    shown = [" ".join(arg.split())[:40] for arg in shown if "=" not in arg and "://" not in arg]
    return f"{name}[{pid}] ({' '.join(filter(None, shown))})" if any(shown) else f"{name}[{pid}]"
