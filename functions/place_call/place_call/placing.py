"""Placing calls: claim a lead's call (the rules are SQL: ``call_claim``), ask ElevenLabs to
place it, record the answer (``call_started``); the sweep does the same for every due call."""

from __future__ import annotations

from typing import Any

from lib import fanout, log
from lib.db import Database
from lib.errors import ConfigError, ProviderFailure
from place_call.elevenlabs_api import get_elevenlabs
from place_call.settings import PlaceCallSettings

_DIAL_THREADS = 8


def _first_name(full_name: str | None) -> str:
    return (full_name or "").split(" ")[0]


def dial(
    db: Database, config: PlaceCallSettings, claim: dict[str, Any], call_rules: dict[str, Any]
) -> dict[str, Any]:
    """Ask ElevenLabs to place a claimed call and record its answer (one round trip)."""
    try:
        agent_id, phone_number_id = config.require(
            "ELEVENLABS_AGENT_ID", "ELEVENLABS_PHONE_NUMBER_ID"
        )
        placed = get_elevenlabs().outbound_call(
            agent_id=agent_id,
            phone_number_id=phone_number_id,
            to_number=claim["to_number"],
            dynamic_variables={
                "lead_id": claim["lead_id"],
                "lead_name": claim.get("full_name") or "",
                "first_name": _first_name(claim.get("full_name")),
                "attempt": claim["attempt"],
                "business_name": config.call_business_name,
                "disclosure": config.disclosure,
            },
            user_id=claim["lead_id"],
        )
        result: dict[str, Any] = {
            "ok": True,
            "conversation_id": placed.conversation_id,
            "call_sid": placed.call_sid,
            "message": placed.message,
        }
    except ConfigError as err:
        result = ProviderFailure.from_config(err).result()
    except ProviderFailure as failure:
        result = failure.result()
    recorded = db.rpc(
        "call_started",
        {"p_call_id": claim["call_id"], "p_result": result, "p_rules": call_rules},
    )
    answer = {
        "lead_id": claim["lead_id"],
        "decision": "placed" if result["ok"] else "failed",
        "attempt": claim["attempt"],
    }
    if result["ok"]:
        answer["conversation_id"] = result["conversation_id"]
    else:
        answer.update(
            error_code=result["error_code"],
            reason=result["message"],
            next_call_at=recorded.get("next_call_at"),
        )
    log.info("Call", function="place_call", to_number=claim["to_number"], **answer)
    return answer


def place(db: Database, config: PlaceCallSettings, lead_id: str) -> dict[str, Any]:
    """Place the lead's call if the rules allow it now; the answer says what was done and why."""
    call_rules = config.call_rules()
    claim = db.rpc("call_claim", {"p_lead_id": lead_id, "p_rules": call_rules})
    decision = claim["decision"]
    if decision != "place":
        answer = {
            "lead_id": lead_id,
            "decision": decision,
            "reason": claim.get("reason", decision),  # call_decided, in SQL
        }
        if claim.get("next_call_at"):
            answer["next_call_at"] = claim["next_call_at"]
        return answer
    return dial(db, config, claim, call_rules)


def sweep(db: Database, config: PlaceCallSettings) -> dict[str, Any]:
    """Place every due call, at most CALL_SWEEP_BATCH_SIZE a run (the scheduler runs it every
    minute); calls are dialled concurrently."""
    call_rules = config.call_rules()
    due = db.rpc("call_claim_due", {"p_limit": config.call_sweep_batch_size, "p_rules": call_rules})
    claims = list(due["claimed"])
    results = fanout.each(
        lambda claim: _dial_alone(db, config, claim, call_rules), claims, threads=_DIAL_THREADS
    )
    counts = {
        "claimed": len(claims),
        "placed": sum(1 for r in results if r["decision"] == "placed"),
        "failed": sum(1 for r in results if r["decision"] == "failed"),
        # Claims that failed in SQL (logged there, each alone) or whose dial raised here.
        "errors": int(due.get("failed") or 0) + sum(1 for r in results if r["decision"] == "error"),
        "remaining": due["remaining"],
    }
    if claims or counts["errors"]:
        log.info("Call sweep", function="place_call", **counts)
    return counts


def _dial_alone(
    db: Database, config: PlaceCallSettings, claim: dict[str, Any], call_rules: dict[str, Any]
) -> dict[str, Any]:
    """:func:`dial`, where an unexpected failure costs only this claim: it is logged, and the
    claim stays ``placing`` until a later sweep records it as unknown (``call_claim_due``), as
    if the instance had stopped mid-request."""
    try:
        return dial(db, config, claim, call_rules)
    except Exception as exc:  # noqa: BLE001 - one claim's failure never costs its neighbours
        log.error("Call dial failed", exc=exc, function="place_call", lead_id=claim.get("lead_id"))
        return {"lead_id": claim.get("lead_id"), "decision": "error"}
