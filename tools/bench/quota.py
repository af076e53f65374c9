"""A CPU quota like production's for the processes the bench launches: a Cloud Functions 2nd gen
instance of 512Mi gets a third of a vCPU, so each function is given its own Linux cgroup capped
at ``vcpu`` of one CPU (cgroup v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``, or v2
``cpu.max``), and its processes join it as they start.

Creating a cgroup needs the right to write under /sys/fs/cgroup (root, or a delegated
subtree); without it :func:`cpu_groups` yields nothing and says why, and the bench measures
without the quota only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def _make(name: str, vcpu: float) -> Path:
    quota = max(1_000, int(vcpu * PERIOD_US))
    if (ROOT / "cgroup.controllers").exists():  # cgroup v2: one unified hierarchy
        group = ROOT / name
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}\n")
        return group
    group = ROOT / "cpu" / name
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
    (group / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    return group


@contextlib.contextmanager
def cpu_groups(names: Sequence[str], vcpu: float) -> Iterator[dict[str, Path] | str]:
    """One cgroup per name, each capped at ``vcpu``; or, when they cannot be made, the reason.
    Removed afterwards (once their processes are gone)."""
    made: dict[str, Path] = {}
    try:
        try:
            for name in names:
                made[name] = _make(f"stl-bench-{os.getpid()}-{name}", vcpu)
        except OSError as exc:
            yield f"no CPU quota: cannot create a cgroup under {ROOT} ({exc.strerror})"
            return
        yield made
    finally:
        for group in made.values():
            with contextlib.suppress(OSError):
                group.rmdir()


def joiner(group: Path | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that moves the starting process into ``group`` (before it runs anything,
    so every process it forks is in it too); None without a group."""
    if group is None:
        return None

    def join() -> None:
        (group / "cgroup.procs").write_text(f"{os.getpid()}\n")

    return join
