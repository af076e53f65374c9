"""`make logs`: the latest integration_logs rows, newest first; or one lead's whole trail.

    python -m tools.ops.logs [--provider P] [--status S] [--limit N] [--json]
    python -m tools.ops.logs --lead LEAD_ID [--json]

With ``--lead`` (a lead id, or its first 8 or more characters as the table shows them) it prints
the ``lead_trail`` view for that lead, oldest first: its receipt, fetch, calls and meetings.

Prints an aligned table (created_at in UTC, provider, event, status, error_code, external_id, the
first 8 characters of lead_id, message), or one JSON object per row with ``--json`` (full lead_id,
plus id, details and duration_ms). Reads DATABASE_URL directly with psycopg, from
:func:`tools.stack.envfile.target` (ENV=local, the default, reads .local/dev.env;
ENV=production reads supabase/.env; the first line says which).
Exits 2 with a one-line error when DATABASE_URL is not set or the database cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from tools.stack import envfile
from tools.stack.envfile import command_env

STATUSES = ("ok", "error", "rejected", "ignored", "duplicate")  # integration_logs_status_known
COLUMNS = (
    "created_at",
    "provider",
    "event",
    "status",
    "error_code",
    "external_id",
    "lead_id",
    "message",
)
CONNECT_TIMEOUT_SECONDS = 5

_QUERY = """
select id, created_at, provider, event, status, error_code, external_id, lead_id, message,
       details, duration_ms
from public.integration_logs
where (%(provider)s::text is null or provider = %(provider)s)
  and (%(status)s::text is null or status = %(status)s)
order by created_at desc, id desc
limit %(limit)s
"""


_TRAIL = """
select at, provider, event, status, error_code, message, details, lead_id
from public.lead_trail
where lead_id = %(lead_id)s
order by at nulls last
"""
_LEADS_LIKE = "select id from public.leads where id::text like %(prefix)s limit 2"
TRAIL_COLUMNS = ("at", "provider", "event", "status", "error_code", "message")


class LogsError(Exception):
    """The logs cannot be read (exit 2); the message says why."""


def fetch(
    database_url: str, *, provider: str | None = None, status: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The latest ``limit`` rows matching the filters, newest first."""
    try:
        with psycopg.connect(
            database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS, row_factory=dict_row
        ) as conn:
            params = {"provider": provider, "status": status, "limit": limit}
            return conn.execute(_QUERY, params).fetchall()
    except psycopg.errors.UndefinedTable:
        raise LogsError(
            "public.integration_logs does not exist in this database: are the "
            "migrations applied? (`make doctor` checks)"
        ) from None
    except psycopg.Error as exc:
        raise LogsError(
            f"cannot read the database at {where(database_url)}: {first_line(exc)}"
        ) from None


def trail(database_url: str, lead: str) -> list[dict[str, Any]]:
    """Every row of ``lead_trail`` for the lead ``lead`` (an id or an id's prefix), oldest first."""
    prefix = lead.strip().lower()
    try:
        with psycopg.connect(
            database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS, row_factory=dict_row
        ) as conn:
            return conn.execute(_TRAIL, {"lead_id": lead_id_of(conn, prefix)}).fetchall()
    except psycopg.Error as exc:
        raise LogsError(
            f"cannot read the database at {where(database_url)}: {first_line(exc)}"
        ) from None


def lead_id_of(conn: psycopg.Connection[Any], lead: str) -> Any:
    """The id of the one lead whose id is ``lead`` or starts with it (8 characters at least)."""
    prefix = lead.strip().lower()
    if len(prefix) < 8 or not all(ch in "0123456789abcdef-" for ch in prefix):
        raise LogsError(f"{lead!r} is not a lead id (give at least its first 8 characters)")
    leads = conn.execute(_LEADS_LIKE, {"prefix": prefix + "%"}).fetchall()
    if len(leads) != 1:
        found = "no lead" if not leads else "several leads"
        raise LogsError(f"{found} with an id starting {prefix}")
    return leads[0]["id"]


def where(database_url: str) -> str:
    """host:port/dbname of a connection string, never its password."""
    try:
        info = conninfo_to_dict(database_url)
    except psycopg.ProgrammingError:
        return "DATABASE_URL (unparsable)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cell(row: Mapping[str, Any], column: str) -> str:
    value = row[column]
    if value is None:
        return "-"
    if column in ("created_at", "at"):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    if column == "lead_id":
        return str(value)[:8]
    # One line per row, and no control character reaches the terminal: a stranger's text in a
    # log row (a refused request's path, a provider's message) could carry ANSI escapes.
    return _CONTROL.sub(_escape, " ".join(str(value).split()))


# C0 and C1 control characters, DEL included (whitespace was folded to spaces before).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(found: re.Match[str]) -> str:
    return f"\\x{ord(found.group()):02x}"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """``rows`` as an aligned text table; the message, last, is never padded or cut."""
    header = [f"{columns[0]} (UTC)", *columns[1:]]
    cells = [header, *[[_cell(row, column) for column in columns] for row in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns) - 1)]
    return "\n".join(
        "  ".join(
            [*(text.ljust(width) for text, width in zip(line, widths, strict=False)), line[-1]]
        ).rstrip()
        for line in cells
    )


def _jsonable(key: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if key == "lead_id" and value is not None:
        return str(value)
    return value


def json_lines(rows: Sequence[Mapping[str, Any]]) -> str:
    """One JSON object per row (timestamps in ISO 8601, UTC; the full lead_id)."""
    return "\n".join(
        json.dumps({key: _jsonable(key, value) for key, value in row.items()}) for row in rows
    )


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m tools.ops.logs", description=__doc__.splitlines()[0]
    )
    result.add_argument("--provider", help="only this provider (meta, calendly, elevenlabs ...)")
    result.add_argument("--status", choices=STATUSES, help="only this status")
    result.add_argument("--limit", type=_positive, default=20, help="rows (default %(default)s)")
    result.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    result.add_argument("--lead", help="one lead's whole trail (its id, or its first 8 characters)")
    return result


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = command_env("logs") if env is None else env
    if env is None:
        return 2
    database_url = env.get("DATABASE_URL", "").strip()
    try:
        if not database_url:
            raise LogsError(envfile.NO_DATABASE)
        if args.lead:
            rows = trail(database_url, args.lead)
        else:
            rows = fetch(database_url, provider=args.provider, status=args.status, limit=args.limit)
    except LogsError as err:
        print(f"logs: {err}", file=sys.stderr)
        return 2
    if args.json:
        if rows:
            print(json_lines(rows))
    elif rows:
        print(table(rows, TRAIL_COLUMNS if args.lead else COLUMNS))
    else:
        print("(no integration_logs rows match)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
