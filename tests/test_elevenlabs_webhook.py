"""The ElevenLabs post-call webhook as the operator sets it up: `make doctor` reads which webhook
the agent's calls send their outcome to and with what (the workspace's settings and the agent's
overrides), and `make elevenlabs-webhook` turns on its retries, against the ElevenLabs fake."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ELEVENLABS_FAKE_AGENT as AGENT
from tests.conftest import ELEVENLABS_FAKE_KEY as KEY
from tests.conftest import ElevenLabsFake
from tools.fakes.elevenlabs_fake import DEFAULT_WEBHOOK_ID, workspace_webhook
from tools.ops import elevenlabs_webhook
from tools.ops.doctor import core as doctor_core
from tools.ops.doctor import elevenlabs as doctor_elevenlabs

OURS = "https://fn.example.test/place_call/webhook"
OTHER = "https://crm.example.test/hooks/elevenlabs"


@pytest.fixture
def elevenlabs(elevenlabs_fake: ElevenLabsFake) -> Iterator[ElevenLabsFake]:
    elevenlabs_fake.reset()
    yield elevenlabs_fake
    elevenlabs_fake.reset()


def env(fake: ElevenLabsFake) -> dict[str, str]:
    return {
        "ELEVENLABS_API_KEY": KEY,
        "ELEVENLABS_API_URL": fake.base,
        "ELEVENLABS_AGENT_ID": AGENT,
        "ELEVENLABS_WEBHOOK_SECRET": "wsec_test",
    }


def post_call_check(fake: ElevenLabsFake) -> doctor_core.Result:
    with doctor_core.Context(env(fake), now=time.time()) as ctx:
        return doctor_elevenlabs.check_elevenlabs_post_call_settings(ctx)


@pytest.mark.parametrize(
    ("settings", "agent", "status", "words"),
    [
        ({}, None, "ok", "place_call (https://fn.example.test/place_call/webhook) with the "),
        ({"post_call_webhook_id": None}, None, "FAIL", "none is selected"),
        (
            {"post_call_webhook_id": "wh_other"},
            None,
            "FAIL",
            "the one selected (crm (https://crm.example.test/hooks/elevenlabs)) does not deliver",
        ),
        ({"events": ["call_initiation_failure"]}, None, "FAIL", "the transcript event is not"),
        ({"exclude_transcript": True}, None, "FAIL", 'opt-out said on the call ("no me llames")'),
        ({"transcript_format": "opentelemetry"}, None, "FAIL", "sent as opentelemetry"),
        ({"events": ["transcript"]}, None, "warn", "call initiation failure event is not"),
        # The agent's own overrides win over the workspace's settings, both ways.
        ({}, {"exclude_transcript": True}, "FAIL", "the transcript is excluded"),
        ({}, {"post_call_webhook_id": "wh_other"}, "FAIL", "does not deliver"),
        ({"post_call_webhook_id": "wh_other"}, {"post_call_webhook_id": DEFAULT_WEBHOOK_ID},
         "ok", "with the transcript (JSON)"),
        ({}, {"exclude_transcript": None, "events": None}, "ok", "with the transcript (JSON)"),
    ],
    ids=[
        "default",
        "none_selected",
        "another_selected",
        "no_transcript_event",
        "transcript_excluded",
        "opentelemetry",
        "no_initiation_failures",
        "agent_excludes_transcript",
        "agent_selects_another",
        "agent_selects_ours",
        "agent_nulls_inherit",
    ],
)  # fmt: skip
def test_doctor_reads_where_the_agents_outcomes_go(
    elevenlabs: ElevenLabsFake,
    settings: dict[str, Any],
    agent: dict[str, Any] | None,
    status: str,
    words: str,
) -> None:
    elevenlabs.put(
        "webhooks",
        [  # type: ignore[arg-type]
            workspace_webhook(OURS),
            workspace_webhook(OTHER, webhook_id="wh_other", name="crm"),
        ],
    )
    if settings:
        elevenlabs.put("settings", settings)
    if agent is not None:
        elevenlabs.put("agent", {"webhook_overrides": agent})

    result = post_call_check(elevenlabs)

    assert result.status == status, result.message
    assert words in result.message
    assert result.message.startswith("ElevenLabs post-call webhook: ")


def test_doctor_post_call_settings_skip_with_a_refused_key(elevenlabs: ElevenLabsFake) -> None:
    with doctor_core.Context({**env(elevenlabs), "ELEVENLABS_API_KEY": "sk_wrong"}) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_post_call_settings(ctx)

    assert result == (
        doctor_core.SKIP,
        "ElevenLabs post-call webhook: not checked, the ElevenLabs API key does not work",
    )


def test_elevenlabs_webhook_turns_retries_on_and_keeps_the_rest(
    elevenlabs: ElevenLabsFake, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two webhooks to place_call, retries off (ElevenLabs' default): the one the settings select
    # is changed, its name and state kept.
    elevenlabs.put(
        "webhooks",
        [  # type: ignore[arg-type]
            workspace_webhook(OURS + "/", webhook_id="wh_old", name="old", retry_enabled=False),
            workspace_webhook(OURS, retry_enabled=False),
        ],
    )

    assert elevenlabs_webhook.main(env(elevenlabs)) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"speed to lead: place_call ({OURS}): retries turned on."
    patches = [r for r in elevenlabs.requests() if r["method"] == "PATCH"]
    assert [(r["path"], json.loads(r["body"])) for r in patches] == [
        (
            f"/v1/workspace/webhooks/{DEFAULT_WEBHOOK_ID}",
            {"name": "speed to lead: place_call", "is_disabled": False, "retry_enabled": True},
        )
    ]
    assert out[1:] == [
        f"ok   ElevenLabs webhook: speed to lead: place_call ({OURS}) enabled, no failure in "
        "the last 24 hours, retries on",
        f"ok   ElevenLabs post-call webhook: speed to lead: place_call ({OURS}) with the "
        "transcript (JSON) and call initiation failures",
    ]

    # Run again: nothing to change.
    assert elevenlabs_webhook.main(env(elevenlabs)) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[0]
        .endswith("retries were already on; nothing changed.")
    )
    assert len([r for r in elevenlabs.requests() if r["method"] == "PATCH"]) == 1


def test_elevenlabs_webhook_without_a_webhook_to_place_call_exits_1(
    elevenlabs: ElevenLabsFake, capsys: pytest.CaptureFixture[str]
) -> None:
    elevenlabs.put("webhooks", [workspace_webhook(OTHER)])  # type: ignore[arg-type]

    assert elevenlabs_webhook.main(env(elevenlabs)) == 1

    err = capsys.readouterr().err
    assert "no workspace webhook delivers to …/place_call/webhook" in err
    assert "a workspace admin creates a webhook (HMAC)" in err
    assert not [r for r in elevenlabs.requests() if r["method"] == "PATCH"]


def test_elevenlabs_webhook_with_a_refused_key_exits_2(
    elevenlabs: ElevenLabsFake, capsys: pytest.CaptureFixture[str]
) -> None:
    assert elevenlabs_webhook.main({**env(elevenlabs), "ELEVENLABS_API_KEY": "sk_wrong"}) == 2
    assert "ELEVENLABS_API_KEY is invalid or revoked" in capsys.readouterr().err
