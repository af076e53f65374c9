"""`make status` (tools/ops/status.py): the summary's lines from SQL ops_status, judged on literal
figures (``render``), and read from the real database."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tools.ops import status

from .conftest import Functions

Conn = psycopg.Connection[Any]
AT = "2026-12-04T12:00:00+00:00"  # the figures below are relative to it: any date would do


def summary(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "at": AT,
        "providers": {
            "meta": {"last_ok": "2026-12-04T11:58:00+00:00", "last_error": None},
            "calendly": {"last_ok": None, "last_error": None},
            "elevenlabs": {
                "last_ok": "2026-12-04T11:00:00+00:00",
                "last_error": {
                    "at": "2026-12-04T11:30:00+00:00",
                    "event": "call.failed",
                    "error_code": "elevenlabs_auth",
                    "message": "ELEVENLABS_API_KEY is invalid: create a key in ElevenLabs",
                },
            },
        },
        "queues": {
            "leads_pending_fetch": {"count": 0, "oldest": None},
            "calls_due": {"count": 2, "oldest": "2026-12-04T11:55:00+00:00"},
            "meta_stages_to_send": {"count": 5, "oldest": "2026-12-04T09:00:00+00:00"},
        },
        "recovery": [
            {"page_id": "138", "finished_at": "2026-12-04T03:00:00+00:00", "last_error": None}
        ],
    }
    base.update(changes)
    return base


def test_render_marks_a_failing_provider_and_a_stuck_queue_with_what_to_do() -> None:
    lines = status.render(summary())

    assert lines == [
        "Providers (last success, last failure):",
        "  Meta        ok 2026-12-04 11:58 UTC (2 min ago)",
        "  Calendly    ok never",
        "! ElevenLabs  ok 2026-12-04 11:00 UTC (60 min ago)",
        "              failed 2026-12-04 11:30 UTC (30 min ago): call.failed elevenlabs_auth: "
        "ELEVENLABS_API_KEY is invalid: create a key in ElevenLabs",
        "Queues (how many, the oldest):",
        "  leads waiting for a Graph fetch  0",
        "  calls due now                    2, the oldest 2026-12-04 11:55 UTC (5 min ago)",
        "! lead stages to send to Meta      5, the oldest 2026-12-04 09:00 UTC (3 h ago): "
        "`make doctor` checks META_DATASET_ID and its token",
        "Daily recovery of missed leads:",
        "  page 138: finished 2026-12-04 03:00 UTC (9 h ago)",
    ]


def test_status_reads_the_database_and_exits_1_when_something_needs_attention(
    functions: Functions, db: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = f"status-{uuid.uuid4().hex[:8]}"
    db.execute(
        "select public.log_event('calendly', 'webhook.rejected', 'error', %s, null, null, "
        "'invalid_signature')",
        (f"Calendly signature refused ({marker}): check CALENDLY_SIGNING_KEY",),
    )

    code = status.main([], {"DATABASE_URL": functions.env["DATABASE_URL"]})

    out = capsys.readouterr().out
    assert code == 1
    calendly = [line for line in out.splitlines() if "Calendly" in line]
    assert calendly[0].startswith("! Calendly")
    assert any(marker in line and "invalid_signature" in line for line in out.splitlines())
    for heading in ("Providers (", "Queues (", "Daily recovery of missed leads:"):
        assert heading in out


def test_status_without_a_database_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert status.main([], {"DATABASE_URL": ""}) == 2
    assert capsys.readouterr().err.startswith("status: no database to read")


def test_render_without_a_dataset_does_not_call_the_stages_a_queue() -> None:
    lines = status.render(summary(), stages_sent=False)
    assert "  lead stages to send to Meta      none sent (META_DATASET_ID is not set)" in lines
