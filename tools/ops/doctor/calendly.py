"""Calendly's checks, when CALENDLY_API_TOKEN is set: the token, the webhook subscription, and
failing deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lib.errors import ProviderFailure
from tools.ops import calendly_subscribe
from tools.ops.doctor.core import FAIL, OK, SKIP, WARN, Check, Context, Result

_CALENDLY_UNSET = "CALENDLY_API_TOKEN is not set (Calendly not connected)"
_SUBSCRIBE = "make calendly-subscribe URL="
RETRY_WINDOW_HOURS = 24  # Calendly disables a subscription after 24 h of failed deliveries


def _calendly_login(ctx: Context) -> calendly_subscribe.Account | ProviderFailure | None:
    """The token's Calendly account (``GET /users/me``, asked once), its failure, or None when
    CALENDLY_API_TOKEN is unset."""
    if ctx.missing("CALENDLY_API_TOKEN"):
        return None
    if "account" not in ctx._calendly:
        client = calendly_subscribe.client_from_env(ctx.env, http=ctx.http)
        ctx._calendly["client"] = client
        try:
            ctx._calendly["account"] = calendly_subscribe.account(client)
        except ProviderFailure as err:
            ctx._calendly["account"] = err
    found: calendly_subscribe.Account | ProviderFailure = ctx._calendly["account"]
    return found


def _calendly_account(ctx: Context, what: str) -> calendly_subscribe.Account | Result:
    """The token's account, or the skip line of a check that needs it."""
    who = _calendly_login(ctx)
    if who is None:
        return Result(SKIP, f"{what}: not checked, {_CALENDLY_UNSET}")
    if isinstance(who, ProviderFailure):
        return Result(SKIP, f"{what}: not checked, the Calendly token does not work")
    return who


def _calendly_subscriptions(ctx: Context, what: str) -> list[dict[str, Any]] | Result:
    """The subscriptions for CALENDLY_WEBHOOK_URL (listed once), or the line to print."""
    who = _calendly_account(ctx, what)
    if isinstance(who, Result):
        return who
    url = ctx.value("CALENDLY_WEBHOOK_URL")
    if not url:
        return Result(
            FAIL,
            f"{what}: CALENDLY_WEBHOOK_URL is not set, so the subscription cannot be checked; "
            f"run `{_SUBSCRIBE}<functions base>/calendly_webhook` (it subscribes and sets it)",
        )
    if "subscriptions" not in ctx._calendly:
        try:
            ctx._calendly["subscriptions"] = calendly_subscribe.subscriptions_for(
                ctx._calendly["client"], who, url
            )
        except ProviderFailure as err:
            ctx._calendly["subscriptions"] = err
    found = ctx._calendly["subscriptions"]
    if isinstance(found, ProviderFailure):
        return Result(FAIL, f"{what}: listing the subscriptions failed: {found.message}")
    return list(found)


def check_calendly_token(ctx: Context) -> Result:
    """CALENDLY_API_TOKEN works: ``GET /users/me`` answers the user and organization."""
    who = _calendly_login(ctx)
    if who is None:
        return Result(SKIP, f"Calendly token: not checked, {_CALENDLY_UNSET}")
    if isinstance(who, ProviderFailure):
        return Result(FAIL, f"Calendly token: {who.message}")
    return Result(OK, f"Calendly token: works (user {who.name}, organization {who.organization})")


def check_calendly_subscription(ctx: Context) -> Result:
    """A subscription for CALENDLY_WEBHOOK_URL exists, is active, has the invitee events, and
    its key is stored (CALENDLY_SIGNING_KEY)."""
    found = _calendly_subscriptions(ctx, "Calendly subscription")
    if isinstance(found, Result):
        return found
    url = ctx.value("CALENDLY_WEBHOOK_URL")
    active = [s for s in found if s.get("state") == "active"]
    if not found:
        return Result(
            FAIL,
            f"Calendly subscription: none for {url}: no booking reaches calendly_webhook; run "
            f"`{_SUBSCRIBE}{url}`",
        )
    if not active:
        return Result(
            FAIL,
            f"Calendly subscription: {found[0].get('uri')} for {url} is "
            f"{found[0].get('state')}: Calendly delivers nothing to it (it disables a "
            "subscription after 24 h of failed deliveries). Fix the endpoint (`make logs "
            f"PROVIDER=calendly`), then run `{_SUBSCRIBE}{url}` (it re-creates it with a new key)",
        )
    subscription = active[0]
    if ctx.missing("CALENDLY_SIGNING_KEY"):
        return Result(
            FAIL,
            f"Calendly subscription: active, but CALENDLY_SIGNING_KEY is not set, so every "
            "delivery is refused (401); Calendly never shows a signing key again: run "
            f"`{_SUBSCRIBE}{url} RECREATE=1`",
        )
    missing = [e for e in calendly_subscribe.EVENTS if e not in (subscription.get("events") or [])]
    if missing:
        return Result(
            WARN,
            f"Calendly subscription: active for {url}, but without {', '.join(missing)}; "
            f"`{_SUBSCRIBE}{url} RECREATE=1` re-creates it with every event",
        )
    return Result(
        OK,
        f"Calendly subscription: active for {url} (scope {subscription.get('scope')}, "
        f"{len(subscription.get('events') or [])} events)",
    )


def check_calendly_retries(ctx: Context) -> Result:
    """The active subscription's ``retry_started_at`` is empty; when Calendly is retrying failed
    deliveries (it disables the subscription after 24 h of them), a warning. A retry episode
    that began more than 24 h ago on a subscription still active has ended with a delivery."""
    what = "Calendly deliveries"
    found = _calendly_subscriptions(ctx, what)
    if isinstance(found, Result):
        return found if found.status == SKIP else Result(SKIP, f"{what}: not checked (above)")
    active = [s for s in found if s.get("state") == "active"]
    if not active:
        return Result(SKIP, f"{what}: not checked, no active subscription")
    started = active[0].get("retry_started_at")
    if not started:
        return Result(OK, f"{what}: none failing (retry_started_at is empty)")
    try:
        hours = (ctx.now - datetime.fromisoformat(str(started)).timestamp()) / 3600
    except ValueError:
        hours = 0.0
    if hours >= RETRY_WINDOW_HOURS:
        return Result(
            OK,
            f"{what}: retries began {started} and the subscription is still active, so "
            "deliveries succeed again",
        )
    url = ctx.value("CALENDLY_WEBHOOK_URL")
    return Result(
        WARN,
        f"{what}: Calendly is retrying failed deliveries since {started} ({hours:.0f} h ago); "
        f"after {RETRY_WINDOW_HOURS} h without a successful one it disables the subscription. "
        "See `make logs PROVIDER=calendly STATUS=error` and fix the endpoint; once disabled, "
        f"`{_SUBSCRIBE}{url}` re-creates it",
    )


# --- ElevenLabs: skipped when ELEVENLABS_API_KEY is unset (a Meta-only deployment) -----------


# This provider's checks, in the order they run.
CHECKS: tuple[Check, ...] = (
    check_calendly_token,
    check_calendly_subscription,
    check_calendly_retries,
)
