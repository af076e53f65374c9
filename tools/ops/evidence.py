"""`make evidence LEAD=<id or prefix>`: one person's whole record, what an operator needs to
answer a complaint: every lead of the person (the same phone or email), every consent on record,
every call with the calling hours and the local time that allowed it, every opt-out said on a
call with its words, and every do-not-call mark.

    python -m tools.ops.evidence LEAD [--json]

Reads DATABASE_URL directly with psycopg, as `make logs` does. Exits 2 with a one-line error
when DATABASE_URL is not set, the lead is unknown or the database cannot be read. Nothing here
deletes anything, and no retention job deletes calls or opt-outs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tools.ops.logs import CONNECT_TIMEOUT_SECONDS, LogsError, first_line, lead_id_of, where
from tools.stack import envfile
from tools.stack.envfile import command_env

_LEADS = """
select l.id, l.created_at, l.source, l.status, l.phone, l.email, l.full_name, l.meta_leadgen_id
from public.leads l
where l.id = %(lead_id)s
   or l.person_id = (select person_id from public.leads where id = %(lead_id)s)
order by l.created_at
"""
_CONSENTS = """
select c.given_at, c.recorded_at, c.lead_id, c.source, c.form_id, c.checkbox_key, c.is_checked,
       c.checked_by_default, c.checkbox_text, c.disclaimer, c.evidence
from public.consents c
where c.lead_id = any(%(leads)s)
order by c.id
"""
_DO_NOT_CONTACT = """
select d.added_at, d.kind, d.value, d.source, d.reason, d.lead_id, d.removed_at, d.removed_reason
from public.do_not_contact d
where (d.kind = 'phone' and d.value = any(%(phones)s))
   or (d.kind = 'email' and d.value = any(%(emails)s))
order by d.id
"""
_CALLS = """
select c.requested_at, c.lead_id, c.attempt, c.to_number, c.status, c.outcome,
       c.conversation_id, c.allowed_by, c.consent
