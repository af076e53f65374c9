"""`make doctor`'s check that the sweeps pg_cron sends are answered 200, read from pg_net's
net._http_response (cron.job_run_details says "succeeded" even for a 401). A database of its
own with a stand-in of pg_net's table, as Supabase has it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tools.ops.doctor import core as doctor_core
from tools.ops.doctor import project as doctor_project
from tools.stack import local as local_stack

# pg_net's response table, with the columns the check reads.
STUB = """
create schema net;
create table net._http_response (id bigserial primary key, status_code integer,
  content_type text, headers jsonb, content text, timed_out boolean, error_msg text,
  created timestamptz not null default now());
"""


@pytest.fixture
def pg_net(stack: local_stack.Stack) -> Iterator[str]:
    name = f"pgnet_{secrets.token_hex(4)}"
    admin = stack.env["DATABASE_URL"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(STUB)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


def answers(url: str, *rows: tuple[int | None, bool, str | None, int]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for code, timed_out, error, minutes_ago in rows:
            conn.execute(
                "insert into net._http_response (status_code, timed_out, error_msg, created) "
                "values (%s, %s, %s, now() - make_interval(mins => %s))",
                (code, timed_out, error, minutes_ago),
            )


def check(stack: local_stack.Stack, url: str) -> Any:
    with doctor_core.Context({**stack.env, "DATABASE_URL": url}) as ctx:
        return doctor_project.check_sweeps_answered(ctx)


def test_all_answered_200_is_ok(stack: local_stack.Stack, pg_net: str) -> None:
    answers(pg_net, (200, False, None, 1), (200, False, None, 2), (401, False, None, 60))
    result = check(stack, pg_net)
    assert (result.status, result.message) == (
        "ok",
        "sweeps answered: 2 in 15 minutes, all 200",
    )


def test_a_401_fails_and_says_the_vault_token_is_stale(
    stack: local_stack.Stack, pg_net: str
) -> None:
    answers(pg_net, (401, False, None, 1), (401, False, None, 2), (200, False, None, 3))
    result = check(stack, pg_net)
    assert result.status == "FAIL"
    assert "2 of 3 in the last 15 minutes were not answered 200 (2 401)" in result.message
    assert "make deploy" in result.message


def test_a_timeout_fails(stack: local_stack.Stack, pg_net: str) -> None:
    answers(pg_net, (None, True, "Timeout of 5000 ms reached", 1))
    result = check(stack, pg_net)
    assert result.status == "FAIL" and "1 timed out" in result.message


def test_no_sweep_lately_warns(stack: local_stack.Stack, pg_net: str) -> None:
    answers(pg_net, (200, False, None, 120))
    result = check(stack, pg_net)
    assert result.status == "warn" and "pg_cron jobs scheduled" in result.message


def test_without_pg_net_it_is_skipped(stack: local_stack.Stack) -> None:
    result = check(stack, stack.env["DATABASE_URL"])
    assert result.status == "skip" and "pg_net is not installed" in result.message
