"""The operator tools (send_event, logs, doctor) against the real local stack, run as an operator
runs them: as subprocesses, with the stack's settings in the environment."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest

import tools
from lib.signatures import verify_calendly, verify_elevenlabs, verify_meta
from tests.conftest import (
    CALENDLY_TOKEN,
    FIXTURES,
    CalendlyFake,
    ElevenLabsFake,
    Functions,
    GraphFake,
)
from tests.conftest import ELEVENLABS_FAKE_AGENT as ELEVENLABS_AGENT
from tests.conftest import ELEVENLABS_FAKE_KEY as ELEVENLABS_KEY
from tests.conftest import ELEVENLABS_FAKE_NUMBER_ID as ELEVENLABS_NUMBER_ID
from tools.fakes import graph_fake
from tools.fakes.samples import new_leadgen_id
from tools.ops import calendly_subscribe, doctor, send_event
from tools.ops.doctor import calendly as doctor_calendly
from tools.ops.doctor import core as doctor_core
from tools.ops.doctor import elevenlabs as doctor_elevenlabs
from tools.ops.doctor import meta as doctor_meta
from tools.ops.doctor import project as doctor_project
from tools.stack import envfile
from tools.stack import local as local_stack

# What the Graph fake answers for debug_token and subscribed_apps until a test changes it.
DEFAULT_TOKEN = graph_fake.GraphFake(None, None).token_info
DAY = 86_400


def run_tool(module: str, *args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m tools.ops.<module> args`` with ``env`` over this process's environment; the
    first line every command prints (its target, on stderr) is checked and left out of
    ``stderr``."""
    result = subprocess.run(
        [sys.executable, "-m", f"tools.ops.{module}", *args],
        env={**os.environ, **env, "PYTHONPATH": tools.PYTHONPATH},
        cwd=local_stack.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    first, _, rest = result.stderr.partition("\n")
    if first.startswith("target: local ("):
        result.stderr = rest
    return result


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{local_stack.free_port()}/functions/v1/meta_webhook"


@pytest.fixture
def token(graph: GraphFake) -> Iterator[GraphFake]:
    """The Graph fake with its default token info, restored after the test changes it."""
    graph.set_token(**DEFAULT_TOKEN)
    yield graph
    graph.set_token(**DEFAULT_TOKEN)


# --- send_event ------------------------------------------------------------------------------


def test_send_event_meta_delivery_signature_verifies_over_sent_bytes() -> None:
    args = send_event.parser().parse_args(["meta", "--url", "http://x/y", "--page-id", "42"])
    request = send_event.build_meta(args, {"META_APP_SECRET": "new-secret, old-secret"})

    verify_meta(request.body, request.headers, secrets=["new-secret"])
    change = json.loads(request.body)["entry"][0]["changes"][0]
    assert change["field"] == "leadgen"
    assert len(change["value"]["leadgen_id"]) == 16
    assert change["value"]["leadgen_id"].isdigit()
    assert change["value"]["page_id"] == "42"
    assert request.url == "http://x/y"


def test_send_event_meta_numeric_ids_sends_numbers() -> None:
    ids = ["--leadgen-id", "1234567890123456", "--page-id", "42", "--form-id", "7"]
    args = send_event.parser().parse_args(["meta", *ids, "--numeric-ids"])
    body = send_event.build_meta(args, {"META_APP_SECRET": "s"}).body
    entry = json.loads(body)["entry"][0]

    assert entry["id"] == 42
    assert entry["changes"][0]["value"] == {
        "leadgen_id": 1234567890123456,
        "page_id": 42,
        "form_id": 7,
        "created_time": entry["time"] - 1,
    }


def test_send_event_meta_default_url_uses_port() -> None:
    args = send_event.parser().parse_args(["meta"])
    request = send_event.build_meta(args, {"META_APP_SECRET": "s", "PORT": "9999"})

    assert request.url == "http://127.0.0.1:9999/functions/v1/meta_webhook"


@pytest.mark.parametrize("numeric", [False, True], ids=["string_ids", "numeric_ids"])
def test_send_event_meta_to_served_webhook_stores_new_lead(
    functions: Functions, db: psycopg.Connection[Any], numeric: bool
) -> None:
    leadgen_id = new_leadgen_id()
    args = [
        "meta",
        "--url",
        functions.url("meta_webhook"),
        "--leadgen-id",
        leadgen_id,
        "--page-id",
        "555000111",
        *(["--numeric-ids"] if numeric else []),
    ]

    result = run_tool("send_event", *args, env=functions.env)

    assert result.returncode == 0, result.stderr
    assert "HTTP 200" in result.stdout
    assert json.loads(result.stdout.splitlines()[2])["fetched"] == 1  # after POST, HTTP
    row = db.execute(
        "select status, page_id, form_id from leads where meta_leadgen_id = %s", [leadgen_id]
    ).fetchone()
    assert row == ("calling", "555000111", send_event.DEFAULT_FORM_ID)


def test_send_event_meta_wrong_secret_exits_1_with_401(
    functions: Functions, db: psycopg.Connection[Any]
) -> None:
    leadgen_id = new_leadgen_id()

    result = run_tool(
        "send_event",
        "meta",
        "--url",
        functions.url("meta_webhook"),
        "--leadgen-id",
        leadgen_id,
        "--secret",
        "not-the-app-secret",
        env=functions.env,
    )

    assert result.returncode == 1
    assert "HTTP 401" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1])["error"]["code"] == "invalid_signature"
    assert (
        db.execute("select 1 from leads where meta_leadgen_id = %s", [leadgen_id]).fetchone()
        is None
    )


def test_send_event_meta_no_secret_exits_2() -> None:
    # An empty value in the environment wins over .local/dev.env and supabase/.env.
    result = run_tool("send_event", "meta", "--url", dead_url(), env={"META_APP_SECRET": ""})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "send_event: META_APP_SECRET is not set: set it (ENV=local: `make dev` writes it to "
        ".local/dev.env; ENV=production: supabase/.env) or pass --secret",
    ]


def test_send_event_meta_unreachable_url_exits_2() -> None:
    url = dead_url()

    result = run_tool("send_event", "meta", "--url", url, "--secret", "s", env={})

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"send_event: {url} is unreachable (ConnectError")


# --- logs ------------------------------------------------------------------------------------


def log_row(db: psycopg.Connection[Any], provider: str, status: str, message: str) -> None:
    db.execute(
        "select public.log_event(%s, 'test.event', %s, %s, p_external_id => 'ext-1', "
        "p_error_code => %s)",
        [provider, status, message, "boom" if status == "error" else None],
    )


