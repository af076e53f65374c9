"""`make calendly-subscribe URL=… [SCOPE=organization|user] [RECREATE=1]`: subscribe the
calendly_webhook function to Calendly's invitee events, with a signing key stored where the
function reads it, and bring back a subscription Calendly disabled.

    python -m tools.ops.calendly_subscribe --url URL [--scope organization|user] [--recreate]
                                       [--env-file supabase/.env]

It finds the token's user and organization (``GET /users/me``), then the subscriptions for URL
(both scopes), and:

- **none**: generates a signing key (``secrets.token_urlsafe(32)``), creates the subscription for
  ``invitee.created``, ``invitee.canceled``, ``invitee_no_show.created`` and
  ``invitee_no_show.deleted`` (scope ``organization`` unless SCOPE says otherwise) and stores
  ``CALENDLY_SIGNING_KEY`` and ``CALENDLY_WEBHOOK_URL`` in the env file (created if missing,
  every other line kept, mode 0600). Calendly never shows a signing key again, and this tool
  never prints it.
- **an active one** (found, or Calendly answers 409 "Hook with this url already exists"): says it
  is already subscribed and changes nothing, the stored key included; it warns when Calendly is
  retrying failed deliveries, when events are missing or when no key is stored.
- **a disabled one** (Calendly disables a subscription after 24 h of failed deliveries; it must
  be deleted and created again), or any one with ``--recreate`` (one whose ``retry_started_at``
  is set, a lost key, a key to rotate): re-creates it with a new key, in this order:

  1. store ``CALENDLY_SIGNING_KEY=<new>,<old>`` (and the URL) before anything changes at Calendly,
     so that whatever happens next, the stored keys verify the deliveries of whichever
     subscription exists (the function takes comma-separated keys while one is rotated);
  2. create the new subscription first: where Calendly allows it, the old one keeps working
     until the new one exists, and a refusal (a plan without webhooks, a missing permission)
     leaves the old one untouched;
  3. Calendly refuses a second subscription for the same URL ("In one organization,
     subscriptions for the same user cannot share a URL": 409 "Hook with this url already
     exists"; that a disabled one still holds its URL is assumed, not documented), so on 409
     delete the old one and create the new one at once. The gap is one API call; a disabled
     subscription delivers nothing, so nothing is lost (with ``--recreate`` on an active one, a
     booking in that second is not delivered and Calendly's pending retries of the old one are
     dropped: fix the endpoint first);
  4. delete the old one if it still exists, then store ``CALENDLY_SIGNING_KEY=<new>`` alone: no
     subscription signs with the old key any more.

  If the create fails for sure, the env file is put back as it was (re-run once the cause is
  fixed); if it may have gone through (a timeout), the new key stays stored and a re-run finds
  the subscription.

The deployed function reads CALENDLY_SIGNING_KEY from Secret Manager when it starts: push the
new key (`make deploy FUNCTION=calendly_webhook`) right away (locally: restart `make dev`, which
keeps the key stored in .local/dev.env); until then its deliveries are refused (401) and Calendly
retries them for 24 h.

Settings come from the target (ENV=production: supabase/.env; ENV=local, the default:
.local/dev.env; the environment over either):
CALENDLY_API_TOKEN (a personal access token), CALENDLY_API_URL (https://api.calendly.com).
Exit codes: 0 subscribed (or already), 1 refused by Calendly (token, plan, permission), 2 cannot
run (no token, Calendly unreachable or failing, bad arguments).

https://developer.calendly.com/api-docs/calendly-api/webhooks/create-webhook-subscription,
https://community.calendly.com/developer-faq-62/why-am-i-not-receiving-webhook-data-how-does-a-webhook-become-disabled-548
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

from lib.errors import FailureClass, ProviderFailure
from tools.ops.calendly_api import CalendlyClient
from tools.ops.calendly_errors import SUBSCRIPTION_EXISTS
from tools.stack import envfile

EVENTS = (
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
)
SCOPES = ("organization", "user")
DEFAULT_API_URL = "https://api.calendly.com"
TIMEOUT_SECONDS = 15.0
KEY_NAME = "CALENDLY_SIGNING_KEY"
URL_NAME = "CALENDLY_WEBHOOK_URL"
TOKEN_MISSING = (
    "CALENDLY_API_TOKEN is not set: create a personal access token in Calendly > Integrations > "
    "API & Webhooks and set CALENDLY_API_TOKEN in supabase/.env (or the environment)"
)
# Failures that a re-run may not meet: nothing was refused.
_CANNOT_RUN = {
    FailureClass.TRANSIENT,
    FailureClass.AMBIGUOUS,
    FailureClass.THROTTLED,
    FailureClass.MALFORMED,
}


class CannotRun(Exception):
    """The tool cannot do its work (exit 2); the message says why and what to set."""


@dataclass(frozen=True)
class Account:
    """The token's user and organization (``GET /users/me``)."""

    user: str
    organization: str
    name: str


