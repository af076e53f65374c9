"""The faults of a soak run: Graph fetches answered 503, the function killed with SIGKILL and
started again, Postgres stopped and started again. The last two fire once each, when a given
share of the deliveries has started, one after the other, from a thread beside the load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.fakes.fake_api import FakeClient
from tools.soak.load import Progress
from tools.soak.server import FunctionServer
from tools.stack.local import Postgres

# Graph's error for a service outage (docs/PROVIDERS.md, section 1.7: code 2, "API
# Service", retry): meta_webhook classes it transient and retries it after its backoff.
GRAPH_UNAVAILABLE: dict[str, Any] = {
    "error": {
        "message": "Service temporarily unavailable",
        "type": "OAuthException",
        "code": 2,
        "fbtrace_id": "soak",
    }
}


def graph_faults(graph: FakeClient, every: int) -> None:
    """From now on the Graph fake answers every ``every``-th fetch 503 (0: never again)."""
    if every > 0:
        graph.faults(every=every, status=503, body=GRAPH_UNAVAILABLE)
    else:
        graph.faults(every=0)


@dataclass
class Outage:
    """One injected outage: from ``at`` for ``seconds`` (seconds into the load)."""

    what: str
    at: float
    seconds: float
    detail: dict[str, float] = field(default_factory=dict)


def kill_function(server: FunctionServer, clock: Callable[[], float]) -> Outage:
    """SIGKILL the function, start it again at once; down until it answers again."""
    at = clock()
    server.kill()
    killed = clock()
    ready_after = server.start()
    return Outage(
        "meta_webhook killed (SIGKILL) and restarted",
        at,
        clock() - at,
        {"kill_seconds": killed - at, "restart_to_ready_seconds": ready_after},
    )


def restart_postgres(postgres: Postgres, down: float, clock: Callable[[], float]) -> Outage:
    """``pg_ctl stop -m fast`` (connections ended), ``down`` seconds, ``pg_ctl start -w``."""
    at = clock()
    postgres.stop()
    stopped = clock()
    time.sleep(down)
    starting = clock()
    postgres.start()
    return Outage(
        "Postgres stopped and started again",
        at,
        clock() - at,
        {
            "stop_seconds": stopped - at,
            "held_down_seconds": down,
            "start_seconds": clock() - starting,
        },
    )


@dataclass
class Fault:
    """``action`` fires once ``share`` of the deliveries have started."""

    share: float
    name: str
    action: Callable[[], Outage]


class FaultSchedule(threading.Thread):
    """Fires each fault in turn during the load; what happened is in ``outages`` (and what did
    not, because the load ended first or the fault failed, in ``missed``)."""

    def __init__(
        self,
        faults: list[Fault],
        progress: Progress,
        *,
        on_outage: Callable[[Outage], None] | None = None,
    ) -> None:
        super().__init__(name="soak-faults", daemon=True)
        self.faults = sorted(faults, key=lambda fault: fault.share)
        self.progress = progress
        self.on_outage = on_outage
        self.outages: list[Outage] = []
        self.missed: list[str] = []

    def run(self) -> None:
        for fault in self.faults:
            if not self.progress.wait_for(fault.share):
                self.missed.append(f"{fault.name}: the load ended before it was due")
                continue
            try:
                outage = fault.action()
            except Exception as exc:  # noqa: BLE001 - reported as a failed check by the run
                self.missed.append(f"{fault.name}: {type(exc).__name__}: {exc}")
                continue
            self.outages.append(outage)
            if self.on_outage is not None:
                self.on_outage(outage)
