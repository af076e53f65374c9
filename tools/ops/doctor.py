"""`make doctor`: check the configuration, the database, the migrations, the Meta token and, when
CALENDLY_API_TOKEN is set, the Calendly token and subscription; when ELEVENLABS_API_KEY is set,
the key, credits, agent, phone number, webhook secret, and whether post-call webhooks arrive.

    python -m tools.ops.doctor

Prints one line per check, ``ok``, ``warn``, ``FAIL`` or ``skip`` (not checked: something it
needs is missing or failed above) and exits 1 when any check FAILs, else 0. Settings come from
:func:`tools.stack.envfile.project_env` (the environment wins over supabase/.env and
.local/dev.env).

Each check is a function of a :class:`Context` returning a :class:`Result` ``(status, message)``;
:data:`CHECKS` lists them in order, so tests can call one at a time.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psycopg

from lib.db import Database
from lib.errors import AppError, ConfigError, FailureClass, ProviderFailure
from meta_webhook.graph_api import GraphClient
from place_call.elevenlabs_api import ElevenLabsClient
from tools.ops import calendly_subscribe
from tools.settings import Operator, everything
from tools.stack.envfile import ROOT, project_env

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"

REQUIRED = (
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "META_ACCESS_TOKEN",
    "INTERNAL_TOKEN",
    "META_PAGE_ID",
)
MIGRATIONS = ROOT / "supabase" / "migrations"
_MIGRATION_NAME = re.compile(r"^([0-9]+)_.*\.sql$")
LEADS_SCOPE = "leads_retrieval"
FAIL_DAYS = 7  # a token expiring this soon (or already expired) is a failure
WARN_DAYS = 30
DAY = 86_400


class Result(NamedTuple):
    status: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4} {self.message}"


@dataclass
class Context:
    """What the checks share: the settings, one HTTP client, and the debug_token answer."""

    env: Mapping[str, str]
    now: float = field(default_factory=time.time)
    migrations_dir: Path = MIGRATIONS
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))
    _token: dict[str, Any] | ProviderFailure | None = field(default=None, init=False, repr=False)
    # The Calendly checks' answers (the account, the subscriptions for the URL), fetched once.
    _calendly: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def value(self, name: str) -> str:
        return (self.env.get(name) or "").strip()

    def missing(self, *names: str) -> list[str]:
        return [name for name in names if not self.value(name)]

    @property
    def config(self) -> Any:
        """The declared settings (every function's and the tools'), read from ``env``; an
        invalid value (check_variables reports it) is left at its default."""
        declared = everything()
        try:
            return declared.load(self.env)
        except ConfigError as err:
            return declared.load({k: v for k, v in self.env.items() if k not in err.invalid})

    def database(self) -> Database:
        """The database API of SUPABASE_URL with SUPABASE_SERVICE_ROLE_KEY, on the shared client."""
        return Database(
            self.value("SUPABASE_URL"),
            self.value("SUPABASE_SERVICE_ROLE_KEY"),
            http_client=self.http,
        )

    def graph(self) -> GraphClient:
        config = self.config
        return GraphClient(
            base_url=config.meta_graph_url,
            version=config.meta_graph_version,
            access_token=self.value("META_ACCESS_TOKEN"),
            app_secret=config.secrets("META_APP_SECRET")[0],
            timeout=config.http_timeout_seconds,
            http_client=self.http,
        )

    def token_info(self) -> dict[str, Any]:
        """``debug_token``'s ``data`` for META_ACCESS_TOKEN (fetched once); ProviderFailure if it
        failed."""
        if self._token is None:
            token = self.value("META_ACCESS_TOKEN")
            try:
                answer = self.graph().get("debug_token", input_token=token)
                self._token = dict(answer.get("data") or {})
            except ProviderFailure as err:
                self._token = err
        if isinstance(self._token, ProviderFailure):
            raise self._token
        return self._token


Check = Callable[[Context], Result]


def _skipped(what: str, missing: list[str]) -> Result:
    return Result(SKIP, f"{what}: not checked, needs {', '.join(missing)}")


def check_variables(ctx: Context) -> Result:
    """Every required variable is set (all missing names at once) and the numbers parse."""
    missing = ctx.missing(*REQUIRED)
    problems = [f"missing {', '.join(missing)}"] if missing else []
    try:
        everything().load(ctx.env)
    except ConfigError as err:
        problems.append("invalid " + ", ".join(f"{n} ({why})" for n, why in err.invalid.items()))
    if problems:
        return Result(
            FAIL,
            f"variables: {'; '.join(problems)} (set them in supabase/.env or "
            "the environment; supabase/.env.example lists them all)",
        )
    return Result(OK, f"variables: all {len(REQUIRED)} required variables are set")


def check_database_api(ctx: Context) -> Result:
    """The API answers RPC meta_claim_due(p_limit => 0): migrations applied, key accepted."""
    missing = ctx.missing("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    if missing:
        return _skipped("database API", missing)
    url = ctx.value("SUPABASE_URL")
    try:
        answer = ctx.database().rpc("meta_claim_due", {"p_limit": 0})
    except AppError as err:
        return Result(FAIL, f"database API at {url}: {err.message}{_db_hint(err)}")
    remaining = answer.get("remaining") if isinstance(answer, dict) else None
    if remaining is None:
        return Result(
            FAIL,
            f"database API at {url}: meta_claim_due answered {answer!r}, not "
            "{claimed, remaining}; is SUPABASE_URL the project's API URL?",
        )
    return Result(
        OK,
        f"database API at {url}: meta_claim_due answered ({remaining} leads due for a Graph fetch)",
    )


def _db_hint(err: AppError) -> str:
    code = str(err.details.get("db_code") or "")
    if code.startswith("PGRST3") or code == "42501":
        return (
            " SUPABASE_SERVICE_ROLE_KEY is not accepted: copy the service_role key from "
            "Project Settings > API."
        )
    if code == "PGRST202":
        return " The function is missing: apply supabase/migrations (`supabase db push`)."
    return ""


def migration_versions(directory: Path) -> dict[str, str]:
    """version -> file name of each ``<version>_<name>.sql`` (other names the Supabase CLI skips
    too)."""
    found = (_MIGRATION_NAME.match(path.name) for path in sorted(directory.glob("*.sql")))
    return {match.group(1): match.group(0) for match in found if match}


def check_migrations(ctx: Context) -> Result:
    """Every file in supabase/migrations is in supabase_migrations.schema_migrations."""
    database_url = ctx.value("DATABASE_URL")
    if not database_url:
        return Result(
            SKIP,
            "migrations: not compared, DATABASE_URL is not set (the database "
            "API check above still proves meta_claim_due exists)",
        )
    files = migration_versions(ctx.migrations_dir)
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute("select version from supabase_migrations.schema_migrations")
            applied = {str(version) for (version,) in rows}
    except psycopg.errors.UndefinedTable:
        applied = set()
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Result(FAIL, f"migrations: cannot read DATABASE_URL's database: {reason}")
    unapplied = [name for version, name in files.items() if version not in applied]
    if unapplied:
        return Result(
            FAIL,
            f"migrations: {len(unapplied)} not applied: {', '.join(unapplied)} "
            "(`supabase db push` or `make deploy` applies them)",
        )
    unknown = sorted(applied - set(files))
    if unknown:
        return Result(
            WARN,
            f"migrations: all {len(files)} applied, but the database also has "
            f"{', '.join(unknown)}, which supabase/migrations does not: is this "
            "checkout behind?",
        )
    return Result(OK, f"migrations: all {len(files)} in supabase/migrations are applied")


_TOKEN_NEEDS = ("META_ACCESS_TOKEN", "META_APP_SECRET")


def check_token_valid(ctx: Context) -> Result:
    """Graph debug_token says META_ACCESS_TOKEN is valid."""
    missing = ctx.missing(*_TOKEN_NEEDS)
    if missing:
        return _skipped("Meta token", missing)
    try:
        info = ctx.token_info()
    except ProviderFailure as err:
        return Result(FAIL, f"Meta token: debug_token failed: {err.message}")
    if not info.get("is_valid"):
        # debug_token explains an invalid token in data.error.message.
        error = info.get("error")
        reason = f" ({error.get('message')})" if isinstance(error, dict) else ""
        return Result(
            FAIL,
            f"Meta token: debug_token says META_ACCESS_TOKEN is not valid{reason}; "
            "generate a new long-lived Page access token",
        )
    return Result(
        OK,
        f"Meta token: valid ({info.get('type', 'token')} token of app "
        f"{info.get('application') or info.get('app_id', '?')})",
    )


def _valid_token_info(ctx: Context, what: str) -> dict[str, Any] | Result:
    """debug_token's data, or the skip line when the token check above did not pass."""
    missing = ctx.missing(*_TOKEN_NEEDS)
    if missing:
        return _skipped(what, missing)
    try:
        info = ctx.token_info()
    except ProviderFailure:
        return Result(SKIP, f"{what}: not checked, debug_token failed")
    if not info.get("is_valid"):
        return Result(SKIP, f"{what}: not checked, the token is not valid")
    return info


