"""The voicemail classifier (functions/place_call/place_call/voicemail.py) on the labelled corpus
(tests/fixtures/elevenlabs/voicemail_corpus.json), through post_call's parsing of a real
``post_call_transcription`` payload built from each item."""

from __future__ import annotations

import json
from typing import Any

import pytest

from place_call import voicemail
from place_call.elevenlabs_events import parse
from tools.fakes import elevenlabs_samples as samples

from .conftest import FIXTURES

CORPUS: list[dict[str, Any]] = json.loads(
    (FIXTURES / "elevenlabs" / "voicemail_corpus.json").read_text()
)["items"]
HELD_OUT = [item for item in CORPUS if item["split"] == "test"]


def event_of(item: dict[str, Any]) -> dict[str, Any]:
    event = samples.post_call_transcription(
        "conv_" + item["id"],
        lead_id="lead-1",
        transcript=[
            samples.turn(role, message, i * 3) for i, (role, message) in enumerate(item["turns"])
        ],
        voicemail_tool=item["voicemail_tool"],
        call_successful=item.get("call_successful") or "unknown",
        summary=None,
    )
    phone_call = event["data"]["metadata"].setdefault("phone_call", {})
    if item["call_result"]:
        phone_call["call_result"] = item["call_result"]
    else:
        phone_call.pop("call_result", None)
    return event


def outcome_of(item: dict[str, Any]) -> str | None:
    record = parse(samples.encode(event_of(item)), voicemail_phrases=[]).record
    assert record is not None
    return record["outcome"]


def test_corpus_is_what_the_issue_asks_for() -> None:
    assert len(CORPUS) >= 40
    labels = [item["label"] for item in CORPUS]
    assert labels.count("voicemail") == labels.count("answered")
    assert {item["language"] for item in CORPUS} == {"es", "en"}
    assert sum(1 for item in CORPUS if item["source"]) >= 10
    assert sum(1 for item in CORPUS if not item["call_result"]) >= len(CORPUS) // 2
    assert len(HELD_OUT) >= len(CORPUS) // 3


def test_classifier_precision_and_recall_on_the_held_out_third() -> None:
    predicted = [(item["label"], outcome_of(item)) for item in HELD_OUT]
    true_positive = sum(1 for label, got in predicted if label == got == "voicemail")
    said_voicemail = sum(1 for _, got in predicted if got == "voicemail")
    voicemails = sum(1 for label, _ in predicted if label == "voicemail")
    assert true_positive / said_voicemail >= 0.95, predicted
    assert true_positive / voicemails >= 0.90, predicted
    # And an answered call is never re-queued as something else.
    assert all(got == "answered" for label, got in predicted if label == "answered"), predicted


@pytest.mark.parametrize(
    "item", [i for i in CORPUS if i["split"] == "train"], ids=lambda i: i["id"]
)
def test_classifier_on_the_design_items(item: dict[str, Any]) -> None:
    assert outcome_of(item) == item["label"], item["turns"]


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("Mi marido no está disponible pero yo decido", "answered"),
        ("My husband is not available right now but I can talk… tomorrow at ten works", "answered"),
        ("I just saw your voicemail, yes I'm interested", "answered"),
        ("Deje su mensaje después de la señal.", "voicemail"),
    ],
)
def test_classifier_the_issue_cases(text: str, outcome: str) -> None:
    verdict = voicemail.classify(voicemail.Signals([("agent", "Hola"), ("user", text)]))
    assert verdict.outcome == outcome


def test_classifier_without_a_transcript_is_undecided_unless_a_signal_says() -> None:
    assert voicemail.classify(voicemail.Signals(None)).outcome is None
    assert voicemail.classify(voicemail.Signals(None, call_result="answered")).outcome == "answered"
    assert (
        voicemail.classify(voicemail.Signals(None, call_successful="success")).outcome == "answered"
    )
    assert voicemail.classify(voicemail.Signals(None, voicemail_tool=True)).outcome == "voicemail"


def test_transcript_as_plain_text_is_read() -> None:
    turns = voicemail.turns_of("agent: Hola, soy Laura\nuser: Sí, dime, me interesa")
    assert turns == [("agent", "Hola, soy Laura"), ("user", "Sí, dime, me interesa")]
    assert voicemail.classify(voicemail.Signals(turns)).outcome == "answered"
