"""No secret's value in anything the project writes: the logs and data of `make dev` (every file
of its state directory but dev.env, which exists to hold them), its terminal output, and every row
of every table in public, after the requests that carry secrets."""

from __future__ import annotations

import os
import signal

import httpx
import psycopg
import pytest
from psycopg import sql

from lib.db import Database
from lib.signatures import sign_meta
from tests.test_dev import DevRun, dev, dev_cleanup
from tools.fakes.fake_api import FakeClient
from tools.fakes.samples import leadgen_delivery, new_leadgen_id
from tools.stack import local as local_stack

__all__ = ["dev", "dev_cleanup"]  # fixtures, shared with test_dev.py

# Checked always; any other *_SECRET, *_TOKEN or *_KEY of dev.env too, but the keys made public.
SECRET_NAMES = {
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "META_ACCESS_TOKEN",
    "INTERNAL_TOKEN",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_SECRET_KEY",
}
PUBLIC_KEYS = {"SUPABASE_ANON_KEY", "SUPABASE_PUBLISHABLE_KEY"}


def secrets_of(env: dict[str, str]) -> dict[str, str]:
    names = SECRET_NAMES | {
        name for name in env if name.endswith(("_SECRET", "_TOKEN", "_KEY")) and env[name]
    }
    found = {name: env[name] for name in sorted(names - PUBLIC_KEYS)}
    found["authenticator password"] = local_stack.AUTHENTICATOR_PASSWORD
    return found


def exercise_every_secret(dev: DevRun, env: dict[str, str]) -> None:
    """The requests of a day of `make dev` that carry a secret, right and wrong."""
    url = dev.url()
    for token, status in ((env["META_VERIFY_TOKEN"], 200), ("not-the-token", 403)):
        params = {"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": token}
        assert httpx.get(url, params=params).status_code == status
    graph = FakeClient(env["META_GRAPH_URL"])
    fetched, token_refused, graph_down = (new_leadgen_id() for _ in range(3))
    graph.script(
        token_refused,
        {"status": 400, "body": {"error": {"message": "Invalid OAuth access token.", "code": 190}}},
    )
    graph.script(graph_down, {"status": 500, "body": {"error": {"message": "boom", "code": 2}}})
    body = leadgen_delivery(fetched, token_refused, graph_down)
    signature = sign_meta(body, secret=env["META_APP_SECRET"])
    assert httpx.post(url, content=body, headers={"X-Hub-Signature-256": signature}).is_success
    forged = sign_meta(body, secret=env["META_APP_SECRET"] + "x")
    assert httpx.post(url, content=body, headers={"X-Hub-Signature-256": forged}).status_code == 401
    for token, status in ((env["INTERNAL_TOKEN"], 200), (env["INTERNAL_TOKEN"][:-1], 401)):
        sweep = httpx.post(url + "/sweep", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert sweep.status_code == status
    for key_name in ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        Database(env["SUPABASE_URL"], env[key_name]).rpc("meta_claim_due", {"p_limit": 0})
    wrong_key = httpx.post(
        f"{env['SUPABASE_URL']}/rest/v1/rpc/meta_claim_due",
        json={"p_limit": 0},
        headers={"apikey": env["SUPABASE_SECRET_KEY"][:-1]},
    )
    assert wrong_key.status_code == 401


def test_no_secret_in_any_log_file_or_table_row(dev: DevRun) -> None:
    env = dev.env()
    secrets = secrets_of(env)
    assert all(len(value) >= 8 for value in secrets.values())
    exercise_every_secret(dev, env)

    found: list[tuple[str, str]] = []
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        tables = conn.execute(
            "select relname from pg_class where relnamespace = 'public'::regnamespace "
            "and relkind in ('r', 'p')"
        ).fetchall()
        assert {"leads", "webhook_events", "integration_logs"} <= {t for (t,) in tables}
        for (table,) in tables:
            query = sql.SQL("select t::text from public.{} t").format(sql.Identifier(table))
            for (row,) in conn.execute(query):
                found += [(name, f"a row of {table}") for name, v in secrets.items() if v in row]

    # Stopped, so that every log is complete and Postgres has written its files.
    os.killpg(dev.process.pid, signal.SIGINT)
    assert dev.wait() == 0
    files = [p for p in dev.state_dir.rglob("*") if p.is_file() and p.name != "dev.env"]
    assert {"functions.log", "rest.log", "graph.log", "server.log"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        found += [(name, str(path)) for name, v in secrets.items() if v.encode() in data]
    assert found == []


@pytest.mark.parametrize(
    "line",
    [
        '"GET /functions/v1/meta_webhook?hub.mode=subscribe&hub.verify_token={t} HTTP/1.1" 200 -',
        "code 400, message Bad request version ('GET /x?hub.verify_token={t} HTTP/1.1x')",
    ],
)
def test_serve_access_log_keeps_query_names_not_values(line: str) -> None:
    from tools.stack.serve import redact_query

    redacted = redact_query(line.format(t="s3cret-token"))
    assert "s3cret-token" not in redacted
    assert "hub.verify_token=***" in redacted
