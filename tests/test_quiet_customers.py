"""A customer who went quiet on a pending ticket (`[pending]`): one reminder in the thread, then the ticket is
resolved and its resolution notice goes; a reply at any time re-opens as usual; nothing when it is off."""

from __future__ import annotations

from datetime import timedelta

from mailhelpdesk.model import HistoryEvent, Status
from test_workflow import SHARED_ACCOUNT_REPLY, at, question, workflow_desk

ANSWERED = at(21, 16, 31)  # the shared account's answer: Thursday 21 January 16:30 New York, the ticket pending


def answered_desk(**pending):
    desk = workflow_desk(**({"pending": pending} if pending else {}))
    desk.feed(question(at(21, 9)), now=at(21, 9))
    desk.tick(at(21, 9))
    desk.feed(SHARED_ACCOUNT_REPLY, folder_role="sent", now=ANSWERED)
    desk.tick(ANSWERED)
    assert desk.ticket().status == Status.PENDING
    return desk


def reminders(desk):
    return desk.sends("customer reminder")


def test_a_quiet_customer_is_reminded_once_then_the_ticket_is_resolved_with_its_notice():
    desk = answered_desk(remind_after="2d", resolve_after="3d")
    desk.tick(at(25, 16, 29))  # Thu 16:30 + 2 working days = Mon 25th 16:30: not yet
    assert reminders(desk) == []
    for now in (at(25, 16, 31), at(25, 17), at(26, 10)):  # due: one reminder, whatever the passes
        desk.tick(now)
    (reminder,) = reminders(desk)
    assert reminder.to == "anna@customer.example" and reminder.subject.startswith("[HD-1] is there anything else")
    # in the thread, after the agent's answer; a notice nobody asked for (RFC 3834)
    assert reminder.in_reply_to == "<wf-reply@shop.example>" and reminder.auto_submitted == "auto-generated"
    assert "mark the request as solved in a few days" in reminder.body
    assert desk.ticket().status == Status.PENDING and desk.ticket().logged(HistoryEvent.MAILED)
    desk.tick(at(28, 16, 30))  # Mon 16:31 + 3 working days = Thu 28th 16:31: not yet
    assert desk.ticket().status == Status.PENDING
    desk.tick(at(28, 16, 32))
    ticket = desk.ticket()
    assert ticket.status == Status.RESOLVED and ticket.resolved_at == at(28, 16, 32)
    assert "customer stayed quiet" in ticket.history[-1].detail
    (notice,) = desk.sends("resolution")  # the usual resolution notice: thanks, anything left, a rating
    assert notice.to == "anna@customer.example"
    assert len(reminders(desk)) == 1


def test_a_reply_after_the_reminder_reopens_and_a_later_quiet_spell_gets_its_own_reminder():
    desk = answered_desk(remind_after="1d", resolve_after="1d")
    desk.tick(at(22, 16, 31))
    assert len(reminders(desk)) == 1
    reply = question(at(22, 17)).replace(b"<wf1@customer.example>", b"<wf9@customer.example>").replace(
        b"Subject: Export fails", b"In-Reply-To: <wf-reply@shop.example>\r\nSubject: Re: Export fails")
    desk.feed(reply, now=at(22, 17, 1))
    desk.tick(at(22, 17, 1))
    assert desk.ticket().status == Status.OPEN  # re-opened as usual
    desk.tick(at(27, 12))  # open, not pending: neither reminded nor resolved however long it waits
    assert len(reminders(desk)) == 1 and desk.ticket().status == Status.OPEN


def test_off_by_default_nothing_is_sent():
    desk = answered_desk()
    for day in (25, 26, 27, 28):
        desk.tick(at(day, 12))
    assert reminders(desk) == [] and desk.ticket().status == Status.PENDING


def test_a_reminder_that_waited_in_the_outbox_while_the_customer_wrote_loses_its_point():
    from mailhelpdesk.core import outbox

    desk = answered_desk(remind_after="1d")
    desk.tick(at(22, 16, 31))
    desk.state.merge(outbox.queue(desk.state, desk.actions, at(22, 16, 31)))  # an SMTP outage: it waits
    reply = question(at(22, 17)).replace(b"<wf1@customer.example>", b"<wf9@customer.example>").replace(
        b"Subject: Export fails", b"In-Reply-To: <wf-reply@shop.example>\r\nSubject: Re: Export fails")
    desk.feed(reply, now=at(22, 17, 1))
    dropped = outbox.review(desk.state, at(22, 17, 2))
    assert "customer reminder" in [r.kind for r in dropped.sent.values()]
    assert any("before it went out" in note for note in dropped.notes)
