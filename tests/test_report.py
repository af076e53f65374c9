"""See the funnel (issue 18): a known week of leads, calls, outcomes and bookings built directly in
the database, and every figure of the views and of `make report` checked against literals worked
out by hand (below, beside each lead). The week is the seven days before today, so the test runs
on any date; its leads carry a campaign of their own, which the views and the report filter on.

The week (day 0 is seven days ago; every lead at 10:00 UTC unless said otherwise):

    A  meta      day 0        called +30 s, answered (started +40 s); booked, meeting held
    B  meta      day 0 11:00  voicemail +120 s; answered on the 2nd call (+3 h, started +3 h 10 s)
    C  meta      day 1        no answer +600 s, +2 h; voicemail +6 h, message not left; no_answer
    D  meta      day 1 12:00  no phone
    E  meta      day 2        no consent (no_consent)
    F  meta      day 2 13:00  one attempt +45 s failed at the provider (not counted); too_old
    G  calendly  day 3 09:00  booked, meeting next week, no phone, no call
    H  backfill  day 3        called +5 h, answered (no delay counted: backfilled)
    I  meta      day 4        called +20 s, answered (started +25 s); booked, marked a no-show
    J  meta      day 5        called +50 s, answered (started +55 s), then asked not to be called
    K  meta      day 6        no common calling hours (no_calling_hours)

    first attempts timed: 20, 30, 45, 50, 120, 600 s -> p50 47.5 s, p95 480 s (120 + 0.75 * 480)
    first contacts timed: 25, 40, 55, 10810 s -> p50 47.5 s, p95 9196.75 s (55 + 0.85 * 10755)
"""

from __future__ import annotations

import html.parser
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tools.fakes.samples import leadgen_delivery, new_leadgen_id
from tools.ops import report
from tools.stack import debian

from .conftest import Functions, queued_lead, unique_phone

Conn = psycopg.Connection[Any]

DAY0 = (datetime.now(UTC) - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour, minutes=minute)


class Week:
    def __init__(self, db: Conn) -> None:
        self.db = db
        self.campaign = f"truth-{uuid.uuid4().hex[:10]}"
        self.ids: dict[str, str] = {}

    def lead(
        self,
        name: str,
        came: datetime,
        *,
        status: str,
        source: str = "meta_lead_ads",
        phone: bool = True,
        consent: bool = True,
        **cols: Any,
    ) -> str:
        values = {
            "source": source,
            "campaign_name": self.campaign,
            "submitted_at": came,
            "created_at": came + timedelta(seconds=2),
            "next_call_at": None,
            **cols,
        }
        if source == "meta_lead_ads":
            values["meta_leadgen_id"] = str(7_000_000_000_000_000 + uuid.uuid4().int % 10**15)
            values["form_id"] = "7000001"
        lead_id = queued_lead(
            self.db, phone=unique_phone() if phone else None, status=status, consent=consent,
            **values,
        )  # fmt: skip
        if not phone:
            self.db.execute("update leads set phone = null where id = %s", (lead_id,))
        self.ids[name] = lead_id
        return lead_id

    def call(
        self,
        name: str,
        attempt: int,
        requested: datetime,
        outcome: str | None,
        *,
        started: datetime | None = None,
        status: str = "completed",
        counted: bool = True,
        voicemail_missed: bool = False,
    ) -> None:
        self.db.execute(
            "insert into calls (lead_id, attempt, to_number, requested_at, started_at, status, "
            "outcome, counted, voicemail_missed) select id, %s, coalesce(phone, '+12125550100'), "
            "%s, %s, %s, %s, %s, %s from leads where id = %s",
            (attempt, requested, started, status, outcome, counted, voicemail_missed,
             self.ids[name]),
        )  # fmt: skip

    def booking(self, name: str, end: datetime, *, no_show: bool = False) -> None:
        self.db.execute(
            "insert into appointments (lead_id, calendly_invitee_uri, status, start_time, "
            "end_time, matched_by, no_show) values (%s, %s, 'active', %s, %s, 'tracking', %s)",
            (self.ids[name], f"https://api.calendly.com/invitees/{uuid.uuid4()}",
             end - timedelta(minutes=30), end, no_show),
        )  # fmt: skip