@pytest.fixture
def providers(db: psycopg.Connection[Any]) -> tuple[str, str]:
    """Two providers of this test only, with rows: first ok, then error (newest), other error."""
    mine, other = f"test-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    log_row(db, mine, "ok", "first, fine")
    log_row(db, mine, "error", "second, broken\nacross lines")
    log_row(db, other, "error", "someone else's")
    return mine, other


def test_logs_provider_and_status_filters_rows(
    stack: local_stack.Stack, providers: tuple[str, str]
) -> None:
    mine, _ = providers

    result = run_tool("logs", "--provider", mine, "--status", "error", "--json", env=stack.env)

    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["provider"], r["status"], r["error_code"], r["message"]) for r in rows] == [
        (mine, "error", "boom", "second, broken\nacross lines"),
    ]


def test_logs_provider_table_newest_first_aligned(
    stack: local_stack.Stack, providers: tuple[str, str]
) -> None:
    mine, _ = providers

    result = run_tool("logs", "--provider", mine, env=stack.env)

    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "created_at",
        "(UTC)",
        "provider",
        "event",
        "status",
        "error_code",
        "external_id",
        "lead_id",
        "message",
    ]
    assert [line.split()[4] for line in lines] == ["error", "ok"]
    assert lines[0].endswith("second, broken across lines")
    assert lines[1].endswith("first, fine")
    for column in ("provider", "status", "external_id", "message"):
        at = header.index(column)
        assert all(line[at - 2 : at] == "  " and line[at] != " " for line in lines), column


def test_logs_limit_keeps_newest(stack: local_stack.Stack, providers: tuple[str, str]) -> None:
    mine, _ = providers

    result = run_tool("logs", "--provider", mine, "--limit", "1", "--json", env=stack.env)

    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["error"]


def test_logs_unknown_status_exits_2() -> None:
    result = run_tool("logs", "--status", "failed", env={})

    assert result.returncode == 2
    assert "invalid choice: 'failed'" in result.stderr


def test_logs_no_database_url_exits_2() -> None:
    result = run_tool("logs", env={"DATABASE_URL": ""})

    assert result.returncode == 2
    assert result.stderr.startswith("logs: no database to read: ENV=local needs")


def test_logs_unreachable_database_exits_2() -> None:
    port = local_stack.free_port()
    url = f"postgresql://postgres:hunter2@127.0.0.1:{port}/postgres"

    result = run_tool("logs", env={"DATABASE_URL": url})

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"logs: cannot read the database at 127.0.0.1:{port}/postgres")
    assert "hunter2" not in line


# --- doctor ----------------------------------------------------------------------------------


def test_doctor_test_stack_all_ok_exits_0(stack: local_stack.Stack, token: GraphFake) -> None:
    # Meta only: Calendly and ElevenLabs are not connected, and their checks are skipped.
    result = run_tool(
        "doctor", env={"CALENDLY_API_TOKEN": "", "ELEVENLABS_API_KEY": "", **stack.env}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(doctor.CHECKS)
    # Leads of other tests may wait on a token error: that line is a warning at most.
    assert all(
        line.startswith(
            (
                "ok   ",
                "warn pending leads:",
                "warn ElevenLabs call outcomes:",
                # The seeded holiday calendars end in 2028: from then on, a warning.
                "warn calling rules:",
                "skip sweeps answered: not checked, pg_net is not installed here",
                "skip Meta conversions: not checked, META_DATASET_ID is not set",
                "skip Calendly ",
                "skip ElevenLabs ",
            )
        )
        for line in lines
    ), result.stdout


def lead_waiting_on_token(stack: local_stack.Stack) -> None:
    """A lead whose Graph fetch failed on the token: it waits for its backoff."""
    from lib.db import Database

    api = Database(stack.env["SUPABASE_URL"], stack.env["SUPABASE_SERVICE_ROLE_KEY"])
    lid = new_leadgen_id()
    stored = api.rpc("meta_ingest", {"p_leads": [{"leadgen_id": lid}], "p_claim_limit": 1})
    failure = {"ok": False, "error_class": "auth", "error_code": "graph_token_invalid"}
    api.rpc(
        "meta_complete",
        {"p_results": [{**failure, "lead_id": stored["to_fetch"][0]["lead_id"], "message": "x"}]},
    )


@pytest.mark.parametrize(
    ("token_info", "advice"),
    [
        ({}, "the token works now: run `make retry` to fetch them now"),
        ({"is_valid": False}, "fix the token (above), then run `make retry`"),
    ],
    ids=["token_fixed", "token_still_broken"],
)
def test_doctor_leads_waiting_on_the_token_point_at_make_retry(
    stack: local_stack.Stack, token: GraphFake, token_info: dict[str, Any], advice: str
) -> None:
    lead_waiting_on_token(stack)
    token.set_token(**token_info)
    result = run_tool("doctor", env=stack.env)
    (line,) = [line for line in result.stdout.splitlines() if "pending leads:" in line]
    assert line.startswith("warn pending leads: ")
    assert line.endswith(advice)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            lambda now: {"is_valid": False},
            "FAIL Meta token: debug_token says META_ACCESS_TOKEN is not valid",
        ),
        (
            lambda now: {"expires_at": now + 2 * DAY},
            "FAIL Meta token expiry: the token expires on ",
        ),
        (
            lambda now: {"scopes": ["pages_show_list", "pages_manage_metadata"]},
            "FAIL Meta token scopes: leads_retrieval is missing (has: pages_show_list, "
            "pages_manage_metadata)",
        ),
        (
            lambda now: {"subscribed_fields": ["feed"]},
            "FAIL page 138124712925158 subscription: no app is subscribed to leadgen",
        ),
    ],
    ids=["invalid", "expiring", "no_leads_retrieval", "not_subscribed"],
)
def test_doctor_token_problem_fails_with_line(
    stack: local_stack.Stack,
    token: GraphFake,
    info: Callable[[int], dict[str, Any]],
    expected: str,
) -> None:
    token.set_token(**info(int(time.time())))

    result = run_tool("doctor", env=stack.env)

    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, result.stdout
    assert failed[0].startswith(expected)


def test_doctor_expiry_within_30_days_warns(stack: local_stack.Stack, token: GraphFake) -> None:
    now = time.time()
    token.set_token(expires_at=int(now) + 20 * DAY)

    with doctor_core.Context(stack.env, now=now) as ctx:
        result = doctor_meta.check_token_expiry(ctx)

    assert result.status == doctor_core.WARN
    assert "(in 20 days)" in result.message


