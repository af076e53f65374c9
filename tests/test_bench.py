"""The parts of `make bench` that decide a verdict or prepare its load, checked without running
the benchmark (docs/PERFORMANCE.md): what it feeds the functions must be what they accept, and
its arithmetic must judge the targets as written."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from lib.signatures import CALENDLY_HEADER, verify_calendly
from place_call.settings import PlaceCallSettings
from tools.bench.cold import ColdStarts
from tools.bench.cpu import Window
from tools.bench.load import calendly_deliveries, place_call_requests, write_requests
from tools.bench.report import verdicts
from tools.bench.roundtrips import RpcCounter
from tools.bench.serve import FLOORS, HELLO, META
from tools.bench.speed import SpeedToLead, percentile
from tools.bench.steady import FUNCTION, Steady
from tools.stack import local as local_stack


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([7.0], 99) == 7.0


def steady_with(ms: float) -> Steady:
    return Steady(cpu=[Window({FUNCTION: ms}, [], 0.5)])


@pytest.mark.parametrize(("p50", "passed"), [(23.9, True), (24.1, False)])
def test_speed_to_lead_p50_judged_against_12_times_the_bare_round_trip(
    p50: float, passed: bool
) -> None:
    speed = SpeedToLead(rate=10, sent=3, lead_ms=[p50, p50, 30.0], hello_ms=[2.0, 2.0, 9.0])
    found = verdicts(
        {HELLO: steady_with(1.0), META: steady_with(5.0), FLOORS[META]: steady_with(4.0)},
        {
            HELLO: ColdStarts([400.0]),
            META: ColdStarts([700.0]),
            FLOORS[META]: ColdStarts([600.0]),
        },
        {},
        speed,
    )
    by_target = {v.target.split(" <=")[0]: v for v in found}
    assert by_target["speed to lead p50"].passed is passed
    assert by_target["speed to lead p99"].passed  # 30 ms <= 30 x 2 ms


@pytest.mark.parametrize(
    ("function_ms", "function_cold", "cpu_passed", "cold_passed"),
    [(5.1, 740.0, True, True), (5.3, 760.0, False, False)],
)
def test_each_function_judged_against_its_floor(
    function_ms: float, function_cold: float, cpu_passed: bool, cold_passed: bool
) -> None:
    # CPU <= 1.3x its floor's (4 ms), cold start <= 1.25x its floor's (600 ms); the ratios to
    # the bare hello are information only, whatever they are.
    found = verdicts(
        {HELLO: steady_with(0.5), META: steady_with(function_ms), FLOORS[META]: steady_with(4.0)},
        {
            HELLO: ColdStarts([200.0]),
            META: ColdStarts([function_cold]),
            FLOORS[META]: ColdStarts([600.0]),
        },
        {},
        None,
    )
    by_target = {v.target.split(" <=")[0]: v for v in found}
    assert by_target[f"{META}: CPU per request, {META} / its floor"].passed is cpu_passed
    assert by_target[f"{META}: cold start, {META} / its floor"].passed is cold_passed
    info = [v for v in found if not v.judged]
    assert {v.target for v in info} == {
        f"{META}: CPU per request, {META} / bare hello",
        f"{META}: cold start, {META} / bare hello",
    }
    assert FLOORS[META] not in {v.target.split(":")[0] for v in found}


def test_prepared_requests_fit_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one line"):
        write_requests(tmp_path / "r.txt", "X-Test", [("value", b'{"a":\n1}')])


def test_calendly_deliveries_are_signed_and_each_a_new_invitee(tmp_path: Path) -> None:
    prepared = calendly_deliveries(tmp_path / "c.txt", first=0, count=20, secret="bench-key")
    assert (prepared.count, prepared.header) == (20, CALENDLY_HEADER)
    emails = set()
    for line in prepared.path.read_bytes().splitlines():
        signature, body = line.split(b"\t", 1)
        headers = {CALENDLY_HEADER: signature.decode()}
        verify_calendly(body, headers, secrets=["bench-key"], now=time.time())
        emails.add(json.loads(body)["payload"]["email"])
    assert len(emails) == 20


def test_place_call_leads_are_due_for_their_call(stack: local_stack.Stack, tmp_path: Path) -> None:
    counter = RpcCounter(stack.env["DATABASE_URL"])
    try:
        lead_ids = counter.queue_calls(3, label="test")
    finally:
        counter.close()
    prepared = place_call_requests(tmp_path / "p.txt", lead_ids=lead_ids, token="t0k")
    lines = prepared.path.read_bytes().splitlines()
    assert [json.loads(line.split(b"\t", 1)[1])["lead_id"] for line in lines] == lead_ids
    assert {line.split(b"\t", 1)[0] for line in lines} == {b"Bearer t0k"}
    rules = PlaceCallSettings.load(
        {"CALL_HOURS_START": "00:00", "CALL_HOURS_END": "24:00", "CALL_PLACE_RULES": "false"}
    ).call_rules()
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        decisions = [
            conn.execute(
                "select public.call_claim(%s, %s::jsonb) ->> 'decision'",
                (lead_id, json.dumps(rules)),
            ).fetchone()
            for lead_id in lead_ids
        ]
    assert decisions == [("place",)] * 3


def test_cpu_groups_cap_each_function_and_its_processes_join_before_they_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cgroup v1 hierarchy's files, in a temporary folder: the quota is written as the kernel
    # reads it, and a process started with the joiner writes its pid there before it runs.
    from tools.bench import quota

    (tmp_path / "cpu").mkdir()
    monkeypatch.setattr(quota, "ROOT", tmp_path)
    with quota.cpu_groups(("meta_webhook", "place_call"), 1 / 3) as groups:
        assert isinstance(groups, dict), groups
        assert set(groups) == {"meta_webhook", "place_call"}
        group = groups["place_call"]
        assert (group / "cpu.cfs_quota_us").read_text() == "33333\n"
        assert (group / "cpu.cfs_period_us").read_text() == "100000\n"
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            preexec_fn=quota.joiner(group),
            capture_output=True,
            text=True,
            check=True,
        )
        assert (group / "cgroup.procs").read_text() == child.stdout
        (group / "cgroup.procs").unlink()  # the kernel's files go with the group
        for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"):
            for made in groups.values():
                (made / name).unlink()
    assert list((tmp_path / "cpu").iterdir()) == []
    assert quota.joiner(None) is None


def test_cpu_groups_say_why_when_cgroups_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.bench import quota

    monkeypatch.setattr(quota, "ROOT", tmp_path / "absent")
    with quota.cpu_groups(("meta_webhook",), 0.333) as groups:
        assert isinstance(groups, str) and groups.startswith("no CPU quota: cannot create")
