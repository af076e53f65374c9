"""`make send-test-event`: post a correctly signed test delivery to a webhook, like Meta's Lead Ads
Testing Tool (https://developers.facebook.com/tools/lead-ads-testing).

One subcommand per provider; each builds a :class:`SignedRequest` and :func:`send` posts it::

    python -m tools.send_event meta [--url URL] [--leadgen-id ID] [--page-id ID] [--form-id ID]
                                    [--secret S] [--numeric-ids]

It prints what it sent, the HTTP status and the response body, and exits 0 on a 2xx answer, 1 on
any other answer, 2 when it cannot send (no secret configured, URL unreachable). Settings come from
:func:`tools.envfile.project_env` (the environment wins over supabase/.env and .local/dev.env).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from tools import samples
from tools.envfile import project_env

# The ids the Graph fake's default lead uses; any id works against the fake.
DEFAULT_PAGE_ID = samples.PAGE_ID
DEFAULT_FORM_ID = samples.FORM_ID
TIMEOUT_SECONDS = 30.0  # meta_webhook fetches the lead from the Graph API before answering


class SendError(Exception):
    """The event could not be sent (exit 2); the message says why and what to set."""


@dataclass(frozen=True)
class SignedRequest:
    """A delivery ready to post: the exact bytes, the headers that sign them, and a summary."""

    url: str
    body: bytes
    headers: dict[str, str]
    summary: str


Builder = Callable[[argparse.Namespace, Mapping[str, str]], SignedRequest]


def functions_url(env: Mapping[str, str], name: str) -> str:
    """Where `make dev` serves function ``name`` (``PORT`` overrides 8080)."""
    return f"http://127.0.0.1:{env.get('PORT') or '8080'}/functions/v1/{name}"


# --- meta ------------------------------------------------------------------------------------


def meta_secret(env: Mapping[str, str]) -> str:
    """The first META_APP_SECRET (several are comma-separated while one is rotated)."""
    parts = [part.strip() for part in (env.get("META_APP_SECRET") or "").split(",")]
    secret = next((part for part in parts if part), None)
    if secret is None:
        raise SendError(
            "META_APP_SECRET is not set: set it (supabase/.env, the environment or "
            "`make dev`'s .local/dev.env) or pass --secret"
        )
    return secret


def build_meta(args: argparse.Namespace, env: Mapping[str, str]) -> SignedRequest:
    """The signed Meta delivery the ``meta`` subcommand's arguments describe."""
    secret = args.secret or meta_secret(env)
    leadgen_id = args.leadgen_id or samples.random_leadgen_id()
    page_id = args.page_id or env.get("META_PAGE_ID") or DEFAULT_PAGE_ID
    body = samples.leadgen_delivery(
        leadgen_id,
        page_id=page_id,
        form_id=args.form_id,
        created_time=int(time.time()),
        numeric=args.numeric_ids,
    )
    return SignedRequest(
        url=args.url or functions_url(env, "meta_webhook"),
        body=body,
        headers=samples.meta_headers(body, secret=secret),
        summary=f"meta leadgen_id={leadgen_id} page_id={page_id} form_id={args.form_id}",
    )


def add_meta(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "meta",
        help="a Meta Lead Ads leadgen delivery, signed with X-Hub-Signature-256",
        description="Post a leadgen delivery signed with META_APP_SECRET.",
    )
    parser.add_argument(
        "--url", help="default: http://127.0.0.1:${PORT:-8080}/functions/v1/meta_webhook"
    )
    parser.add_argument("--leadgen-id", help="default: a fresh random 16-digit id")
    parser.add_argument("--page-id", help=f"default: META_PAGE_ID, else {DEFAULT_PAGE_ID}")
    parser.add_argument("--form-id", default=DEFAULT_FORM_ID, help="default: %(default)s")
    parser.add_argument("--secret", help="the app secret to sign with; default: META_APP_SECRET")
    parser.add_argument(
        "--numeric-ids",
        action="store_true",
        help="send the ids as JSON numbers, as Meta sometimes does",
    )
    parser.set_defaults(build=build_meta)


# Each provider adds its subcommand; the subcommand sets ``build`` (a Builder).
PROVIDERS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    add_meta,
)


# --- sending ---------------------------------------------------------------------------------


def send(request: SignedRequest, *, http_client: httpx.Client | None = None) -> httpx.Response:
    """POST the exact bytes; :class:`SendError` when the URL cannot be reached."""
    client = http_client or httpx.Client(timeout=TIMEOUT_SECONDS)
    try:
        return client.post(request.url, content=request.body, headers=request.headers)
    except httpx.TimeoutException:
        raise SendError(f"{request.url} did not answer within {TIMEOUT_SECONDS:.0f} s") from None
    except httpx.TransportError as exc:
        raise SendError(
            f"{request.url} is unreachable ({type(exc).__name__}: {exc}); is "
            "`make dev` running, or is --url right?"
        ) from None
    finally:
        if http_client is None:
            client.close()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m tools.send_event",
        description="Post a correctly signed test delivery, like Meta's Lead Ads Testing Tool.",
    )
    subcommands = root.add_subparsers(dest="provider", required=True, metavar="PROVIDER")
    for add in PROVIDERS:
        add(subcommands)
    return root


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    build: Builder = args.build
    try:
        request = build(args, project_env() if env is None else env)
        print(f"POST {request.url}  ({request.summary})", flush=True)
        response = send(request)
    except SendError as err:
        print(f"send_event: {err}", file=sys.stderr)
        return 2
    print(f"HTTP {response.status_code} {response.reason_phrase}")
    print(response.text)
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