@pytest.fixture
def week(db: Conn) -> Week:
    w = Week(db)
    w.lead("A", at(0), status="booked")
    w.call("A", 1, at(0) + timedelta(seconds=30), "answered", started=at(0) + timedelta(seconds=40))
    w.booking("A", at(1, 15))
    b = at(0, 11)
    w.lead("B", b, status="called")
    w.call("B", 1, b + timedelta(seconds=120), "voicemail")
    w.call("B", 2, b + timedelta(hours=3), "answered", started=b + timedelta(hours=3, seconds=10))
    w.lead("C", at(1), status="no_answer")
    w.call("C", 1, at(1) + timedelta(seconds=600), "no_answer")
    w.call("C", 2, at(1, 12), "no_answer")
    w.call("C", 3, at(1, 16), "voicemail", voicemail_missed=True)
    w.lead("D", at(1, 12), status="fetched", phone=False, consent=False)
    w.lead("E", at(2), status="no_consent", consent=False)
    f = at(2, 13)
    w.lead("F", f, status="too_old")
    w.call("F", 1, f + timedelta(seconds=45), None, status="failed", counted=False)
    w.lead("G", at(3, 9), status="booked", source="calendly", phone=False, consent=False)
    w.booking("G", datetime.now(UTC) + timedelta(days=7))
    w.lead("H", at(3), status="called", arrived_via="backfill")
    w.call("H", 1, at(3, 15), "answered", started=at(3, 15))
    w.lead("I", at(4), status="booked")
    w.call("I", 1, at(4) + timedelta(seconds=20), "answered", started=at(4) + timedelta(seconds=25))
    w.booking("I", at(5, 15), no_show=True)
    w.lead("J", at(5), status="do_not_call")
    w.call("J", 1, at(5) + timedelta(seconds=50), "answered", started=at(5) + timedelta(seconds=55))
    w.lead("K", at(6), status="no_calling_hours")
    return w


def rows(db: Conn, sql: str, *params: Any) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def test_report_leads_says_what_happened_to_each_lead(db: Conn, week: Week) -> None:
    got = {
        r["lead_id"]: r
        for r in rows(db, "select * from report_leads where campaign = %s", week.campaign)
    }
    by_name = {name: got[uuid.UUID(lead_id)] for name, lead_id in week.ids.items()}

    assert {n: r["source"] for n, r in by_name.items()} == {
        **dict.fromkeys("ABCDEFIJK", "meta"), "G": "calendly", "H": "backfill",
    }  # fmt: skip
    assert {n: r["lost_reason"] for n, r in by_name.items() if r["lost_reason"]} == {
        "C": "max_attempts",
        "D": "no_phone",
        "E": "no_consent",
        "F": "provider_failures",
        "K": "outside_hours",
    }
    assert {n: r["first_attempt_secs"] for n, r in by_name.items()} == {
        "A": 30, "B": 120, "C": 600, "D": None, "E": None, "F": 45, "G": None, "H": None,
        "I": 20, "J": 50, "K": None,
    }  # fmt: skip
    assert {n: r["first_contact_secs"] for n, r in by_name.items() if r["answered"]} == {
        "A": 40, "B": 10810, "H": None, "I": 25, "J": 55,
    }  # fmt: skip
    assert [n for n, r in sorted(by_name.items()) if r["called"]] == ["A", "B", "C", "H", "I", "J"]
    assert [n for n, r in sorted(by_name.items()) if r["attended"]] == ["A"]


def test_report_daily_and_losses_add_up_to_the_week(db: Conn, week: Week) -> None:
    daily = rows(
        db,
        "select * from report_daily where campaign = %s order by day, source",
        week.campaign,
    )
    day0 = daily[0]
    assert (day0["day"], day0["source"], day0["leads"], day0["called"], day0["answered"]) == (
        DAY0.date(), "meta", 2, 2, 2,
    )  # fmt: skip
    assert (day0["booked"], day0["attended"], day0["first_attempt_p50_secs"]) == (1, 1, 75.0)
    day3 = {r["source"]: r for r in daily if r["day"] == at(3).date()}
    assert set(day3) == {"calendly", "backfill"}
    assert (day3["backfill"]["answered"], day3["backfill"]["timed_attempts"]) == (1, 0)
    assert (day3["calendly"]["booked"], day3["calendly"]["called"]) == (1, 0)
    total = {k: sum(r[k] for r in daily) for k in report.COUNTS}
    assert total == {
        "leads": 11, "with_phone": 9, "consented": 8, "called": 6, "answered": 5,
        "voicemail": 2, "voicemail_missed": 1, "booked": 3, "attended": 1, "no_show": 1,
        "do_not_call": 1, "lost": 5,
    }  # fmt: skip
    losses = rows(
        db,
        "select reason, sum(leads)::int as n from report_losses where campaign = %s "
        "group by reason order by reason",
        week.campaign,
    )
    assert [(r["reason"], r["n"]) for r in losses] == [
        ("max_attempts", 1), ("no_consent", 1), ("no_phone", 1), ("outside_hours", 1),
        ("provider_failures", 1),
    ]  # fmt: skip


def run_report(functions: Functions, week: Week, out: Path, *extra: str) -> int:
    since, until = DAY0.date().isoformat(), at(6).date().isoformat()
    argv = ["--since", since, "--until", until, "--campaign", week.campaign, "--out", str(out)]
    return report.main([*argv, *extra], {"DATABASE_URL": functions.env["DATABASE_URL"]})


