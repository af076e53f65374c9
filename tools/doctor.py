"""`make doctor`: check the configuration, the database, the migrations and the Meta token.

    python -m tools.doctor

Prints one line per check, ``ok``, ``warn``, ``FAIL`` or ``skip`` (not checked: something it
needs is missing or failed above) and exits 1 when any check FAILs, else 0. Settings come from
:func:`tools.envfile.project_env` (the environment wins over supabase/.env and .local/dev.env).

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

from graph import GraphClient
from lib.config import Config
from lib.db import Database
from lib.errors import AppError, ConfigError, ProviderFailure
from tools.envfile import ROOT, project_env

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

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def value(self, name: str) -> str:
        return (self.env.get(name) or "").strip()

    def missing(self, *names: str) -> list[str]:
        return [name for name in names if not self.value(name)]

    @property
    def config(self) -> Config:
        """The functions' view of the settings (Graph URL and version, timeouts); an invalid
        number (check_variables reports it) is left at its default."""
        try:
            return Config.from_mapping(self.env)
        except ConfigError as err:
            invalid = set(err.details["invalid"])
            return Config.from_mapping({k: v for k, v in self.env.items() if k not in invalid})

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
        Config.from_mapping(ctx.env)
    except ConfigError as err:
        problems.append(f"invalid {', '.join(err.details['invalid'])}")
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
        answer = Database(url, ctx.value("SUPABASE_SERVICE_ROLE_KEY"), http_client=ctx.http).rpc(
            "meta_claim_due", {"p_limit": 0}
        )
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
    database = Database(
        ctx.value("SUPABASE_URL"), ctx.value("SUPABASE_SERVICE_ROLE_KEY"), http_client=ctx.http
    )
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


CHECKS: tuple[Check, ...] = (
    check_variables,
    check_database_api,
    check_migrations,
    check_token_valid,
    check_token_expiry,
    check_token_scopes,
    check_page_subscription,
    check_pending_leads,
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