def _expiry(label: str, timestamp: int, now: float) -> tuple[str, str] | None:
    """(status, text) for an expiry ``timestamp`` (0: never), None when far enough away."""
    if not timestamp:
        return None
    when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    left = timestamp - now
    if left <= 0:
        return FAIL, f"{label} expired on {when}"
    days = left / DAY
    text = (
        f"{label} expires on {when} (in {days:.0f} days)"
        if days >= 1
        else (f"{label} expires on {when} (in {left / 3600:.0f} hours)")
    )
    if days < FAIL_DAYS:
        return FAIL, text
    if days < WARN_DAYS:
        return WARN, text
    return None


def check_token_expiry(ctx: Context) -> Result:
    """FAIL when the token (or its data access) expires within 7 days, warn within 30."""
    info = _valid_token_info(ctx, "Meta token expiry")
    if isinstance(info, Result):
        return info
    findings = [
        found
        for found in (
            _expiry("the token", int(info.get("expires_at") or 0), ctx.now),
            _expiry("its data access", int(info.get("data_access_expires_at") or 0), ctx.now),
        )
        if found is not None
    ]
    if not findings:
        expires = int(info.get("expires_at") or 0)
        when = (
            "never expires"
            if not expires
            else (f"expires on {datetime.fromtimestamp(expires, UTC):%Y-%m-%d}")
        )
        return Result(OK, f"Meta token expiry: {when}")
    status = FAIL if any(found[0] == FAIL for found in findings) else WARN
    return Result(
        status,
        f"Meta token expiry: {'; '.join(text for _, text in findings)}; "
        "renew META_ACCESS_TOKEN with a long-lived Page access token",
    )