def client_from_env(env: Mapping[str, str], *, http: httpx.Client) -> CalendlyClient:
    """A Calendly client for CALENDLY_API_URL with CALENDLY_API_TOKEN; :class:`CannotRun`
    without a token."""
    token = (env.get("CALENDLY_API_TOKEN") or "").strip()
    if not token:
        raise CannotRun(TOKEN_MISSING)
    base = (env.get("CALENDLY_API_URL") or "").strip() or DEFAULT_API_URL
    return CalendlyClient(base_url=base, token=token, timeout=TIMEOUT_SECONDS, http_client=http)


def account(client: CalendlyClient) -> Account:
    me = client.me()
    return Account(
        user=str(me["uri"]),
        organization=str(me["current_organization"]),
        name=str(me.get("name") or me["uri"]),
    )


def subscriptions_for(client: CalendlyClient, who: Account, url: str) -> list[dict[str, Any]]:
    """The subscriptions whose callback URL is ``url``, in either scope. Listing the
    organization's needs an owner or admin: a permission failure there counts only when the
    user's own list fails too."""
    found: list[dict[str, Any]] = []
    refused: list[ProviderFailure] = []
    for scope in SCOPES:
        try:
            listed = client.list_subscriptions(
                who.organization, scope, who.user if scope == "user" else None
            )
        except ProviderFailure as err:
            if err.failure_class is not FailureClass.PERMISSION:
                raise
            refused.append(err)
            continue
        found.extend(s for s in listed if s.get("callback_url") == url)
    if len(refused) == len(SCOPES):
        raise refused[0]
    return found


def stored_keys(values: Mapping[str, str]) -> list[str]:
    return [key.strip() for key in values.get(KEY_NAME, "").split(",") if key.strip()]


def describe(subscription: Mapping[str, Any]) -> str:
    state = str(subscription.get("state") or "unknown")
    retrying = subscription.get("retry_started_at")
    extra = f", retrying failed deliveries since {retrying}" if retrying else ""
    return f"{subscription.get('uri')} ({state}, scope {subscription.get('scope')}{extra})"


