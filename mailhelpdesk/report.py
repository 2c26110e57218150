"""The team's figures: counts, response and resolution times, SLA breaches, ratings. Pure: no I/O, no clock reads.

:func:`compute_report` turns tickets into a :class:`Report` for the period ``[since, until)``; the formatters
(:func:`format_table`, :func:`to_csv`, :func:`to_json`, :func:`to_html`) turn a report into text.

What is counted (every dimension uses the same rules):

- ``opened``: tickets created in the period; ``closed`` and ``resolved``: tickets whose ``closed_at`` /
  ``resolved_at`` falls in the period (whenever they were created).  Each is bucketed by its own time: a ticket
  opened on Monday and closed on Tuesday counts as opened on Monday and closed on Tuesday.
- Everything else is about the tickets created in the period (bucketed by ``created_at``): first-response time
  (``first_response_at - created_at``, wall-clock hours, and business hours when a calendar is given), resolution
  time (``resolved_at - created_at``), SLA breaches and ratings.
- A ticket breached its SLA when its first response came after ``due_at``, when it has none and ``now`` is past
  ``due_at``, or when the escalation ladder recorded a breach; tickets without ``due_at`` are not counted.
- Percentiles are linear interpolations between the closest ranks (the median of 1, 2, 3, 4 is 2.5; the 90th
  percentile of 1..10 is 9.1).  With no data they are ``None``, shown as "-".
"""

from __future__ import annotations

import csv
import html
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from .model import Ticket
from .rules.rating import RATINGS

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_PERIOD",
    "Figures",
    "Report",
    "compute_report",
    "format_table",
    "percentile",
    "to_csv",
    "to_html",
    "to_json",
]

DEFAULT_PERIOD = timedelta(days=30)
UNASSIGNED = "unassigned"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DIMENSIONS = ("agent", "hour", "weekday", "month")
CSV_COLUMNS = (
    "dimension",
    "key",
    "opened",
    "closed",
    "median_first_response_h",
    "p90_first_response_h",
    "median_resolution_h",
    "breaches",
    "rated",
    "satisfaction",
)
_HOUR = timedelta(hours=1)


class Calendar(Protocol):
    def elapsed(self, start: datetime, end: datetime) -> timedelta: ...


# ------------------------------------------------------------------------------------------------- the values


@dataclass(frozen=True)
class Figures:
    """The figures of one group of tickets (all of them, one agent, one hour of the day...)."""

    opened: int = 0
    closed: int = 0
    resolved: int = 0
    responded: int = 0  # tickets with a first response (the sample of the first-response figures)
    median_first_response_h: float | None = None
    p90_first_response_h: float | None = None
    median_first_response_bh: float | None = None  # business hours; None without a calendar
    p90_first_response_bh: float | None = None
    resolved_created: int = 0  # tickets created in the period and resolved (the sample of the resolution figures)
    median_resolution_h: float | None = None
    p90_resolution_h: float | None = None
    sla_tracked: int = 0  # tickets with a due time
    breaches: int = 0
    ratings: Mapping[str, int] = field(default_factory=lambda: {r: 0 for r in RATINGS})
    rated: int = 0
    satisfaction: float | None = None  # good / rated

    @property
    def empty(self) -> bool:
        return not (self.opened or self.closed or self.resolved)


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    now: datetime
    timezone: str
    business_hours: bool  # whether the *_bh figures were computed
    total: Figures
    by_agent: Mapping[str, Figures]  # agent name (or "unassigned", last) -> figures
    by_hour: Mapping[int, Figures]  # 0..23, all present
    by_weekday: Mapping[str, Figures]  # "Mon".."Sun", all present
    by_month: Mapping[str, Figures]  # "YYYY-MM", first to last month with data, no gaps

    def dimension(self, name: str) -> Mapping[Any, Figures]:
        return {"agent": self.by_agent, "hour": self.by_hour, "weekday": self.by_weekday, "month": self.by_month}[name]


