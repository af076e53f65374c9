"""The project's own checks: the variables, the database API and the migrations."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from lib.errors import AppError, ConfigError, DatabaseUnavailable
from tools.ops.doctor.core import FAIL, OK, SKIP, WARN, Check, Context, Result, skipped
from tools.settings import everything
from tools.stack import envfile

REQUIRED = (
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "META_ACCESS_TOKEN",
    "INTERNAL_TOKEN",
    "META_PAGE_ID",
)
_MIGRATION_NAME = re.compile(r"^([0-9]+)_.*\.sql$")


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
        return skipped("database API", missing)
    url = ctx.value("SUPABASE_URL")
    try:
        answer = ctx.database().rpc("meta_claim_due", {"p_limit": 0})
    except DatabaseUnavailable as err:
        if ctx.value("ENV") != "production" and envfile.is_local(url):
            # Locally, nothing answering is `make dev` not running, not a wrong URL.
            return Result(
                FAIL,
                f"database API at {url}: nothing answers there. Is `make dev` running? (start "
                "it, or use ENV=production for the deployed project)",
            )
        return Result(FAIL, f"database API at {url}: {err.message}{_db_hint(err)}")
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


HOLIDAYS_AHEAD_DAYS = 90  # a calendar must hold the days of at least the next three months


def check_call_rules(ctx: Context) -> Result:
    """The calling rules by place are on, and each holiday calendar CALL_HOLIDAYS lists holds
    the days ahead (call_holidays is seeded for some years: the operator adds the next)."""
    config = ctx.config
    if not config.call_place_rules:
        return Result(
            WARN,
            "calling rules: CALL_PLACE_RULES=false, so only CALL_HOURS_* apply: no state window, "
            "weekend, holiday or per-state cap is kept. Set it to true for real calls",
        )
    missing = ctx.missing("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    if missing:
        return skipped("calling rules", missing)
    listed = config.call_rules()["holidays"]
    calendars = [item for item in listed if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", item)]
    try:
        summary = ctx.database().rpc("call_rules_summary", {"p_calendars": calendars})
    except AppError as err:
        return Result(SKIP, f"calling rules: not checked ({err.message})")
    horizon = datetime.fromtimestamp(ctx.now, UTC).date() + timedelta(days=HOLIDAYS_AHEAD_DAYS)
    short = []
    for calendar, last in (summary.get("calendars") or {}).items():
        if last is None:
            short.append(f"{calendar} has no days in call_holidays (a CALL_HOLIDAYS typo?)")
        elif date.fromisoformat(last) < horizon:
            short.append(f"{calendar} ends on {last}: add its next year's days to call_holidays")
    if short:
        return Result(WARN, "calling rules: " + "; ".join(short))
    return Result(
        OK,
        f"calling rules: {summary.get('rules')} place rules; holiday calendars "
        f"{', '.join(calendars) or 'none'} hold the next {HOLIDAYS_AHEAD_DAYS} days",
    )


SWEEP_WINDOW_MINUTES = 15
_SWEEP_ANSWERS = """
select r.status_code, r.timed_out, r.error_msg, count(*) as n
from net._http_response r
where r.created > now() - make_interval(mins => %s)
group by 1, 2, 3
order by n desc
"""


def check_sweeps_answered(ctx: Context) -> Result:
    """The sweeps pg_cron sends through pg_net were answered 200 lately. cron.job_run_details
    says "succeeded" even when every POST got a 401 (pg_net is asynchronous): the answers are
    in net._http_response. Skipped where pg_net is not installed (the local stack)."""
    database_url = ctx.value("DATABASE_URL")
    if not database_url:
        return Result(SKIP, "sweeps answered: not checked, DATABASE_URL is not set")
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute(_SWEEP_ANSWERS, (SWEEP_WINDOW_MINUTES,)).fetchall()
    except psycopg.errors.UndefinedTable:
        return Result(SKIP, "sweeps answered: not checked, pg_net is not installed here")
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Result(SKIP, f"sweeps answered: not checked ({reason})")
    if not rows:
        return Result(
            WARN,
            f"sweeps answered: no sweep was sent in the last {SWEEP_WINDOW_MINUTES} minutes: "
            "are the pg_cron jobs scheduled (`make deploy` schedules them)?",
        )
    total = sum(int(n) for *_, n in rows)
    bad = [(code, timed_out, error, int(n)) for code, timed_out, error, n in rows if code != 200]
    if not bad:
        return Result(OK, f"sweeps answered: {total} in {SWEEP_WINDOW_MINUTES} minutes, all 200")
    described = "; ".join(
        f"{n} {'timed out' if timed_out else (code or (error or 'no answer')[:80])}"
        for code, timed_out, error, n in bad
    )
    advice = (
        "the token in Vault is not INTERNAL_TOKEN: run `make deploy` again"
        if any(code == 401 for code, *_ in bad)
        else "see the functions' logs"
    )
    return Result(
        FAIL,
        f"sweeps answered: {sum(n for *_, n in bad)} of {total} in the last "
        f"{SWEEP_WINDOW_MINUTES} minutes were not answered 200 ({described}): {advice}",
    )


# This provider's checks, in the order they run.
CHECKS: tuple[Check, ...] = (
    check_variables,
    check_database_api,
    check_migrations,
    check_call_rules,
    check_sweeps_answered,
)
