"""The operator tools (send_event, logs, doctor) against the real local stack, run as an operator
runs them: as subprocesses, with the stack's settings in the environment."""

from __future__ import annotations

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

from lib.signatures import verify_meta
from tests.conftest import Functions, GraphFake
from tools import doctor, graph_fake, send_event
from tools import stack as local_stack
from tools.samples import new_leadgen_id

# What the Graph fake answers for debug_token and subscribed_apps until a test changes it.
DEFAULT_TOKEN = graph_fake.GraphFake(None, None).token_info
DAY = 86_400


def run_tool(module: str, *args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m tools.<module> args`` with ``env`` over this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", f"tools.{module}", *args],
        env={**os.environ, **env, "PYTHONPATH": str(local_stack.ROOT)},
        cwd=local_stack.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
    assert json.loads(result.stdout.splitlines()[-1])["fetched"] == 1
    row = db.execute(
        "select status, page_id, form_id from leads where meta_leadgen_id = %s", [leadgen_id]
    ).fetchone()
    assert row == ("fetched", "555000111", send_event.DEFAULT_FORM_ID)


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
        "send_event: META_APP_SECRET is not set: set it (supabase/.env, the environment or "
        "`make dev`'s .local/dev.env) or pass --secret"
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
    assert result.stderr.startswith("logs: DATABASE_URL is not set")


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
    result = run_tool("doctor", env=stack.env)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(doctor.CHECKS)
    # Leads of other tests may wait on a token error: that line is a warning at most.
    assert all(
        line.startswith("ok   ") or line.startswith("warn pending leads:") for line in lines
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

    with doctor.Context(stack.env, now=now) as ctx:
        result = doctor.check_token_expiry(ctx)

    assert result.status == doctor.WARN
    assert "(in 20 days)" in result.message


def test_doctor_expired_token_fails(stack: local_stack.Stack, token: GraphFake) -> None:
    now = time.time()
    token.set_token(expires_at=int(now) - DAY)

    with doctor.Context(stack.env, now=now) as ctx:
        result = doctor.check_token_expiry(ctx)

    assert result.status == doctor.FAIL
    assert "the token expired on" in result.message


def test_doctor_missing_variables_lists_all_exits_1() -> None:
    # Empty values in the environment win over .local/dev.env and supabase/.env.
    blank = dict.fromkeys([*doctor.REQUIRED, "DATABASE_URL"], "")

    result = run_tool("doctor", env=blank)

    assert result.returncode == 1
    first, *rest = result.stdout.splitlines()
    assert first == (
        "FAIL variables: missing " + ", ".join(doctor.REQUIRED) + " (set them in supabase/.env "
        "or the environment; supabase/.env.example lists them all)"
    )
    assert len(rest) == len(doctor.CHECKS) - 1
    assert all(line.startswith("skip ") for line in rest), result.stdout


def test_doctor_some_variables_missing_lists_exactly_those(stack: local_stack.Stack) -> None:
    env = {k: v for k, v in stack.env.items() if k not in ("INTERNAL_TOKEN", "META_PAGE_ID")}

    with doctor.Context(env) as ctx:
        result = doctor.check_variables(ctx)
        subscription = doctor.check_page_subscription(ctx)

    assert result.status == doctor.FAIL
    assert result.message.startswith("variables: missing INTERNAL_TOKEN, META_PAGE_ID (")
    assert subscription == (
        doctor.SKIP,
        "page subscription: not checked, needs META_PAGE_ID",
    )


def test_doctor_unapplied_migration_fails(stack: local_stack.Stack, tmp_path: Path) -> None:
    for existing in doctor.MIGRATIONS.glob("*.sql"):
        (tmp_path / existing.name).write_text("")
    (tmp_path / "29991231000000_future.sql").write_text("select 1;")

    with doctor.Context(stack.env, migrations_dir=tmp_path) as ctx:
        result = doctor.check_migrations(ctx)

    assert result == (
        doctor.FAIL,
        "migrations: 1 not applied: 29991231000000_future.sql "
        "(`supabase db push` or `make deploy` applies them)",
    )


def test_doctor_wrong_service_role_key_fails(stack: local_stack.Stack) -> None:
    env = {**stack.env, "SUPABASE_SERVICE_ROLE_KEY": stack.env["SUPABASE_ANON_KEY"]}

    with doctor.Context(env) as ctx:
        result = doctor.check_database_api(ctx)

    assert result.status == doctor.FAIL
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
    status, _, body = result.stdout.partition(" ")[2].partition(" ")
    assert status == "200"
    assert json.loads(body)["retried"] >= 1


def test_sweep_tool_wrong_token_exits_1(functions: Functions) -> None:
    url = functions.url("meta_webhook", "/sweep")
    result = run_tool("sweep", "--url", url, env={**functions.env, "INTERNAL_TOKEN": "wrong"})
    assert result.returncode == 1
    assert "HTTP 401" in result.stdout
