"""The team's figures: counts, response and resolution times, SLA breaches, ratings. Pure: no clock reads, and no
I/O but reading the HTML page's template.

:func:`compute_report` turns tickets into a :class:`Report` for the period ``[since, until)``; the formatters
(:func:`format_table`, :func:`to_csv`, :func:`to_json`, :func:`to_html`) turn a report into text; the HTML page's
markup is the Jinja2 template ``templates/report.html.j2``.

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
import functools
import io
import statistics
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2

from mailhelpdesk.model import Ticket
from mailhelpdesk.core.judge.rating import RATINGS

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
# what compute_report (and sla_state, for breaches) reads of a ticket: an archived ticket is decoded with only these
FIELDS = frozenset({"key", "number", "customer", "subject", "created_at", "status", "priority", "assignee",
                    "first_response_at", "resolved_at", "closed_at", "due_at", "waiting_since", "escalations",
                    "rating", "history"})
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
    # packed doubles, not lists of floats: a year of 365,000 tickets adds each value to five groups
    first_response: array = field(default_factory=lambda: array("d"))
    first_response_bh: array = field(default_factory=lambda: array("d"))
    resolution: array = field(default_factory=lambda: array("d"))
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
    from mailhelpdesk.core.sla_state import sla_state

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


def _local_time(report: Report) -> Callable[[datetime], str]:
    """How the report shows a time: in its time zone, to the minute."""
    tz = ZoneInfo(report.timezone) if report.timezone else None
    return lambda at: at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


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
    day = _local_time(report)
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
        "  ratings: " + ", ".join(f"{r} {t.ratings.get(r, 0)}" for r in RATINGS)
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


# every chart's frame (SVG user units): size, margins left and top, the plot area
FRAME = {"width": 1000, "height": 260, "left": 48, "top": 22, "plot_width": 940, "plot_height": 198}


@dataclass(frozen=True)
class _Bar:
    name: str
    shown: str  # the value as labelled
    data: str  # the value for machines (data-value); "" without data
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class _Chart:
    label: str
    unit: str
    peak: str  # the label at the top of the axis
    bars: list[_Bar]


def _chart(label: str, values: list[tuple[str, float | None]], unit: str) -> _Chart:
    """A bar chart's geometry: one bar per value, of height 0 when there is no data."""
    plot_width, plot_height, baseline = FRAME["plot_width"], FRAME["plot_height"], FRAME["top"] + FRAME["plot_height"]
    peak = max((v for _, v in values if v is not None), default=0) or 1
    step = plot_width / max(len(values), 1)
    width = min(max(step * 0.7, 1), 90)
    bars = []
    for i, (name, value) in enumerate(values):
        height = 0.0 if value is None else plot_height * value / peak
        shown = _num(value, 1) if unit else ("-" if value is None else f"{value:g}")
        data = "" if value is None else f"{value:g}"
        x = FRAME["left"] + i * step + (step - width) / 2
        bars.append(_Bar(name, shown, data, x, baseline - height, width, height))
    return _Chart(label, unit, _num(peak, 1 if unit else 0), bars)


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mailhelpdesk", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["share"] = _share
    return env


def to_html(report: Report, title: str = "Helpdesk report") -> str:
    """One self-contained page (inline CSS and SVG, no scripts, nothing fetched): cards, four charts, the table.
    The markup is ``templates/report.html.j2``."""
    charts = [
        _chart("Tickets opened by hour of day", [(f"{h:02d}", float(f.opened)) for h, f in report.by_hour.items()], ""),
        _chart("Tickets opened by weekday", [(d, float(f.opened)) for d, f in report.by_weekday.items()], ""),
        _chart("Tickets opened by month", [(m, float(f.opened)) for m, f in report.by_month.items()], ""),
        _chart(
            "Median first response by agent (hours)",
            [(a, f.median_first_response_h) for a, f in report.by_agent.items()],
            " h",
        ),
    ]
    return _environment().get_template("report.html.j2").render(
        report=report,
        title=title,
        day=_local_time(report),
        charts=charts,
        frame=FRAME,
        rows=_rows(report),
        ratings=RATINGS,
    )
