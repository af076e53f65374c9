"""Supabase's database API as projects serve it in 2026 (docs/PROVIDERS.md, section 4), on
the embedded stack: opaque API keys beside the legacy JWTs, no automatic grants on new objects,
the per-role limits, and what the Security Advisor checks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from lib.db import Database
from lib.errors import DatabaseError
from tools.fakes.samples import new_leadgen_id
from tools.stack import jwt
from tools.stack import local as local_stack

Conn = psycopg.Connection[Any]

SERVICE_KEYS = ["SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SECRET_KEY"]
API_ROLES = ("anon", "authenticated", "service_role")


def rpc(stack: local_stack.Stack, fn: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(f"{stack.env['SUPABASE_URL']}/rest/v1/rpc/{fn}", json=body, headers=headers)


def key_headers(key: str) -> dict[str, str]:
    """What lib/db.py (supabase-py) sends: the key in ``apikey`` and as the bearer token."""
    return {"apikey": key, "Authorization": f"Bearer {key}"}


@pytest.fixture
def whoami(db: Conn) -> Iterator[str]:
    """A function any API role may call: its role and the limits it runs under."""
    name = "test_whoami_" + uuid.uuid4().hex[:8]
    db.execute(f"""create function public.{name}() returns text language sql
        set search_path = '' as $$
        select current_user || ' ' || current_setting('statement_timeout')
            || ' ' || current_setting('lock_timeout') $$""")
    db.execute(f"grant execute on function public.{name}() to anon, authenticated, service_role")
    yield name
    db.execute(f"drop function public.{name}()")


@pytest.fixture(scope="module")
def migrated(stack: local_stack.Stack) -> Iterator[Conn]:
    """A fresh database of the stack's cluster with the roles and every migration applied, and
    nothing else (the shared one also holds what tests create)."""
    name = "advisor_" + uuid.uuid4().hex[:8]
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as admin:
        admin.execute(f"create database {name}")
        try:
            url = stack.env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
            local_stack.apply_migrations(url)
            with psycopg.connect(url, autocommit=True) as conn:
                yield conn
        finally:
            admin.execute(f"drop database {name} with (force)")


# --- API keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", SERVICE_KEYS)
def test_database_rpc_ingest_and_claim_with_secret_key_or_legacy_jwt(
    stack: local_stack.Stack, db: Conn, key_name: str
) -> None:
    api = Database(stack.env["SUPABASE_URL"], stack.env[key_name])
    lid = new_leadgen_id()
    lead = {"leadgen_id": lid, "page_id": "1", "form_id": "2", "created_time": 1630087926}
    ingested = api.rpc("meta_ingest", {"p_leads": [lead], "p_skipped": [], "p_claim_limit": 0})
    assert [item["leadgen_id"] for item in ingested["deferred"]] == [lid]
    # Oldest due first: this lead, whatever other tests left due.
    db.execute(
        "update leads set next_fetch_at = now() - interval '100 years' where meta_leadgen_id = %s",
        (lid,),
    )
    claimed = api.rpc("meta_claim_due", {"p_limit": 1})
    assert [item["leadgen_id"] for item in claimed["claimed"]] == [lid]


@pytest.mark.parametrize(
    ("key_name", "role"),
    [
        ("SUPABASE_SECRET_KEY", "service_role"),
        ("SUPABASE_SERVICE_ROLE_KEY", "service_role"),
        ("SUPABASE_PUBLISHABLE_KEY", "anon"),
        ("SUPABASE_ANON_KEY", "anon"),
    ],
)
def test_standin_api_key_runs_as_its_role(
    stack: local_stack.Stack, whoami: str, key_name: str, role: str
) -> None:
    key = stack.env[key_name]
    for headers in (key_headers(key), {"apikey": key}):
        response = rpc(stack, whoami, headers)
        assert response.status_code == 200, response.text
        assert response.json().split()[0] == role


def test_standin_publishable_key_refused_as_anon_401_42501(stack: local_stack.Stack) -> None:
    key = stack.env["SUPABASE_PUBLISHABLE_KEY"]
    response = rpc(stack, "meta_claim_due", key_headers(key), p_limit=1)
    assert (response.status_code, response.json()["code"]) == (401, "42501")
    with pytest.raises(DatabaseError) as caught:
        Database(stack.env["SUPABASE_URL"], key).rpc("meta_claim_due", {"p_limit": 1})
    assert caught.value.details["db_code"] == "42501"


@pytest.mark.parametrize(
    "headers",
    [
        {"apikey": "sb_secret_" + "x" * 32},
        key_headers("sb_secret_" + "x" * 32),
        key_headers("sb_publishable_" + "x" * 32),
        {"apikey": "{secret}", "Authorization": "Bearer sb_secret_" + "x" * 32},
        {"Authorization": "Bearer {secret}"},
    ],
    ids=["unknown", "unknown-bearer-too", "unknown-publishable", "bearer-not-apikey", "no-apikey"],
)
def test_standin_unknown_or_mismatched_sb_key_gets_the_gateways_401(
    stack: local_stack.Stack, headers: dict[str, str]
) -> None:
    secret = stack.env["SUPABASE_SECRET_KEY"]
    sent = {name: value.replace("{secret}", secret) for name, value in headers.items()}
    response = rpc(stack, "meta_claim_due", sent, p_limit=1)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API key"}


def test_database_unknown_secret_key_is_a_database_error(stack: local_stack.Stack) -> None:
    api = Database(stack.env["SUPABASE_URL"], "sb_secret_" + "y" * 32)
    with pytest.raises(DatabaseError) as caught:
        api.rpc("meta_claim_due", {"p_limit": 1})
    assert "Invalid API key" in caught.value.message
    assert "SUPABASE_SERVICE_ROLE_KEY" in caught.value.message


def test_local_api_keys_shaped_as_supabase_keeps_given_ones() -> None:
    kept = local_stack.local_api_keys({"SUPABASE_SECRET_KEY": "sb_secret_mine"})
    assert kept["SUPABASE_SECRET_KEY"] == "sb_secret_mine"
    assert kept["SUPABASE_PUBLISHABLE_KEY"].startswith("sb_publishable_")
    replaced = local_stack.local_api_keys({"SUPABASE_SECRET_KEY": "eyJ.not.opaque"})
    assert replaced["SUPABASE_SECRET_KEY"].startswith("sb_secret_")


# --- Grants and limits -------------------------------------------------------------------------


def test_new_objects_grant_the_api_roles_nothing(db: Conn) -> None:
    table, sequence, function = (f"public.test_{kind}_{uuid.uuid4().hex[:8]}" for kind in "tsf")
    with db.transaction(force_rollback=True):
        db.execute(f"create table {table} (id bigint generated always as identity)")
        db.execute(f"create sequence {sequence}")
        db.execute(f"create function {function}() returns int language sql as 'select 1'")
        for role in [*API_ROLES, "public"]:
            privileges = db.execute(
                """select has_table_privilege(%(r)s, %(t)s, 'select, insert, update, delete'),
                          has_sequence_privilege(%(r)s, %(s)s, 'usage, select, update'),
                          has_sequence_privilege(%(r)s, pg_get_serial_sequence(%(t)s, 'id'),
                                                 'usage, select, update'),
                          has_function_privilege(%(r)s, %(f)s, 'execute')""",
                {"r": role, "t": table, "s": sequence, "f": f"{function}()"},
            ).fetchone()
            assert privileges == (False, False, False, False), role


def test_standin_function_without_grant_refused_403_42501(
    stack: local_stack.Stack, db: Conn
) -> None:
    name = "test_nogrant_" + uuid.uuid4().hex[:8]
    db.execute(
        f"create function public.{name}() returns int language sql set search_path = '' "
        "as 'select 1'"
    )
    try:
        for key_name in SERVICE_KEYS:
            response = rpc(stack, name, key_headers(stack.env[key_name]))
            # PostgREST's schema cache lists the function; Postgres refuses the call (42501), and
            # PostgREST answers 403 for a role from a key (401 only for anon).
            assert (response.status_code, response.json()["code"]) == (403, "42501")
    finally:
        db.execute(f"drop function public.{name}()")


def test_identity_sequences_unusable_by_client_roles(migrated: Conn) -> None:
    rows = migrated.execute(
        """select s.seq, r.role,
                  has_sequence_privilege(r.role, s.seq, 'usage, select, update') as usable
           from (select pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) as seq
                 from pg_attribute a join pg_class c on c.oid = a.attrelid
                 where c.relnamespace = 'public'::regnamespace and a.attidentity <> '') s,
                (values ('anon'), ('authenticated')) r(role)"""
    ).fetchall()
    sequences = {seq for seq, _, _ in rows}
    assert {"public.webhook_events_id_seq", "public.integration_logs_id_seq"} <= sequences
    assert [(seq, role) for seq, role, usable in rows if usable] == []


def test_role_limits_are_supabases(db: Conn) -> None:
    rows = dict(
        db.execute(
            "select rolname, coalesce(rolconfig, '{}') from pg_roles where rolname = any(%s)",
            (["authenticator", *API_ROLES],),
        ).fetchall()
    )
    assert sorted(rows["authenticator"]) == ["lock_timeout=8s", "statement_timeout=8s"]
    assert rows["anon"] == ["statement_timeout=3s"]
    assert rows["authenticated"] == ["statement_timeout=8s"]
    assert rows["service_role"] == []  # it runs under authenticator's limits


@pytest.mark.parametrize(
    ("role", "limits"),
    [("service_role", "8s 8s"), ("authenticated", "8s 8s"), ("anon", "3s 8s")],
)
def test_standin_call_runs_under_its_roles_limits(
    stack: local_stack.Stack, whoami: str, role: str, limits: str
) -> None:
    token = jwt.local_key(role, secret=jwt.LOCAL_JWT_SECRET)
    response = rpc(stack, whoami, {"Authorization": f"Bearer {token}"})
    assert response.json() == f"{role} {limits}"


# --- Security Advisor --------------------------------------------------------------------------


def test_security_advisor_every_public_function_pins_search_path_every_table_has_rls(
    migrated: Conn,
) -> None:
    # supabase/splinter: function_search_path_mutable, rls_disabled_in_public.
    functions = migrated.execute(
        """select p.oid::regprocedure::text,
                  exists (select from unnest(coalesce(p.proconfig, '{}')) c
                          where c like 'search_path=%')
           from pg_proc p
           where p.pronamespace = 'public'::regnamespace and p.prokind in ('f', 'p')
             and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')"""
    ).fetchall()
    tables = migrated.execute(
        "select oid::regclass::text, relrowsecurity from pg_class "
        "where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')"
    ).fetchall()
    assert {"touch_updated_at()", "leads_guard_status()"} <= {f for f, _ in functions}
    assert {"leads", "webhook_events", "integration_logs"} <= {t for t, _ in tables}
    assert [f for f, pinned in functions if not pinned] == []
    assert [t for t, secure in tables if not secure] == []
