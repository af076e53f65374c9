"""Who was on the line: a person or a machine (voicemail, a carrier message, a call-screening
assistant), from every signal a post-call event gives. Pure: no I/O.

A phrase alone never decides: "no está disponible" or "voicemail" is said by people too ("mi
marido no está disponible pero yo decido", "I just saw your voicemail, yes I'm interested"). The
signals, strongest first:

1. ``metadata.phone_call.call_result`` (``answered | voicemail | busy | no_answer | failed``),
   when ElevenLabs fills it (webhooks may not: nothing depends on it);
2. the callee's turns: a *greeting instruction* ("leave a message", "después de la señal",
   "record your name and reason for calling") marks a machine turn, unless the same turn speaks
   to the caller more ("no, I'm here, go on"); a *person's reply* is a turn that speaks to the
   caller or answers the agent in words of its own. One reply after a greeting, and the callee
   is a person who went on talking;
3. the agent's ``voicemail_detection`` tool: a machine, unless two replies say otherwise;
4. an absence phrase alone ("not available", "no está disponible"), with no reply at all: a
   machine;
5. ``analysis.call_successful == "success"``: the agent's own evaluation, one reply's worth
   against the tool or an absence phrase, never against a greeting (an evaluation can be wrong).

Without a transcript (the workspace's ``exclude_transcript``, or a format this does not read)
and without ``call_result`` or a successful evaluation, the outcome is undecided (``None``): the
caller reads the conversation from the API before anything else happens to the lead.

The corpus in tests/fixtures/elevenlabs/voicemail_corpus.json holds the cases this is judged on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

CALL_RESULTS = {
    "answered": "answered",
    "voicemail": "voicemail",
    "busy": "busy",
    "no_answer": "no_answer",
    "no-answer": "no_answer",
    "failed": "failed",
}
_GREETING_TURNS = 3  # a greeting is among the callee's first turns


def fold(text: str) -> str:
    """Lower case without accents, so "buzón" matches "buzon"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _patterns(*items: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{item})" for item in items))


# What a machine says to a caller: instructions to leave a message, tones, screening prompts.
_GREETING = _patterns(
    r"\bleave (?:me )?(?:a|your|your name and|a voice ?mail) ?(?:name|number|message)",
    r"\b(?:after|at) the (?:tone|beep)\b",
    r"\brecord(?:ing)? your (?:name|message)\b",
    r"\bfinished recording\b",
    r"\bpress (?:pound|#|1|one)\b",
    r"\bvoice ?mail ?box\b.*\bnot been set up\b",
    r"\bscreening service\b",
    r"\bcall assist\b",
    r"\breason for calling\b",
    r"\bthe (?:person|party) you(?:'re| are) (?:calling|trying to reach)\b",
    r"\bno answer at that extension\b",
    r"\bdej\w* (?:su|tu) mensaje\b",
    r"\b(?:despues|al finalizar|tras) (?:de )?(?:la senal|el tono|del tono)\b",
    r"\bgrab\w* (?:su|tu) (?:nombre|mensaje)\b",
    r"\bmotivo de (?:la|su|tu) llamada\b",
    r"\bbuzon de mensajes\b",
    r"\bfuera de cobertura\b",
    r"\bfiltrado de llamadas\b",
    r"\bla persona a la que llamas?\b",
)
# What a person also says: absence and the voicemail itself.
_ABSENCE = _patterns(
    r"\b(?:is|are|isn't|is not) (?:currently )?(?:not )?(?:un)?available\b",
    r"^not available\b",
    r"\bno (?:esta|se encuentra) disponible\b",
    r"\bcan(?:'t| ?not) take your call\b",
    r"\bno (?:puedo|podemos) (?:atender|contestar)\b",
    r"\bvoice ?mail\b",
    r"\bbuzon de voz\b",
    r"\byou've reached\b",
    r"\bhas llamado\b",
)
# A person speaking to the caller: a question, interest, a decision, an appointment.
_PERSON = _patterns(
    r"\binterest",
    r"\binteresa",
    r"\bappointment\b",
    r"\bcita\b",
    r"\bpresupuesto\b",
    r"\bquote\b",
    r"\bprice\b",
    r"\bprecio\b",
    r"\bformulario\b",
    r"\bthe form\b",
    r"\bgo (?:ahead|on)\b",
    r"\bcuentame\b",
    r"\bme cuentas\b",
    r"\bdime\b",
    r"\bdigame\b",
    r"\bwhat'?s up\b",
    r"\bwho is this\b",
    r"\bquien es\b",
    r"\bque querian\b",
    r"\bde que se trata\b",
    r"\bwhat is (?:this|it) about\b",
    r"\bi'?m here\b",
    r"\bestoy aqui\b",
    r"\bsoy yo\b",
    r"\bit'?s me\b",
    r"\bi can talk\b",
    r"\bpuedo hablar\b",
    r"\btomorrow\b",
    r"\bmanana\b",
    r"\bworks\b",
    r"\bme viene bien\b",
    r"\bllam(?:ame|enme|enle|e manana|e a las)\b",
    r"\bcall me\b",
    r"\bdon'?t call\b",
    r"\bnot interested\b",
    r"\btake a message\b",
    r"\bse lo paso\b",
    r"\byo (?:me encargo|decido)\b",
    r"\bi'?ll tell him\b",
    r"\byes,? i\b",
    r"\bsi,? (?:me|soy|el|la)\b",
)


