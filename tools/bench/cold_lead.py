"""Cold speed to lead: meta_webhook and place_call both launched cold at the same moment, one
lead delivered, timed from the launch to the ElevenLabs fake receiving its call request; beside
the sum of two bare (hello) cold starts of the same run.

The delivery is sent as soon as both functions listen, as Cloud Functions holds a request for
an instance that is starting; it is repeated while meta_webhook answers nothing yet (it is
idempotent). Information, not judged: the issue names no target for it."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tools.bench.cold import ColdStarts
from tools.bench.roundtrips import RpcCounter
from tools.bench.serve import HELLO, META, PLACE_CALL, ServeError, first_200, request_status, served
from tools.bench.speed import calls_by_lead
from tools.fakes.samples import leadgen_delivery, meta_headers
from tools.stack.local import free_port, listening


@dataclass
class ColdLead:
    ms: list[float] = field(default_factory=list)  # launch of both → call request received
    problems: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ms) if self.ms else 0.0


def measure(
    bundles: Mapping[str, Path],
    envs: Mapping[str, Mapping[str, str]],
    *,
    counter: RpcCounter,
    elevenlabs_url: str,
    logs: Path,
    first_id: int,
    runs: int,
    wait: float = 30.0,
    groups: Mapping[str, Path] | None = None,
) -> ColdLead:
    """``runs`` cold launches of both functions, one lead each; with ``groups``, each function
    in its own cgroup (a CPU quota, tools/bench/quota.py)."""
    groups = groups or {}
    result = ColdLead()
    secret = envs[META]["META_APP_SECRET"]
    for run in range(runs):
        leadgen_id = str(first_id + run)
        body = leadgen_delivery(leadgen_id)
        headers = meta_headers(body, secret=secret)
        ports = {PLACE_CALL: free_port(), META: free_port()}
        meta_env = {
            **envs[META],
            "PLACE_CALL_URL": f"http://127.0.0.1:{ports[PLACE_CALL]}/",
            "INTERNAL_TOKEN": envs[PLACE_CALL]["INTERNAL_TOKEN"],
        }
        with contextlib.ExitStack() as running:
            launched = time.time()
            place_call_log = logs / "place_call.cold-lead.log"
            running.enter_context(
                served(
                    PLACE_CALL,
                    bundles[PLACE_CALL],
                    ports[PLACE_CALL],
                    envs[PLACE_CALL],
                    place_call_log,
                    groups.get(PLACE_CALL),
                )
            )
            meta = running.enter_context(
                served(
                    META,
                    bundles[META],
                    ports[META],
                    meta_env,
                    logs / "meta.cold-lead.log",
                    groups.get(META),
                )
            )
            deadline = time.monotonic() + wait
            while not listening(ports[PLACE_CALL]):
                if time.monotonic() > deadline:
                    raise ServeError("place_call did not listen (cold speed to lead)")
                time.sleep(0.005)
            probe = partial(request_status, ports[META], "POST", body=body, headers=headers)
            first_200(meta, probe, what="meta_webhook (cold speed to lead)")
            row = counter.conn.execute(
                "select id::text from public.leads where meta_leadgen_id = %s", (leadgen_id,)
            ).fetchone()
            lead_id = row[0] if row else None
            received: list[float] = []
            while lead_id and time.monotonic() < deadline:
                received = calls_by_lead(elevenlabs_url).get(lead_id, [])
                if received:
                    break
                time.sleep(0.02)
        if not received:
            result.problems.append(f"lead {leadgen_id} got no call request within {wait:.0f} s")
            continue
        result.ms.append(round((min(received) - launched) * 1000, 1))
        print(f"bench: cold speed to lead {run + 1}/{runs}: {result.ms[-1]:.0f} ms", flush=True)
    return result


def lines(
    result: ColdLead,
    cold: Mapping[str, ColdStarts],
    quota: ColdLead | str | None = None,
    vcpu: float = 0.0,
) -> list[str]:
    if not result.ms:
        return ["Cold speed to lead: nothing measured"]
    bare = 2 * cold[HELLO].median
    out = [
        f"Cold speed to lead ({len(result.ms)} launches of meta_webhook and place_call together, "
        "launch -> ElevenLabs call request received): "
        f"median {result.median:.0f} ms (range {min(result.ms):.0f}-{max(result.ms):.0f}); "
        f"two bare cold starts: {bare:.0f} ms ({result.median / bare:.2f}x)",
    ]
    if isinstance(quota, str):
        out.append(f"  under production's CPU: not measured ({quota})")
    elif quota is not None and quota.ms:
        out.append(
            f"  under production's CPU ({vcpu:g} vCPU each, a cgroup quota as at 512Mi): median "
            f"{quota.median:.0f} ms (range {min(quota.ms):.0f}-{max(quota.ms):.0f}), "
            f"{quota.median / result.median:.1f}x the unlimited median"
        )
    return [*out, ""]
