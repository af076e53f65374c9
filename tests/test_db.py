"""The SQL functions, RLS and the PostgREST stand-in, against the real Postgres of the stack."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from lib.db import Database
from lib.errors import DatabaseError, DatabaseUnavailable, FailureClass
from tools.fakes.samples import new_leadgen_id
from tools.stack import local as local_stack
from tools.stack.rest_standin import http_status

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def api(stack: local_stack.Stack) -> Database:
    return Database(stack.env["SUPABASE_URL"], stack.env["SUPABASE_SERVICE_ROLE_KEY"])


def ingest(api: Database, *leadgen_ids: str, claim_limit: int = 1000) -> dict[str, Any]:
    leads = [
        {
            "leadgen_id": lid,
            "page_id": "1",
            "form_id": "2",
            "created_time": 1630087926,
            "payload": {"value": {"leadgen_id": lid}},
        }
        for lid in leadgen_ids
    ]
    result: dict[str, Any] = api.rpc(
        "meta_ingest", {"p_leads": leads, "p_skipped": [], "p_claim_limit": claim_limit}
    )
    return result


def lead_row(db: Conn, leadgen_id: str) -> dict[str, Any]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(
            "select * from leads where meta_leadgen_id = %s", (leadgen_id,)
        ).fetchone()
    assert row is not None
    return row


def test_meta_ingest_new_lead_claimed_for_fetch(api: Database, db: Conn) -> None:
    lid = new_leadgen_id()
    result = ingest(api, lid)
    assert [item["leadgen_id"] for item in result["to_fetch"]] == [lid]
    row = lead_row(db, lid)
    assert row["status"] == "fetch_pending"
    assert row["fetch_attempts"] == 1
    assert row["submitted_at"].timestamp() == 1630087926
    events = db.execute(
        "select count(*) from webhook_events where provider = 'meta' and external_id = %s", (lid,)
    ).fetchone()
    assert events == (1,)


def test_meta_ingest_duplicate_changes_nothing_and_logs(api: Database, db: Conn) -> None:
    lid = new_leadgen_id()
    first = ingest(api, lid)
    second = ingest(api, lid)
    assert second["to_fetch"] == []
    assert second["duplicates"] == [{"lead_id": first["to_fetch"][0]["lead_id"], "leadgen_id": lid}]
    statuses = [
        r[0]
        for r in db.execute(
            "select status from integration_logs where external_id = %s order by id", (lid,)
        )
    ]
    assert statuses == ["ok", "duplicate"]


def test_meta_ingest_same_id_twice_in_one_batch_one_lead(api: Database, db: Conn) -> None:
    lid = new_leadgen_id()
    result = ingest(api, lid, lid)
    assert len(result["to_fetch"]) == 1 and len(result["duplicates"]) == 1
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = %s", (lid,)
    ).fetchone() == (1,)


def test_meta_ingest_past_claim_limit_due_for_sweep(api: Database, db: Conn) -> None:
    ids = [new_leadgen_id() for _ in range(3)]
    result = ingest(api, *ids, claim_limit=1)
    assert [item["leadgen_id"] for item in result["to_fetch"]] == ids[:1]
    assert [item["leadgen_id"] for item in result["deferred"]] == ids[1:]
    deferred = lead_row(db, ids[2])
    assert deferred["fetch_attempts"] == 0
    assert deferred["next_fetch_at"] <= db.execute("select now()").fetchone()[0]


def test_meta_ingest_never_reads_every_lead(stack: local_stack.Stack) -> None:
    # A delivery's cost must not grow with the table: its duplicate lookup is an index probe,
    # not a scan of every lead (which it was, per delivery, whenever the planner liked hashing).
    # In one transaction, rolled back: 20,000 more leads, then a new change and a duplicate.
    lid, again = new_leadgen_id(), new_leadgen_id()
    change = {"page_id": "1", "form_id": "2", "created_time": 1630087926}
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        conn.execute(
            "insert into leads (source, status) select 'manual', 'fetched' "
            "from generate_series(1, 20000)"
        )
        conn.execute(
            "select meta_ingest(%s::jsonb)", (json.dumps([{"leadgen_id": again, **change}]),)
        )
        query = "select seq_scan from pg_stat_xact_user_tables where relname = 'leads'"
        before = conn.execute(query).fetchone()
        result = conn.execute(
            "select meta_ingest(%s::jsonb)",
            (json.dumps([{"leadgen_id": lid, **change}, {"leadgen_id": again, **change}]),),
        ).fetchone()
        assert result is not None
        assert [d["leadgen_id"] for d in result[0]["duplicates"]] == [again]
        assert conn.execute(query).fetchone() == before
        conn.rollback()


def test_meta_ingest_50_simultaneous_deliveries_one_lead_one_claim(api: Database, db: Conn) -> None:
    lid = new_leadgen_id()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: ingest(api, lid), range(50)))
    assert sum(len(r["to_fetch"]) for r in results) == 1
    assert sum(len(r["duplicates"]) for r in results) == 49
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = %s", (lid,)
    ).fetchone() == (1,)
    assert db.execute(
        "select count(*) from webhook_events where external_id = %s", (lid,)
    ).fetchone() == (1,)


def test_meta_complete_success_fills_lead(api: Database, db: Conn) -> None:
    lid = new_leadgen_id()
    lead_id = ingest(api, lid)["to_fetch"][0]["lead_id"]
    outcome = api.rpc(
        "meta_complete",
        {
            "p_results": [
                {
                    "lead_id": lead_id,
                    "ok": True,
                    "message": "fetched",
                    "duration_ms": 12,
                    "lead": {
                        "full_name": "Zoë",
                        "email": "z@example.com",
                        "phone": "+14155552671",
                        "answers": {"q": ["a", "b"]},
                        "ad_id": "9",
                        "is_organic": False,
                    },
                }
            ]
        },
    )
    assert outcome == {"completed": 1, "failed": 0, "skipped": 0, "queued": [lead_id]}
    row = lead_row(db, lid)
    assert (row["status"], row["full_name"], row["phone"], row["ad_id"]) == (
        "call_queued",
        "Zoë",
        "+14155552671",
        "9",
    )
    assert row["answers"] == {"q": ["a", "b"]}
    assert row["next_fetch_at"] is None and row["fetched_at"] is not None
    again = api.rpc(
        "meta_complete",
        {"p_results": [{"lead_id": lead_id, "ok": True, "lead": {"full_name": "Other"}}]},
    )
    assert again["skipped"] == 1
    assert lead_row(db, lid)["full_name"] == "Zoë"


@pytest.mark.parametrize(
    ("error_class", "retried"),
    [
        ("auth", True),
        ("permission", True),
        ("throttled", True),
        ("transient", True),
        ("config", True),
        ("not_found", False),
        ("invalid", False),
        ("ambiguous", True),
        ("quota", True),
        ("no_such_class", True),
    ],
)
def test_meta_complete_failure_schedules_retry_by_class(
    api: Database, db: Conn, error_class: str, retried: bool
) -> None:
    lid = new_leadgen_id()
    lead_id = ingest(api, lid)["to_fetch"][0]["lead_id"]
    api.rpc(
        "meta_complete",
        {
            "p_results": [
                {
                    "lead_id": lead_id,
                    "ok": False,
                    "error_class": error_class,
                    "error_code": "graph_x",
                    "message": "What to do.",
                    "details": {"graph_code": 1},
                }
            ]
        },
    )
    row = lead_row(db, lid)
    assert row["status"] == "fetch_pending"
    assert row["fetch_error_code"] == "graph_x"
    assert (row["next_fetch_at"] is not None) is retried
    log = db.execute(
        "select status, error_code, message, details->>'error_class' from "
        "integration_logs where external_id = %s and event = 'lead.fetch_failed'",
        (lid,),
    ).fetchone()
    assert log is not None
    assert log[:2] == ("error", "graph_x")
    assert log[2].startswith("What to do.")
    known = {c.value for c in FailureClass}
    assert log[3] == (error_class if error_class in known else "transient")
    assert row["fetch_error_class"] == log[3]


def test_meta_claim_due_skips_leads_claimed_by_an_open_transaction(
    stack: local_stack.Stack, api: Database, db: Conn
) -> None:
    ids = [new_leadgen_id() for _ in range(6)]
    ingest(api, *ids, claim_limit=0)
    held, other = ids[:3], ids[3:]
    # Only the held ones are due now; the others come due once the first claim is open.
    db.execute(
        "update leads set next_fetch_at = now() + interval '1 hour' "
        "where meta_leadgen_id = any(%s)",
        (other,),
    )
    with psycopg.connect(stack.env["DATABASE_URL"]) as first:
        first.execute("select public.meta_claim_due(100000)")  # the transaction stays open
        db.execute(
            "update leads set next_fetch_at = now() - interval '1 second' "
            "where meta_leadgen_id = any(%s)",
            (other,),
        )
        with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as second:
            # Without SKIP LOCKED this waits on the held rows and fails after lock_timeout.
            second.execute("set lock_timeout = '3s'")
            row = second.execute("select public.meta_claim_due(100000)").fetchone()
        first.rollback()
    assert row is not None
    claimed = {c["leadgen_id"] for c in row[0]["claimed"]}
    assert claimed.isdisjoint(held)
    assert set(other) <= claimed
    db.execute(
        "update leads set next_fetch_at = now() + interval '1 hour' "
        "where meta_leadgen_id = any(%s)",
        (ids,),
    )


def insert_lead(db: Conn, *, status: str = "fetched", **columns: Any) -> str:
    """A lead row put in directly (source manual unless given); its id."""
    values = {"source": "manual", "status": status, **columns}
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = db.execute(
        f"insert into leads ({names}) values ({marks}) returning id::text",
        tuple(values.values()),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_leads_phone_must_be_e164(db: Conn) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        insert_lead(db, phone="415 555 2671")
    assert caught.value.diag.constraint_name == "leads_phone_e164"


@pytest.mark.parametrize(
    ("columns", "constraint"),
    [
        ({"source": "carrier_pigeon"}, "leads_source_known"),
        ({"source": "meta_lead_ads"}, "leads_meta_has_leadgen_id"),
    ],
)
def test_leads_source_rules(db: Conn, columns: dict[str, str], constraint: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        insert_lead(db, **columns)
    assert caught.value.diag.constraint_name == constraint


def test_leads_calendly_source_needs_no_leadgen_id(db: Conn) -> None:
    lead_id = insert_lead(db, source="calendly", status="booked", email="b@example.com")
    assert db.execute("select source from leads where id = %s", (lead_id,)).fetchone() == (
        "calendly",
    )


@pytest.mark.parametrize(
    "path",
    [
        ["fetch_pending", "fetched", "call_queued", "calling", "voicemail", "call_queued"],
        ["fetched", "call_queued", "calling", "no_answer", "booked", "canceled", "booked"],
        ["fetch_pending", "call_queued", "calling", "called", "booked"],
        ["fetched", "booked", "do_not_call"],
    ],
)
def test_leads_lifecycle_allowed_paths(db: Conn, path: list[str]) -> None:
    lead_id = insert_lead(db, status=path[0])
    for status in path[1:]:
        db.execute("update leads set status = %s where id = %s", (status, lead_id))
    assert db.execute("select status from leads where id = %s", (lead_id,)).fetchone() == (
        path[-1],
    )


@pytest.mark.parametrize(
    ("start", "refused"),
    [
        ("booked", "call_queued"),
        ("booked", "calling"),
        ("do_not_call", "call_queued"),
        ("do_not_call", "fetched"),
        ("fetched", "fetch_pending"),
        ("called", "calling"),
    ],
)
def test_leads_lifecycle_refuses_other_transitions(db: Conn, start: str, refused: str) -> None:
    lead_id = insert_lead(db, status=start)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("update leads set status = %s where id = %s", (refused, lead_id))
    assert db.execute("select status from leads where id = %s", (lead_id,)).fetchone() == (start,)


def test_leads_unknown_status_refused(db: Conn) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        insert_lead(db, status="new")


def test_failure_class_enum_matches_python(db: Conn) -> None:
    row = db.execute("select enum_range(null::failure_class)::text[]").fetchone()
    assert row is not None
    assert row[0] == [c.value for c in FailureClass]


@pytest.mark.parametrize(
    ("failure_class", "attempts", "wait_seconds"),
    [
        ("transient", 1, 10),
        ("transient", 2, 20),
        ("throttled", 3, 40),
        ("auth", 4, 60),  # capped at max_retry
        ("ambiguous", 1, 10),
        ("transient", 5, None),  # max_attempts reached
        ("not_found", 1, None),
        ("invalid", 1, None),
    ],
)
def test_queue_retry_at_follows_the_policy_numbers(
    db: Conn, failure_class: str, attempts: int, wait_seconds: int | None
) -> None:
    policy = "row('5 minutes', '10 seconds', '1 minute', 5)::queue_policy"
    row = db.execute(
        f"select extract(epoch from queue_retry_at({policy}, %s, %s) - now()), "
        f"extract(epoch from queue_lease_until({policy}) - now())",
        (failure_class, attempts),
    ).fetchone()
    assert row is not None
    assert (None if row[0] is None else round(row[0])) == wait_seconds
    assert round(row[1]) == 300


def test_meta_fetch_policy_numbers(db: Conn) -> None:
    assert db.execute("select (meta_fetch_policy()).*").fetchone() == (
        timedelta(minutes=2),
        timedelta(seconds=30),
        timedelta(hours=1),
        40,
    )


def test_rls_enabled_on_every_table_without_policies(db: Conn) -> None:
    rows = db.execute(
        "select relname, relrowsecurity from pg_class where relnamespace = "
        "'public'::regnamespace and relkind = 'r'"
    ).fetchall()
    assert {name for name, _ in rows} >= {"leads", "webhook_events", "integration_logs"}
    assert all(secure for _, secure in rows)
    assert db.execute(
        "select count(*) from pg_policies where schemaname = 'public'"
    ).fetchone() == (0,)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_rls_client_roles_cannot_read_or_call(db: Conn, role: str) -> None:
    for statement in ("select * from leads", "select public.meta_claim_due(1)"):
        with db.transaction(force_rollback=True):
            db.execute(f"set local role {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)


@pytest.mark.parametrize(
    ("key", "code"),
    [("anon", "42501"), ("forged service_role", "PGRST301")],
)
def test_standin_refuses_other_keys_with_postgrest_error(
    stack: local_stack.Stack, key: str, code: str
) -> None:
    from tools.stack import jwt

    token = (
        stack.env["SUPABASE_ANON_KEY"]
        if key == "anon"
        else jwt.local_key("service_role", secret="not-the-project-secret-at-all-000000")
    )
    response = httpx.post(
        f"{stack.env['SUPABASE_URL']}/rest/v1/rpc/meta_claim_due",
        json={"p_limit": 1},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == code


def test_standin_unknown_function_404_pgrst202(api: Database) -> None:
    with pytest.raises(DatabaseError) as caught:
        api.rpc("no_such_function", {})
    assert caught.value.details["db_code"] == "PGRST202"


def test_standin_raise_and_unique_violation_statuses(stack: local_stack.Stack, db: Conn) -> None:
    name = "test_fail_" + uuid.uuid4().hex[:8]
    db.execute(f"""create function public.{name}(p_kind text) returns int language plpgsql as $$
        begin
          if p_kind = 'raise' then raise exception 'nope'; end if;
          insert into webhook_events (provider, event_type, external_id, payload)
            values ('t', 't', '{name}', '{{}}'), ('t', 't', '{name}', '{{}}');
          return 1;
        end $$""")
    db.execute(f"grant execute on function public.{name}(text) to service_role")
    url = f"{stack.env['SUPABASE_URL']}/rest/v1/rpc/{name}"
    headers = {"Authorization": f"Bearer {stack.env['SUPABASE_SERVICE_ROLE_KEY']}"}
    raised = httpx.post(url, json={"p_kind": "raise"}, headers=headers)
    unique = httpx.post(url, json={"p_kind": "dup"}, headers=headers)
    assert (raised.status_code, raised.json()["code"], raised.json()["message"]) == (
        400,
        "P0001",
        "nope",
    )
    assert (unique.status_code, unique.json()["code"]) == (409, "23505")


@pytest.mark.parametrize(
    ("sqlstate", "role", "status"),
    [
        ("08006", "service_role", 503),
        ("23505", "service_role", 409),
        ("P0001", "anon", 400),
        ("42883", "anon", 404),
        ("42501", "anon", 401),
        ("42501", "authenticated", 403),
        ("53300", "anon", 503),
        ("53400", "anon", 500),
        ("22P02", "anon", 400),
        ("XX000", "anon", 500),
    ],
)
def test_standin_http_status_follows_postgrest_table(sqlstate: str, role: str, status: int) -> None:
    assert http_status(sqlstate, role=role) == status


def test_standin_database_down_503_and_database_unavailable(
    stack: local_stack.Stack, dead_database_api: str
) -> None:
    down = Database(dead_database_api, stack.env["SUPABASE_SERVICE_ROLE_KEY"])
    with pytest.raises(DatabaseUnavailable) as caught:
        down.rpc("meta_claim_due", {"p_limit": 1})
    assert caught.value.status == 503
    assert caught.value.details["db_code"] == "PGRST001"


def test_database_wrong_key_error_points_at_the_key(stack: local_stack.Stack) -> None:
    anon = Database(stack.env["SUPABASE_URL"], stack.env["SUPABASE_ANON_KEY"])
    with pytest.raises(DatabaseError) as caught:
        anon.rpc("meta_claim_due", {"p_limit": 1})
    assert "SUPABASE_SERVICE_ROLE_KEY" in caught.value.message


def test_database_unreachable_api_is_database_unavailable(stack: local_stack.Stack) -> None:
    nowhere = Database(f"http://127.0.0.1:{local_stack.free_port()}", "key")
    with pytest.raises(DatabaseUnavailable):
        nowhere.rpc("meta_claim_due", {"p_limit": 1})


def test_local_secrets_generate_every_name_and_keep_given_ones() -> None:
    generated = local_stack.local_secrets({"META_APP_SECRET": "mine"})
    assert set(generated) == set(local_stack.LOCAL_SECRET_NAMES)
    assert generated["META_APP_SECRET"] == "mine"
    assert all(generated.values())


def test_log_refused_counts_in_one_row_a_minute_keeping_last_ten_traces(db: Conn) -> None:
    provider = "test-" + uuid.uuid4().hex[:8]
    traces = [uuid.uuid4().hex for _ in range(25)]
    with db.transaction():  # one now(): all 25 fall in the same minute
        db.execute("set local role service_role")
        ids = {
            db.execute(
                "select log_refused(%s, 'meta_webhook.request', 'rejected', "
                "'invalid_signature', %s, '{\"path\": \"/\"}', %s)",
                (provider, f"Bad signature {n}.", trace),
            ).fetchone()
            for n, trace in enumerate(traces)
        }
    ((occurrences, message, kept, status),) = db.execute(
        "select occurrences, message, details->'trace_ids', status from integration_logs "
        "where provider = %s",
        (provider,),
    ).fetchall()
    assert len(ids) == 1
    assert occurrences == 25
    assert message.startswith("25 requests refused with invalid_signature in the minute from")
    assert message.endswith("the last: Bad signature 24.")
    assert kept == traces[-10:]
    assert status == "rejected"
