"""Missed leads recovered: Meta retries a webhook for 36 hours and then drops it, and a Page that
uninstalls the app or loses CRM access in Leads Access Manager sends nothing at all. So a form's
leads are listed from the Graph API (``GET /{form-id}/leads``, filtered on ``time_created``,
cursor paging) and every lead we do not have is stored through the webhook's own SQL
(``meta_recover`` → meta_ingest, then meta_complete with the node already read: no second fetch),
marked as arrived by ``backfill`` (`make backfill`) or ``recovery`` (the sweep's daily run).

The daily recovery is a claimed, resumable job per page (SQL ``meta_recovery_claim``): its
forms and each form's cursor are saved after every page of leads, and it stops when the sweep's
time budget is spent, so the next sweep goes on where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lib import log
from lib.db import Database
from lib.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnavailable,
    FailureClass,
    ProviderFailure,
)
from meta_webhook import leads
from meta_webhook.graph_api import GraphClient, get_graph
from meta_webhook.settings import settings

RECOVERY_SINCE_HOURS = 48  # each daily run reads the leads of the last 48 hours
RECOVERY_EVERY_HOURS = 24
RECOVERY_LEASE_SECONDS = 300


def _unix(value: Any) -> int | None:
    """Meta's ``created_time`` (ISO 8601 with +0000, or Unix seconds) as Unix seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").timestamp())
        except ValueError:
            return int(value) if value.isdigit() else None
    return None


def item(node: dict[str, Any], page_id: str) -> dict[str, Any]:
    """A listed lead node as a meta_ingest change (what a webhook delivery would carry)."""
    return {
        "leadgen_id": str(node["id"]),
        "page_id": page_id,
        "form_id": str(node["form_id"]) if node.get("form_id") else None,
        "ad_id": str(node["ad_id"]) if node.get("ad_id") else None,
        "adgroup_id": str(node["adset_id"]) if node.get("adset_id") else None,
        "created_time": _unix(node.get("created_time")),
        "payload": {"listed": True, "id": str(node["id"]), "form_id": node.get("form_id")},
        "warnings": [],
    }


def store(
    db: Database,
    graph: GraphClient,
    nodes: list[dict[str, Any]],
    *,
    page_id: str,
    via: str,
    region: str,
) -> dict[str, int]:
    """Store the leads of ``nodes`` we do not have; how many were listed and new."""
    listed = [node for node in nodes if str(node.get("id") or "").strip()]
    if not listed:
        return {"found": 0, "new": 0}
    known = set(db.rpc("meta_known_leadgen_ids", {"p_ids": [str(n["id"]) for n in listed]}))
    fresh = {str(n["id"]): n for n in listed if str(n["id"]) not in known}
    if not fresh:
        return {"found": len(listed), "new": 0}
    stored = db.rpc(
        "meta_recover", {"p_leads": [item(n, page_id) for n in fresh.values()], "p_via": via}
    )
    claims = list(stored["to_fetch"])
    leads.complete(db, leads.complete_read(graph, claims, fresh, region))
    return {"found": len(listed), "new": len(claims)}


