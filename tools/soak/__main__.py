"""``python -m tools.soak``: the command line of `make soak` (tools/soak/__init__.py says what it
does). Exit status: 0 every check passed, 1 a check failed (something was lost), 2 the run could
not start (the stack or the function)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from lib.db import Database
from tools.soak import scaling
from tools.soak.report import render
from tools.soak.run import Settings, say, served_stack, soak
from tools.stack.local import StackError

DEFAULTS = Settings()
HELP = {
    "deliveries": "in all, repeats included",
    "concurrency": "deliveries in flight at once",
    "repeat_share": "share of the deliveries that repeat an earlier id",
    "graph_fault_every": "the Graph fake answers every Nth fetch 503 during the load (0: never)",
    "kill_at": "share of the deliveries started when the function is SIGKILLed",
    "pg_restart_at": "share of the deliveries started when Postgres is stopped",
    "pg_down": "seconds Postgres stays stopped",
    "http_timeout": "the function's HTTP_TIMEOUT_SECONDS",
    "sweep_every": "seconds between sweeps during the load, as pg_cron's (0: none)",
    "max_seconds": "the load stops (and redeliveries give up) after this",
    "drain_seconds": "the sweeps give up after this",
    "seed": "of the repeats' placement",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.soak",
        description="Bounded load-and-fault run of meta_webhook on the local embedded stack.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, default in asdict(DEFAULTS).items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=type(default), default=default, help=HELP[name])
    p.add_argument("--state-dir", type=Path, help="kept (default: a temporary one, removed on OK)")
    p.add_argument("--json", type=Path, help="write the figures and checks here")
    p.add_argument(
        "--ingest-scaling", action="store_true", help="measure big deliveries instead (scaling.py)"
    )
    p.add_argument("--rounds", type=int, default=3, help="--ingest-scaling: runs per size")
    p.add_argument(
        "--no-analyze",
        action="store_true",
        help="--ingest-scaling: no ANALYZE between series (statistics as a burst leaves them)",
    )
    return p


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings(**{name: getattr(args, name) for name in asdict(DEFAULTS)})


def run_soak(args: argparse.Namespace, state_dir: Path) -> int:
    figures, checks = soak(settings_of(args), state_dir)
    print(render(figures, checks), flush=True)
    if args.json:
        results = {**figures, "checks": [asdict(c) for c in checks]}
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    failed = [c.name for c in checks if not c.passed]
    say(f"FAILED: {', '.join(failed)}" if failed else "OK: nothing lost")
    return 1 if failed else 0


def run_scaling(args: argparse.Namespace, state_dir: Path) -> int:
    say(f"ingest scaling on the embedded stack in {state_dir}")
    with served_stack(state_dir, http_timeout=args.http_timeout) as (stack, server):
        db = Database(
            stack.env["SUPABASE_URL"], stack.env["SUPABASE_SERVICE_ROLE_KEY"], timeout=120
        )
        rows = scaling.measure(
            db,
            server.url,
            stack.env["META_APP_SECRET"],
            stack.env["DATABASE_URL"],
            rounds=args.rounds,
            fresh_stats=not args.no_analyze,
        )
    print(scaling.render(rows, args.rounds, fresh_stats=not args.no_analyze), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="soak-"))
    status = 2
    try:
        status = (run_scaling if args.ingest_scaling else run_soak)(args, state_dir)
    except StackError as exc:
        say(f"could not run: {exc}")
    finally:
        if args.state_dir is None and status == 0:
            shutil.rmtree(state_dir, ignore_errors=True)
        elif status != 0:
            say(f"logs and database kept in {state_dir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