@dataclass(frozen=True)
class Signals:
    """What a post-call event says about the line. ``turns``: the callee's and the agent's turns
    as ``(role, message)``, or None when the event carries no readable transcript."""

    turns: list[tuple[str, str]] | None
    call_result: str | None = None
    call_successful: str | None = None
    voicemail_tool: bool = False
    extra_phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """``outcome`` (None: undecided), why, and for a voicemail the agent did not detect itself
    (``missed``) the greeting and the words that gave it away."""

    outcome: str | None
    why: str
    missed: bool = False
    greeting: str | None = None
    phrase: str | None = None


def _machine_words(folded: str, extra: tuple[str, ...]) -> list[str]:
    """The greeting instructions in a turn (the built-in ones and VOICEMAIL_PHRASES)."""
    found = [match.group(0) for match in _GREETING.finditer(folded)]
    return found + [phrase for phrase in extra if phrase.strip() and fold(phrase) in folded]


def classify(signals: Signals) -> Verdict:
    """The outcome of a call that connected (a ``post_call_transcription`` or a conversation)."""
    result = CALL_RESULTS.get((signals.call_result or "").strip().lower())
    if result is not None:
        return Verdict(result, f"ElevenLabs' call_result is {signals.call_result}")
    successful = (signals.call_successful or "").lower() == "success"
    if signals.turns is None:
        if signals.voicemail_tool:
            return Verdict("voicemail", "the agent's voicemail_detection tool ran")
        if successful:
            return Verdict("answered", "no transcript, but the agent's evaluation succeeded")
        return Verdict(None, "no transcript, call_result or successful evaluation in the event")

    callee = [(index, text) for index, (role, text) in enumerate(signals.turns) if role == "user"]
    if not callee:
        if signals.voicemail_tool:
            return Verdict("voicemail", "the agent's voicemail_detection tool ran")
        if successful:
            return Verdict("answered", "nobody spoke, but the agent's evaluation succeeded")
        return Verdict("unknown", "the call connected but nobody spoke")

    machine: tuple[str, str] | None = None  # (the greeting, the words)
    absence: tuple[str, str] | None = None
    replies = 0
    for position, (index, text) in enumerate(callee):
        folded = fold(text)
        words = _machine_words(folded, signals.extra_phrases)
        person_words = len(_PERSON.findall(folded))
        person = person_words > 0
        # A screening prompt says "go ahead"; a person quoting a greeting says more of their own.
        if words and len(words) >= person_words:
            if machine is None and position < _GREETING_TURNS:
                machine = (text, words[0])
            continue
        absent = _ABSENCE.search(folded)
        if absent and not person:
            absence = absence or (text, absent.group(0))
            continue
        follows_agent = index > 0 and signals.turns[index - 1][0] == "agent"
        if person or (follows_agent and len(folded.split()) >= 3):
            replies += 1

    if signals.voicemail_tool:
        if replies + successful >= 2:
            return Verdict("answered", "the voicemail tool ran, but the callee replied twice")
        return Verdict("voicemail", "the agent's voicemail_detection tool ran")
    if machine is not None:
        if replies:
            return Verdict("answered", "a greeting-like turn, then the callee went on talking")
        return Verdict("voicemail", "a voicemail greeting", True, machine[0][:300], machine[1])
    if absence is not None and not replies and not successful:
        return Verdict(
            "voicemail", "an absence message and nothing else", True, absence[0][:300], absence[1]
        )
    return Verdict("answered", "the callee spoke")


def turns_of(transcript: Any) -> list[tuple[str, str]] | None:
    """``(role, message)`` of a transcript as ElevenLabs sends it (a list of turns), or of a
    plain-text one (``user: …`` / ``agent: …`` lines); None when it is absent or unreadable."""
    if isinstance(transcript, list):
        turns = [
            (
                str(turn["role"]),
                turn["message"].strip() if isinstance(turn.get("message"), str) else "",
            )
            for turn in transcript
            if isinstance(turn, dict) and turn.get("role") in ("user", "agent")
        ]
        if transcript and not turns:
            return None  # turns of a shape this does not read
        return [(role, text) for role, text in turns if role == "agent" or text]
    if isinstance(transcript, str):
        lines = [line.partition(":") for line in transcript.splitlines() if ":" in line]
        turns = [(role.strip().lower(), text.strip()) for role, _, text in lines]
        known = [(role, text) for role, text in turns if role in ("user", "agent") and text]
        return known or None
    return None
