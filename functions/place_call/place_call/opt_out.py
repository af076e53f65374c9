"""An opt-out said on a call: the callee asking not to be called again, in Spanish or English.

47 CFR 64.1200(a)(10) makes any reasonable way of revoking consent binding, saying so on the
call included, so a doubtful sentence counts as an opt-out. One kind of sentence does not: a
deferral, "not now, call me tomorrow" ("no me llames ahora, llámame mañana"), which asks for a
later call. Pure: the sentence the callee said, or None. Judged on
tests/fixtures/elevenlabs/opt_out_corpus.json (precision and recall >= 0.95 on its held-out third).
"""

from __future__ import annotations

import re
import unicodedata

# Compared on words without accents or case, each pattern within one of the callee's turns.
_OPT_OUT = re.compile(
    "|".join(
        (
            # Spanish
            r"\bno (me|nos) (vuelva|vuelvan|vuelvas|volvais) a llamar",
            r"\bno (me|nos) (llame|llamen|llames|llameis)\b",
            r"\bno (quiero|queremos|deseo) (que (me|nos) (llame|llamen|vuelvan a llamar)"
            r"|(recibir )?(mas )?llamadas)",
            r"\b(quit|borr|elimin|sac|saq)(a|e|en|ad|ame|eme|enme|adme|anme|uen)\w* "
            r"de (la|su|tu|vuestra|esta) (lista|base)",
            r"\b(deje|dejen|deja|dejad) de llamar",
            r"\bno (vuelva|vuelvan|vuelvas) a (llamar|marcar)",
            r"\bno (me|nos) (molest|contact)\w*",
            r"\bni (se te ocurra|se les ocurra|se le ocurra) (volver a )?llamar",
            # English
            r"\bstop (calling|phoning|contacting)\b",
            r"\b(don t|do not|never|dont) (call|phone|contact|ring) (me|us|this number|here)\b",
            r"\b(remove|take|delete|erase) (me|us|my number|this number|my details) (off|from)\b",
            r"\bput (me|us|my number) on (your|the) do not call",
            r"\bno more (calls|phone calls)\b",
            r"\b(lose|delete) my (number|details)\b",
            r"\bi (don t|do not) want (any )?(more )?(calls|to be called|you to call)\b",
        )
    )
)
# A deferral: "not now" with a later time or a call-back asked for.
_NOT_NOW = re.compile(r"\b(ahora|ahorita|en este momento|hoy|right now|now|today|at the moment)\b")
_LATER = re.compile(
    r"\b(manana|luego|mas tarde|otro dia|despues|la semana que viene|en un rato|llamame"
    r"|llameme|llamenme|vuelve a llamar|vuelva a llamar|tomorrow|later|another time"
    r"|next week|call me back|call back|in an hour)\b"
)


def _words(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return " ".join(re.findall(r"[a-z0-9]+", plain))


def is_opt_out(sentence: str) -> bool:
    """Whether ``sentence`` asks not to be called (a deferral does not)."""
    words = _words(sentence)
    if not _OPT_OUT.search(words):
        return False
    return not (_NOT_NOW.search(words) and _LATER.search(words))


def said(turns: list[tuple[str, str]] | None) -> str | None:
    """The first turn of the callee (``user``) that opts out, at most 300 characters."""
    for role, text in turns or []:
        if role == "user" and is_opt_out(text):
            return text[:300]
    return None


_YES = {"true", "yes", "si", "1", "y"}


def collected(results: dict[str, object], field: str) -> str | None:
    """The agent's own verdict, when the operator defines a data collection item for it
    (CALL_OPT_OUT_FIELD, a boolean the agent fills when the callee asks not to be called): its
    value, quoted with the agent's rationale."""
    item = results.get(field) if field else None
    if not isinstance(item, dict):
        return None
    value = item.get("value")
    if not (value is True or (isinstance(value, str) and _words(value) in _YES)):
        return None
    rationale = item.get("rationale")
    why = f": {str(rationale)[:200]}" if isinstance(rationale, str) and rationale else ""
    return f"(the agent's data collection {field} is {value}{why})"