# ------------------------------------------------------------------------------------------------ computation


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th quantile (0 <= q <= 1) by linear interpolation between closest ranks; None without values."""
    data = sorted(values)
    if len(data) < 2:
        return data[0] if data else None
    if q in (0, 1):
        return data[-1] if q else data[0]
    return statistics.quantiles(data, n=1000, method="inclusive")[round(q * 1000) - 1]


@dataclass
class _Bucket:
    """Accumulates one group's raw values; :meth:`figures` summarises them."""

    opened: int = 0
    closed: int = 0
    resolved: int = 0
    first_response: list[float] = field(default_factory=list)
    first_response_bh: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    sla_tracked: int = 0
    breaches: int = 0
    ratings: dict[str, int] = field(default_factory=lambda: {r: 0 for r in RATINGS})

    def figures(self, business: bool) -> Figures:
        rated = sum(self.ratings.values())
        return Figures(
            opened=self.opened,
            closed=self.closed,
            resolved=self.resolved,
            responded=len(self.first_response),
            median_first_response_h=percentile(self.first_response, 0.5),
            p90_first_response_h=percentile(self.first_response, 0.9),
            median_first_response_bh=percentile(self.first_response_bh, 0.5) if business else None,
            p90_first_response_bh=percentile(self.first_response_bh, 0.9) if business else None,
            resolved_created=len(self.resolution),
            median_resolution_h=percentile(self.resolution, 0.5),
            p90_resolution_h=percentile(self.resolution, 0.9),
            sla_tracked=self.sla_tracked,
            breaches=self.breaches,
            ratings=dict(self.ratings),
            rated=rated,
            satisfaction=self.ratings["good"] / rated if rated else None,
        )


def _hours(start: datetime, end: datetime) -> float:
    return max(end - start, timedelta(0)) / _HOUR


def breached(ticket: Ticket, now: datetime) -> bool | None:
    """Whether the ticket missed its first-response time; None when it has no due time."""
    if ticket.due_at is None:
        return None
    from .sla_state import sla_state

    return sla_state(ticket, now).breached


def compute_report(
    tickets: Iterable[Ticket],
    tz: ZoneInfo,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    calendar: Calendar | None = None,
) -> Report:
    """The figures of the period ``[since, until)`` (default: the 30 days up to ``now``), in time zone ``tz``."""
    until = now if until is None else until
    since = until - DEFAULT_PERIOD if since is None else since
    business = calendar is not None

    def in_period(at: datetime | None) -> bool:
        return at is not None and since <= at < until

    def keys(at: datetime, agent: str) -> list[tuple[str, Any]]:
        local = at.astimezone(tz)
        return [
            ("total", ""),
            ("agent", agent),
            ("hour", local.hour),
            ("weekday", WEEKDAYS[local.weekday()]),
            ("month", f"{local.year:04d}-{local.month:02d}"),
        ]

    buckets: dict[tuple[str, Any], _Bucket] = defaultdict(_Bucket)
    for t in tickets:
        agent = t.assignee or UNASSIGNED
        if t.closed_at is not None and in_period(t.closed_at):
            for key in keys(t.closed_at, agent):
                buckets[key].closed += 1
        if t.resolved_at is not None and in_period(t.resolved_at):
            for key in keys(t.resolved_at, agent):
                buckets[key].resolved += 1
        if not in_period(t.created_at):
            continue
        first = _hours(t.created_at, t.first_response_at) if t.first_response_at else None
        first_bh = (
            calendar.elapsed(t.created_at, t.first_response_at) / _HOUR
            if calendar is not None and t.first_response_at
            else None
        )
        resolution = _hours(t.created_at, t.resolved_at) if t.resolved_at else None
        breach = breached(t, now)
        rating = t.rating.strip().lower() if t.rating else None
        for key in keys(t.created_at, agent):
            b = buckets[key]
            b.opened += 1
            if first is not None:
                b.first_response.append(first)
            if first_bh is not None:
                b.first_response_bh.append(first_bh)
            if resolution is not None:
                b.resolution.append(resolution)
            if breach is not None:
                b.sla_tracked += 1
                b.breaches += breach
            if rating in b.ratings:
                b.ratings[rating] += 1

    def group(dimension: str) -> dict[Any, Figures]:
        return {k: b.figures(business) for (d, k), b in buckets.items() if d == dimension}

    agents = group("agent")
    by_agent = {k: agents[k] for k in sorted(agents, key=lambda a: (a == UNASSIGNED, a.casefold(), a))}
    hours, days, months = group("hour"), group("weekday"), group("month")
    return Report(
        since=since,
        until=until,
        now=now,
        timezone=getattr(tz, "key", str(tz)),
        business_hours=business,
        total=group("total").get("", Figures()),
        by_agent=by_agent,
        by_hour={h: hours.get(h, Figures()) for h in range(24)},
        by_weekday={d: days.get(d, Figures()) for d in WEEKDAYS},
        by_month={m: months.get(m, Figures()) for m in _month_span(months)},
    )