def check_token_scopes(ctx: Context) -> Result:
    """The token has the leads_retrieval permission."""
    info = _valid_token_info(ctx, "Meta token scopes")
    if isinstance(info, Result):
        return info
    scopes = [str(scope) for scope in info.get("scopes") or []]
    if LEADS_SCOPE not in scopes:
        return Result(
            FAIL,
            f"Meta token scopes: {LEADS_SCOPE} is missing (has: "
            f"{', '.join(scopes) or 'none'}); leads cannot be fetched. Grant it "
            "when generating the token",
        )
    return Result(OK, f"Meta token scopes: {LEADS_SCOPE} granted")


def check_page_subscription(ctx: Context) -> Result:
    """META_PAGE_ID's subscribed_apps lists an app subscribed to the leadgen field."""
    missing = ctx.missing("META_PAGE_ID", *_TOKEN_NEEDS)
    if missing:
        return _skipped("page subscription", missing)
    page_id = ctx.value("META_PAGE_ID")
    try:
        apps = ctx.graph().get(f"{page_id}/subscribed_apps").get("data") or []
    except ProviderFailure as err:
        return Result(FAIL, f"page {page_id} subscription: subscribed_apps failed: {err.message}")
    leadgen = [app for app in apps if "leadgen" in (app.get("subscribed_fields") or [])]
    if not leadgen:
        names = ", ".join(str(app.get("name") or app.get("id")) for app in apps) or "none"
        return Result(
            FAIL,
            f"page {page_id} subscription: no app is subscribed to leadgen "
            f"(subscribed apps: {names}); POST /{page_id}/subscribed_apps"
            "?subscribed_fields=leadgen with the Page access token",
        )
    names = ", ".join(str(app.get("name") or app.get("id")) for app in leadgen)
    return Result(OK, f"page {page_id} subscription: subscribed to leadgen ({names})")