def test_doctor_token_without_the_guide_s_permissions_warns(
    stack: local_stack.Stack, token: GraphFake
) -> None:
    token.set_token(scopes=["leads_retrieval", "pages_show_list", "pages_manage_metadata"])

    with doctor_core.Context(stack.env) as ctx:
        result = doctor_meta.check_token_scopes(ctx)

    assert result.status == doctor_core.WARN
    assert "ads_management (needed for the ad and campaign names" in result.message
    assert "pages_read_engagement" in result.message and "Tech Provider" in result.message


def test_doctor_expired_token_fails(stack: local_stack.Stack, token: GraphFake) -> None:
    now = time.time()
    token.set_token(expires_at=int(now) - DAY)

    with doctor_core.Context(stack.env, now=now) as ctx:
        result = doctor_meta.check_token_expiry(ctx)

    assert result.status == doctor_core.FAIL
    assert "the token expired on" in result.message


def example_settings() -> list[str]:
    """Every setting supabase/.env.example names (set or not)."""
    lines = (local_stack.ROOT / "supabase" / ".env.example").read_text().splitlines()
    return [
        line.partition("=")[0].strip()
        for line in lines
        if "=" in line and not line.lstrip().startswith("#")
    ]


def test_doctor_missing_variables_lists_all_exits_1() -> None:
    # Empty values in the environment win over .local/dev.env and supabase/.env: every setting
    # is blanked, so whatever a developer's `make dev` left in .local/dev.env is not read.
    blank = dict.fromkeys([*example_settings(), *doctor_project.REQUIRED, "DATABASE_URL"], "")

    result = run_tool("doctor", env=blank)

    assert result.returncode == 1
    first, *rest = result.stdout.splitlines()
    assert first == (
        "FAIL variables: missing "
        + ", ".join(doctor_project.REQUIRED)
        + " (set them in supabase/.env "
        "or the environment; supabase/.env.example lists them all)"
    )
    assert len(rest) == len(doctor.CHECKS) - 1
    assert all(line.startswith("skip ") for line in rest), result.stdout


def test_doctor_some_variables_missing_lists_exactly_those(stack: local_stack.Stack) -> None:
    env = {k: v for k, v in stack.env.items() if k not in ("INTERNAL_TOKEN", "META_PAGE_ID")}

    with doctor_core.Context(env) as ctx:
        result = doctor_project.check_variables(ctx)
        subscription = doctor_meta.check_page_subscription(ctx)

    assert result.status == doctor_core.FAIL
    assert result.message.startswith("variables: missing INTERNAL_TOKEN, META_PAGE_ID (")
    assert subscription == (
        doctor_core.SKIP,
        "page subscription: not checked, needs META_PAGE_ID",
    )


def test_doctor_unapplied_migration_fails(stack: local_stack.Stack, tmp_path: Path) -> None:
    for existing in doctor_core.MIGRATIONS.glob("*.sql"):
        (tmp_path / existing.name).write_text("")
    (tmp_path / "29991231000000_future.sql").write_text("select 1;")

    with doctor_core.Context(stack.env, migrations_dir=tmp_path) as ctx:
        result = doctor_project.check_migrations(ctx)

    assert result == (
        doctor_core.FAIL,
        "migrations: 1 not applied: 29991231000000_future.sql "
        "(`supabase db push` or `make deploy` applies them)",
    )


@pytest.mark.parametrize(
    ("target", "words"),
    [("local", "Is `make dev` running?"), ("production", "The database API is unreachable")],
)
def test_doctor_nothing_answering_locally_says_make_dev(target: str, words: str) -> None:
    url = f"http://127.0.0.1:{local_stack.free_port()}"
    env = {"SUPABASE_URL": url, "SUPABASE_SERVICE_ROLE_KEY": "sb_secret_x", "ENV": target}
    with doctor_core.Context(env) as ctx:
        result = doctor_project.check_database_api(ctx)
    assert result.status == doctor_core.FAIL
    assert words in result.message


def test_doctor_wrong_service_role_key_fails(stack: local_stack.Stack) -> None:
    env = {**stack.env, "SUPABASE_SERVICE_ROLE_KEY": stack.env["SUPABASE_ANON_KEY"]}

    with doctor_core.Context(env) as ctx:
        result = doctor_project.check_database_api(ctx)

    assert result.status == doctor_core.FAIL
    assert result.message.startswith(f"database API at {stack.env['SUPABASE_URL']}: ")
    assert result.message.endswith(
        "SUPABASE_SERVICE_ROLE_KEY is not accepted: copy the service_role key from "
        "Project Settings > API."
    )


def test_sweep_tool_retry_pending_calls_the_private_sweep(
    stack: local_stack.Stack, functions: Functions
) -> None:
    lead_waiting_on_token(stack)
    url = functions.url("meta_webhook", "/sweep")
    result = run_tool("sweep", "--retry-pending", "--url", url, env=functions.env)
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.partition(" HTTP ")[2].partition(" ")
    assert status == "200"
    assert json.loads(body)["retried"] >= 1


def test_sweep_tool_runs_both_sweeps(functions: Functions) -> None:
    env = {**functions.env, "PORT": functions.base.rsplit(":", 1)[1].split("/")[0]}
    result = run_tool("sweep", env=env)
    assert result.returncode == 0, result.stderr
    swept = [line.split(": HTTP ")[0] for line in result.stdout.splitlines()]
    assert swept == [functions.url("meta_webhook", "/sweep"), functions.url("place_call", "/sweep")]


def test_sweep_tool_wrong_token_exits_1(functions: Functions) -> None:
    url = functions.url("meta_webhook", "/sweep")
    result = run_tool("sweep", "--url", url, env={**functions.env, "INTERNAL_TOKEN": "wrong"})
    assert result.returncode == 1
    assert "HTTP 401" in result.stdout


# --- send_event calendly ---------------------------------------------------------------------


def test_send_event_calendly_signed_with_the_first_key_carries_the_lead() -> None:
    lead_id = str(uuid.uuid4())
    args = send_event.parser().parse_args(
        ["calendly", "--lead-id", lead_id, "--email", "a@example.com", "--phone", "+1 404-555-1234"]
    )
    request = send_event.build_calendly(args, {"CALENDLY_SIGNING_KEY": "new-key, old-key"})

    verify_calendly(request.body, request.headers, secrets=["new-key"], now=time.time())
    event = json.loads(request.body)
    assert event["event"] == "invitee.created"
    payload = event["payload"]
    assert payload["tracking"]["utm_content"] == lead_id
    assert (payload["email"], payload["text_reminder_number"]) == (
        "a@example.com",
        "+1 404-555-1234",
    )
    assert (payload["status"], payload["rescheduled"], payload["old_invitee"]) == (
        "active",
        False,
        None,
    )
    assert "cancellation" not in payload
    assert request.url == "http://127.0.0.1:8080/functions/v1/calendly_webhook"


