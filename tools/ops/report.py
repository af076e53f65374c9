"""`make report`: are leads being called fast, and are they booking? One self-contained HTML page
(no network: the charts are inline SVG, no script) with the funnel, the speed-to-lead
distribution, the daily trend and where leads are lost, plus a short summary in the terminal.

    python -m tools.ops.report [--since 2026-11-01] [--until 2026-11-30] [--out report.html]
                               [--form <id>] [--campaign <name>] [--source meta|calendly|...]

Every figure comes from the SQL views report_daily, report_leads and report_losses (the same a
reader sees in Supabase Studio), over the UTC days of the leads' creation at their source from
SINCE (default: 30 days ago) to UNTIL (default: today). Reads DATABASE_URL as `make logs` does;
the first line names the target (ENV=production for the deployed project). Exits 0, or 2 when
it cannot read the database.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tools.ops.logs import CONNECT_TIMEOUT_SECONDS, first_line, where
from tools.stack import envfile
from tools.stack.envfile import command_env

DEFAULT_OUT = envfile.ROOT / ".local" / "report.html"
# Speed-to-lead buckets of the first attempt: (upper bound in seconds, label).
BUCKETS: tuple[tuple[float, str], ...] = (
    (60, "≤ 1 min"),
    (300, "1-5 min"),
    (900, "5-15 min"),
    (3600, "15-60 min"),
    (14400, "1-4 h"),
    (86400, "4-24 h"),
    (float("inf"), "> 24 h"),
)
LOSS_LABELS = {
    "do_not_call": "asked not to be called (do-not-call)",
    "no_phone": "no phone number",
    "no_consent": "no consent to be called",
    "person_booked": "the same person booked through another lead",
    "provider_failures": "every attempt failed at the provider",
    "too_old": "too old when its call came due",
    "outside_hours": "outside calling hours, never reached",
    "max_attempts": "attempts used up, never answered",
    "in_progress": "still being tried",
}
FILTERS = """
    day between %(since)s and %(until)s
    and (%(form)s::text is null or form_id = %(form)s)
    and (%(campaign)s::text is null or campaign = %(campaign)s)
    and (%(source)s::text is null or source = %(source)s)