def check_pending_leads(ctx: Context) -> Result:
    """Leads that failed on the token or a permission wait for their backoff; once the token
    checks above pass, `make retry` fetches them now."""
    missing = ctx.missing("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    if missing:
        return _skipped("pending leads", missing)
    database = ctx.database()
    try:
        summary = database.rpc("meta_pending_summary", {})
    except AppError as err:
        return Result(SKIP, f"pending leads: not checked ({err.message})")
    waiting = int(summary.get("credentials") or 0)
    pending = int(summary.get("pending") or 0)
    if not waiting:
        return Result(OK, f"pending leads: {pending} waiting for a Graph fetch, none on a token")
    token_ok = all(check(ctx).status == OK for check in (check_token_valid, check_token_scopes))
    if token_ok:
        return Result(
            WARN,
            f"pending leads: {waiting} failed on the token or a permission and wait for their "
            "next retry (up to an hour); the token works now: run `make retry` to fetch them now",
        )
    return Result(
        WARN,
        f"pending leads: {waiting} wait for a working token; fix the token (above), then run "
        "`make retry`",
    )


# --- Calendly: skipped when CALENDLY_API_TOKEN is unset (a Meta-only deployment) -------------

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

_ELEVENLABS_UNSET = "ELEVENLABS_API_KEY is not set (ElevenLabs not connected)"
# ELEVENLABS_MIN_CREDITS: fewer credits left than this is a warning.
DEFAULT_MIN_CREDITS: int = Operator.model_fields["elevenlabs_min_credits"].default
DEFAULT_AGENT_NUMBER = "+17863212663"  # ELEVENLABS_PHONE_NUMBER: the number leads see calling
_AGENT_TOOLS = "ElevenLabs > Agents > the agent > Tools > System tools"
_WEBHOOK_SETUP = (
    "in ElevenLabs > Agents > Settings > Post-call webhook, create a webhook (HMAC) to "
    "<functions base>/place_call/webhook with the transcript and call initiation failure "
    "events, and set its secret"
)


def _elevenlabs(ctx: Context, what: str) -> ElevenLabsClient | Result:
    """The client for ELEVENLABS_API_KEY, or the line to print instead (skip when unset)."""
    if ctx.missing("ELEVENLABS_API_KEY"):
        return Result(SKIP, f"{what}: not checked, {_ELEVENLABS_UNSET}")
    config = ctx.config
    try:
        return ElevenLabsClient(
            base_url=config.elevenlabs_api_url,
            api_key=ctx.value("ELEVENLABS_API_KEY"),
            timeout=config.http_timeout_seconds,
            telephony=config.elevenlabs_telephony,
            http_client=ctx.http,
        )
    except ConfigError:
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_TELEPHONY is {config.elevenlabs_telephony!r}, not twilio or "
            "sip_trunk (the provider of the number in ElevenLabs > Phone Numbers)",
        )


def _elevenlabs_read(
    ctx: Context, what: str, read: Callable[[ElevenLabsClient], dict[str, Any]]
) -> dict[str, Any] | Result:
    """``read(client)``'s answer, or the line to print: skip when the key is unset or refused
    (the key check says so), FAIL with the failure's message otherwise."""
    client = _elevenlabs(ctx, what)
    if isinstance(client, Result):
        return client
    try:
        return read(client)
    except ProviderFailure as err:
        if err.failure_class == FailureClass.AUTH:
            return Result(SKIP, f"{what}: not checked, the ElevenLabs API key does not work")
        return Result(FAIL, f"{what}: {err.message}")