def test_send_event_calendly_canceled_rescheduled_names_the_new_invitee() -> None:
    args = send_event.parser().parse_args(
        [
            "calendly",
            *("--event", "canceled", "--invitee-uri", "https://x/old"),
            *("--rescheduled", "--other-invitee", "https://x/new"),
        ]
    )
    request = send_event.build_calendly(args, {"CALENDLY_SIGNING_KEY": "k", "PORT": "9999"})

    event = json.loads(request.body)
    payload = event["payload"]
    assert event["event"] == "invitee.canceled"
    assert (payload["status"], payload["rescheduled"], payload["new_invitee"]) == (
        "canceled",
        True,
        "https://x/new",
    )
    assert payload["cancellation"]["canceler_type"] == "invitee"
    assert request.url == "http://127.0.0.1:9999/functions/v1/calendly_webhook"
    assert "rescheduled to https://x/new" in request.summary


def keys_by_level(event: dict[str, Any]) -> dict[str, set[str]]:
    payload = event["payload"]
    levels = {
        "envelope": set(event),
        "payload": set(payload),
        "tracking": set(payload["tracking"]),
        "scheduled_event": set(payload["scheduled_event"]),
        "location": {"type"},
        "membership": set(payload["scheduled_event"]["event_memberships"][0]),
    }
    if "cancellation" in payload:
        levels["cancellation"] = set(payload["cancellation"])
    return levels


@pytest.mark.parametrize("kind", ["created", "canceled"])
def test_calendly_samples_have_every_field_of_calendlys_example(kind: str) -> None:
    documented = json.loads(
        (FIXTURES / "calendly" / f"calendly_invitee_{kind}_docs.json").read_text()
    )
    args = send_event.parser().parse_args(
        ["calendly", "--event", kind, "--invitee-uri", "https://api.calendly.com/x/invitees/y"]
    )
    built = json.loads(send_event.build_calendly(args, {"CALENDLY_SIGNING_KEY": "k"}).body)

    ours = keys_by_level(built)
    for level, keys in keys_by_level(documented).items():
        assert keys <= ours[level], f"{level} lacks {keys - ours[level]}"


def test_send_event_calendly_no_key_exits_2() -> None:
    result = run_tool(
        "send_event", "calendly", "--url", dead_url(), env={"CALENDLY_SIGNING_KEY": ""}
    )

    assert result.returncode == 2
    assert result.stderr.startswith("send_event: CALENDLY_SIGNING_KEY is not set: ")


def test_send_event_calendly_to_served_webhook_ties_the_booking_to_the_lead(
    functions: Functions, db: psycopg.Connection[Any]
) -> None:
    row = db.execute(
        "insert into leads (source, status, email) values ('manual', 'fetched', %s) "
        "returning id::text",
        [f"{uuid.uuid4().hex[:10]}@example.com"],
    ).fetchone()
    assert row is not None
    invitee = f"https://api.calendly.com/scheduled_events/{uuid.uuid4()}/invitees/{uuid.uuid4()}"
    url = functions.url("calendly_webhook")

    result = run_tool(
        "send_event",
        "calendly",
        *("--url", url, "--lead-id", row[0], "--invitee-uri", invitee),
        env=functions.env,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTP 200" in result.stdout
    stored = db.execute(
        "select lead_id::text from appointments where calendly_invitee_uri = %s", [invitee]
    ).fetchone()
    assert stored == (row[0],)
    # The 8 characters `make logs` shows name the lead; canceled cancels the latest booking.
    other = run_tool(
        "send_event", "calendly", *("--url", url, "--lead-id", row[0][:8]), env=functions.env
    )
    assert other.returncode == 0 and f"lead_id={row[0]}" in other.stdout, other.stderr
    canceled = run_tool(
        "send_event", "calendly", "--url", url, "--event", "canceled", env=functions.env
    )
    assert canceled.returncode == 0, canceled.stderr
    assert db.execute(
        "select count(*) from appointments where lead_id = %s and status = 'canceled'", [row[0]]
    ).fetchone() == (1,)
    unknown = run_tool(
        "send_event", "calendly", *("--url", url, "--lead-id", "ffffffff"), env=functions.env
    )
    assert unknown.returncode == 2
    assert "no lead with an id starting ffffffff" in unknown.stderr


def test_send_event_meta_prints_the_lead_it_created(functions: Functions) -> None:
    lid = new_leadgen_id()
    result = run_tool(
        "send_event",
        "meta",
        "--url",
        functions.url("meta_webhook"),
        "--leadgen-id",
        lid,
        env=functions.env,
    )
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("lead ")]
    lead_id = line.split()[1].rstrip(":")
    assert line.endswith(f"`make logs LEAD={lead_id[:8]}` shows its trail")


# --- doctor: Calendly ------------------------------------------------------------------------

CALENDLY_URL = "https://example.test/functions/v1/calendly_webhook"
CALENDLY_CHECKS = (
    doctor_calendly.check_calendly_token,
    doctor_calendly.check_calendly_subscription,
    doctor_calendly.check_calendly_retries,
)


@pytest.fixture
def calendly(calendly_fake_api: CalendlyFake, tmp_path: Path) -> dict[str, str]:
    """The fake, subscribed to CALENDLY_URL by `make calendly-subscribe`'s code: the settings
    the doctor then reads (token, API URL, the stored key and URL)."""
    calendly_fake_api.reset()
    env_file = tmp_path / ".env"
    settings = {"CALENDLY_API_TOKEN": CALENDLY_TOKEN, "CALENDLY_API_URL": calendly_fake_api.base}
    code = calendly_subscribe.main(
        ["--url", CALENDLY_URL, "--env-file", str(env_file)],
        settings,
        out=io.StringIO(),
        err=io.StringIO(),
        http=calendly_fake_api.http,
    )
    assert code == 0
    return {**settings, **envfile.read(env_file)}


def calendly_results(env: Mapping[str, str]) -> list[doctor_core.Result]:
    with doctor_core.Context(env) as ctx:
        return [check(ctx) for check in CALENDLY_CHECKS]


def test_doctor_calendly_not_connected_skips_its_checks() -> None:
    results = calendly_results({"CALENDLY_WEBHOOK_URL": CALENDLY_URL})

    assert [r.status for r in results] == [doctor_core.SKIP] * 3
    assert all("CALENDLY_API_TOKEN is not set" in r.message for r in results)


