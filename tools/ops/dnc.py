"""`make dnc`: the internal do-not-call list, phone numbers and email addresses nobody is called
at, whichever lead carries them (every claim checks it; an opt-out said on a call adds to it).

    python -m tools.ops.dnc                                  # the active entries
    python -m tools.ops.dnc --all                            # with the removed ones
    python -m tools.ops.dnc --add '+34 612 345 678' [--reason '…']
    python -m tools.ops.dnc --remove ana@example.com --reason 'asked to be called again'

A phone is read as E.164 (without a country code: DEFAULT_PHONE_REGION), an email in lower case.
Nothing is ever deleted: a removal is stamped with its reason (required) and logged; it lets
future leads of that phone or email be called, while a lead already do-not-call stays so.
Reads DATABASE_URL as `make logs` does; exits 2 with a one-line error when it cannot.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from lib.phone import to_e164
from tools.ops.logs import CONNECT_TIMEOUT_SECONDS, LogsError, first_line, where
from tools.stack import envfile
from tools.stack.envfile import command_env

_LIST = """
select d.id, d.kind, d.value, d.reason, d.source, d.lead_id, d.added_at, d.removed_at,
       d.removed_reason
from public.do_not_contact d
where %(all)s or d.removed_at is null
order by d.added_at desc, d.id desc
limit %(limit)s
"""


def normalise(value: str, *, default_region: str) -> tuple[str, str]:
    """(kind, value) as the list keeps it, or LogsError saying what is wrong with ``value``."""
    text = value.strip()
    if "@" in text:
        email = text.lower()
        local, _, domain = email.partition("@")
        if not local or "." not in domain or len(email) > 320 or any(c.isspace() for c in email):
            raise LogsError(f"{value!r} is not an email address")
        return "email", email
    phone = to_e164(text, default_region=default_region)
    if phone is None:
        raise LogsError(
            f"{value!r} is neither an email address nor a valid phone number (read in region "
            f"{default_region.upper()}, DEFAULT_PHONE_REGION; give it with its +country code)"
        )
    return "phone", phone


def _at(value: datetime | None) -> str:
    return "-" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def render(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "The do-not-call list is empty."
    lines = []
    for row in rows:
        line = (
            f"{_at(row['added_at'])}  {row['kind']:<5}  {row['value']}  {row['source']}: "
            f"{row['reason']}"
        )
        if row["removed_at"] is not None:
            line += f"  [removed {_at(row['removed_at'])}: {row['removed_reason']}]"
        lines.append(line)
    return "\n".join(lines)


def run(database_url: str, args: argparse.Namespace, default_region: str) -> str:
    try:
        with psycopg.connect(
            database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS, row_factory=dict_row
        ) as conn:
            if args.add:
                kind, value = normalise(args.add, default_region=default_region)
                row = conn.execute(
                    "select public.dnc_add(%s, %s, %s, 'operator') as r",
                    (kind, value, args.reason or "added by the operator (make dnc)"),
                ).fetchone()
                result = row["r"] if row else {}
                if result.get("added"):
                    return f"Added {kind} {value}: no lead with it is called from now on."
                return (
                    f"{kind} {value} was already on the list (since {result.get('since')}: "
                    f"{result.get('reason')}); nothing changed."
                )
            if args.remove:
                if not (args.reason or "").strip():
                    raise LogsError("a removal needs its reason: make dnc REMOVE=… REASON='…'")
                kind, value = normalise(args.remove, default_region=default_region)
                row = conn.execute(
                    "select public.dnc_remove(%s, %s, %s) as r", (kind, value, args.reason)
                ).fetchone()
                if not row or not row["r"]:
                    return f"{kind} {value} is not on the list; nothing changed."
                return (
                    f"Removed {kind} {value} (reason: {args.reason.strip()}): future leads with "
                    "it may be called; leads already do-not-call stay so."
                )
            rows = conn.execute(_LIST, {"all": args.all, "limit": args.limit}).fetchall()
            return render(rows)
    except psycopg.Error as exc:
        raise LogsError(
            f"cannot use the database at {where(database_url)}: {first_line(exc)}"
        ) from None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ops.dnc", description=__doc__.splitlines()[0]
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--add", metavar="PHONE_OR_EMAIL")
    action.add_argument("--remove", metavar="PHONE_OR_EMAIL")
    parser.add_argument("--reason", help="why (required with --remove)")
    parser.add_argument("--all", action="store_true", help="list removed entries too")
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args(argv)
    settings = command_env("dnc") if env is None else env
    if settings is None:
        return 2
    database_url = settings.get("DATABASE_URL", "").strip()
    try:
        if not database_url:
            raise LogsError(envfile.NO_DATABASE)
        region = settings.get("DEFAULT_PHONE_REGION", "").strip() or "US"
        print(run(database_url, args, region))
    except LogsError as err:
        print(f"dnc: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