def check_elevenlabs_key(ctx: Context) -> Result:
    """ELEVENLABS_API_KEY works: ``GET /v1/user/subscription`` answers."""
    what = "ElevenLabs API key"
    client = _elevenlabs(ctx, what)
    if isinstance(client, Result):
        return client
    try:
        plan = client.subscription()
    except ProviderFailure as err:
        if err.failure_class == FailureClass.PERMISSION:
            return Result(
                WARN,
                f"{what}: accepted, but it may not read the subscription, so credits cannot be "
                f"checked ({err.details.get('elevenlabs_message') or err.message}); give the key "
                "User: Read in ElevenLabs > Developers > API Keys",
            )
        return Result(FAIL, f"{what}: {err.message}")
    return Result(
        OK, f"{what}: works (plan {plan.get('tier', '?')}, status {plan.get('status', '?')})"
    )


def _min_credits(ctx: Context) -> int | None:
    raw = ctx.value("ELEVENLABS_MIN_CREDITS")
    if not raw:
        return DEFAULT_MIN_CREDITS
    try:
        return int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        return None


def check_elevenlabs_credits(ctx: Context) -> Result:
    """Credits left (``character_limit - character_count``): FAIL at none, warn under
    ELEVENLABS_MIN_CREDITS (default 10,000)."""
    what = "ElevenLabs credits"
    client = _elevenlabs(ctx, what)
    if isinstance(client, Result):
        return client
    try:
        plan = client.subscription()
    except ProviderFailure:
        return Result(SKIP, f"{what}: not checked, the subscription could not be read (above)")
    used, limit = plan.get("character_count"), plan.get("character_limit")
    if not (isinstance(used, int) and isinstance(limit, int)):
        return Result(
            WARN,
            f"{what}: the subscription has no character_count and character_limit; check "
            "the balance in ElevenLabs > Subscription",
        )
    left = limit - used
    reset = plan.get("next_character_count_reset_unix")
    resets = (
        f"; the plan renews on {datetime.fromtimestamp(reset, UTC):%Y-%m-%d}"
        if isinstance(reset, int) and reset > 0
        else ""
    )
    counts = f"{max(left, 0):,} left of {limit:,}{resets}"
    # Usage-based billing: a workspace that may go past its plan's credits goes on calling
    # (can_extend_character_limit with max_credit_limit_extension, an int or "unlimited").
    extension = plan.get("max_credit_limit_extension")
    if plan.get("can_extend_character_limit") is True:
        if extension == "unlimited":
            return Result(OK, f"{what}: {counts}; usage-based billing goes on past the plan")
        if isinstance(extension, int) and not isinstance(extension, bool) and extension > 0:
            left += extension
            counts += f", and {extension:,} more of usage-based billing"
    if left <= 0:
        return Result(
            FAIL,
            f"{what}: none left ({counts}): every call fails until you top up in "
            "ElevenLabs > Subscription (or raise the plan)",
        )
    minimum = _min_credits(ctx)
    if minimum is None:
        return Result(
            WARN,
            f"{what}: {counts}; ELEVENLABS_MIN_CREDITS is not a whole number, so the balance is "
            "not compared with it",
        )
    if left < minimum:
        return Result(
            WARN,
            f"{what}: {counts}, under ELEVENLABS_MIN_CREDITS ({minimum:,}); top up in "
            "ElevenLabs > Subscription before calls start failing",
        )
    return Result(OK, f"{what}: {counts}")


def has_voicemail_detection(agent: dict[str, Any]) -> bool:
    """The agent has the voicemail_detection system tool: in ``prompt.built_in_tools`` or as a
    ``{type: system, name: voicemail_detection}`` entry of ``prompt.tools``."""
    conversation = agent.get("conversation_config")
    settings = conversation.get("agent") if isinstance(conversation, dict) else None
    prompt = settings.get("prompt") if isinstance(settings, dict) else None
    if not isinstance(prompt, dict):
        return False
    built_in = prompt.get("built_in_tools")
    if isinstance(built_in, dict) and isinstance(built_in.get("voicemail_detection"), dict):
        return True
    tools = prompt.get("tools")
    return any(
        isinstance(tool, dict)
        and tool.get("type") == "system"
        and "voicemail_detection"
        in (tool.get("name"), (tool.get("params") or {}).get("system_tool_type"))
        for tool in (tools if isinstance(tools, list) else [])
    )


