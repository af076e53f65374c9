"""The opt-out classifier (place_call/opt_out.py) on its labelled corpus: precision and recall
at least 0.95 on the held-out third, and every sentence the issue names."""

from __future__ import annotations

import json

import pytest

from place_call.opt_out import is_opt_out, said

from .conftest import FIXTURES

CORPUS = json.loads((FIXTURES / "elevenlabs" / "opt_out_corpus.json").read_text())["sentences"]
HELD_OUT = [item for index, item in enumerate(CORPUS) if index % 3 == 2]


def _scores(items: list[dict[str, object]]) -> tuple[float, float]:
    found = [(bool(item["opt_out"]), is_opt_out(str(item["text"]))) for item in items]
    true_pos = sum(1 for label, guess in found if label and guess)
    precision = true_pos / max(1, sum(1 for _, guess in found if guess))
    recall = true_pos / max(1, sum(1 for label, _ in found if label))
    return precision, recall


def test_held_out_third_precision_and_recall() -> None:
    precision, recall = _scores(HELD_OUT)
    assert len(HELD_OUT) >= 15
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_whole_corpus_classified() -> None:
    wrong = [item["text"] for item in CORPUS if is_opt_out(str(item["text"])) != item["opt_out"]]
    assert wrong == []


@pytest.mark.parametrize(
    "sentence",
    [
        "no me llames",
        "no me vuelvan a llamar",
        "quítenme de la lista",
        "stop calling me",
        "remove me from your list",
        "don't call me again",
    ],
)
def test_the_issue_s_sentences_are_opt_outs(sentence: str) -> None:
    assert is_opt_out(sentence)


def test_a_deferral_is_not_an_opt_out() -> None:
    assert not is_opt_out("no me llames ahora, llámame mañana")


def test_said_quotes_the_callee_never_the_agent() -> None:
    turns = [("agent", "Si no quiere que le llamemos, dígamelo."), ("user", "No me llames más.")]
    assert said(turns) == "No me llames más."
    assert said([("agent", "Stop calling me, said nobody.")]) is None
    assert said(None) is None


@pytest.mark.parametrize(
    ("value", "field", "opted_out"),
    [(True, "do_not_call", True), ("yes", "do_not_call", True), (False, "do_not_call", False),
     (True, "", False), (True, "other_item", False)],
)  # fmt: skip
def test_the_agent_s_data_collection_item_counts_when_named(
    value: object, field: str, opted_out: bool
) -> None:
    from place_call.elevenlabs_events import parse
    from tools.fakes import elevenlabs_samples as samples

    event = samples.post_call_transcription("conv_dnc", lead_id="lead-1")
    event["data"]["analysis"]["data_collection_results"] = {
        "do_not_call": {"value": value, "rationale": "The callee asked to be removed."}
    }
    record = parse(samples.encode(event), voicemail_phrases=[], opt_out_field=field).record
    assert record is not None
    assert (record["opt_out"] is not None) is opted_out
    if opted_out:
        assert "do_not_call" in record["opt_out"] and "asked to be removed" in record["opt_out"]