def test_doctor_calendly_connected_all_ok_exits_0(
    stack: local_stack.Stack, token: GraphFake, calendly: dict[str, str]
) -> None:
    result = run_tool("doctor", env={**stack.env, **calendly})

    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line[5:].startswith("Calendly ")]
    assert [line.split(":")[0] for line in lines] == [
        "ok   Calendly token",
        "ok   Calendly subscription",
        "ok   Calendly deliveries",
    ]
    assert lines[1] == (
        f"ok   Calendly subscription: active for {CALENDLY_URL} (scope organization, 4 events)"
    )


def hours_ago(hours: float) -> str:
    moment = time.time() - hours * 3600
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(moment))


SUBSCRIBE = f"`make calendly-subscribe URL={CALENDLY_URL}"


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (
            "wrong_token",
            [
                (
                    "FAIL",
                    "Calendly token: Calendly refused the token while reading the current "
                    'user (HTTP 401: "The access token is invalid"). CALENDLY_API_TOKEN is invalid '
                    "or revoked: create a personal access token in Calendly > Integrations > API & "
                    "Webhooks.",
                ),
                ("skip", "Calendly subscription: not checked, the Calendly token does not work"),
                ("skip", "Calendly deliveries: not checked, the Calendly token does not work"),
            ],
        ),
        (
            "no_url",
            [
                ("ok", "Calendly token: works"),
                ("FAIL", "Calendly subscription: CALENDLY_WEBHOOK_URL is not set"),
                ("skip", "Calendly deliveries: not checked (above)"),
            ],
        ),
        (
            "no_subscription",
            [
                ("ok", "Calendly token: works"),
                (
                    "FAIL",
                    f"Calendly subscription: none for {CALENDLY_URL}: no booking reaches "
                    f"calendly_webhook; run {SUBSCRIBE}`",
                ),
                ("skip", "Calendly deliveries: not checked, no active subscription"),
            ],
        ),
        (
            "disabled",
            [
                ("ok", "Calendly token: works"),
                ("FAIL", "Calendly subscription: "),
                ("skip", "Calendly deliveries: not checked, no active subscription"),
            ],
        ),
        (
            "no_key",
            [
                ("ok", "Calendly token: works"),
                ("FAIL", "Calendly subscription: active, but CALENDLY_SIGNING_KEY is not set"),
                ("ok", "Calendly deliveries: none failing"),
            ],
        ),
        (
            "retrying",
            [
                ("ok", "Calendly token: works"),
                ("ok", "Calendly subscription: active"),
                ("warn", "Calendly deliveries: Calendly is retrying failed deliveries since "),
            ],
        ),
        (
            "recovered",
            [
                ("ok", "Calendly token: works"),
                ("ok", "Calendly subscription: active"),
                ("ok", "Calendly deliveries: retries began "),
            ],
        ),
    ],
)
def test_doctor_calendly_problem_says_what_to_run(
    calendly_fake_api: CalendlyFake,
    calendly: dict[str, str],
    problem: str,
    expected: list[tuple[str, str]],
) -> None:
    env = dict(calendly)
    [subscription] = calendly_fake_api.subscriptions()
    if problem == "wrong_token":
        env["CALENDLY_API_TOKEN"] = "revoked-token"
    elif problem == "no_url":
        del env["CALENDLY_WEBHOOK_URL"]
    elif problem == "no_subscription":
        calendly_fake_api.reset()
    elif problem == "disabled":
        calendly_fake_api.change(subscription["uri"], state="disabled")
    elif problem == "no_key":
        del env["CALENDLY_SIGNING_KEY"]
    elif problem == "retrying":
        calendly_fake_api.change(subscription["uri"], retry_started_at=hours_ago(3))
    elif problem == "recovered":
        calendly_fake_api.change(subscription["uri"], retry_started_at=hours_ago(30))

    results = calendly_results(env)

    assert [
        (r.status, r.message[: len(text)]) for r, (_, text) in zip(results, expected, strict=True)
    ] == [(status, text) for status, text in expected], results
    failed = [r.message for r in results if r.status in (doctor_core.FAIL, doctor_core.WARN)]
    for message in failed:
        if problem != "wrong_token":
            assert "make calendly-subscribe URL=" in message, message
    if problem == "disabled":
        assert results[1].message.endswith(
            f"is disabled: Calendly delivers nothing to it (it disables a subscription after 24 h "
            f"of failed deliveries). Fix the endpoint (`make logs PROVIDER=calendly`), then run "
            f"{SUBSCRIBE}` (it re-creates it with a new key)"
        )
    if problem == "retrying":
        assert "(3 h ago); after 24 h without a successful one it disables" in results[2].message


# --- send_event elevenlabs -------------------------------------------------------------------


def test_send_event_elevenlabs_voicemail_transcription_verifies_with_first_secret() -> None:
    lead_id = str(uuid.uuid4())
    args = send_event.parser().parse_args(
        ["elevenlabs", "--lead-id", lead_id, "--conversation-id", "conv_x", "--voicemail"]
    )
    env = {"ELEVENLABS_WEBHOOK_SECRET": "wsec_new, wsec_old", "PORT": "9999"}

    request = send_event.build_elevenlabs(args, env)

    verify_elevenlabs(request.body, request.headers, secrets=["wsec_new"], now=time.time())
    event = json.loads(request.body)
    assert event["type"] == "post_call_transcription"
    data = event["data"]
    assert data["conversation_id"] == "conv_x"
    assert data["conversation_initiation_client_data"]["dynamic_variables"]["lead_id"] == lead_id
    [result] = data["transcript"][-1]["tool_results"]
    assert result["result"]["result_type"] == "voicemail_detection_success"
    assert request.url == "http://127.0.0.1:9999/functions/v1/place_call/webhook"
    assert request.summary == (
        f"elevenlabs post_call_transcription voicemail_detection conversation_id=conv_x "
        f"lead_id={lead_id}"
    )


def test_send_event_elevenlabs_initiation_failure_sip_without_lead() -> None:
    args = send_event.parser().parse_args(
        ["elevenlabs", "--type", "initiation-failure", "--failure-reason", "no-answer"]
    )
    env = {"ELEVENLABS_WEBHOOK_SECRET": "wsec", "ELEVENLABS_TELEPHONY": "sip_trunk"}

    request = send_event.build_elevenlabs(args, env)

    verify_elevenlabs(request.body, request.headers, secrets=["wsec"], now=time.time())
    data = json.loads(request.body)["data"]
    assert data["failure_reason"] == "no-answer"
    assert data["metadata"]["type"] == "sip"
    assert data["conversation_id"].startswith("conv_")
    assert "conversation_initiation_client_data" not in data


