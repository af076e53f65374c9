"""The soak harness (tools/soak): its checks fail on a fabricated loss, its load redelivers until a
2xx, and a short run with every fault (Graph 503s, SIGKILL, Postgres restart) passes end to end
on its own stack. `make soak` itself (10,000 deliveries) is not part of `make test`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import tools
from tools import ROOT
from tools.soak.checks import (
    Facts,
    Lead,
    check_faults,
    check_fetched_once,
    check_none_pending,
    check_redelivered,
    check_stored,
    check_whole_rows,
    run_checks,
)
from tools.soak.faults import Outage
from tools.soak.load import Attempt, Load, Outcome, Redelivery
from tools.soak.plan import ADJACENT, LATER, Delivery, plan_deliveries, unique_ids
from tools.soak.report import percentile, repeats_in_flight_together, stored_despite_non_2xx

IDS = ["1001", "1002", "1003"]


def clean_facts(ids: list[str] = IDS) -> Facts:
    """The facts of a run that lost nothing: each id stored, received and fetched once."""
    facts = Facts(list(ids))
    for leadgen_id in ids:
        facts.leads[leadgen_id] = Lead("fetched", True, True, None)
        facts.lead_rows[leadgen_id] = 1
        facts.events[leadgen_id] = 1
        facts.received_ok[leadgen_id] = 1
        facts.fetched_ok[leadgen_id] = 1
    return facts


def delivered(leadgen_id: str, *statuses: int | None, start: float = 0.0) -> Outcome:
    """An outcome whose attempts answered ``statuses`` (None: a connection error), 1 s each."""
    outcome = Outcome(Delivery(leadgen_id, b"{}", {}))
    for n, status in enumerate(statuses):
        error = None if status is not None else "ConnectError"
        outcome.attempts.append(Attempt(start + n, 1.0, status, error))
    return outcome


OUTAGES = [Outage("kill", 1.0, 1.0), Outage("postgres", 5.0, 3.0)]


def test_checks_clean_run_all_pass() -> None:
    outcomes = [delivered(i, 200) for i in IDS]
    checks = run_checks(clean_facts(), outcomes, OUTAGES, [], faults=2)
    assert [c.name for c in checks if not c.passed] == []


def test_check_stored_lost_lead_fails() -> None:
    facts = clean_facts()
    del facts.leads["1002"], facts.lead_rows["1002"]
    check = check_stored(facts)
    assert not check.passed and "1 lost (1002)" in check.detail


def test_check_fetched_once_double_fetch_fails() -> None:
    facts = clean_facts()
    facts.fetched_ok["1003"] = 2
    check = check_fetched_once(facts)
    assert not check.passed and "fetched more than once (1003)" in check.detail


def test_check_fetched_once_never_fetched_or_received_twice_fails() -> None:
    facts = clean_facts()
    facts.fetched_ok["1001"] = 0
    facts.received_ok["1002"] = 2
    check = check_fetched_once(facts)
    assert not check.passed
    assert "never fetched (1001)" in check.detail and "lead.received" in check.detail


def test_check_none_pending_pending_lead_fails() -> None:
    facts = clean_facts()
    facts.leads["1001"] = Lead("fetch_pending", False, False, "graph_unavailable")
    check = check_none_pending(facts)
    assert not check.passed and "graph_unavailable" in check.detail and "1001" in check.detail


def test_check_whole_rows_event_without_lead_fails() -> None:
    facts = clean_facts()
    del facts.leads["1003"]
    assert "webhook_events without a lead (1003)" in check_whole_rows(facts).detail


def test_check_whole_rows_lead_without_event_or_answers_fails() -> None:
    facts = clean_facts()
    facts.events["1001"] = 0
    facts.leads["1002"] = Lead("call_queued", False, True, None)
    check = check_whole_rows(facts)
    assert not check.passed
    assert "leads without webhook_events (1001)" in check.detail
    assert "without answers or fetched_at (1002)" in check.detail


def test_check_redelivered_delivery_never_2xx_fails() -> None:
    outcomes = [delivered("1001", 503, 200), delivered("1002", 503, None, 500)]
    check = check_redelivered(outcomes)
    assert not check.passed and "1 deliveries never answered 2xx" in check.detail
    assert "'500': 1" in check.detail and "1002" in check.detail


def test_check_faults_missed_fault_fails() -> None:
    assert not check_faults(OUTAGES[:1], ["postgres: the load ended"], expected=2).passed
    assert check_faults(OUTAGES, [], expected=2).passed


def test_plan_deliveries_share_of_repeats_some_adjacent() -> None:
    deliveries = plan_deliveries(100, repeat_share=0.2, secret="s", seed=1)
    ids = unique_ids(deliveries)
    repeats = [d for d in deliveries if d.repeat is not None]
    assert len(deliveries) == 100 and len(ids) == 80 and len(set(ids)) == 80
    assert Counter(d.repeat for d in repeats) == {ADJACENT: 10, LATER: 10}
    for index, delivery in enumerate(deliveries):
        if delivery.repeat is not None:
            first = next(i for i, d in enumerate(deliveries) if d.leadgen_id == delivery.leadgen_id)
            assert first < index and deliveries[first].body == delivery.body
        if delivery.repeat == ADJACENT:
            assert deliveries[index - 1].leadgen_id == delivery.leadgen_id


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile([], 0.5) == 0.0 and percentile([7.0], 0.99) == 7.0


def test_repeats_in_flight_together_counts_overlaps_only() -> None:
    outcomes = [
        delivered("1001", 200, start=0.0),
        delivered("1001", 200, start=0.5),  # overlaps the first
        delivered("1002", 200, start=0.0),
        delivered("1002", 200, start=5.0),  # after the first ended
    ]
    assert repeats_in_flight_together(outcomes) == 1


def test_stored_despite_non_2xx_counts_ids_sent_once_answered_duplicate() -> None:
    cut_off = delivered("1001", None, 200)
    cut_off.answer = {"new": 0, "duplicates": 1}
    fresh = delivered("1002", 503, 200)
    fresh.answer = {"new": 1, "duplicates": 0}
    assert stored_despite_non_2xx([cut_off, fresh]) == {"ConnectError": 1}


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, Counter[bytes]]]:
    """A local server answering 503 to the first two attempts of each body, then 200, and
    always 503 to a body saying "never"."""
    seen: Counter[bytes] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                seen[body] += 1
                ok = seen[body] > 2 and body != b"never"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_load_non_2xx_redelivered_until_2xx_or_limit(
    flaky_server: tuple[str, Counter[bytes]],
) -> None:
    url, seen = flaky_server
    bodies = [b"a", b"b", b"c", b"never"]
    load = Load(
        url,
        [Delivery(body.decode(), body, {}) for body in bodies],
        concurrency=4,
        deadline=time.monotonic() + 30,
        redelivery=Redelivery(max_attempts=5, first_wait=0.01, max_wait=0.02),
    )
    outcomes = load.run()
    assert [o.delivered for o in outcomes] == [True, True, True, False]
    assert [len(o.attempts) for o in outcomes] == [3, 3, 3, 5]
    assert seen[b"never"] == 5
    assert not check_redelivered(outcomes).passed


def test_soak_short_run_with_every_fault_loses_nothing(tmp_path: Path) -> None:
    """The short form: 300 deliveries (60 repeats), Graph 503s, the function SIGKILLed and
    restarted, Postgres stopped for 1 s, a sweep every 2 s; every check passes and the faults
    really bit.

    The stack lives in the soak's own temporary directory, not under pytest's: a pytest session
    started meanwhile resets /tmp/pytest-of-<user> to 0700, and the restarted Postgres (run as
    the postgres user) could no longer reach its data directory."""
    results = tmp_path / "soak.json"
    command = [sys.executable, "-m", "tools.soak", "--deliveries", "300", "--concurrency", "8"]
    command += ["--pg-down", "1", "--sweep-every", "2", "--json", str(results)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": tools.PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(results.read_text())
    assert all(check["passed"] for check in figures["checks"])
    load = figures["load"]
    assert (load["deliveries"], load["unique_ids"], load["repeats"]) == (300, 240, 60)
    assert figures["database"]["leads"] == 240
    assert [o["what"].split()[0] for o in figures["outages"]] == ["meta_webhook", "Postgres"]
    assert all(0 < o["at"] < load["load_seconds"] for o in figures["outages"])
    assert load["redeliveries"] > 0 and "503" in load["non_2xx_by_status"]
    assert figures["database"]["fetch_failed_rows_by_code"].get("graph_unavailable", 0) > 0
    assert figures["sweeps_during_load"]["sweeps"] > 0
