"""`make sweep` (and `make retry`): call meta_webhook's and place_call's private sweeps, as the
scheduler does (``--url``: that one sweep only).

    python -m tools.ops.sweep [--retry-pending] [--url URL]

``--retry-pending`` first makes every fetch_pending lead due now: run it after fixing
META_ACCESS_TOKEN or a permission (`make doctor` says when). Prints the sweep's answer; exits 0
on a 2xx answer, 1 on another answer, 2 when it cannot call (no INTERNAL_TOKEN, unreachable).
Settings come from the target (:func:`tools.stack.envfile.target`: ENV=local, the default, or
ENV=production).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

import httpx

from tools.ops.send_event import functions_url
from tools.stack import envfile
from tools.stack.envfile import command_env

TIMEOUT_SECONDS = 120.0  # a sweep works up to SWEEP_TIME_BUDGET_SECONDS


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ops.sweep", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--retry-pending", action="store_true", help="make every pending lead due first"
    )
    parser.add_argument(
        "--url", help="default: http://127.0.0.1:${PORT:-8080}/functions/v1/meta_webhook/sweep"
    )
    args = parser.parse_args(argv)
    env = command_env("sweep") if env is None else env
    if env is None:
        return 2
    if env.get("ENV", "local") == "production" and not args.url:
        print(
            "sweep: ENV=production needs URL=<the deployed meta_webhook's URL>/sweep",
            file=sys.stderr,
        )
        return 2
    token = (env.get("INTERNAL_TOKEN") or "").split(",")[0].strip()  # new,old: send the new
    if not token:
        print(f"sweep: INTERNAL_TOKEN is not set ({envfile.WHERE_SET})", file=sys.stderr)
        return 2
    # Both sweeps, as the scheduler runs them: the Graph fetches, then the calls; or the one URL.
    urls = (
        [args.url]
        if args.url
        else [functions_url(env, name) + "/sweep" for name in ("meta_webhook", "place_call")]
    )
    worst = 0
    for url in urls:
        try:
            response = httpx.post(
                url,
                params={"retry": "pending"}
                if args.retry_pending and "meta_webhook" in url
                else None,
                headers={"Authorization": f"Bearer {token}"},
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            print(
                f"sweep: {url} is unreachable ({type(exc).__name__}); is `make dev` running?",
                file=sys.stderr,
            )
            return 2
        print(f"{url}: HTTP {response.status_code} {response.text}")
        worst = worst or (0 if response.is_success else 1)
    return worst


if __name__ == "__main__":
    sys.exit(main())
