"""The deploy's smoke test (tools/deploy/smoke.py) against the functions served locally, as
they would answer once deployed: every probe as expected, and a wrong token caught by name."""

from __future__ import annotations

import httpx

from tools.build.functions import function, function_names
from tools.deploy import smoke

from .conftest import Functions


def found(functions: Functions, token: str) -> list[smoke.Probe]:
    names = function_names()
    return smoke.probes(
        {name: function(name) for name in names},
        {name: functions.url(name) for name in names},
        verify_token=functions.env["META_VERIFY_TOKEN"],
        token=token,
    )


def test_every_probe_of_the_served_functions_answers_as_expected(functions: Functions) -> None:
    probes = found(functions, functions.env["INTERNAL_TOKEN"])
    with httpx.Client(timeout=30) as client:
        rows = smoke.run(probes, client)
    assert [row for row in rows if not row.ok] == []
    assert {(row.probe.function, row.probe.what, row.status) for row in rows} == {
        ("calendly_webhook", "POST / unsigned", 401),
        ("meta_webhook", "Meta handshake", 200),
        ("meta_webhook", "POST / unsigned", 401),
        ("meta_webhook", "POST /sweep without token", 401),
        ("meta_webhook", "POST /sweep with token", 200),
        ("place_call", "POST / without token", 401),
        ("place_call", "POST /sweep without token", 401),
        ("place_call", "POST /sweep with token", 200),
        ("place_call", "POST /webhook unsigned", 401),
    }


def test_a_wrong_token_is_a_mismatch_that_says_what_to_fix(functions: Functions) -> None:
    with httpx.Client(timeout=30) as client:
        rows = smoke.run(found(functions, "not-the-internal-token"), client)
    failed = [row for row in rows if not row.ok]
    assert [(row.probe.function, row.probe.what, row.status) for row in failed] == [
        ("meta_webhook", "POST /sweep with token", 401),
        ("place_call", "POST /sweep with token", 401),
    ]
    lines = smoke.table(rows)
    assert any("MISMATCH: the sweep refuses INTERNAL_TOKEN" in line for line in lines)


def test_no_answer_is_a_mismatch() -> None:
    probe = smoke.Probe("meta_webhook", "Meta handshake", "GET", "http://127.0.0.1:9/", 200, "x")
    with httpx.Client(timeout=5) as client:
        [row] = smoke.run([probe], client)
    assert (row.ok, row.status) == (False, None) and row.detail.startswith("no answer")
