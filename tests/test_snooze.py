"""`#snooze`: out of sight until then (no reminder, not overdue, not in digests, `Helpdesk/Snoozed`), back at its
time or when the customer writes, or by `#unsnooze`; an open ticket then waits again with its full target."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailhelpdesk.model import HistoryEvent, Status
from test_workflow import at, command_mail, question, reminders, workflow_desk

SNOOZED = "Helpdesk/Snoozed"


def snoozed_desk(argument: str, when=None):
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))  # Tuesday 19 January 2027, New York (Monday was a holiday)
    desk.tick(at(19, 9))
    when = when or at(19, 10)
    desk.feed(command_mail("alice@shop.example", f"#snooze {argument}"), now=when)
    desk.tick(when)
    return desk


@pytest.mark.parametrize("argument, until", [
    ("3d", at(22, 10)),  # three working days: Friday 10:00 (the time of the command)
    ("4h", at(19, 14)),
    ("monday", at(25, 9)),  # the next Monday's opening
    ("friday", at(22, 9)),
    ("2027-01-27", at(27, 9)),
])
def test_snooze_until_a_duration_a_weekday_or_a_date_in_working_time(argument, until):
    desk = snoozed_desk(argument)
    ticket = desk.ticket()
    assert ticket.snoozed_until == until and SNOOZED in ticket.labels_applied
    assert ticket.logged(HistoryEvent.SNOOZED) and desk.sends("command rejected") == []


def test_a_snoozed_ticket_sends_nothing_is_not_overdue_and_comes_back_on_time_with_a_full_wait():
    desk = snoozed_desk("monday")
    for now in (at(20, 12), at(21, 16), at(22, 10)):  # its 24 business hours run out Thursday 19:00 -> no ladder
        desk.tick(now)
    assert reminders(desk) == [] and "Helpdesk/Overdue" not in desk.ticket().labels_applied
    assert all("HD-1" not in m.body for m in desk.sends("digest"))  # out of the digests while it sleeps
    desk.tick(at(25, 9, 1))
    ticket = desk.ticket()
    assert ticket.snoozed_until is None and SNOOZED not in ticket.labels_applied
    assert ticket.waiting_since == at(25, 9, 1) and ticket.due_at > at(25, 9, 1)  # a full target from now
    assert ticket.history[-1].what == HistoryEvent.SNOOZE_ENDED or ticket.logged(HistoryEvent.SNOOZE_ENDED)


def test_the_customers_reply_or_unsnooze_ends_it_at_once():
    desk = snoozed_desk("monday")
    reply = question(at(20, 11)).replace(b"<wf1@customer.example>", b"<wf5@customer.example>").replace(
        b"Subject: Export fails", b"In-Reply-To: <wf1@customer.example>\r\nSubject: Re: Export fails")
    desk.feed(reply, now=at(20, 11, 1))
    desk.tick(at(20, 11, 1))
    assert desk.ticket().snoozed_until is None and desk.ticket().status == Status.OPEN
    assert SNOOZED not in desk.ticket().labels_applied
    again = snoozed_desk("monday")
    again.feed(command_mail("alice@shop.example", "#unsnooze") + b"", now=at(19, 11))
    assert again.ticket().snoozed_until is None


def test_a_snooze_that_makes_no_sense_is_refused_with_a_reason():
    desk = snoozed_desk("someday")
    (rejected,) = desk.sends("command rejected")
    assert "#snooze 'someday'" in rejected.body and desk.ticket().snoozed_until is None
    past = snoozed_desk("2027-01-04")
    assert "that time has passed" in past.sends("command rejected")[0].body