@dataclass
class Subscriber:
    """One run: the client, where the key is stored, and where it reports."""

    client: CalendlyClient
    env_file: Path
    out: TextIO
    err: TextIO

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(f"calendly_subscribe: {text}", file=self.err, flush=True)

    def run(self, *, url: str, scope: str | None, recreate: bool) -> int:
        who = account(self.client)
        self.say(f"Calendly user {who.name}, organization {who.organization}")
        existing = subscriptions_for(self.client, who, url)
        active = [s for s in existing if s.get("state") == "active"]
        if active and scope and any(s.get("scope") != scope for s in active):
            # Asked for another scope than the active subscription's: never kept silently.
            self.say(f"Scope {scope} asked, {describe(active[0])} has another: re-creating it")
            recreate = True
        if active and not recreate:
            self.already_subscribed(active[0], url)
            return 0
        if existing:
            self.say(f"Re-creating {', '.join(describe(s) for s in existing)} with a new key")
        chosen = scope or str(existing[0].get("scope") if existing else "organization")
        return self.create(who, url=url, scope=chosen, old=existing)

    def already_subscribed(self, subscription: Mapping[str, Any], url: str) -> None:
        self.say(
            f"Already subscribed: {describe(subscription)} delivers "
            f"{', '.join(subscription.get('events') or [])} to {url}. Nothing changed; the "
            f"stored {KEY_NAME} is kept."
        )
        stored = envfile.read(self.env_file)
        missing = [event for event in EVENTS if event not in (subscription.get("events") or [])]
        if missing:
            self.warn(
                f"it lacks {', '.join(missing)}; --recreate (RECREATE=1) replaces it with one "
                "that has every event"
            )
        if subscription.get("retry_started_at"):
            self.warn(
                f"Calendly has been retrying failed deliveries since "
                f"{subscription['retry_started_at']}; after 24 h without one delivered it "
                "disables the subscription. Fix the endpoint (`make logs PROVIDER=calendly`); "
                "once disabled, run this again to re-create it"
            )
        if not stored_keys(stored):
            self.warn(
                f"no {KEY_NAME} in {self.env_file}: Calendly never shows a signing key again, so "
                "deliveries cannot be verified; --recreate (RECREATE=1) replaces the "
                "subscription with one whose key is stored"
            )
        if stored.get(URL_NAME) != url:
            self.warn(f"{self.env_file} does not set {URL_NAME}={url} (`make doctor` reads it)")

    def create(self, who: Account, *, url: str, scope: str, old: list[dict[str, Any]]) -> int:
        new_key = secrets.token_urlsafe(32)
        original = self.env_file.read_bytes() if self.env_file.exists() else None
        previous = stored_keys(envfile.read(self.env_file)) if old else []
        # 1. Both keys stored before anything changes at Calendly.
        envfile.update(self.env_file, {KEY_NAME: ",".join([new_key, *previous]), URL_NAME: url})
        created: dict[str, Any] | None = None
        remaining = list(old)

        def make() -> dict[str, Any]:
            return self.client.create_subscription(
                url=url,
                events=EVENTS,
                organization=who.organization,
                scope=scope,
                user=who.user if scope == "user" else None,
                signing_key=new_key,
            )

        try:
            try:
                created = make()  # 2. the new one first, where Calendly allows it
            except ProviderFailure as err:
                if err.code != SUBSCRIPTION_EXISTS:
                    raise
                if not remaining:
                    # Not in the lists this token may read, but Calendly has one: leave it be.
                    self.restore(original)
                    self.say(
                        f"Already subscribed: {err.message} Nothing changed; the stored "
                        f"{KEY_NAME} is kept."
                    )
                    return 0
                # 3. One subscription per URL: the old one goes, the new one follows at once.
                self.delete_all(remaining)
                created = make()
            self.delete_all(remaining)  # 4.
        except ProviderFailure as err:
            if err.code == "calendly_permission_denied" and scope == "organization":
                err.message += " SCOPE=user (--scope user) subscribes the token's own bookings."
            return self.failed(
                err, created=created, old=old, remaining=remaining, original=original
            )
        envfile.update(self.env_file, {KEY_NAME: new_key})
        self.say(
            f"Subscribed: {created['uri']} delivers {', '.join(EVENTS)} to {url} (scope "
            f"{scope}). Its signing key is stored in {self.env_file} as {KEY_NAME} (not shown)."
        )
        if self.env_file.resolve() == envfile.local_env_file().resolve():
            self.say(
                "Next: restart `make dev` (it keeps the key from "
                f"{self.env_file}), then `make doctor`."
            )
        else:
            self.say(
                "Next: give the deployed function the key: `make deploy "
                f"FUNCTION=calendly_webhook` (it reads {self.env_file}), then `make doctor "
                "ENV=production`."
            )
        return 0

    def delete_all(self, subscriptions: list[dict[str, Any]]) -> None:
        while subscriptions:
            uri = str(subscriptions[0]["uri"])
            try:
                self.client.delete_subscription(uri)
            except ProviderFailure as err:
                if err.failure_class is not FailureClass.NOT_FOUND:
                    raise
            self.say(f"Deleted {uri}")
            subscriptions.pop(0)

    def failed(
        self,
        err: ProviderFailure,
        *,
        created: dict[str, Any] | None,
        old: list[dict[str, Any]],
        remaining: list[dict[str, Any]],
        original: bytes | None,
    ) -> int:
        if created is not None:
            # The new one exists; an old one could not be deleted: both keys stay stored.
            self.warn(
                f"created {created['uri']}, but deleting {remaining[0]['uri']} failed: "
                f"{err.message} Both keys stay in {KEY_NAME}, so deliveries of either verify."
            )
        elif err.failure_class is FailureClass.AMBIGUOUS:
            self.warn(
                f"{err.message} The new key stays stored in {self.env_file}: run this again, "
                "it finds the subscription if it was created."
            )
        else:
            self.restore(original)
            gone = len(old) - len(remaining)
            self.warn(
                f"{err.message} {self.env_file} is as it was"
                + (
                    f"; the {gone} old subscription(s) were deleted, so run this again once "
                    "the cause is fixed."
                    if gone
                    else "."
                )
            )
        return 2 if err.failure_class in _CANNOT_RUN else 1

    def restore(self, original: bytes | None) -> None:
        if original is None:
            self.env_file.unlink(missing_ok=True)
        else:
            envfile.replace(self.env_file, original.decode())