def check_elevenlabs_agent(ctx: Context) -> Result:
    """ELEVENLABS_AGENT_ID is an agent of the account, with voicemail_detection enabled."""
    what = "ElevenLabs agent"
    if not ctx.missing("ELEVENLABS_API_KEY") and ctx.missing("ELEVENLABS_AGENT_ID"):
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_AGENT_ID is not set, so no call can be placed; copy the "
            "agent's id (agent_…) from ElevenLabs > Agents",
        )
    agent_id = ctx.value("ELEVENLABS_AGENT_ID")
    agent = _elevenlabs_read(ctx, what, lambda client: client.agent(agent_id))
    if isinstance(agent, Result):
        return agent
    name = f"{agent.get('name') or '?'} ({agent_id})"
    if not has_voicemail_detection(agent):
        return Result(
            FAIL,
            f"{what}: {name} does not have voicemail_detection, so a call that reaches a "
            "voicemail talks to the greeting and counts as answered; enable Voicemail "
            f"detection in {_AGENT_TOOLS}",
        )
    return Result(OK, f"{what}: {name} exists, with voicemail_detection")


def check_elevenlabs_phone_number(ctx: Context) -> Result:
    """ELEVENLABS_PHONE_NUMBER_ID exists, can call out, is on ELEVENLABS_TELEPHONY, and is the
    expected number (ELEVENLABS_PHONE_NUMBER, default +17863212663; a warning otherwise)."""
    what = "ElevenLabs phone number"
    if not ctx.missing("ELEVENLABS_API_KEY") and ctx.missing("ELEVENLABS_PHONE_NUMBER_ID"):
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_PHONE_NUMBER_ID is not set, so no call can be placed; copy the "
            f"id of {ctx.value('ELEVENLABS_PHONE_NUMBER') or DEFAULT_AGENT_NUMBER} from "
            "ElevenLabs > Phone Numbers",
        )
    number_id = ctx.value("ELEVENLABS_PHONE_NUMBER_ID")
    number = _elevenlabs_read(ctx, what, lambda client: client.phone_number(number_id))
    if isinstance(number, Result):
        return number
    actual = str(number.get("phone_number") or "?")
    provider = number.get("provider")
    telephony = ctx.config.elevenlabs_telephony
    if number.get("supports_outbound") is False:
        return Result(
            FAIL,
            f"{what}: {actual} ({number_id}) cannot place outbound calls; enable outbound in "
            "ElevenLabs > Phone Numbers (Twilio: a number of the account; SIP: the trunk's "
            "outbound settings)",
        )
    if provider not in ("twilio", "sip_trunk"):
        return Result(
            FAIL,
            f"{what}: {actual} ({number_id}) is a {provider or 'unknown'} number, but place_call "
            "calls through ElevenLabs' Twilio or SIP trunk outbound call only; use a Twilio or "
            "SIP trunk number (ElevenLabs > Phone Numbers)",
        )
    if provider != telephony:
        return Result(
            FAIL,
            f"{what}: {actual} ({number_id}) is a {provider} number but ELEVENLABS_TELEPHONY is "
            f"{telephony}; set ELEVENLABS_TELEPHONY={provider}",
        )
    expected = ctx.value("ELEVENLABS_PHONE_NUMBER") or DEFAULT_AGENT_NUMBER
    if actual != expected:
        return Result(
            WARN,
            f"{what}: {number_id} is {actual}, not {expected}: leads see {actual} calling. Set "
            f"ELEVENLABS_PHONE_NUMBER_ID to the id of {expected} (ElevenLabs > Phone Numbers), "
            f"or ELEVENLABS_PHONE_NUMBER={actual} if the number changed",
        )
    return Result(OK, f"{what}: {number_id} is {actual} ({provider or '?'})")