def _month_span(months: Iterable[str]) -> list[str]:
    """Every month from the first to the last one given, so a quiet month shows as an empty bar, not a gap."""
    present = sorted(months)
    if not present:
        return []
    year, month = map(int, present[0].split("-"))
    last = present[-1]
    span = []
    while (key := f"{year:04d}-{month:02d}") <= last:
        span.append(key)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return span


# ------------------------------------------------------------------------------------------------- formatting


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _rows(report: Report) -> list[tuple[str, str, Figures]]:
    """(dimension, key, figures): the total, then every group; hours and weekdays without any ticket are skipped."""
    rows = [("total", "all", report.total)]
    for dimension in DIMENSIONS:
        for key, figures in report.dimension(dimension).items():
            if dimension in ("hour", "weekday") and figures.empty:
                continue
            rows.append((dimension, f"{key:02d}" if dimension == "hour" else str(key), figures))
    return rows


def format_table(report: Report) -> str:
    """Readable, aligned text: the period, the totals, then one table per dimension."""
    t = report.total
    tz = ZoneInfo(report.timezone) if report.timezone else None

    def day(at: datetime) -> str:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    lines = [
        f"Report {day(report.since)} .. {day(report.until)} ({report.timezone})",
        "",
        f"  opened {t.opened}, closed {t.closed}, resolved {t.resolved}",
        f"  first response: median {_num(t.median_first_response_h)} h, p90 {_num(t.p90_first_response_h)} h"
        + (
            f" (business hours: median {_num(t.median_first_response_bh)} h, p90 {_num(t.p90_first_response_bh)} h)"
            if report.business_hours
            else ""
        )
        + f"  [{t.responded} answered]",
        f"  resolution: median {_num(t.median_resolution_h)} h, p90 {_num(t.p90_resolution_h)} h"
        f"  [{t.resolved_created} resolved]",
        f"  SLA breaches: {t.breaches} of {t.sla_tracked}",
        f"  ratings: " + ", ".join(f"{r} {t.ratings.get(r, 0)}" for r in RATINGS)
        + f"; satisfaction {_share(t.satisfaction)}",
    ]
    headers = ["opened", "closed", "resolved", "1st med h", "1st p90 h"]
    if report.business_hours:
        headers += ["1st med bh", "1st p90 bh"]
    headers += ["res med h", "res p90 h", "breaches", "rated", "satisf."]

    def cells(f: Figures) -> list[str]:
        out = [str(f.opened), str(f.closed), str(f.resolved),
               _num(f.median_first_response_h), _num(f.p90_first_response_h)]
        if report.business_hours:
            out += [_num(f.median_first_response_bh), _num(f.p90_first_response_bh)]
        return out + [_num(f.median_resolution_h), _num(f.p90_resolution_h),
                      str(f.breaches), str(f.rated), _share(f.satisfaction)]

    rows = _rows(report)
    for dimension in DIMENSIONS:
        body = [[key, *cells(f)] for d, key, f in rows if d == dimension]
        lines += ["", f"By {dimension}:"]
        if not body:
            lines.append("  (no tickets)")
            continue
        table = [[dimension, *headers], *body]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            first = row[0].ljust(widths[0])
            rest = "  ".join(cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))
            lines.append(f"  {first}  {rest}")
    return "\n".join(lines) + "\n"


