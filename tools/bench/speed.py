"""Speed to lead: from a Meta delivery leaving the client to the ElevenLabs fake receiving the
call request, over many leads arriving at a steady rate, beside the round trip of the bare hello
function in the same run.

meta_webhook, place_call and hello are served from their bundles as in the rest of the
benchmark; meta_webhook gets ``PLACE_CALL_URL`` (place_call's address) and ``INTERNAL_TOKEN``, so
each lead with a phone is queued in ``meta_complete`` and its call requested at once, the path a
lead takes in production: client → meta_webhook → database API (``meta_ingest``) → Graph API →
database API (``meta_complete``) → place_call → database API (``call_claim``) → ElevenLabs.

The schedule is open-loop: lead ``i`` leaves at ``t0 + i / rate`` whatever the answers before
it, each on its own connection (opened beforehand) from a pool of sender threads; a hello
``GET /`` leaves half-way between two leads, the same way. A lead's time is the fake's receipt
time of its call request (``/_fake/calls``, ``at``, after the whole body was read) minus the
moment its delivery's first byte was written, both wall-clock times of this machine.

Each delivery carries its own W3C trace id, which meta_webhook forwards to the database API and
to place_call: the receipt times in the stand-in's RPC log (by trace) and the Graph fake's (by
leadgen id) split each lead's time into the stages of its path.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tools.bench.roundtrips import RpcCounter
from tools.bench.serve import HELLO, META, PLACE_CALL, Probes, serve_ready
from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import leadgen_delivery, meta_headers

SENDERS = 64  # sender threads: enough that a slow answer never delays the schedule
WARM_LEADS = 5  # leads sent one by one before the measured ones (connections, caches)
# A lead's path, as the fakes see it: (stage, the receipt that ends it).
STAGES = (
    ("delivery -> meta_ingest", "meta_ingest"),
    ("meta_ingest -> Graph fetch", "graph"),
    ("Graph fetch -> meta_complete", "meta_complete"),
    ("meta_complete -> call_claim", "call_claim"),
    ("call_claim -> ElevenLabs", "elevenlabs"),
)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (the value at rank ceil(q/100 * n))."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


@dataclass
class SpeedToLead:
    rate: float  # leads per second, as scheduled
    sent: int  # deliveries sent (measured ones)
    lead_ms: list[float] = field(default_factory=list)  # delivery sent → call request received
    answer_ms: list[float] = field(default_factory=list)  # delivery sent → its answer (200)
    hello_ms: list[float] = field(default_factory=list)  # hello round trips
    late_ms: float = 0.0  # the latest a send left after its scheduled moment
    stages: dict[str, list[float]] = field(default_factory=dict)  # stage -> ms, lead by lead
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.lead_ms or not self.hello_ms:
            return {}
        return {
            "lead_p50_ms": percentile(self.lead_ms, 50),
            "lead_p99_ms": percentile(self.lead_ms, 99),
            "lead_max_ms": max(self.lead_ms),
            "answer_p50_ms": percentile(self.answer_ms, 50) if self.answer_ms else 0.0,
            "hello_p50_ms": percentile(self.hello_ms, 50),
            "hello_p99_ms": percentile(self.hello_ms, 99),
        }


def _send(
    port: int, method: str, body: bytes | None, headers: Mapping[str, str]
) -> tuple[float, float, int]:
    """One request on a new connection (connected first): wall-clock time its first byte
    left, its round trip in ms, the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.connect()
        wall, started = time.time(), time.perf_counter()
        conn.request(method, "/", body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read()
        return wall, (time.perf_counter() - started) * 1000, response.status
    finally:
        conn.close()


def calls_by_lead(elevenlabs_url: str) -> dict[str, list[float]]:
    """Lead id → the receipt times of the call requests the fake got for it."""
    calls = httpx.get(f"{elevenlabs_url}/_fake/calls", timeout=30).json()
    found: dict[str, list[float]] = {}
    for call in calls:
        variables = (call.get("body") or {}).get("conversation_initiation_client_data", {})
        lead_id = (variables.get("dynamic_variables") or {}).get("lead_id")
        if lead_id:
            found.setdefault(str(lead_id), []).append(float(call["at"]))
    return found


def _path(database: FakeClient, graph: FakeClient, leadgen_id: str, trace: str) -> dict[str, float]:
    """When each hop of a lead's path was received: its RPCs at the database API (by trace id),
    its fetch at the Graph fake (by leadgen id)."""
    moments: dict[str, float] = {}
    for request in database.requests(trace=trace):
        moments.setdefault(str(request["key"]), float(request["at"]))
    fetched = graph.requests(leadgen_id)
    if fetched:
        moments["graph"] = float(fetched[0]["at"])
    return moments


def measure(
    bundles: Mapping[str, Path],
    envs: Mapping[str, Mapping[str, str]],
    probes: Probes,
    *,
    counter: RpcCounter,
    elevenlabs_url: str,
    database_url: str,
    graph_url: str,
    work: Path,
    first_id: int,
    leads: int,
    rate: float,
    wait: float = 30.0,
) -> SpeedToLead:
    """Send ``leads`` deliveries at ``rate`` a second; time each to its call request."""
    result = SpeedToLead(rate=rate, sent=leads)
    secret = envs[META]["META_APP_SECRET"]
    ids = [str(first_id + i) for i in range(WARM_LEADS + leads)]
    traces = {leadgen_id: uuid.uuid4().hex for leadgen_id in ids}
    signed = []
    for leadgen_id in ids:
        body = leadgen_delivery(leadgen_id)
        headers = meta_headers(body, secret=secret)
        headers["traceparent"] = f"00-{traces[leadgen_id]}-{uuid.uuid4().hex[:16]}-01"
        signed.append((body, headers))
    with contextlib.ExitStack() as running:
        ports = {}
        for name in (PLACE_CALL, META, HELLO):
            env = dict(envs[name])
            if name == META:
                env["PLACE_CALL_URL"] = f"http://127.0.0.1:{ports[PLACE_CALL]}/"
                env["INTERNAL_TOKEN"] = envs[PLACE_CALL]["INTERNAL_TOKEN"]
            log = work / "logs" / f"{name}.speed.log"
            _, ports[name] = serve_ready(running, name, bundles[name], env, log, probes)

        for body, headers in signed[:WARM_LEADS]:
            _send(ports[META], "POST", body, headers)
            _send(ports[HELLO], "GET", None, {})

        deliveries: list[Future[tuple[float, float, int]]] = []
        hellos: list[Future[tuple[float, float, int]]] = []
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:

            def at(moment: float, job: Callable[[], tuple[float, float, int]]) -> Any:
                delay = moment - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                result.late_ms = max(result.late_ms, -delay * 1000)
                return pool.submit(job)

            t0 = time.perf_counter() + 0.05
            for i, (body, headers) in enumerate(signed[WARM_LEADS:]):
                deliveries.append(
                    at(t0 + i / rate, lambda b=body, h=headers: _send(ports[META], "POST", b, h))
                )
                hellos.append(
                    at(t0 + (i + 0.5) / rate, lambda: _send(ports[HELLO], "GET", None, {}))
                )
            sent = [future.result() for future in deliveries]
            result.hello_ms = [future.result()[1] for future in hellos]

        measured = ids[WARM_LEADS:]
        refused = [status for _, _, status in sent if status != 200]
        if refused:
            result.problems.append(f"{len(refused)} deliveries not answered 200: {refused[:5]}")
        result.answer_ms = [ms for _, ms, _ in sent]
        rows = counter.conn.execute(
            "select meta_leadgen_id, id::text from public.leads where meta_leadgen_id = any(%s)",
            (measured,),
        ).fetchall()
        lead_of = {str(leadgen_id): lead_id for leadgen_id, lead_id in rows}
        deadline = time.monotonic() + wait
        while True:
            calls = calls_by_lead(elevenlabs_url)
            missing = [i for i in measured if lead_of.get(i) not in calls]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    if missing:
        result.problems.append(
            f"{len(missing)} of {leads} leads got no call request within {wait:.0f} s "
            f"(first: leadgen id {missing[0]})"
        )
    database, graph = FakeClient(database_url), FakeClient(graph_url)
    twice = [i for i in measured if len(calls.get(lead_of.get(i, ""), [])) > 1]
    if twice:
        result.problems.append(f"{len(twice)} leads were called more than once")
    for (wall, _, _), leadgen_id in zip(sent, measured, strict=True):
        received = calls.get(lead_of.get(leadgen_id, ""))
        if received:
            result.lead_ms.append((min(received) - wall) * 1000)
            moments = _path(database, graph, leadgen_id, traces[leadgen_id])
            moments["elevenlabs"] = min(received)
            previous = wall
            for stage, receipt in STAGES:
                if receipt not in moments:
                    break
                result.stages.setdefault(stage, []).append((moments[receipt] - previous) * 1000)
                previous = moments[receipt]
    if result.late_ms > 1000 / rate:
        result.problems.append(
            f"the sender fell behind its schedule by {result.late_ms:.0f} ms: the rate is not "
            "steady; lower --speed-rate"
        )
    print(
        f"bench: speed to lead over {len(result.lead_ms)} leads at {rate:g}/s: "
        + (
            ", ".join(f"{k} {v:.1f}" for k, v in result.summary().items())
            if result.summary()
            else "nothing measured"
        ),
        flush=True,
    )
    return result