def check_elevenlabs_webhook_secret(ctx: Context) -> Result:
    """ELEVENLABS_WEBHOOK_SECRET is set: without it every post-call webhook is refused."""
    what = "ElevenLabs webhook secret"
    if ctx.missing("ELEVENLABS_API_KEY"):
        return Result(SKIP, f"{what}: not checked, {_ELEVENLABS_UNSET}")
    if ctx.missing("ELEVENLABS_WEBHOOK_SECRET"):
        return Result(
            FAIL,
            f"{what}: ELEVENLABS_WEBHOOK_SECRET is not set, so every post-call webhook is "
            "refused and no call outcome (voicemail, busy, no answer) is recorded; "
            + _WEBHOOK_SETUP,
        )
    count = len([s for s in ctx.value("ELEVENLABS_WEBHOOK_SECRET").split(",") if s.strip()])
    return Result(
        OK,
        f"{what}: set ({count} secret{'s' if count != 1 else ''}; post-call webhooks to "
        "place_call/webhook are verified with it)",
    )


def check_call_outcomes(ctx: Context) -> Result:
    """Post-call webhooks arrive: no call of the last 24 h needed its outcome read from the
    conversation API (place_call's sweep does that when a webhook never comes)."""
    what = "ElevenLabs call outcomes"
    if ctx.missing("ELEVENLABS_API_KEY"):
        return Result(SKIP, f"{what}: not checked, {_ELEVENLABS_UNSET}")
    missing = ctx.missing("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    if missing:
        return _skipped(what, missing)
    database = ctx.database()
    after = ctx.config.call_reconcile_after_minutes
    try:
        summary = database.rpc("call_outcome_summary", {"p_after_minutes": after})
    except AppError as err:
        return Result(SKIP, f"{what}: not checked ({err.message})")
    reconciled, waiting = int(summary.get("reconciled") or 0), int(summary.get("waiting") or 0)
    if reconciled:
        last = str(summary.get("last_reconciled_at"))[:16].replace("T", " ")
        return Result(
            WARN,
            f"{what}: {reconciled} call(s) of the last 24 h got no post-call webhook (the last "
            f"at {last} UTC); their outcome was read from the conversation API instead, later. "
            "In ElevenLabs > Agents > Settings > Post-call webhook, check that the webhook (HMAC) "
            "goes to <functions base>/place_call/webhook with the transcript and call initiation "
            "failure events, and that its secret is in ELEVENLABS_WEBHOOK_SECRET; place_call's "
            "log shows the deliveries it refused",
        )
    return Result(
        OK,
        f"{what}: every call of the last 24 h got its post-call webhook"
        + (
            f"; {waiting} placed over {after} min ago still on the line or being read"
            if waiting
            else ""
        ),
    )


CHECKS: tuple[Check, ...] = (
    check_variables,
    check_database_api,
    check_migrations,
    check_token_valid,
    check_token_expiry,
    check_token_scopes,
    check_page_subscription,
    check_pending_leads,
    check_calendly_token,
    check_calendly_subscription,
    check_calendly_retries,
    check_elevenlabs_key,
    check_elevenlabs_credits,
    check_elevenlabs_agent,
    check_elevenlabs_phone_number,
    check_elevenlabs_webhook_secret,
    check_call_outcomes,
)


def run(ctx: Context, checks: tuple[Check, ...] = CHECKS) -> Iterator[Result]:
    """Each check's result, in order, as it completes; a check that crashes is a FAIL and the
    others still run."""
    for check in checks:
        try:
            yield check(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            yield Result(FAIL, f"{check.__name__}: crashed with {type(exc).__name__}: {exc}")


def main(env: Mapping[str, str] | None = None) -> int:
    failed = False
    with Context(project_env() if env is None else env) as ctx:
        for result in run(ctx):
            print(result.line(), flush=True)
            failed = failed or result.status == FAIL
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