def to_csv(report: Report) -> str:
    """One row per (dimension, key): the total first, then agents, hours, weekdays, months."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for dimension, key, f in _rows(report):
        values = [
            dimension,
            key,
            f.opened,
            f.closed,
            _round(f.median_first_response_h),
            _round(f.p90_first_response_h),
            _round(f.median_resolution_h),
            f.breaches,
            f.rated,
            _round(f.satisfaction, 3),
        ]
        writer.writerow("" if v is None else v for v in values)
    return out.getvalue()


def _figures_json(f: Figures) -> dict[str, Any]:
    return {
        "opened": f.opened,
        "closed": f.closed,
        "resolved": f.resolved,
        "responded": f.responded,
        "median_first_response_h": _round(f.median_first_response_h),
        "p90_first_response_h": _round(f.p90_first_response_h),
        "median_first_response_bh": _round(f.median_first_response_bh),
        "p90_first_response_bh": _round(f.p90_first_response_bh),
        "resolved_created": f.resolved_created,
        "median_resolution_h": _round(f.median_resolution_h),
        "p90_resolution_h": _round(f.p90_resolution_h),
        "sla_tracked": f.sla_tracked,
        "breaches": f.breaches,
        "ratings": {r: f.ratings.get(r, 0) for r in RATINGS},
        "rated": f.rated,
        "satisfaction": _round(f.satisfaction, 3),
    }


def to_json(report: Report) -> dict[str, Any]:
    """A JSON-ready dict with stable keys; hours are the strings "0".."23"."""
    return {
        "period": {
            "since": report.since.isoformat(),
            "until": report.until.isoformat(),
            "timezone": report.timezone,
            "generated_at": report.now.isoformat(),
        },
        "business_hours": report.business_hours,
        "total": _figures_json(report.total),
        "by_agent": {k: _figures_json(f) for k, f in report.by_agent.items()},
        "by_hour": {str(k): _figures_json(f) for k, f in report.by_hour.items()},
        "by_weekday": {k: _figures_json(f) for k, f in report.by_weekday.items()},
        "by_month": {k: _figures_json(f) for k, f in report.by_month.items()},
    }


# ------------------------------------------------------------------------------------------------------- HTML

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; }
.period { color: #52606d; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #d9e2ec; border-radius: 6px; padding: .6rem .9rem; min-width: 8rem; }
.card b { display: block; font-size: 1.4rem; }
.card span { color: #52606d; font-size: .85rem; }
figure { margin: 1rem 0 2rem; }
figcaption { font-weight: 600; margin-bottom: .4rem; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #52606d; }
svg .value { fill: #1f2933; }
rect.bar { fill: #2f6fb3; }
table { border-collapse: collapse; font-size: .85rem; margin-bottom: 1rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e4e7eb; text-align: right; white-space: nowrap; }
th.dim, td.dim { text-align: left; }
thead th { background: #f5f7fa; }
.wide { overflow-x: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _bar_chart(label: str, bars: list[tuple[str, float | None]], unit: str) -> str:
    """An inline SVG bar chart; one ``<rect class="bar" data-value=...>`` per bar (empty data-value when no data)."""
    width, height, left, top, bottom = 1000, 260, 48, 22, 40
    plot_w, plot_h = width - left - 12, height - top - bottom
    peak = max((v for _, v in bars if v is not None), default=0) or 1
    step = plot_w / max(len(bars), 1)
    bar_w = min(max(step * 0.7, 1), 90)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{_e(label)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#9aa5b1"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{_e(_num(peak, 1 if unit else 0))}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    if not bars:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">no data</text>')
    for i, (name, value) in enumerate(bars):
        h = 0.0 if value is None else plot_h * value / peak
        x = left + i * step + (step - bar_w) / 2
        y = top + plot_h - h
        shown = _num(value, 1) if unit else ("-" if value is None else f"{value:g}")
        data = "" if value is None else f"{value:g}"
        cx = x + bar_w / 2
        parts.append(
            f'<rect class="bar" data-value="{_e(data)}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}"><title>{_e(name)}: {_e(shown)}{_e(unit)}</title></rect>'
        )
        parts.append(f'<text class="value" x="{cx:.1f}" y="{y - 4:.1f}" text-anchor="middle">{_e(shown)}</text>')
        text = name if len(name) <= 14 else name[:13] + "…"
        parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_e(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Report, title: str = "Helpdesk report") -> str:
    """One self-contained page (inline CSS and SVG, no scripts, nothing fetched): cards, four charts, the table."""
    t = report.total
    tz = ZoneInfo(report.timezone) if report.timezone else None

    def day(at: datetime) -> str:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    cards = [
        ("opened", str(t.opened)),
        ("closed", str(t.closed)),
        ("resolved", str(t.resolved)),
        ("median first response", f"{_num(t.median_first_response_h)} h"),
        ("p90 first response", f"{_num(t.p90_first_response_h)} h"),
    ]
    if report.business_hours:
        cards.append(("median first response (business)", f"{_num(t.median_first_response_bh)} h"))
    cards += [
        ("median resolution", f"{_num(t.median_resolution_h)} h"),
        ("SLA breaches", f"{t.breaches} / {t.sla_tracked}"),
        ("satisfaction", f"{_share(t.satisfaction)} of {t.rated}"),
    ]
    charts = [
        ("Tickets opened by hour of day", [(f"{h:02d}", float(f.opened)) for h, f in report.by_hour.items()], ""),
        ("Tickets opened by weekday", [(d, float(f.opened)) for d, f in report.by_weekday.items()], ""),
        ("Tickets opened by month", [(m, float(f.opened)) for m, f in report.by_month.items()], ""),
        (
            "Median first response by agent (hours)",
            [(a, f.median_first_response_h) for a, f in report.by_agent.items()],
            " h",
        ),
    ]
    headers = ["dimension", "key", "opened", "closed", "resolved", "median 1st response h", "p90 1st response h"]
    if report.business_hours:
        headers += ["median 1st response bh", "p90 1st response bh"]
    headers += ["median resolution h", "p90 resolution h", "breaches", "SLA tracked", "good", "okay", "bad",
                "satisfaction"]
    rows = []
    for dimension, key, f in _rows(report):
        cells = [dimension, key, f.opened, f.closed, f.resolved,
                 _num(f.median_first_response_h), _num(f.p90_first_response_h)]
        if report.business_hours:
            cells += [_num(f.median_first_response_bh), _num(f.p90_first_response_bh)]
        cells += [_num(f.median_resolution_h), _num(f.p90_resolution_h), f.breaches, f.sla_tracked,
                  *(f.ratings.get(r, 0) for r in RATINGS), _share(f.satisfaction)]
        rows.append(
            "<tr>" + "".join(f'<td{" class=dim" if i < 2 else ""}>{_e(c)}</td>' for i, c in enumerate(cells)) + "</tr>"
        )
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="period">{_e(day(report.since))} – {_e(day(report.until))} ({_e(report.timezone)}); '
        f"generated {_e(day(report.now))}</p>",
        '<section class="cards">',
        *(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards),
        "</section>",
        *(f"<figure><figcaption>{_e(label)}</figcaption>{_bar_chart(label, bars, unit)}</figure>"
          for label, bars, unit in charts),
        "<h2>Summary</h2>",
        '<div class="wide"><table><thead><tr>'
        + "".join(f'<th{" class=dim" if i < 2 else ""}>{_e(h)}</th>' for i, h in enumerate(headers))
        + "</tr></thead><tbody>",
        *rows,
        "</tbody></table></div>",
        "</body></html>",
    ]
    return "\n".join(page) + "\n"
