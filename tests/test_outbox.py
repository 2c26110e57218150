"""The outbox decided by the core (core/outbox.py): a mail that waited (an outage, a refusal) is looked at again when
its moment comes, and one that lost its point is dropped with a note on its ticket; each outcome of a send is a
plan the core makes, so app/effects.py only acts."""

from __future__ import annotations

from mailhelpdesk.core import outbox
from mailhelpdesk.model import HistoryEvent, MailKind, Status
from mailhelpdesk.core.outbox import Outcome, SendOutcome
from test_workflow import FRIDAY_EVENING, SHARED_ACCOUNT_REPLY, at, question, workflow_desk


def queued(desk, now):
    desk.state.merge(outbox.queue(desk.state, desk.actions, now))
    return {r.kind: r for r in outbox.waiting(desk.state)}


def test_a_breach_reminder_that_waited_while_the_agent_answered_is_dropped_with_a_note():
    desk = workflow_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING)
    desk.tick(FRIDAY_EVENING)  # the pass that made the ticket ends (its assignment notice goes alone)
    desk.tick(at(21, 16))  # the breach: a reminder to the assignee, queued; SMTP is down
    waiting = queued(desk, at(21, 16))
    assert MailKind.ESCALATION_BREACH in waiting
    assert outbox.review(desk.state, at(21, 16)).sent == {}, "still the point: the customer waits"
    desk.feed(SHARED_ACCOUNT_REPLY, folder_role="sent", now=at(21, 16, 31))  # answered during the outage
    plan = outbox.review(desk.state, at(21, 17))
    desk.state.merge(plan)
    record = desk.state.sent[waiting[MailKind.ESCALATION_BREACH].message_id]
    assert record.done and record.mail is None
    assert [r.kind for r in outbox.waiting(desk.state)] == [MailKind.ASSIGNMENT], (
        "the acknowledgement went too (the customer was answered); the assignment notice still has its point")
    notes = [h for h in desk.ticket().history if h.what == HistoryEvent.NOTICE_DROPPED]
    assert len(notes) == 1 and "escalation breach" in notes[0].detail and "answered" in notes[0].detail
    assert desk.ticket().logged(HistoryEvent.ACK_DROPPED)


def test_a_resolution_notice_that_waited_while_the_customer_wrote_again_is_dropped():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    ticket = desk.ticket()
    desk.state.tickets[ticket.key] = ticket.log(at(19, 10), HistoryEvent.STATUS, "open -> resolved",
                                                status=Status.RESOLVED, resolved_at=at(19, 10))
    desk.tick(at(19, 10, 5))
    waiting = queued(desk, at(19, 10, 5))
    assert MailKind.RESOLUTION in waiting
    desk.state.tickets[ticket.key] = desk.ticket().log(at(19, 11), HistoryEvent.CUSTOMER_REPLIED, "anna",
                                                       status=Status.OPEN)
    plan = outbox.review(desk.state, at(19, 12))
    assert plan.sent[waiting[MailKind.RESOLUTION].message_id].done
    assert any("re-opened" in note for note in plan.notes)


def test_each_outcome_is_a_plan_of_the_core():
    desk = workflow_desk(mailbox={"backend": "local", "daily_send_limit": 10})
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.tick(at(19, 9))
    ack = queued(desk, at(19, 9))[MailKind.ACKNOWLEDGEMENT]
    deferred = outbox.recorded(desk.state, SendOutcome(Outcome.DEFERRED, ack.message_id, reason="451"), at(19, 9))
    desk.state.merge(deferred)
    assert desk.state.sent[ack.message_id].retry_at == at(19, 9, 5) and not outbox.may_send(
        desk.state, desk.state.sent[ack.message_id], at(19, 9, 4), 10)
    sent = outbox.recorded(desk.state, SendOutcome(Outcome.SENT, ack.message_id, ref="Sent:1:7"), at(19, 9, 5))
    desk.state.merge(sent)
    assert desk.state.sent[ack.message_id].done and desk.state.sends_last_day(at(19, 9, 5)) == 1
    assert desk.state.index["ref:Sent:1:7"] == "HD-1" and ack.message_id in desk.ticket().message_ids
    assert [t for _, t in desk.state.sender_log.items()], "an acknowledgement counts for its sender's limit"
    gave_up = outbox.recorded(desk.state, SendOutcome(Outcome.GAVE_UP, ack.message_id, reason="550"), at(19, 9))
    assert gave_up.tickets["HD-1"].history[-1].what == HistoryEvent.COULD_NOT_SEND