from public.calls c
where c.lead_id = any(%(leads)s)
order by c.requested_at
"""
_OPT_OUTS = """
select i.created_at, i.lead_id, i.external_id, i.details ->> 'words' as words
from public.integration_logs i
where i.event = 'lead.opted_out' and i.lead_id = any(%(leads)s)
order by i.created_at
"""


def collect(database_url: str, lead: str) -> dict[str, Any]:
    """The record of the person of ``lead`` (an id, or its first 8 characters or more)."""
    try:
        with psycopg.connect(
            database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS, row_factory=dict_row
        ) as conn:
            lead_id = lead_id_of(conn, lead)
            leads = conn.execute(_LEADS, {"lead_id": lead_id}).fetchall()
            ids = [row["id"] for row in leads]
            calls = conn.execute(_CALLS, {"leads": ids}).fetchall()
            opt_outs = conn.execute(_OPT_OUTS, {"leads": ids}).fetchall()
            consents = conn.execute(_CONSENTS, {"leads": ids}).fetchall()
            keys = {
                "phones": sorted({row["phone"] for row in leads if row["phone"]}),
                "emails": sorted({row["email"].lower() for row in leads if row["email"]}),
            }
            entries = conn.execute(_DO_NOT_CONTACT, keys).fetchall()
    except psycopg.Error as exc:
        raise LogsError(
            f"cannot read the database at {where(database_url)}: {first_line(exc)}"
        ) from None
    return {
        "leads": leads,
        "consents": consents,
        "calls": calls,
        "opt_outs": opt_outs,
        "do_not_call": [row for row in leads if row["status"] == "do_not_call"],
        "do_not_contact": entries,
    }


def _at(value: datetime | None) -> str:
    return "-" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _allowed(allowed_by: Mapping[str, Any] | None) -> str:
    if not allowed_by:
        return "no record of the hours that allowed it (placed before they were recorded)"
    local = allowed_by.get("local") or {}
    zones = ", ".join(f"{zone} {time}" for zone, time in sorted(local.items()))
    rules = [str(rule.get("place")) for rule in allowed_by.get("rules") or []]
    return f"calling hours {allowed_by.get('hours', '?')}; local time {zones or '?'}; " + (
        f"rules of {', '.join(rules)}" if rules else "CALL_HOURS_* alone (no place rule)"
    )


def _consent(row: Mapping[str, Any]) -> str:
    if row["source"] == "manual":
        return (
            f"  {_at(row['recorded_at'])}  lead {str(row['lead_id'])[:8]}  recorded by hand: "
            + (json.dumps(row["evidence"], ensure_ascii=False))
        )
    state = "checked" if row["is_checked"] else "NOT checked"
    if row["checked_by_default"]:
        state += " (pre-checked by the form: not consent)"
    return (
        f"  {_at(row['given_at'])}  lead {str(row['lead_id'])[:8]}  form {row['form_id']} box "
        f"{row['checkbox_key']}: {state}. Shown: {row['checkbox_text'] or '?'}"
        + (f" | {row['disclaimer']}" if row["disclaimer"] else "")
    )


def _under(consent: Mapping[str, Any] | None) -> str:
    if consent is None:
        return "consent not looked at (CALL_CONSENT=off)"
    if consent.get("id") is None:
        return f"no consent on record (CALL_CONSENT={consent.get('policy')})"
    return f"under consent {consent['id']} ({consent.get('checkbox_key') or consent.get('source')})"


def render(record: Mapping[str, Any]) -> str:
    """The record as text, section by section."""
    lines = ["Person: every lead sharing a phone or an email"]
    for row in record["leads"]:
        lines.append(
            f"  {row['id']}  {_at(row['created_at'])}  {row['source']}  {row['status']}  "
            f"{row['phone'] or '-'}  {row['email'] or '-'}  {row['full_name'] or '-'}"
        )
    lines += ["", "Consents (each checkbox answer, with the text it was given under)"]
    lines += [_consent(row) for row in record["consents"]] or ["  none on record"]
    lines += ["", "Calls (each with the rule and the local time that allowed it)"]
    lines += [
        f"  {_at(row['requested_at'])}  lead {str(row['lead_id'])[:8]}  attempt {row['attempt']}  "
        f"{row['to_number']}  {row['status']}/{row['outcome'] or '-'}  "
        f"{row['conversation_id'] or '-'}  {_allowed(row['allowed_by'])}; "
        f"{_under(row['consent'])}"
        for row in record["calls"]
    ] or ["  none"]
    lines += ["", "Opt-outs said on a call"]
    lines += [
        f"  {_at(row['created_at'])}  lead {str(row['lead_id'])[:8]}  conversation "
        f'{row["external_id"] or "-"}: "{row["words"]}"'
        for row in record["opt_outs"]
    ] or ["  none"]
    lines += ["", "Do-not-call"]
    lines += [
        f"  lead {row['id']} is do_not_call (final: never called again)"
        for row in record["do_not_call"]
    ] or ["  no lead is do_not_call"]
    lines += [
        f"  list: {row['kind']} {row['value']} since {_at(row['added_at'])} ({row['source']}: "
        f"{row['reason']})"
        + (
            f"; removed {_at(row['removed_at'])}: {row['removed_reason']}"
            if row["removed_at"]
            else ""
        )
        for row in record["do_not_contact"]
    ] or ["  no phone or email of the person is on the do-not-call list"]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ops.evidence", description=__doc__.splitlines()[0]
    )
    parser.add_argument("lead", help="a lead of the person: its id, or its first 8 characters")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args(argv)
    env = command_env("evidence") if env is None else env
    if env is None:
        return 2
    database_url = env.get("DATABASE_URL", "").strip()
    try:
        if not database_url:
            raise LogsError(envfile.NO_DATABASE)
        record = collect(database_url, args.lead)
    except LogsError as err:
        print(f"evidence: {err}", file=sys.stderr)
        return 2
    print(json.dumps(_jsonable(record)) if args.json else render(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