def test_send_event_elevenlabs_audio_signed() -> None:
    args = send_event.parser().parse_args(["elevenlabs", "--type", "audio", "--secret", "s"])

    request = send_event.build_elevenlabs(args, {})

    verify_elevenlabs(request.body, request.headers, secrets=["s"], now=time.time())
    assert json.loads(request.body)["data"].keys() == {"agent_id", "conversation_id", "full_audio"}


def test_send_event_elevenlabs_no_secret_exits_2() -> None:
    result = run_tool(
        "send_event", "elevenlabs", "--url", dead_url(), env={"ELEVENLABS_WEBHOOK_SECRET": ""}
    )

    assert result.returncode == 2
    assert result.stderr.startswith("send_event: ELEVENLABS_WEBHOOK_SECRET is not set")


# --- doctor: ElevenLabs ----------------------------------------------------------------------

ELEVENLABS_CHECKS = (
    doctor_elevenlabs.check_elevenlabs_key,
    doctor_elevenlabs.check_elevenlabs_credits,
    doctor_elevenlabs.check_elevenlabs_agent,
    doctor_elevenlabs.check_elevenlabs_disclosure,
    doctor_elevenlabs.check_elevenlabs_phone_number,
    doctor_elevenlabs.check_elevenlabs_webhook_secret,
    doctor_elevenlabs.check_elevenlabs_workspace_webhook,
    doctor_elevenlabs.check_elevenlabs_post_call_settings,
)


@pytest.fixture
def elevenlabs(elevenlabs_fake: ElevenLabsFake) -> Iterator[ElevenLabsFake]:
    """The ElevenLabs fake, its plan, agent and number restored after the test changes them."""
    elevenlabs_fake.reset()
    yield elevenlabs_fake
    elevenlabs_fake.reset()


def elevenlabs_env(fake: ElevenLabsFake, **changes: str) -> dict[str, str]:
    return {
        "ELEVENLABS_API_KEY": ELEVENLABS_KEY,
        "ELEVENLABS_API_URL": fake.base,
        "ELEVENLABS_AGENT_ID": ELEVENLABS_AGENT,
        "ELEVENLABS_PHONE_NUMBER_ID": ELEVENLABS_NUMBER_ID,
        "ELEVENLABS_WEBHOOK_SECRET": "wsec_test",
        **changes,
    }


def elevenlabs_results(env: Mapping[str, str]) -> list[doctor_core.Result]:
    with doctor_core.Context(env) as ctx:
        return [check(ctx) for check in ELEVENLABS_CHECKS]


def test_doctor_call_outcomes_warn_when_post_call_webhooks_did_not_come(
    stack: local_stack.Stack,
) -> None:
    # A call whose outcome the sweep had to read from the conversation API: the webhook is not
    # reaching place_call, and the doctor says where to look.
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "select public.log_event('elevenlabs', 'call.reconciled', 'error', 'no webhook', "
            "%s, null, 'post_call_webhook_missing')",
            (f"conv_doctor_{uuid.uuid4().hex[:8]}",),
        )
    with doctor_core.Context({**stack.env, "ELEVENLABS_API_KEY": ELEVENLABS_KEY}) as ctx:
        result = doctor_elevenlabs.check_call_outcomes(ctx)

    assert result.status == doctor_core.WARN
    assert result.message.startswith("ElevenLabs call outcomes: ")
    assert "got no post-call webhook" in result.message
    assert "its secret is in ELEVENLABS_WEBHOOK_SECRET" in result.message


def test_doctor_call_outcomes_skipped_without_elevenlabs(stack: local_stack.Stack) -> None:
    with doctor_core.Context({**stack.env, "ELEVENLABS_API_KEY": ""}) as ctx:
        result = doctor_elevenlabs.check_call_outcomes(ctx)

    assert result == (
        doctor_core.SKIP,
        "ElevenLabs call outcomes: not checked, ELEVENLABS_API_KEY is not set "
        "(ElevenLabs not connected)",
    )


def test_doctor_elevenlabs_not_connected_skips_each_check() -> None:
    results = elevenlabs_results({"ELEVENLABS_AGENT_ID": ELEVENLABS_AGENT})

    assert [r.status for r in results] == [doctor_core.SKIP] * len(ELEVENLABS_CHECKS)
    assert all(
        r.message.endswith(
            ": not checked, ELEVENLABS_API_KEY is not set (ElevenLabs not connected)"
        )
        for r in results
    ), results


def test_doctor_elevenlabs_fake_every_check_ok(elevenlabs: ElevenLabsFake) -> None:
    results = elevenlabs_results(elevenlabs_env(elevenlabs))
    # The agent is read once, for both checks that look at it.
    assert elevenlabs.count(f"/v1/convai/agents/{ELEVENLABS_AGENT}") == 1

    assert results == [
        (doctor_core.OK, "ElevenLabs API key: works (plan creator, status active)"),
        (
            doctor_core.OK,
            "ElevenLabs credits: 99,000 left of 100,000; the plan renews on 2025-01-31",
        ),
        (
            doctor_core.OK,
            f"ElevenLabs agent: Laura ({ELEVENLABS_AGENT}) exists, with voicemail_detection",
        ),
        (
            doctor_core.OK,
            "ElevenLabs disclosure: the first message says the caller is an AI assistant and "
            "that the call may be recorded (es)",
        ),
        (
            doctor_core.OK,
            f"ElevenLabs phone number: {ELEVENLABS_NUMBER_ID} is +17863212663 (twilio)",
        ),
        (
            doctor_core.OK,
            "ElevenLabs webhook secret: set (1 secret; post-call webhooks to place_call/webhook "
            "are verified with it)",
        ),
        (
            doctor_core.OK,
            "ElevenLabs webhook: speed to lead: place_call "
            "(https://example.test/functions/v1/place_call/webhook) enabled, no failure in the "
            "last 24 hours, retries on",
        ),
        (
            doctor_core.OK,
            "ElevenLabs post-call webhook: speed to lead: place_call "
            "(https://example.test/functions/v1/place_call/webhook) with the transcript (JSON) "
            "and call initiation failures",
        ),
    ]