def backfill(
    db: Database,
    graph: GraphClient,
    *,
    page_id: str,
    since: int,
    region: str,
    forms: list[str] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """`make backfill`: every page of every form (or of ``forms``) since ``since``."""
    names: dict[str, str] = {}
    if forms is None:
        listed = graph.lead_forms(page_id)
        forms = [str(f["id"]) for f in listed if f.get("id")]
        names = {str(f["id"]): str(f.get("name") or "") for f in listed}
    totals: dict[str, Any] = {"found": 0, "new": 0, "forms": []}
    for form_id in forms:
        found = new = 0
        after: str | None = None
        while True:
            nodes, after = graph.form_leads(form_id, since=since, after=after)
            counts = store(db, graph, nodes, page_id=page_id, via="backfill", region=region)
            found, new = found + counts["found"], new + counts["new"]
            if after is None:
                break
        totals["found"] += found
        totals["new"] += new
        totals["forms"].append({"id": form_id, "name": names.get(form_id, ""), "found": found,
                                "new": new})  # fmt: skip
        say(f"  form {form_id} {names.get(form_id, '')}".rstrip() + f": {found} found, {new} new")
    return totals


def daily(
    db: Database, graph: GraphClient, *, region: str, budget_seconds: float
) -> dict[str, Any]:
    """The sweep's daily recovery of the last RECOVERY_SINCE_HOURS, for each page whose run is
    due (SQL meta_recovery_due), within ``budget_seconds``."""
    started = time.monotonic()
    summary: dict[str, Any] = {}
    try:
        due = db.rpc("meta_recovery_due", {"p_every_hours": RECOVERY_EVERY_HOURS})
        for page_id in list(due):
            left = budget_seconds - (time.monotonic() - started)
            if left <= 0:
                break
            done = page(db, graph, page_id, region=region, budget_seconds=left)
            if done is not None:
                summary[page_id] = done
    except (DatabaseUnavailable, DatabaseError) as err:
        log.error("Meta recovery failed", function="meta_webhook", error_code=err.code)
        return {"error": err.code}
    if summary:
        log.info("Meta recovery", function="meta_webhook", pages=summary)
    return summary


def page(
    db: Database, graph: GraphClient, page_id: str, *, region: str, budget_seconds: float
) -> dict[str, Any] | None:
    """Work the page's recovery job, if it is due and no other sweep holds it (None then),
    page of leads by page of leads until it is finished or ``budget_seconds`` are spent."""
    started = time.monotonic()
    job = db.rpc(
        "meta_recovery_claim",
        {
            "p_page_id": page_id,
            "p_every_hours": RECOVERY_EVERY_HOURS,
            "p_since_hours": RECOVERY_SINCE_HOURS,
            "p_lease_seconds": RECOVERY_LEASE_SECONDS,
        },
    )
    if not job:
        return None
    return _work(db, graph, page_id, dict(job["state"]), region, started, budget_seconds)


def run_daily(db: Database, *, budget_seconds: float) -> dict[str, Any]:
    """The sweep's call: the daily recovery with the function's Graph client, nothing when
    the Graph API is not configured (the lead fetches say so) or no time is left."""
    if budget_seconds <= 0:
        return {}
    try:
        graph = get_graph()
    except ConfigError:
        return {}
    return daily(db, graph, region=settings().default_phone_region, budget_seconds=budget_seconds)


def _work(
    db: Database,
    graph: GraphClient,
    page_id: str,
    state: dict[str, Any],
    region: str,
    started: float,
    budget_seconds: float,
) -> dict[str, Any]:
    def save(finished: bool, error: str | None = None) -> None:
        db.rpc(
            "meta_recovery_save",
            {"p_page_id": page_id, "p_state": state, "p_finished": finished, "p_error": error},
        )

    try:
        if state.get("forms") is None:
            state["forms"] = [
                {"id": str(f["id"]), "after": None, "done": False}
                for f in graph.lead_forms(page_id)
                if f.get("id")
            ]
            save(False)
    except ProviderFailure as err:
        _failed(db, page_id, None, err)
        save(False, err.message)  # the lease stays: tried again once it runs out
        return {**_counts(state), "finished": False, "error": err.code}
    for form in state["forms"]:
        while not form["done"]:
            if time.monotonic() - started >= budget_seconds:
                save(False)
                return {**_counts(state), "finished": False}
            try:
                nodes, after = graph.form_leads(
                    form["id"], since=int(state["since"]), after=form["after"]
                )
            except ProviderFailure as err:
                _failed(db, page_id, form["id"], err)
                if err.failure_class in RETRIED:
                    save(False, err.message)  # the lease stays: tried again once it runs out
                    return {**_counts(state), "finished": False, "error": err.code}
                form["done"], form["error"] = True, err.message  # this form alone is skipped
                save(False, err.message)
                continue
            counts = store(db, graph, nodes, page_id=page_id, via="recovery", region=region)
            state["found"] = int(state.get("found") or 0) + counts["found"]
            state["new"] = int(state.get("new") or 0) + counts["new"]
            form["after"], form["done"] = after, after is None
            save(False)
    save(True)
    return {**_counts(state), "finished": True}


# Failures worth trying the same page of leads again for; any other skips its form this run.
RETRIED = (
    FailureClass.TRANSIENT,
    FailureClass.THROTTLED,
    FailureClass.AMBIGUOUS,
    FailureClass.MALFORMED,
)


def _failed(db: Database, page_id: str, form_id: str | None, err: ProviderFailure) -> None:
    what = f"form {form_id}'s leads" if form_id else "the Page's lead forms"
    skipped = form_id is not None and err.failure_class not in RETRIED
    db.log(
        provider="meta",
        event="lead.recovery_failed",
        status="error",
        message=f"The daily recovery of page {page_id} could not read {what}: {err.message}"
        + (" That form is skipped until the next run; `make doctor` checks lead access."
           if skipped else ""),
        external_id=form_id or page_id,
        error_code=err.code,
    )  # fmt: skip


def _counts(state: dict[str, Any]) -> dict[str, int]:
    return {"found": int(state.get("found") or 0), "new": int(state.get("new") or 0)}
