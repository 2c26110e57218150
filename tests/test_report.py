"""Figures (mailhelpdesk.core.report): pure computation on hand-built tickets, the four outputs, the CLI, and the HTML
report rendered by a real headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import struct
import subprocess
import warnings
import zlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from clocks import frozen_at

from mailhelpdesk.app.cli import main
from mailhelpdesk.model import State, Status, Ticket
from mailhelpdesk.core.report import (
    CSV_COLUMNS,
    Report,
    compute_report,
    format_table,
    percentile,
    to_csv,
    to_html,
    to_json,
)
from mailhelpdesk.core.sla import BusinessCalendar
from mailhelpdesk.store.state import Store


def chart_count(report: Report) -> int:
    """How many bars :func:`to_html` draws (24 hours + 7 weekdays + months + agents)."""
    return len(report.by_hour) + len(report.by_weekday) + len(report.by_month) + len(report.by_agent)

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)  # a Friday
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 20, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
HOSTILE = "<script>alert(1)</script>"
H = timedelta(hours=1)


def ticket(n: int, created: datetime, *, first: float | None = None, resolved: float | None = None,
           closed: float | None = None, due: float | None = None, **kw) -> Ticket:
    """A ticket created at `created`; the other times are hours after it."""
    at = lambda hours: None if hours is None else created + hours * H  # noqa: E731
    return Ticket(
        key=f"HD-{n}", number=n, customer=f"c{n}@x.example", subject=f"question {n}", created_at=created,
        first_response_at=at(first), resolved_at=at(resolved), closed_at=at(closed), due_at=at(due), **kw,
    )


def report(tickets, tz=UTC, since=SINCE, until=UNTIL, calendar=None):
    return compute_report(tickets, tz, since, until, NOW, calendar=calendar)


# ------------------------------------------------------------------------------------------------- computation


def test_percentile_interpolates_between_ranks():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([4, 1, 3, 2], 0.5) == 2.5
    assert percentile(range(1, 11), 0.5) == 5.5
    assert percentile(range(1, 11), 0.9) == pytest.approx(9.1)


def test_counts_medians_and_p90_on_known_values():
    base = datetime(2026, 3, 2, 10, tzinfo=UTC)
    tickets = [ticket(i, base + i * H, first=i, resolved=10 * i) for i in range(1, 11)]
    tickets.append(ticket(11, base, status=Status.OPEN))  # unanswered: not in the time figures
    r = report(tickets)
    t = r.total
    assert (t.opened, t.resolved, t.closed, t.responded, t.resolved_created) == (11, 10, 0, 10, 10)
    assert t.median_first_response_h == 5.5
    assert t.p90_first_response_h == pytest.approx(9.1)
    assert t.median_resolution_h == 55
    assert t.p90_resolution_h == pytest.approx(91)
    assert t.median_first_response_bh is None and not r.business_hours


def test_period_bounds_and_event_times():
    inside = ticket(1, datetime(2026, 3, 5, tzinfo=UTC), first=1)
    before = ticket(2, datetime(2026, 2, 25, tzinfo=UTC), first=1, resolved=24 * 6, closed=24 * 9)  # closed in March
    at_until = ticket(3, UNTIL, first=1)  # [since, until): excluded
    at_since = ticket(4, SINCE)
    r = report([inside, before, at_until, at_since])
    assert r.total.opened == 2
    assert r.total.resolved == 1 and r.total.closed == 1  # events in the period count, whenever opened
    assert r.total.responded == 1  # time figures only for tickets created in the period
    assert list(r.by_month) == ["2026-03"]


def test_default_period_is_the_last_30_days():
    old = ticket(1, NOW - timedelta(days=31))
    recent = ticket(2, NOW - timedelta(days=29))
    r = compute_report([old, recent], UTC, None, None, NOW)
    assert r.until == NOW and r.since == NOW - timedelta(days=30)
    assert r.total.opened == 1


def test_sla_breaches():
    c = datetime(2026, 3, 3, 9, tzinfo=UTC)
    tickets = [
        ticket(1, c, first=2, due=4),  # answered in time
        ticket(2, c, first=5, due=4),  # answered late
        ticket(3, c, due=4),  # never answered, due long past at NOW
        ticket(4, datetime(2026, 3, 19, 23, tzinfo=UTC), due=24),  # unanswered, due after NOW: not (yet) a breach
        ticket(5, c, first=1),  # no due time: not counted at all
        ticket(6, c, first=1, due=4, escalations=("warn", "breach")),  # the ladder saw the breach
    ]
    t = report(tickets).total
    assert (t.sla_tracked, t.breaches) == (5, 3)


def test_ratings_and_satisfaction_share():
    c = datetime(2026, 3, 4, 9, tzinfo=UTC)
    ratings = ["good", "good", "good", "okay", "bad", None, "weird"]
    t = report([ticket(i, c, rating=r) for i, r in enumerate(ratings)]).total
    assert dict(t.ratings) == {"good": 3, "okay": 1, "bad": 1}
    assert t.rated == 5
    assert t.satisfaction == pytest.approx(0.6)


def test_by_agent_groups_and_puts_unassigned_last():
    c = datetime(2026, 3, 4, 9, tzinfo=UTC)
    tickets = [
        ticket(1, c, first=1, assignee="bob"),
        ticket(2, c, first=3, assignee="bob", rating="good"),
        ticket(3, c, first=10, assignee="Alice", rating="bad"),
        ticket(4, c),
    ]
    r = report(tickets)
    assert list(r.by_agent) == ["Alice", "bob", "unassigned"]
    assert r.by_agent["bob"].opened == 2 and r.by_agent["bob"].median_first_response_h == 2
    assert r.by_agent["Alice"].satisfaction == 0 and r.by_agent["bob"].satisfaction == 1
    assert r.by_agent["unassigned"].median_first_response_h is None
    assert sum(f.opened for f in r.by_agent.values()) == r.total.opened


def test_hour_weekday_and_month_use_the_helpdesk_time_zone():
    # 22:30 UTC on Tuesday 31 March 2026 is 00:30 on Wednesday 1 April in Berlin (CEST, UTC+2)
    late = ticket(1, datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    # 07:15 UTC on Sunday 1 March 2026 is 08:15 in Berlin (CET, UTC+1)
    early = ticket(2, datetime(2026, 3, 1, 7, 15, tzinfo=UTC))
    since, until = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    berlin = compute_report([late, early], BERLIN, since, until, NOW)
    assert berlin.by_hour[0].opened == 1 and berlin.by_hour[8].opened == 1
    assert berlin.by_weekday["Wed"].opened == 1 and berlin.by_weekday["Sun"].opened == 1
    assert list(berlin.by_month) == ["2026-03", "2026-04"]
    utc = compute_report([late, early], UTC, since, until, NOW)
    assert utc.by_hour[22].opened == 1 and utc.by_hour[7].opened == 1
    assert utc.by_weekday["Tue"].opened == 1
    assert list(utc.by_month) == ["2026-03"]
    assert list(berlin.by_hour) == list(range(24))
    assert list(berlin.by_weekday) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def test_months_without_tickets_are_filled_in():
    r = compute_report(
        [ticket(1, datetime(2025, 11, 3, tzinfo=UTC)), ticket(2, datetime(2026, 2, 3, tzinfo=UTC))],
        UTC, datetime(2025, 1, 1, tzinfo=UTC), NOW, NOW,
    )
    assert list(r.by_month) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert r.by_month["2025-12"].opened == 0


def test_business_hours_with_a_calendar():
    cal = BusinessCalendar.from_settings("Europe/Berlin", "Mon-Fri 09:00-18:00")
    # Friday 6 March 2026 17:00 Berlin (16:00 UTC); answered Monday 10:00 Berlin: 65 h of wall clock, 2 h of business
    t = ticket(1, datetime(2026, 3, 6, 16, tzinfo=UTC), first=65)
    r = report([t], tz=BERLIN, calendar=cal)
    assert r.business_hours
    assert r.total.median_first_response_h == 65
    assert r.total.median_first_response_bh == pytest.approx(2)
    assert r.total.p90_first_response_bh == pytest.approx(2)


def test_empty_input():
    r = report([])
    assert r.total.opened == 0 and r.total.median_first_response_h is None and r.total.satisfaction is None
    assert r.by_agent == {} and r.by_month == {}
    assert len(r.by_hour) == 24 and len(r.by_weekday) == 7
    text = format_table(r)
    assert "median - h" in text and "(no tickets)" in text
    assert list(csv.DictReader(io.StringIO(to_csv(r))))[0]["median_first_response_h"] == ""
    assert json.loads(json.dumps(to_json(r)))["total"]["p90_first_response_h"] is None
    page = to_html(r, "empty")
    assert page.count('class="bar"') == 31 and "no data" in page


# ----------------------------------------------------------------------------------------------------- outputs


def sample():
    c = datetime(2026, 3, 2, 8, tzinfo=UTC)  # Monday
    return [
        ticket(1, c, first=1, resolved=5, closed=80, due=4, assignee="alice", rating="good"),
        ticket(2, c + 26 * H, first=6, resolved=30, due=4, assignee="alice", rating="bad"),
        ticket(3, c + 50 * H, first=2, due=24, assignee=HOSTILE, customer_name=HOSTILE),
        ticket(4, c + 74 * H, due=4),
    ]


def test_format_table_is_aligned_text():
    text = format_table(report(sample(), tz=BERLIN))
    assert "opened 4, closed 1, resolved 2" in text
    assert "SLA breaches: 2 of 4" in text
    assert "satisfaction 50%" in text
    block = text.split("By agent:\n")[1].split("\n\n")[0].splitlines()
    assert [len(line) for line in block] == [len(block[0])] * len(block)  # every row as wide as the header
    assert [line.split()[0] for line in block] == ["agent", HOSTILE, "alice", "unassigned"]


def test_csv_parses_and_has_one_row_per_dimension_and_key():
    r = report(sample(), tz=BERLIN)
    rows = list(csv.DictReader(io.StringIO(to_csv(r))))
    assert tuple(rows[0]) == CSV_COLUMNS
    by = {(row["dimension"], row["key"]): row for row in rows}
    assert by[("total", "all")]["opened"] == "4" and by[("total", "all")]["breaches"] == "2"
    assert by[("total", "all")]["median_first_response_h"] == "2.0"
    assert by[("agent", "alice")]["satisfaction"] == "0.5"
    assert by[("agent", HOSTILE)]["opened"] == "1"  # CSV keeps the text as it is; quoting is the csv module's job
    assert by[("hour", "09")]["opened"] == "1"  # 08:00 UTC is 09:00 in Berlin
    assert {k for d, k in by if d == "weekday"} == {"Mon", "Tue", "Wed", "Thu"}
    assert ("month", "2026-03") in by
    assert rows[0]["dimension"] == "total"


def test_json_round_trips_with_stable_keys():
    data = to_json(report(sample(), tz=BERLIN, calendar=BusinessCalendar.from_settings("Europe/Berlin", "24/7")))
    again = json.loads(json.dumps(data))
    assert again == data
    assert list(data) == ["period", "business_hours", "total", "by_agent", "by_hour", "by_weekday", "by_month"]
    assert list(data["by_hour"]) == [str(h) for h in range(24)]
    assert data["total"]["ratings"] == {"good": 1, "okay": 0, "bad": 1}
    assert data["total"]["median_first_response_bh"] == data["total"]["median_first_response_h"] == 2.0
    assert data["period"]["timezone"] == "Europe/Berlin"


def test_html_is_self_contained_and_escapes_names():
    r = report(sample(), tz=BERLIN)
    page = to_html(r, f"Report {HOSTILE}")
    assert HOSTILE not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # nothing fetched
    assert page.count("<svg") == 4 and page.count('role="img"') == 4 and page.count("aria-label=") == 4
    bars = re.findall(r'<rect class="bar" data-value="([^"]*)"', page)
    assert len(bars) == chart_count(r) == 24 + 7 + 1 + 3
    assert bars[24:31] == ["1", "1", "1", "1", "0", "0", "0"]  # Mon..Sun


# --------------------------------------------------------------------------------------------------------- CLI

CONFIG = """
[helpdesk]
address = "s@x.example"
timezone = "Europe/Berlin"
state_file = "state.json"
[mailbox]
backend = "local"
"""


@pytest.fixture
def helpdesk(tmp_path):
    """A config and state file for the CLI, which runs on the clock standing at NOW."""
    now = NOW
    tickets = [
        ticket(1, now - timedelta(days=3), first=2, resolved=20, assignee="alice", rating="good"),
        ticket(2, now - timedelta(days=2), first=4, assignee=HOSTILE),
        ticket(3, now - timedelta(days=40), first=1),  # outside the default 30 days
    ]
    Store(tmp_path / "state.json").save(State(tickets={t.key: t for t in tickets}))
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text(CONFIG, encoding="utf-8")
    with frozen_at(NOW):
        yield config


def test_cli_report_json_and_html(helpdesk, tmp_path):
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["report", "--config", str(helpdesk), "--format", "json", "--html", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total"]["opened"] == 2
    assert data["total"]["median_first_response_h"] == 3.0
    assert data["business_hours"] is True
    assert sorted(data["by_agent"]) == sorted(["alice", HOSTILE])
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 4 and HOSTILE not in page


def test_cli_report_dates_table_and_csv(helpdesk):
    today = NOW.astimezone(BERLIN).date()
    args = ["report", "--config", str(helpdesk), "--since", str(today - timedelta(days=60)), "--until", str(today)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "opened 3," in result.output and "By agent:" in result.output
    result = CliRunner().invoke(main, args + ["--format", "csv"], catch_exceptions=False)
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows[0]["dimension"] == "total" and rows[0]["opened"] == "3"
    bad = CliRunner().invoke(main, ["report", "--config", str(helpdesk), "--since", "2026-13-01"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_cli_report_without_config_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code != 0 and "config file not found" in result.output


# ---------------------------------------------------------------------------------------- the page in a browser

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium() -> str:
    found = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                  if p and os.access(p, os.X_OK)), None)
    if found is None:
        reason = "chromium not found; install it with: apt-get install -y chromium"
        if os.environ.get("MAILHELPDESK_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason + " (MAILHELPDESK_REQUIRE_CHROMIUM=1)", pytrace=False)
        warnings.warn(pytest.PytestWarning("HTML rendering test skipped: " + reason))
        pytest.skip(reason)
    return found


def _png_summary(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the filtered scanlines); a one-colour image has only a handful."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_html_renders_in_headless_chromium(tmp_path):
    chromium = _chromium()
    r = report(sample(), tz=BERLIN)
    page = tmp_path / "report.html"
    page.write_text(to_html(r, f"Team {HOSTILE}"), encoding="utf-8")
    profile = tmp_path / "profile"

    def browse(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
            capture_output=True, text=True, timeout=90, cwd=tmp_path,
        )

    dump = browse("--dump-dom")
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = dump.stdout
    assert dom.count("<svg") == 4 and dom.count('role="img"') == 4
    assert len(re.findall(r'<rect class="bar" data-value=', dom)) == chart_count(r) == 35
    assert "<script>alert(1)</script>" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom

    shot = tmp_path / "shot.png"
    done = browse(f"--screenshot={shot}", "--window-size=1200,2000", "--hide-scrollbars")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert len(data) > 20_000, f"screenshot is only {len(data)} bytes"
    width, height, distinct = _png_summary(data)
    assert (width, height) == (1200, 2000)
    assert distinct > 32, "the screenshot looks like a single colour"