@pytest.mark.parametrize(
    ("webhooks", "status", "words"),
    [
        (None, "ok", "enabled, no failure in the last 24 hours, retries on"),
        (
            [{"retry_enabled": False}],
            "warn",
            "no failure in the last 24 hours, but its retries are off (ElevenLabs' default): "
            "`make elevenlabs-webhook`",
        ),
        ([], "warn", "no workspace webhook delivers to …/place_call/webhook"),
        (
            [{"is_auto_disabled": True, "most_recent_failure_error_code": 401}],
            "FAIL",
            "was disabled by ElevenLabs after repeated failures (last error 401)",
        ),
        ([{"is_disabled": True}], "FAIL", "is disabled; enable it"),
        (
            [
                {
                    "most_recent_failure_timestamp": "recent",
                    "most_recent_failure_error_code": 500,
                    "retry_enabled": False,
                }
            ],
            "warn",
            "(HTTP 500); its retries are off, so ElevenLabs did not deliver it again",
        ),
        (
            [
                {
                    "most_recent_failure_timestamp": "recent",
                    "most_recent_failure_error_code": 500,
                    "retry_enabled": True,
                }
            ],
            "warn",
            "(HTTP 500); ElevenLabs retries a 5xx, 429 or timeout, not a 4xx",
        ),
        (
            [
                {
                    "most_recent_failure_timestamp": "old",
                    "most_recent_failure_error_code": 500,
                    "retry_enabled": True,
                }
            ],
            "ok",
            "no failure in the last 24 hours",
        ),
    ],
    ids=[
        "default",
        "retries_off",
        "none",
        "auto_disabled",
        "disabled",
        "failed_today",
        "failed_today_retried",
        "failed_long_ago",
    ],
)
def test_doctor_elevenlabs_workspace_webhook(
    elevenlabs: ElevenLabsFake,
    webhooks: list[dict[str, Any]] | None,
    status: str,
    words: str,
) -> None:
    from tools.fakes.elevenlabs_fake import workspace_webhook

    now = time.time()
    if webhooks is not None:
        ages = {"recent": int(now) - 3600, "old": int(now) - 3 * DAY}
        hooks = [
            workspace_webhook(
                "https://x.test/functions/v1/place_call/webhook",
                **{
                    k: ages.get(v, v) if k == "most_recent_failure_timestamp" else v
                    for k, v in hook.items()
                },
            )
            for hook in webhooks
        ]
        elevenlabs.put("webhooks", hooks)  # type: ignore[arg-type]
    try:
        with doctor_core.Context(elevenlabs_env(elevenlabs), now=now) as ctx:
            result = doctor_elevenlabs.check_elevenlabs_workspace_webhook(ctx)
    finally:
        elevenlabs.put(
            "webhooks",  # type: ignore[arg-type]
            [workspace_webhook("https://example.test/functions/v1/place_call/webhook")],
        )
    assert result.status == status, result.message
    assert words in result.message


def test_doctor_elevenlabs_wrong_key_fails_once_skips_the_rest(elevenlabs: ElevenLabsFake) -> None:
    results = elevenlabs_results(elevenlabs_env(elevenlabs, ELEVENLABS_API_KEY="sk_wrong"))

    assert [r.status for r in results] == [
        doctor_core.FAIL,
        doctor_core.SKIP,
        doctor_core.SKIP,
        doctor_core.SKIP,
        doctor_core.SKIP,
        doctor_core.OK,
        doctor_core.SKIP,
        doctor_core.SKIP,
    ]
    assert "ELEVENLABS_API_KEY is invalid or revoked: create an API key in ElevenLabs" in (
        results[0].message
    )
    assert results[2].message == (
        "ElevenLabs agent: not checked, the ElevenLabs API key does not work"
    )


def test_doctor_elevenlabs_key_without_user_read_warns(elevenlabs: ElevenLabsFake) -> None:
    refused = {
        "status": 401,
        "body": {
            "detail": {
                "status": "missing_permissions",
                "message": "The API key you used is missing the permission user_read to execute "
                "this operation.",
            }
        },
    }
    elevenlabs.script("/v1/user/subscription", refused, refused)

    key, credits, agent, *_ = elevenlabs_results(elevenlabs_env(elevenlabs))

    assert key.status == doctor_core.WARN
    assert "missing the permission user_read" in key.message
    assert key.message.endswith("give the key User: Read in ElevenLabs > Developers > API Keys")
    assert credits.status == doctor_core.SKIP
    assert agent.status == doctor_core.OK


@pytest.mark.parametrize(
    ("used", "minimum", "status", "text"),
    [
        (
            95_000,
            None,
            doctor_core.WARN,
            "5,000 left of 100,000; the plan renews on 2025-01-31, under ELEVENLABS_MIN_CREDITS "
            "(10,000); top up in ElevenLabs > Subscription before calls start failing",
        ),
        (95_000, "1000", doctor_core.OK, "5,000 left of 100,000; the plan renews on 2025-01-31"),
        (
            100_000,
            None,
            doctor_core.FAIL,
            "none left (0 left of 100,000; the plan renews on 2025-01-31): every call fails until "
            "you top up in ElevenLabs > Subscription (or raise the plan)",
        ),
        (1_000, "plenty", doctor_core.WARN, "ELEVENLABS_MIN_CREDITS is not a whole number"),
        (
            100_000,
            {"can_extend_character_limit": True, "max_credit_limit_extension": 50_000},
            doctor_core.OK,
            "0 left of 100,000; the plan renews on 2025-01-31, and 50,000 more of usage-based "
            "billing",
        ),
        (
            120_000,
            {"can_extend_character_limit": True, "max_credit_limit_extension": "unlimited"},
            doctor_core.OK,
            "usage-based billing goes on past the plan",
        ),
        (
            100_000,
            {"can_extend_character_limit": False, "max_credit_limit_extension": 50_000},
            doctor_core.FAIL,
            "none left",
        ),
    ],
    ids=[
        "low",
        "over_custom_minimum",
        "none_left",
        "bad_minimum",
        "usage_based",
        "unlimited",
        "extension_not_allowed",
    ],
)
def test_doctor_elevenlabs_credits_against_minimum(
    elevenlabs: ElevenLabsFake,
    used: int,
    minimum: str | dict[str, Any] | None,
    status: str,
    text: str,
) -> None:
    plan = minimum if isinstance(minimum, dict) else {}
    minimum = None if isinstance(minimum, dict) else minimum
    elevenlabs.put("subscription", {"character_count": used, "character_limit": 100_000, **plan})
    env = elevenlabs_env(elevenlabs, **({"ELEVENLABS_MIN_CREDITS": minimum} if minimum else {}))

    with doctor_core.Context(env) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_credits(ctx)

    assert result.status == status
    assert text in result.message


@pytest.mark.parametrize(("mode", "status"), [("tool", doctor_core.OK), (None, doctor_core.FAIL)])
def test_doctor_elevenlabs_agent_voicemail_detection(
    elevenlabs: ElevenLabsFake, mode: str | None, status: str
) -> None:
    elevenlabs.put("agent", {"voicemail_detection": mode})

    with doctor_core.Context(elevenlabs_env(elevenlabs)) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_agent(ctx)

    assert result.status == status
    if status == doctor_core.FAIL:
        assert result.message == (
            f"ElevenLabs agent: Laura ({ELEVENLABS_AGENT}) does not have voicemail_detection, so "
            "a call that reaches a voicemail talks to the greeting and counts as answered; "
            "enable Voicemail detection in ElevenLabs > Agents > the agent > Tools > System tools"
        )


