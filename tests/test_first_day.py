"""Working-day SLAs, one truth about overdue, and the quiet first run over a backlog (pure engine, fixed clocks)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mailhelpdesk.core.duties.digests import build_digests
from mailhelpdesk.model import SendMail, Status
from mailhelpdesk.core.sla import BusinessCalendar, Target, parse_target
from mailhelpdesk.core.sla_state import sla_state
from test_engine import Desk, make_config

BERLIN = ZoneInfo("Europe/Berlin")
CAL = BusinessCalendar.from_settings("Europe/Berlin", "Mon-Fri 09:00-18:00", holidays_country="DE",
                                     holidays_subdivision="BE")
LUNCH = BusinessCalendar.from_settings("Europe/Berlin", "Mon-Fri 09:00-12:00,13:00-18:00; Sat 10:00-14:00")


def berlin(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def request(when: datetime, n: int = 1, sender: str = "anna@customer.example", subject: str = "Export fails") -> bytes:
    return (
        f"From: Anna <{sender}>\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S %z')}\r\nMessage-ID: <fd{n}@customer.example>\r\n\r\nHelp.\r\n"
    ).encode()


# --- `1d` is the same time on the next working day ------------------------------------------------------------


def test_targets_in_days_are_working_days_and_hours_are_business_hours():
    assert parse_target("1d") == Target(days=1)
    assert parse_target("24h") == Target(business=timedelta(hours=24))
    assert parse_target("1d4h") == Target(days=1, business=timedelta(hours=4))
    one_day = Target(days=1)
    assert CAL.add_target(berlin(1, 14), one_day) == berlin(2, 14)  # Tuesday 14:00 -> Wednesday 14:00
    assert CAL.add_target(berlin(4, 14), one_day) == berlin(7, 14)  # Friday -> Monday
    assert CAL.add_target(berlin(5, 11), one_day) == berlin(7, 11)  # Saturday: the next working day, Monday
    assert CAL.add_target(berlin(1, 20), one_day) == berlin(2, 18)  # Tuesday 20:00: by Wednesday's closing
    assert CAL.add_target(berlin(1, 7), one_day) == berlin(2, 9)  # before opening: Wednesday's opening
    assert CAL.add_target(berlin(24, 15), one_day) == berlin(28, 15)  # 25-26 Dec: Christmas holidays, weekend
    assert CAL.add_target(berlin(1, 14), Target(days=2)) == berlin(3, 14)
    assert CAL.add_target(berlin(1, 14), Target(days=1, business=timedelta(hours=5))) == berlin(3, 10)
    # a day with shorter hours: its closing; a lunch break: the time it started
    assert LUNCH.add_target(berlin(4, 16), one_day) == berlin(5, 14)
    assert LUNCH.add_target(berlin(3, 12, 30), one_day) == berlin(4, 12)  # in Friday's lunch break: before it
    # 24 business hours would have said Friday for a Tuesday customer
    assert CAL.add(berlin(1, 14), timedelta(hours=24)) == berlin(4, 11)


def test_the_default_normal_target_tells_a_tuesday_customer_tomorrow_at_the_same_time():
    desk = Desk(make_config(helpdesk={"timezone": "Europe/Berlin"}))
    now = berlin(1, 14)
    desk.feed(request(now), now=now)
    desk.tick(now)
    assert desk.ticket().due_at == berlin(2, 14)
    assert "tomorrow by 14:00 CET" in desk.sends("acknowledgement")[0].body


# --- one truth about overdue (issue 12's two disagreements) ---------------------------------------------------


def test_a_priority_raise_moves_the_due_time_and_every_view_agrees():
    desk = Desk(make_config(helpdesk={"timezone": "Europe/Berlin"}, sla={"escalate_to": ["lead@shop.example"]}))
    start = berlin(1, 10)
    desk.feed(request(start), now=start)
    desk.tick(start)
    assert desk.ticket().due_at == berlin(2, 10)
    # an agent raises it to urgent by label at 10:30: due at 11:00 now, not tomorrow
    t = desk.ticket()
    ref = t.refs[0]
    labels = frozenset(set(t.labels_applied) - {"Helpdesk/Priority/Normal"} | {"Helpdesk/Priority/Urgent"})
    plan = desk.engine.on_labels(desk.state, [(ref, labels)], berlin(1, 10, 30))
    desk.state.merge(plan)
    assert desk.ticket().due_at == berlin(1, 11)
    later = berlin(1, 13)
    desk.tick(later)
    t = desk.ticket()
    assert sla_state(t, later).overdue
    assert "Helpdesk/Overdue" in t.labels_applied
    assert [m.kind for m in desk.sends() if m.kind.startswith("escalation")] == ["escalation breach"]
    digests = {m.to: m for m in build_digests(desk.engine.context(desk.state), desk.state, later)}
    assert "(1 overdue)" in digests["alice@shop.example"].subject
    assert "Overdue (1)" in digests["lead@shop.example"].body


def test_a_ticket_that_breached_answered_and_reopened_gets_a_new_wait_not_an_overdue_label():
    desk = Desk(make_config(helpdesk={"timezone": "Europe/Berlin"}))
    start = berlin(1, 10)
    desk.feed(request(start), now=start)
    desk.tick(start)  # the pass that made the ticket ends (its assignment notice goes alone)
    desk.tick(berlin(2, 11))  # breached at Wednesday 10:00
    assert "Helpdesk/Overdue" in desk.ticket().labels_applied
    answer = (
        "From: alice@shop.example\r\nTo: anna@customer.example\r\nCc: support@shop.example\r\nSubject: Re: Export fails\r\n"
        "Date: Wed, 02 Dec 2026 12:00:00 +0100\r\nMessage-ID: <fd-answer@shop.example>\r\n"
        "In-Reply-To: <fd1@customer.example>\r\n\r\nTry again.\r\n"
    ).encode()
    desk.feed(answer, now=berlin(2, 12, 1))
    assert desk.ticket().status == Status.PENDING
    again = (
        "From: Anna <anna@customer.example>\r\nTo: support@shop.example\r\nSubject: Re: Export fails\r\n"
        "Date: Wed, 02 Dec 2026 15:00:00 +0100\r\nMessage-ID: <fd-again@customer.example>\r\n"
        "In-Reply-To: <fd-answer@shop.example>\r\n\r\nStill broken.\r\n"
    ).encode()
    desk.feed(again, now=berlin(2, 15, 1))
    desk.tick(berlin(2, 15, 5))
    t = desk.ticket()
    assert t.status == Status.OPEN and t.due_at == berlin(3, 15)
    assert not sla_state(t, berlin(2, 15, 5)).overdue and "Helpdesk/Overdue" not in t.labels_applied
    assert sla_state(t, berlin(2, 15, 5)).breached  # the first wait's breach still counts in reports
    desk.tick(berlin(3, 15, 1))  # the new wait breaches: a new reminder, not swallowed as a duplicate
    assert len([m for m in desk.sends() if m.kind == "escalation breach"]) == 2
    assert "Helpdesk/Overdue" in desk.ticket().labels_applied


# --- the first run over a backlog is quiet ----------------------------------------------------------------------


def test_the_first_run_over_a_five_day_backlog_sends_fresh_acknowledgements_and_one_summary_per_person():
    config = make_config(helpdesk={"timezone": "Europe/Berlin"}, sla={"escalate_to": ["lead@shop.example"]},
                         agents=[{"name": "Alice", "email": "alice@shop.example"},
                                 {"name": "Bob", "email": "bob@shop.example"}])
    desk = Desk(config, first_run=True)
    now = berlin(4, 12)  # Friday noon; mail from Monday on
    customers = []
    for n in range(100):
        when = now - timedelta(hours=5 * 24 * n / 100 + 0.1)
        customer = f"c{n}@customer{n}.example"
        customers.append((customer, when))
        desk.feed(request(when, n, customer, f"Question {n}"), now=now)
    desk.tick(now)
    sends = desk.sends()
    kinds = sorted({m.kind for m in sends})
    assert kinds == ["acknowledgement", "backlog summary"], kinds
    fresh = {c for c, when in customers if now - when <= timedelta(hours=24)}
    assert {m.to for m in desk.sends("acknowledgement")} == fresh and len(desk.sends("acknowledgement")) == len(fresh)
    summaries = {m.to: m for m in desk.sends("backlog summary")}
    assert sorted(summaries) == ["alice@shop.example", "bob@shop.example", "lead@shop.example"]
    overdue = [t for t in desk.state.tickets.values() if sla_state(t, now).overdue]
    assert overdue and all("Helpdesk/Overdue" in t.labels_applied for t in overdue)
    assert f"{len(overdue)} overdue" in summaries["lead@shop.example"].subject
    alice = summaries["alice@shop.example"]
    assert "100 conversations imported, 50 yours" in alice.subject and "OVERDUE" in alice.body
    # overdue first in each person's list
    lines = [line for line in alice.body.splitlines() if line.strip().startswith("HD-")]
    marks = ["OVERDUE" in line for line in lines]
    assert marks == sorted(marks, reverse=True)
    # the next pass is an ordinary one: nothing more for the backlog, new mail is handled as usual
    desk.state.cursors["last_pass"] = now.isoformat()
    before = len(desk.sends())
    desk.tick(now + timedelta(minutes=1))
    assert len(desk.sends()) == before
    desk.feed(request(now + timedelta(minutes=2), 500, "new@customer.example", "New"), now=now + timedelta(minutes=2))
    desk.tick(now + timedelta(minutes=2))
    assert sorted(m.kind for m in desk.sends()[before:]) == ["acknowledgement", "assignment"]
    assert all(isinstance(m, SendMail) for m in sends)