def webhook_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an absolute URL (https://<project>.supabase.co/functions/v1/"
            "calendly_webhook, or wherever calendly_webhook is served)"
        )
    if parts.scheme != "https" and not envfile.is_local(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not https: Calendly delivers bookings, with people's names and emails, "
            "only to an https URL"
        )
    return text


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m tools.ops.calendly_subscribe",
        description="Subscribe calendly_webhook to Calendly's invitee events (see the module "
        "docstring for how a disabled subscription is re-created).",
    )
    root.add_argument("--url", required=True, type=webhook_url, help="the function's public URL")
    root.add_argument(
        "--scope",
        choices=SCOPES,
        help="organization (every booking in the organization; needs an owner or admin) or user "
        "(the token's own bookings); default: the existing subscription's, else organization",
    )
    root.add_argument(
        "--recreate",
        action="store_true",
        help="re-create an active subscription too (retrying deliveries, a lost or rotated key)",
    )
    root.add_argument(
        "--env-file",
        type=Path,
        help="where the signing key is stored (default: the target's file: supabase/.env for "
        "ENV=production, .local/dev.env for ENV=local)",
    )
    return root


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    http: httpx.Client | None = None,
) -> int:
    """Run with ``argv``; ``env`` (default: the environment over the env file over
    .local/dev.env), the output streams and the HTTP client may be given (tests)."""
    args = parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    if env is None:
        try:
            chosen = envfile.target()
        except envfile.TargetError as exc:
            print(f"calendly_subscribe: {exc}", file=err)
            return 2
        print(chosen.line(), file=err)
        if chosen.name == "local" and not chosen.env.get("CALENDLY_API_URL"):
            print(
                "calendly_subscribe: ENV=local has no local Calendly API (CALENDLY_API_URL): "
                "subscribe the deployed function with ENV=production",
                file=err,
            )
            return 2
        env = chosen.env
        args.env_file = args.env_file or Path(chosen.source)
    args.env_file = args.env_file or envfile.SECRETS_FILE
    client = http or httpx.Client(timeout=TIMEOUT_SECONDS)
    try:
        subscriber = Subscriber(client_from_env(env, http=client), args.env_file, out, err)
        return subscriber.run(url=args.url, scope=args.scope, recreate=args.recreate)
    except CannotRun as exc:
        print(f"calendly_subscribe: {exc}", file=err)
        return 2
    except ProviderFailure as exc:
        print(f"calendly_subscribe: {exc.message}", file=err)
        return 2 if exc.failure_class in _CANNOT_RUN else 1
    finally:
        if http is None:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
