"""`make status`: one health summary. Per provider the last success and the last failure (its
message says what to do); the queues' depths and their oldest item (leads waiting for a Graph
fetch, calls due, lead stages to send to Meta); the daily recovery of missed leads.

    python -m tools.ops.status            # ENV=production for the deployed project

Reads the target's database (DATABASE_URL, as `make logs` does) with SQL ``ops_status``. Exits 0
when nothing needs attention, 1 when a line starts with "!" (a queue stuck, a provider failing
since its last success), 2 when it cannot read.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from tools.ops.logs import CONNECT_TIMEOUT_SECONDS, first_line, where
from tools.stack import envfile
from tools.stack.envfile import command_env

# How old the oldest item of a queue may be before it needs attention, and what to do then.
QUEUES: tuple[tuple[str, str, float, str], ...] = (
    (
        "leads_pending_fetch",
        "leads waiting for a Graph fetch",
        15 * 60,
        "check the Meta token with `make doctor`, then `make retry`",
    ),
    (
        "calls_due",
        "calls due now",
        10 * 60,
        "place_call's sweep is not calling them: `make doctor` checks the sweeps answer 200",
    ),
    (
        "meta_stages_to_send",
        "lead stages to send to Meta",
        60 * 60,
        "`make doctor` checks META_DATASET_ID and its token",
    ),
)
NAMES = {"meta": "Meta", "calendly": "Calendly", "elevenlabs": "ElevenLabs"}


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 120:
        span = f"{seconds:.0f} s"
    elif seconds < 2 * 3600:
        span = f"{seconds / 60:.0f} min"
    elif seconds < 2 * 86400:
        span = f"{seconds / 3600:.0f} h"
    else:
        span = f"{seconds / 86400:.0f} days"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({span} ago)"


def render(status: dict[str, Any], *, stages_sent: bool = True) -> list[str]:
    """The summary's lines; those that need attention start with "!". ``stages_sent``: whether
    META_DATASET_ID is set (else the stages for Meta are not a queue: nothing sends them)."""
    now = _time(status.get("at")) or datetime.now(UTC)
    lines = ["Providers (last success, last failure):"]
    for provider, name in NAMES.items():
        seen = (status.get("providers") or {}).get(provider) or {}
        ok = _time(seen.get("last_ok"))
        error = seen.get("last_error") or {}
        failed = _time(error.get("at"))
        failing = failed is not None and (ok is None or failed > ok)
        lines.append(f"{'!' if failing else ' '} {name:<11} ok {_ago(ok, now)}")
        if failed is not None:
            code = f" {error.get('error_code')}" if error.get("error_code") else ""
            lines.append(
                f"  {'':<11} failed {_ago(failed, now)}: {error.get('event')}{code}: "
                f"{error.get('message')}"
            )
    lines.append("Queues (how many, the oldest):")
    for key, label, limit, fix in QUEUES:
        if key == "meta_stages_to_send" and not stages_sent:
            lines.append(f"  {label:<32} none sent (META_DATASET_ID is not set)")
            continue
        queue = (status.get("queues") or {}).get(key) or {}
        count = int(queue.get("count") or 0)
        oldest = _time(queue.get("oldest"))
        stuck = count > 0 and oldest is not None and (now - oldest).total_seconds() > limit
        line = f"{'!' if stuck else ' '} {label:<32} {count}"
        if count:
            line += f", the oldest {_ago(oldest, now)}"
        if stuck:
            line += f": {fix}"
        lines.append(line)
    jobs = status.get("recovery") or []
    lines.append("Daily recovery of missed leads:")
    if not jobs:
        lines.append("  no page yet (it starts with the first Meta lead)")
    for job in jobs:
        finished = _time(job.get("finished_at"))
        late = finished is None or (now - finished).total_seconds() > 2 * 86400
        state = f"finished {_ago(finished, now)}" if finished else "running or unfinished"
        error = f"; last error: {job['last_error']}" if job.get("last_error") else ""
        lines.append(f"{'!' if late and error else ' '} page {job.get('page_id')}: {state}{error}")
    return lines


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    del argv
    settings = command_env("status") if env is None else env
    if settings is None:
        return 2
    database_url = settings.get("DATABASE_URL", "").strip()
    if not database_url:
        print(f"status: {envfile.NO_DATABASE}", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            row = conn.execute("select public.ops_status()").fetchone()
    except psycopg.Error as exc:
        print(f"status: cannot read {where(database_url)}: {first_line(exc)}", file=sys.stderr)
        return 2
    lines = render(
        dict(row[0]) if row else {}, stages_sent=bool(settings.get("META_DATASET_ID", "").strip())
    )
    print("\n".join(lines))
    return 1 if any(line.startswith("!") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
