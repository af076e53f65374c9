"""Missed leads recovered (issue 17, part 2): `make backfill` and the sweep's daily recovery list a
form's leads from the Graph fake (cursor paging over several pages, filtered on time_created) and
store each lead we do not have through the webhook's own SQL, never twice and with no second
fetch; a lead older than CALL_MAX_LEAD_AGE_HOURS is stored but not called automatically."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from lib.db import Database
from meta_webhook import recovery
from meta_webhook.graph_api import graph_for
from meta_webhook.settings import MetaWebhookSettings
from tools.fakes.graph_fake import default_form, default_lead, graph_error
from tools.fakes.samples import PAGE_ID, leadgen_delivery, new_leadgen_id
from tools.ops import backfill

from .conftest import ANY_HOUR, RULES, Functions, GraphFake, claim, queued_lead

Conn = psycopg.Connection[Any]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


def form_lead(form_id: str, created: datetime) -> dict[str, Any]:
    """A lead node as ``GET /{form-id}/leads`` lists it (the webhook path's fields)."""
    leadgen_id = new_leadgen_id()
    return {**default_lead(leadgen_id), "form_id": form_id, "created_time": iso(created)}


def env(functions: Functions, **changes: str) -> dict[str, str]:
    return {
        "SUPABASE_URL": functions.env["SUPABASE_URL"],
        "SUPABASE_SERVICE_ROLE_KEY": functions.env["SUPABASE_SERVICE_ROLE_KEY"],
        "META_GRAPH_URL": functions.env["META_GRAPH_URL"],
        "META_ACCESS_TOKEN": functions.env["META_ACCESS_TOKEN"],
        "META_APP_SECRET": functions.env["META_APP_SECRET"],
        "META_PAGE_ID": PAGE_ID,
        **changes,
    }


def arrived(db: Conn, leadgen_ids: list[str]) -> dict[str, str | None]:
    rows = db.execute(
        "select meta_leadgen_id, arrived_via from leads where meta_leadgen_id = any(%s)",
        (leadgen_ids,),
    ).fetchall()
    return {str(r[0]): r[1] for r in rows}


@pytest.fixture
def form(graph: GraphFake) -> str:
    """A form of its own for the test, asking for consent (the Graph fake lists it on PAGE_ID)."""
    form_id = str(900_000_000_000_000 + uuid.uuid4().int % 10**12)
    graph.put(f"forms/{form_id}", {**default_form(form_id), "name": "Backfill form"})
    return form_id


def test_backfill_pages_through_a_form_and_stores_only_what_is_new(
    functions: Functions, db: Conn, graph: GraphFake, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    nodes = [form_lead(form, now - timedelta(minutes=5 + i)) for i in range(230)]
    old = form_lead(form, now - timedelta(days=3))  # before SINCE: not listed
    graph.put(f"form_leads/{form}", {"leads": [*nodes, old]})
    # The webhook brought one of them already.
    had = str(nodes[7]["id"])
    assert functions.post_meta(leadgen_delivery(had)).status_code == 200
    since = (now - timedelta(days=1)).strftime("%Y-%m-%d")

    assert backfill.main(["--since", since, "--form", form], env(functions)) == 0

    out = capsys.readouterr().out
    assert f"  form {form}: 230 found, 229 new" in out
    assert "1 form(s) read, 230 lead(s) found, 229 new" in out
    # Three pages of at most 100, and no lead fetched again one by one.
    pages = graph.requests(f"{form}/leads")
    assert len(pages) == 3
    new_ids = [str(n["id"]) for n in nodes if str(n["id"]) != had]
    assert sum(graph.count(leadgen_id) for leadgen_id in new_ids[:20]) == 0
    stored = arrived(db, [*new_ids, had, str(old["id"])])
    assert set(stored) == {*new_ids, had}
    assert {stored[i] for i in new_ids} == {"backfill"} and stored[had] is None
    row = db.execute(
        "select status, full_name, submitted_at from leads where meta_leadgen_id = %s",
        (new_ids[0],),
    ).fetchone()
    assert row is not None and row[0] == "call_queued" and row[1]
    logged = db.execute(
        "select count(*) from integration_logs where event = 'lead.recovered' "
        "and external_id = any(%s)",
        (new_ids,),
    ).fetchone()
    assert logged == (229,)

    # Again: nothing new, nothing stored twice.
    assert backfill.main(["--since", since, "--form", form], env(functions)) == 0
    assert "230 lead(s) found, 0 new" in capsys.readouterr().out
    assert db.execute(
        "select count(*) from leads where meta_leadgen_id = any(%s)", (new_ids,)
    ).fetchone() == (229,)


def test_backfill_reads_every_form_of_the_page_by_default(
    functions: Functions, db: Conn, graph: GraphFake, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    node = form_lead(form, now - timedelta(minutes=3))
    graph.put(f"form_leads/{form}", {"leads": [node]})
    assert backfill.main(["--since", iso(now - timedelta(hours=1))[:19]], env(functions)) == 0
    out = capsys.readouterr().out
    assert f"  form {form} Backfill form: 1 found, 1 new" in out
    assert arrived(db, [str(node["id"])]) == {str(node["id"]): "backfill"}


def test_backfill_refusals_and_missing_settings(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert backfill.main(["--since", yesterday], env(functions, META_PAGE_ID="")) == 2
    assert "not set: META_PAGE_ID" in capsys.readouterr().err
    wrong = env(functions, META_ACCESS_TOKEN="not-the-token")
    assert backfill.main(["--since", yesterday], wrong) == 1
    assert "the Graph API refused" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="is not a date"):
        backfill.main(["--since", "last tuesday"], env(functions))


def test_a_lead_older_than_the_max_age_is_stored_but_not_called(
    functions: Functions, db: Conn, graph: GraphFake, form: str
) -> None:
    now = datetime.now(UTC)
    node = form_lead(form, now - timedelta(hours=80))  # CALL_MAX_LEAD_AGE_HOURS is 72
    graph.put(f"form_leads/{form}", {"leads": [node]})
    since = iso(now - timedelta(days=4))[:19]
    assert backfill.main(["--since", since, "--form", form], env(functions)) == 0
    row = db.execute(
        "select id::text from leads where meta_leadgen_id = %s", (str(node["id"]),)
    ).fetchone()
    assert row is not None

    decided = claim(db, row[0])

    assert decided["decision"] == "too_old"
    status = db.execute("select status from leads where id = %s", (row[0],)).fetchone()
    assert status == ("too_old",)
    assert db.execute("select count(*) from calls where lead_id = %s", (row[0],)).fetchone() == (0,)


def test_the_daily_recovery_resumes_where_a_sweep_stopped_and_runs_once_a_day(
    functions: Functions, db: Conn, graph: GraphFake, form: str
) -> None:
    now = datetime.now(UTC)
    nodes = [form_lead(form, now - timedelta(minutes=2 + i)) for i in range(120)]
    graph.put(f"form_leads/{form}", {"leads": nodes})
    # The page's job is due (its last run finished over a day ago).
    db.execute(
        "insert into meta_recovery_jobs (page_id, state, finished_at) values (%s, '{}', "
        "now() - interval '25 hours') on conflict (page_id) do update set "
        "finished_at = excluded.finished_at, lease_until = null, state = excluded.state",
        (PAGE_ID,),
    )
    database = Database(functions.env["SUPABASE_URL"], functions.env["SUPABASE_SERVICE_ROLE_KEY"])
    graph_client = graph_for(
        MetaWebhookSettings.load(env(functions)), functions.env["META_ACCESS_TOKEN"]
    )

    def work(budget: float) -> dict[str, Any] | None:
        return recovery.page(database, graph_client, PAGE_ID, region="US", budget_seconds=budget)

    # A sweep with no time left claims the job, lists the forms, saves them and stops.
    first = work(1e-9)
    assert first == {"found": 0, "new": 0, "finished": False}, first
    state = db.execute(
        "select state from meta_recovery_jobs where page_id = %s", (PAGE_ID,)
    ).fetchone()
    assert state is not None and form in [f["id"] for f in state[0]["forms"]]
    # While its lease runs, another sweep leaves the job alone.
    assert work(60) is None
    db.execute("update meta_recovery_jobs set lease_until = now() where page_id = %s", (PAGE_ID,))

    done = work(60)

    assert done is not None and done["finished"] is True and done["new"] >= 120, done
    ids = [str(n["id"]) for n in nodes]
    assert set(arrived(db, ids).values()) == {"recovery"}
    assert graph.requests(f"{form}/leads")[-1]["query"].get("after") == "100"  # 2 pages
    # Finished: not due again for a day.
    assert work(60) is None


def test_the_served_sweep_runs_the_recovery(
    functions: Functions, db: Conn, graph: GraphFake, form: str
) -> None:
    node = form_lead(form, datetime.now(UTC) - timedelta(minutes=1))
    graph.put(f"form_leads/{form}", {"leads": [node]})
    db.execute(
        "update meta_recovery_jobs set finished_at = now() - interval '25 hours', "
        "lease_until = null where page_id = %s",
        (PAGE_ID,),
    )
    answer = functions.sweep()
    assert answer.status_code == 200
    deadline = time.monotonic() + 5
    while not arrived(db, [str(node["id"])]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert arrived(db, [str(node["id"])]) == {str(node["id"]): "recovery"}


def test_a_form_the_token_cannot_read_is_skipped_and_the_others_recovered(
    functions: Functions, db: Conn, graph: GraphFake, form: str
) -> None:
    broken = str(900_000_000_000_000 + uuid.uuid4().int % 10**12)
    graph.put(f"forms/{broken}", {**default_form(broken), "name": "Cut off"})
    node = form_lead(form, datetime.now(UTC) - timedelta(minutes=1))
    graph.put(f"form_leads/{form}", {"leads": [node]})
    refused = {"status": 400, "body": graph_error("(#200) Requires leads access", 200)}
    graph.script(f"{broken}/leads", *[refused] * 3)
    db.execute(
        "insert into meta_recovery_jobs (page_id) values (%s) on conflict (page_id) do update "
        "set state = null, finished_at = null, started_at = null, lease_until = null",
        (PAGE_ID,),
    )
    database = Database(functions.env["SUPABASE_URL"], functions.env["SUPABASE_SERVICE_ROLE_KEY"])
    graph_client = graph_for(
        MetaWebhookSettings.load(env(functions)), functions.env["META_ACCESS_TOKEN"]
    )

    done = recovery.page(database, graph_client, PAGE_ID, region="US", budget_seconds=60)

    assert done is not None and done["finished"] is True, done
    assert arrived(db, [str(node["id"])]) == {str(node["id"]): "recovery"}
    logged = db.execute(
        "select message from integration_logs where event = 'lead.recovery_failed' "
        "and external_id = %s",
        (broken,),
    ).fetchall()
    assert len(logged) == 1 and "That form is skipped until the next run" in logged[0][0]


def test_a_run_left_unfinished_for_a_day_starts_again_from_where_the_last_began(
    db: Conn,
) -> None:
    page = f"stale-{uuid.uuid4().hex[:8]}"
    db.execute(
        "insert into meta_recovery_jobs (page_id, state, started_at) values (%s, "
        "'{\"since\": 1, \"forms\": []}', now() - interval '30 hours')",
        (page,),
    )
    job = db.execute("select public.meta_recovery_claim(%s, 24, 48, 300)", (page,)).fetchone()
    assert job is not None and job[0] is not None
    since = datetime.fromtimestamp(job[0]["state"]["since"], UTC)
    # The run began 30 hours ago, so the new one reads from 48 hours ago (the earlier of the two).
    assert abs(since - (datetime.now(UTC) - timedelta(hours=48))) < timedelta(minutes=5)
    assert job[0]["state"]["forms"] is None


def test_a_lead_s_age_is_on_the_real_clock_not_the_call_rules_test_clock(db: Conn) -> None:
    # The call rules' clock a month ahead (as STACK_CLOCK_SHIFT runs the suite): a lead that
    # just came is still young, since its times were written by the real clock.
    row = db.execute("select shift from public.test_clock").fetchone()
    previous = row[0] if row else None
    db.execute(
        "insert into public.test_clock (shift) values (interval '30 days') "
        "on conflict (id) do update set shift = excluded.shift"
    )
    try:
        lead_id = queued_lead(db)
        decided = claim(db, lead_id, {**RULES, **ANY_HOUR})
    finally:
        if previous is None:
            db.execute("delete from public.test_clock")
        else:
            db.execute("update public.test_clock set shift = %s", (previous,))
    assert decided["decision"] == "place", decided