"""
COUNTS = (
    "leads", "with_phone", "consented", "called", "answered", "voicemail", "voicemail_missed",
    "booked", "attended", "no_show", "do_not_call", "lost",
)  # fmt: skip


@dataclass
class Period:
    since: date
    until: date
    form: str | None = None
    campaign: str | None = None
    source: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "form": self.form,
            "campaign": self.campaign,
            "source": self.source,
        }

    def label(self) -> str:
        scope = [f"{k} {v}" for k, v in (("form", self.form), ("campaign", self.campaign),
                                           ("source", self.source)) if v]  # fmt: skip
        return (
            f"{self.since.isoformat()} to {self.until.isoformat()} (UTC days of the leads' "
            "creation at their source)" + (f", {', '.join(scope)}" if scope else "")
        )


@dataclass
class Figures:
    period: Period
    totals: dict[str, int]
    speed: dict[str, Any]
    buckets: list[int]
    daily: list[dict[str, Any]]
    losses: list[tuple[str, int]]
    sources: list[dict[str, Any]] = field(default_factory=list)
    in_progress: int = 0  # not reached yet, still being tried: not lost

    def rate(self, part: str, whole: str) -> float | None:
        return self.totals[part] / self.totals[whole] if self.totals[whole] else None


LOSSES = (
    "do_not_call", "no_phone", "no_consent", "person_booked", "provider_failures", "too_old",
    "outside_hours", "max_attempts", "in_progress",
)  # fmt: skip
# report_daily's cumulative "first attempted within" counts, one per bucket bound but the last.
WITHIN = ("attempted_within_1_min", "attempted_within_5_min", "attempted_within_15_min",
          "attempted_within_60_min", "attempted_within_4_h", "attempted_within_24_h")  # fmt: skip
SUMMED = (*COUNTS, "timed_attempts", "timed_contacts", *WITHIN,
          *(f"lost_{reason}" for reason in LOSSES[:-1]), "in_progress")  # fmt: skip


def read(conn: psycopg.Connection[Any], period: Period) -> Figures:
    """Every figure of the report, from the views only, in two passes: report_daily (the
    counts, summed per day, per source and for the period at once) and report_leads (the
    period's delay percentiles, which no sum of days gives)."""
    p = period.params()
    # Just-in-time compilation costs more than these queries save (a third of a second each).
    conn.execute("set jit = off")
    sums = ", ".join(f"coalesce(sum({name}), 0)::bigint as {name}" for name in SUMMED)
    # One pass over report_daily: the period's rows are read once (materialized), then summed
    # per day, per source and for the whole period, and their delays' percentiles computed.
    row = conn.execute(
        f"""
        with d as materialized (select * from public.report_daily where {FILTERS}),
        grouped as (
            select day, source, grouping(day) as all_days, grouping(source) as all_sources,
                   {sums}
            from d group by grouping sets ((day), (source), ())
        ),
        attempts as (
            select count(a) as timed_attempts,
                   percentile_cont(0.5) within group (order by a) as attempt_p50,
                   percentile_cont(0.95) within group (order by a) as attempt_p95
            from d, unnest(d.first_attempt_delays) a
        ),
        contacts as (
            select count(c) as timed_contacts,
                   percentile_cont(0.5) within group (order by c) as contact_p50,
                   percentile_cont(0.95) within group (order by c) as contact_p95
            from d, unnest(d.first_contact_delays) c
        )
        select (select coalesce(jsonb_agg(to_jsonb(g)), '[]') from grouped g) as grouped,
               (select to_jsonb(a) from attempts a) || (select to_jsonb(c) from contacts c)
                   as speed
        """,
        p,
    ).fetchone()
    grouped = [
        {**g, "day": date.fromisoformat(g["day"]) if g.get("day") else None}
        for g in (row["grouped"] if row else [])
    ]
    speed = row["speed"] if row else {}
    empty = dict.fromkeys(SUMMED, 0)
    totals = next((dict(r) for r in grouped if r["all_days"] and r["all_sources"]), {**empty})
    cumulative = [int(totals[name]) for name in WITHIN] + [int(totals["timed_attempts"])]
    buckets = [n - (cumulative[i - 1] if i else 0) for i, n in enumerate(cumulative)]
    by_day = {r["day"]: dict(r) for r in grouped if not r["all_days"]}
    days = (period.until - period.since).days + 1
    every_day = [
        by_day.get(day, {**empty, "day": day})
        for day in (period.since + timedelta(days=n) for n in range(days))
    ]
    losses = sorted(
        ((reason, int(totals["in_progress" if reason == "in_progress" else f"lost_{reason}"]))
         for reason in LOSSES),
        key=lambda item: (-item[1], item[0]),
    )  # fmt: skip
    within = dict(zip(("within_1", "within_5", "within_15", "within_60"), cumulative, strict=False))
    return Figures(
        period=period,
        totals={k: int(totals[k]) for k in COUNTS},
        speed={**dict(speed or {}), **within},
        buckets=buckets,
        daily=every_day,
        losses=[(reason, n) for reason, n in losses if n and reason != "in_progress"],
        in_progress=int(totals["in_progress"]),
        sources=sorted(
            (dict(r) for r in grouped if not r["all_sources"] and r["all_days"]),
            key=lambda r: str(r["source"]),
        ),
    )


def duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    value = float(seconds)
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} days"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def shares(f: Figures) -> list[tuple[str, float | None]]:
    timed = int(f.speed.get("timed_attempts") or 0)
    return [
        (label, int(f.speed.get(key) or 0) / timed if timed else None)
        for label, key in (("1 min", "within_1"), ("5 min", "within_5"),
                           ("15 min", "within_15"), ("60 min", "within_60"))
    ]  # fmt: skip


def summary(f: Figures) -> list[str]:
    t, s = f.totals, f.speed
    within = " / ".join(percent(v) for _, v in shares(f))
    lost = ", ".join(f"{reason} {n}" for reason, n in f.losses)
    return [
        f"Report {f.period.label()}: {t['leads']} leads",
        f"  first attempt: p50 {duration(s.get('attempt_p50'))}, p95 "
        f"{duration(s.get('attempt_p95'))} ({s.get('timed_attempts') or 0} timed); within "
        f"1 / 5 / 15 / 60 min: {within}",
        f"  first contact: p50 {duration(s.get('contact_p50'))}, p95 "
        f"{duration(s.get('contact_p95'))} ({s.get('timed_contacts') or 0} timed)",
        f"  contact rate {percent(f.rate('answered', 'called'))} ({t['answered']} of "
        f"{t['called']} called), booking rate {percent(f.rate('booked', 'leads'))} "
        f"({t['booked']} of {t['leads']} leads), attended {t['attended']}, no-show "
        f"{t['no_show']}",
        f"  lost: {t['lost']}" + (f" ({lost})" if lost else ""),
    ]


# --- the page ---------------------------------------------------------------------------------

