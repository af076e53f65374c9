"""`make backfill`: recover the leads the webhook never brought (Meta drops a webhook after 36
hours of failures; a Page that uninstalled the app or lost CRM access sends nothing).

    python -m tools.ops.backfill --since 2026-12-01 [--form <form id>]   # ENV=production …

Lists META_PAGE_ID's lead forms (or reads the one given), pages through each form's leads created
after SINCE (a date, UTC midnight, or an ISO date and time) and stores every lead it does not
have through the webhook's own SQL, with the fields the webhook path fetches (no second fetch
per lead), marked ``arrived_via = backfill``. A lead it has already is left alone. New leads are
queued as the webhook's are: place_call's sweep calls them within a minute, except those older
than CALL_MAX_LEAD_AGE_HOURS (stored, not called automatically). Meta keeps a form's leads for 90
days.

Prints the forms it read, how many leads it found and how many were new. Exits 0 when every form
was read, 1 when the Graph API refused (its message says what to fix), 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from lib.db import Database
from lib.errors import AppError, ConfigError, ProviderFailure
from meta_webhook import recovery
from meta_webhook.graph_api import graph_for
from meta_webhook.settings import MetaWebhookSettings
from tools.stack.envfile import command_env

NEEDED = ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "META_ACCESS_TOKEN", "META_APP_SECRET")


def since_of(text: str) -> int:
    """``--since`` as Unix seconds: a date (midnight UTC) or an ISO date and time."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(
            f"backfill: --since {text!r} is not a date (2026-12-01) or an ISO date and time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ops.backfill", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--since", required=True, help="a date (UTC) or an ISO date and time")
    parser.add_argument("--form", help="read this form only (default: every form of the Page)")
    args = parser.parse_args(argv)
    settings = command_env("backfill") if env is None else env
    if settings is None:
        return 2
    since = since_of(args.since)
    missing = [name for name in (*NEEDED, "META_PAGE_ID") if not settings.get(name, "").strip()]
    if missing:
        print(f"backfill: not set: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        config = MetaWebhookSettings.load(settings)
        (token,) = config.require("META_ACCESS_TOKEN")
    except ConfigError as err:
        print(f"backfill: {err.message}", file=sys.stderr)
        return 2
    graph = graph_for(config, token)
    db = Database(settings["SUPABASE_URL"], settings["SUPABASE_SERVICE_ROLE_KEY"])
    page_id = settings["META_PAGE_ID"].strip()
    when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"backfill: page {page_id}, leads created after {when}", flush=True)
    try:
        totals = recovery.backfill(
            db,
            graph,
            page_id=page_id,
            since=since,
            region=config.default_phone_region,
            forms=[args.form] if args.form else None,
            say=lambda line: print(line, flush=True),
        )
    except ProviderFailure as err:
        print(f"backfill: the Graph API refused: {err.message}", file=sys.stderr)
        return 1
    except AppError as err:
        print(f"backfill: {err.message}", file=sys.stderr)
        return 2
    print(
        f"backfill: {len(totals['forms'])} form(s) read, {totals['found']} lead(s) found, "
        f"{totals['new']} new (stored and queued; place_call's sweep calls those under "
        "CALL_MAX_LEAD_AGE_HOURS)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