def test_report_states_every_figure_of_the_week(
    functions: Functions, week: Week, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"

    assert run_report(functions, week, out) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[1:5] == [
        "  first attempt: p50 47.5 s, p95 8.0 min (6 timed); within 1 / 5 / 15 / 60 min: "
        "67% / 83% / 100% / 100%",
        "  first contact: p50 47.5 s, p95 2.6 h (4 timed)",
        "  contact rate 83% (5 of 6 called), booking rate 27% (3 of 11 leads), attended 1, "
        "no-show 1",
        "  lost: 5 (max_attempts 1, no_consent 1, no_phone 1, outside_hours 1, "
        "provider_failures 1)",
    ]
    assert lines[0].endswith(f"campaign {week.campaign}: 11 leads")
    assert lines[-1] == f"written {out}"
    page = out.read_text()
    for figure in (
        "47.5 s", "8.0 min", "2.6 h", "83%", "27%", "67% / 83% / 100% / 100%",
        "5 of 6 called", "3 of 11 leads", "voicemail 2 (message not left 1)", "no-show 1",
    ):  # fmt: skip
        assert figure in page, figure
    # The distribution: 20, 30, 45, 50 s within a minute, 120 s, 600 s.
    bars = re.findall(r"<title>([^<:]+): (\d+)</title></rect>", page.split('id="speed"')[1])
    assert bars[:7] == [
        ("≤ 1 min", "4"), ("1-5 min", "1"), ("5-15 min", "1"), ("15-60 min", "0"),
        ("1-4 h", "0"), ("4-24 h", "0"), ("&gt; 24 h", "0"),
    ]  # fmt: skip


class Page(html.parser.HTMLParser):
    """What the page's tags refer to outside itself, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.scripts = 0
        self.svgs = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.svgs += tag == "svg"
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster") and value:
                self.external.append(f"{tag} {name}={value}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_page_is_self_contained_and_states_its_period(
    functions: Functions, week: Week, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert run_report(functions, week, out) == 0
    source = out.read_text()
    parser = Page()
    parser.feed(source)
    parser.close()

    assert parser.external == [] and parser.scripts == 0 and parser.svgs == 3
    assert "url(" not in source and "@import" not in source
    # xmlns names a namespace, not a resource; no other address is in the page.
    assert re.findall(r"https?://[^\s\"'<]+", source) == ["http://www.w3.org/2000/svg"] * 3
    text = " ".join(" ".join(parser.text).split())
    assert (
        f"Period: {DAY0.date().isoformat()} to {at(6).date().isoformat()} (UTC days of the "
        f"leads' creation at their source), campaign {week.campaign}. 11 leads." in text
    )


def test_report_of_a_period_without_leads_still_renders(
    functions: Functions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "empty.html"
    env = {"DATABASE_URL": functions.env["DATABASE_URL"]}
    argv = ["--campaign", f"none-{uuid.uuid4().hex}", "--out", str(out)]
    assert report.main(argv, env) == 0
    assert ": 0 leads" in capsys.readouterr().out.splitlines()[0]
    assert out.read_text().count("<svg") == 3
    with pytest.raises(SystemExit, match="is not a date"):
        report.main(["--since", "yesterday"], env)


# Chromium as root in a closed network: no sandbox, and none of its background connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (as `make bench` installs wrk)."""
    return debian.ensure("chromium", "chromium", purpose="the report's browser test")


def test_report_opens_in_headless_chromium_and_prints_on_one_page(
    functions: Functions, week: Week, tmp_path: Path, chromium: str
) -> None:
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report.html"
    assert run_report(functions, week, out) == 0
    errors: list[str] = []
    requested: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requested.append(r.url))
            page.goto(out.as_uri(), wait_until="load")
            sizes = page.evaluate(
                "() => [...document.querySelectorAll('svg')].map(s => {"
                " const r = s.getBoundingClientRect(); return [s.id, r.width, r.height]; })"
            )
            marks = page.evaluate(
                "() => document.querySelectorAll('svg rect, svg polyline').length"
            )
            pdf = page.pdf(prefer_css_page_size=True, print_background=True)
        finally:
            browser.close()

    assert errors == []
    assert requested == [out.as_uri()]  # nothing fetched beyond the page itself
    assert [s[0] for s in sizes] == ["funnel", "speed", "trend"]
    assert all(width > 100 and height > 100 for _, width, height in sizes), sizes
    assert marks > 10
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1


def test_report_shows_a_lead_just_sent_as_send_test_event_sends_it(
    functions: Functions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"DATABASE_URL": functions.env["DATABASE_URL"]}
    argv = ["--source", "meta", "--out", str(tmp_path / "now.html")]  # the last 30 days

    def leads() -> int:
        assert report.main(argv, env) == 0
        first = capsys.readouterr().out.splitlines()[0]
        return int(first.rsplit(": ", 1)[1].split()[0])

    before = leads()
    assert functions.post_meta(leadgen_delivery(new_leadgen_id())).status_code == 200
    assert leads() == before + 1