CSS = """
@page { size: A4 landscape; margin: 9mm; }
* { box-sizing: border-box; }
body { font: 12px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: #1d2733; margin: 16px; }
h1 { font-size: 19px; margin: 0 0 2px; }
h2 { font-size: 13px; margin: 0 0 6px; }
p.period { margin: 0 0 10px; color: #4a5868; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 10px 16px; }
.card { border: 1px solid #d5dde6; border-radius: 6px; padding: 8px 10px; break-inside: avoid; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 6px; margin-bottom: 10px; }
.kpi { border: 1px solid #d5dde6; border-radius: 6px; padding: 6px 8px; }
.kpi b { display: block; font-size: 17px; }
.kpi span { color: #4a5868; font-size: 11px; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: 2px 4px; border-bottom: 1px solid #eef2f6; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font: 10px system-ui, Arial, sans-serif; fill: #1d2733; }
footer { margin-top: 8px; color: #6b7888; font-size: 10px; }
@media print {
  body { margin: 0; font-size: 11px; }
  .grid { gap: 6px 10px; }
  .kpis { gap: 4px; margin-bottom: 6px; }
  .kpi { padding: 4px 6px; }
  .kpi b { font-size: 14px; }
  .card { padding: 5px 8px; }
  .card svg { height: auto; max-height: 135px; width: auto; max-width: 100%; }
}
"""
COLORS = {"leads": "#8aa4bf", "called": "#3f7cc0", "answered": "#2f9e6b", "booked": "#d98a1f"}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def funnel_svg(f: Figures) -> str:
    steps = [
        ("Leads", "leads"), ("With a phone", "with_phone"), ("Consented", "consented"),
        ("Called", "called"), ("Answered", "answered"), ("Booked", "booked"),
        ("Attended", "attended"),
    ]  # fmt: skip
    width, row, left = 470, 22, 92
    top = max(f.totals["leads"], 1)
    parts = []
    for i, (label, key) in enumerate(steps):
        n = f.totals[key]
        w = max(1.0, (width - left - 80) * n / top)
        y = i * row + 2
        parts.append(
            f'<text x="0" y="{y + 14}">{_e(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="#3f7cc0" '
            f'rx="2"><title>{_e(label)}: {n}</title></rect>'
            f'<text x="{left + w + 4:.1f}" y="{y + 14}">{n} ({percent(n / top if f.totals["leads"] else None)})</text>'  # noqa: E501
        )
    height = len(steps) * row + 4
    return (
        f'<svg id="funnel" role="img" aria-label="Funnel" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def distribution_svg(f: Figures) -> str:
    width, height, bottom = 470, 170, 28
    top = max(max(f.buckets), 1)
    slot = (width - 10) / len(BUCKETS)
    parts = []
    for i, ((_, label), n) in enumerate(zip(BUCKETS, f.buckets, strict=True)):
        h = (height - bottom - 18) * n / top
        x = 5 + i * slot
        parts.append(
            f'<rect x="{x + 6:.1f}" y="{height - bottom - h:.1f}" width="{slot - 12:.1f}" '
            f'height="{max(h, 0.5):.1f}" fill="#2f9e6b"><title>{_e(label)}: {n}</title></rect>'
            f'<text x="{x + slot / 2:.1f}" y="{height - bottom - h - 4:.1f}" '
            f'text-anchor="middle">{n}</text>'
            f'<text x="{x + slot / 2:.1f}" y="{height - 10}" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
    return (
        f'<svg id="speed" role="img" aria-label="Time to first attempt" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(parts)}</svg>"
    )


def trend_svg(f: Figures) -> str:
    width, height, left, bottom = 470, 170, 26, 30
    days = f.daily
    top = max([int(d["leads"]) for d in days] + [1])
    span = max(len(days) - 1, 1)
    plot_w, plot_h = width - left - 8, height - bottom - 22

    def point(i: int, value: int) -> str:
        x = left + (plot_w * i / span if len(days) > 1 else plot_w / 2)
        return f"{x:.1f},{height - bottom - plot_h * value / top:.1f}"

    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 8}" y2="{height - bottom}" '
        'stroke="#b8c4d0"/>',
        f'<text x="2" y="{height - bottom - plot_h + 4:.1f}">{top}</text>',
        f'<text x="2" y="{height - bottom}">0</text>',
    ]
    for key, color in COLORS.items():
        points = " ".join(point(i, int(d[key])) for i, d in enumerate(days))
        if points:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2">'
                f"<title>{_e(key)}</title></polyline>"
            )
    for i, key in enumerate(COLORS):
        parts.append(
            f'<rect x="{left + i * 80}" y="2" width="10" height="10" fill="{COLORS[key]}"/>'
            f'<text x="{left + i * 80 + 14}" y="11">{_e(key)}</text>'
        )
    if days:
        parts.append(f'<text x="{left}" y="{height - 12}">{_e(days[0]["day"])}</text>')
        parts.append(
            f'<text x="{width - 8}" y="{height - 12}" '
            f'text-anchor="end">{_e(days[-1]["day"])}</text>'
        )
    return (
        f'<svg id="trend" role="img" aria-label="Daily trend" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def page(f: Figures, generated: datetime) -> str:
    t, s = f.totals, f.speed
    timed_attempts, timed_contacts = s.get("timed_attempts") or 0, s.get("timed_contacts") or 0
    kpis = [
        (duration(s.get("attempt_p50")), f"first attempt, median ({timed_attempts} timed)"),
        (duration(s.get("attempt_p95")), "first attempt, 95th percentile"),
        (duration(s.get("contact_p50")), f"first contact, median ({timed_contacts} timed)"),
        (duration(s.get("contact_p95")), "first contact, 95th percentile"),
        (
            percent(f.rate("answered", "called")),
            f"contact rate ({t['answered']} of {t['called']} called)",
        ),
        (
            percent(f.rate("booked", "leads")),
            f"booking rate ({t['booked']} of {t['leads']} leads)",
        ),
        (
            " / ".join(percent(v) for _, v in shares(f)),
            "first attempt within 1 / 5 / 15 / 60 min",
        ),
        (str(t["lost"]), "leads lost (never reached)"),
    ]  # fmt: skip
    kpi_html = "".join(
        f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in kpis
    )
    loss_rows = (
        "".join(
            f'<tr><td>{_e(LOSS_LABELS.get(reason, reason))}</td><td class="n">{n}</td></tr>'
            for reason, n in f.losses
        )
        or '<tr><td colspan="2">none</td></tr>'
    )
    source_rows = (
        "".join(
            f'<tr><td>{_e(r["source"])}</td><td class="n">{r["leads"]}</td>'
            f'<td class="n">{r["called"]}</td><td class="n">{r["answered"]}</td>'
            f'<td class="n">{r["booked"]}</td></tr>'
            for r in f.sources
        )
        or '<tr><td colspan="5">no lead</td></tr>'
    )
    other = (
        f"voicemail {t['voicemail']} (message not left {t['voicemail_missed']}), attended "
        f"{t['attended']}, no-show {t['no_show']}, do-not-call {t['do_not_call']}"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Speed to lead: {_e(f.period.since)} to {_e(f.period.until)}</title>
<style>{CSS}</style></head>
<body>
<h1>Speed to lead: calls and bookings</h1>
<p class="period" id="period">Period: {_e(f.period.label())}. {t["leads"]} leads.</p>
<div class="kpis">{kpi_html}</div>
<div class="grid">
<section class="card"><h2>Funnel</h2>{funnel_svg(f)}<p>{_e(other)}</p></section>
<section class="card"><h2>Time to first attempt (backfilled leads left out)</h2>{distribution_svg(f)}</section>
<section class="card"><h2>Daily trend</h2>{trend_svg(f)}</section>
<section class="card"><h2>Where leads are lost</h2>
<table id="losses"><tr><th>reason</th><th class="n">leads</th></tr>{loss_rows}</table>
<h2 style="margin-top:8px">By source</h2>
<table id="sources"><tr><th>source</th><th class="n">leads</th><th class="n">called</th>
<th class="n">answered</th><th class="n">booked</th></tr>{source_rows}</table></section>
</div>
<footer>From the views report_daily, report_leads and report_losses; generated
{_e(generated.strftime("%Y-%m-%d %H:%M UTC"))}. Contact rate: answered / called; booking rate:
booked / leads; delays from the lead's creation at its source.</footer>
</body></html>
"""  # noqa: E501


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SystemExit(f"report: {what} {text!r} is not a date (2026-11-01)") from None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.ops.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--since", help="the first day (UTC); default: 30 days ago")
    parser.add_argument("--until", help="the last day (UTC); default: today")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    parser.add_argument("--form", help="one form's leads only")
    parser.add_argument("--campaign", help="one ad campaign's leads only")
    parser.add_argument("--source", choices=("meta", "calendly", "manual", "backfill"))
    args = parser.parse_args(argv)
    settings = command_env("report") if env is None else env
    if settings is None:
        return 2
    today = datetime.now(UTC).date()
    until = parse_day(args.until, "--until") if args.until else today
    since = parse_day(args.since, "--since") if args.since else until - timedelta(days=29)
    if since > until:
        print("report: --since is after --until", file=sys.stderr)
        return 2
    period = Period(since, until, args.form, args.campaign, args.source)
    database_url = settings.get("DATABASE_URL", "").strip()
    if not database_url:
        print(f"report: {envfile.NO_DATABASE}", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(
            database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS, row_factory=dict_row
        ) as conn:
            figures = read(conn, period)
    except psycopg.Error as exc:
        print(f"report: cannot read {where(database_url)}: {first_line(exc)}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page(figures, datetime.now(UTC)), encoding="utf-8")
    print("\n".join([*summary(figures), f"written {args.out}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