@pytest.mark.parametrize(
    ("agent", "settings", "status", "text"),
    [
        ({}, {}, doctor_core.OK, "says the caller is an AI assistant and that the call may be"),
        (
            {"first_message": "Hola {{lead_name}}, soy Laura. ¿Tienes un minuto?"},
            {},
            doctor_core.WARN,
            "does not say that the caller is an AI assistant and that the call may be recorded",
        ),
        (
            {},
            {"CALL_DISCLOSURE": "soy Laura, una asistente virtual de {business}."},
            doctor_core.WARN,
            "does not say that the call may be recorded (es)",
        ),
        (
            {"first_message": "Hi, I'm Laura, an AI assistant; this call may be recorded.",
             "language": "en"},
            {},
            doctor_core.OK,
            "(en)",
        ),
        ({"language": "de"}, {}, doctor_core.WARN, "the agent speaks 'de', which this check"),
    ],
    ids=["disclosure_variable", "no_disclosure", "not_recorded", "english", "unknown_language"],
)  # fmt: skip
def test_doctor_elevenlabs_disclosure(
    elevenlabs: ElevenLabsFake,
    agent: dict[str, str],
    settings: dict[str, str],
    status: str,
    text: str,
) -> None:
    if agent:
        elevenlabs.put("agent", agent)
    with doctor_core.Context({**elevenlabs_env(elevenlabs), **settings}) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_disclosure(ctx)
    assert (result.status, text in result.message) == (status, True), result.message


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"ELEVENLABS_AGENT_ID": "agent_other"}, "check ELEVENLABS_AGENT_ID (ElevenLabs > Agents"),
        ({"ELEVENLABS_AGENT_ID": ""}, "ELEVENLABS_AGENT_ID is not set, so no call can be placed"),
    ],
    ids=["unknown", "unset"],
)
def test_doctor_elevenlabs_agent_id_problem_fails(
    elevenlabs: ElevenLabsFake, changes: dict[str, str], text: str
) -> None:
    with doctor_core.Context(elevenlabs_env(elevenlabs, **changes)) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_agent(ctx)

    assert result.status == doctor_core.FAIL
    assert text in result.message


@pytest.mark.parametrize(
    ("number", "changes", "status", "text"),
    [
        (
            {"phone_number": "+13055550100"},
            {},
            doctor_core.WARN,
            f"{ELEVENLABS_NUMBER_ID} is +13055550100, not +17863212663: leads see +13055550100 "
            "calling. Set ELEVENLABS_PHONE_NUMBER_ID to the id of +17863212663",
        ),
        (
            {"phone_number": "+13055550100"},
            {"ELEVENLABS_PHONE_NUMBER": "+13055550100"},
            doctor_core.OK,
            "is +13055550100 (twilio)",
        ),
        ({"supports_outbound": False}, {}, doctor_core.FAIL, "cannot place outbound calls"),
        (
            {},
            {"ELEVENLABS_TELEPHONY": "sip_trunk"},
            doctor_core.FAIL,
            "is a twilio number but ELEVENLABS_TELEPHONY is sip_trunk; set "
            "ELEVENLABS_TELEPHONY=twilio",
        ),
        (
            {},
            {"ELEVENLABS_PHONE_NUMBER_ID": "phnum_other"},
            doctor_core.FAIL,
            "check ELEVENLABS_PHONE_NUMBER_ID",
        ),
        (
            {},
            {"ELEVENLABS_PHONE_NUMBER_ID": ""},
            doctor_core.FAIL,
            "ELEVENLABS_PHONE_NUMBER_ID is not set, so no call can be placed; copy the id of "
            "+17863212663 from ElevenLabs > Phone Numbers",
        ),
    ],
    ids=["other_number", "expected_other_number", "no_outbound", "telephony", "unknown", "unset"],
)
def test_doctor_elevenlabs_phone_number(
    elevenlabs: ElevenLabsFake,
    number: dict[str, Any],
    changes: dict[str, str],
    status: str,
    text: str,
) -> None:
    if number:
        elevenlabs.put("phone_number", number)

    with doctor_core.Context(elevenlabs_env(elevenlabs, **changes)) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_phone_number(ctx)

    assert result.status == status
    assert text in result.message


@pytest.mark.parametrize("provider", ["exotel", None])
def test_doctor_elevenlabs_phone_number_of_another_provider_fails(
    elevenlabs: ElevenLabsFake, provider: str | None
) -> None:
    elevenlabs.put("phone_number", {"provider": provider})

    with doctor_core.Context(elevenlabs_env(elevenlabs)) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_phone_number(ctx)

    assert result.status == doctor_core.FAIL
    assert "Twilio or SIP trunk" in result.message


def test_doctor_elevenlabs_webhook_secret_unset_fails(elevenlabs: ElevenLabsFake) -> None:
    with doctor_core.Context(elevenlabs_env(elevenlabs, ELEVENLABS_WEBHOOK_SECRET="")) as ctx:
        result = doctor_elevenlabs.check_elevenlabs_webhook_secret(ctx)

    assert result.status == doctor_core.FAIL
    assert "ELEVENLABS_WEBHOOK_SECRET is not set, so every post-call webhook is refused" in (
        result.message
    )
    assert "<functions base>/place_call/webhook" in result.message


def test_doctor_elevenlabs_connected_test_stack_exits_0(
    stack: local_stack.Stack, token: GraphFake, elevenlabs: ElevenLabsFake
) -> None:
    result = run_tool(
        "doctor", env={"CALENDLY_API_TOKEN": "", **stack.env, **elevenlabs_env(elevenlabs)}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if " ElevenLabs " in line]
    # Calls of other tests had their outcome read from the conversation API: that line is a
    # warning at most (test_doctor_call_outcomes_* check it).
    outcomes = [line for line in lines if " ElevenLabs call outcomes: " in line]
    assert len(outcomes) == 1 and outcomes[0].startswith(("ok   ", "warn ")), result.stdout
    lines.remove(outcomes[0])
    assert len(lines) == len(ELEVENLABS_CHECKS)
    assert all(line.startswith("ok   ElevenLabs ") for line in lines), result.stdout


def test_logs_table_escapes_control_characters() -> None:
    from tools.ops.logs import table

    row = {"created_at": None, "message": "evil \x1b[2J\x1b]0;owned\x07 \x9b done"}
    text = table([row], ["created_at", "message"])
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "evil \\x1b[2J\\x1b]0;owned\\x07 \\x9b done" in text
