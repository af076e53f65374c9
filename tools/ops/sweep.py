"""`make retry` (and `make sweep`): call meta_webhook's private sweep, as the scheduler does.

    python -m tools.ops.sweep [--retry-pending] [--url URL]

``--retry-pending`` first makes every fetch_pending lead due now: run it after fixing
META_ACCESS_TOKEN or a permission (`make doctor` says when). Prints the sweep's answer; exits 0
on a 2xx answer, 1 on another answer, 2 when it cannot call (no INTERNAL_TOKEN, unreachable).
Settings come from :func:`tools.stack.envfile.project_env`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

import httpx

from tools.ops.send_event import functions_url
from tools.stack.envfile import project_env

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
    env = project_env() if env is None else env
    token = (env.get("INTERNAL_TOKEN") or "").strip()
    if not token:
        print("sweep: INTERNAL_TOKEN is not set (supabase/.env or .local/dev.env)", file=sys.stderr)
        return 2
    url = args.url or functions_url(env, "meta_webhook") + "/sweep"
    try:
        response = httpx.post(
            url,
            params={"retry": "pending"} if args.retry_pending else None,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        print(
            f"sweep: {url} is unreachable ({type(exc).__name__}); is `make dev` running?",
            file=sys.stderr,
        )
        return 2
    print(f"HTTP {response.status_code} {response.text}")
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
