"""Cold start: from just before the launch of a fresh server to its first 200.

Each function's first request is real work, never a cheap route (serve.Probes): hello's
``GET /``; for meta_webhook a signed leadgen delivery (so its first 200 includes the imports, the
lazy set-up the first delivery pays, both RPCs and the Graph fetch); for calendly_webhook a
signed ``invitee.created`` (its RPC); for place_call a lead whose call is due (both RPCs and the
ElevenLabs request). Launches alternate between the functions, so a change in the machine's load
hits all; one priming launch of each (page cache, the stack's pools) is not counted."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.bench.serve import Probes, first_200, served
from tools.stack.local import free_port


@dataclass
class ColdStarts:
    ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ms)


def measure(
    bundles: Mapping[str, Path],
    envs: Mapping[str, Mapping[str, str]],
    probes: Probes,
    *,
    runs: int,
    logs: Path,
) -> dict[str, ColdStarts]:
    """``runs`` counted launches of each function in ``bundles`` (name → bundle folder)."""
    results = {name: ColdStarts() for name in bundles}
    for run in range(runs + 1):
        for name, folder in bundles.items():
            port = free_port()
            started = time.perf_counter()
            with served(name, folder, port, envs[name], logs / f"{name}.cold.log") as process:
                first_200(process, probes.first_request(name, port), what=f"{name} (cold start)")
                elapsed_ms = (time.perf_counter() - started) * 1000
            if run == 0:
                continue
            results[name].ms.append(round(elapsed_ms, 1))
            print(f"bench: cold start {run}/{runs} {name}: {elapsed_ms:.0f} ms", flush=True)
    return results
