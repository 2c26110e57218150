"""Issue 8 (items 3, 4, 6) against a real Dovecot and an aiosmtpd sink: strangers and forwards, a robot that varies
its address, an agent's out-of-office to an assignment notice, and robots that are not bounces. The clock is
injected; nothing here reads the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backends import ImapBackend
from test_robots_and_strangers import CALENDAR_REPLY, delay_notice, mail, read_receipt

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday, in business hours (Vienna)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def date(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


@pytest.fixture
def running(imap_account, smtp_sink, tmp_path):
    """A helpdesk that has been running (its first, quiet pass over an empty mailbox is behind it)."""
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    clock = Clock(T0)
    helpdesk = backend.helpdesk(clock)
    helpdesk.run_pass()
    clock.now += timedelta(minutes=1)
    yield backend, helpdesk, clock
    helpdesk.close()


def deliver(backend, clock, raw: bytes, minutes: float = 1, sent: bool = False) -> str:
    clock.now += timedelta(minutes=minutes)
    return backend.deliver(raw, clock.now, sent=sent)


def kinds(backend) -> list[tuple[str, str]]:
    return [(str(m["X-Mailhelpdesk-Kind"]), str(m["To"])) for m in backend.outgoing()]


def anna(backend, helpdesk, clock):
    deliver(backend, clock, mail(date=date(clock.now)))
    helpdesk.run_pass()
    ack = next(m for m in backend.outgoing() if m["X-Mailhelpdesk-Kind"] == "acknowledgement")
    notice = next(m for m in backend.outgoing() if m["X-Mailhelpdesk-Kind"] == "assignment")
    return helpdesk.state.tickets["HD-1"], str(ack["Message-ID"]), notice


def test_a_stranger_using_a_tickets_message_id_gets_their_own_ticket(running):
    backend, helpdesk, clock = running
    before, ack_id, _ = anna(backend, helpdesk, clock)
    deliver(backend, clock, mail(sender="mallory@attacker.example", subject="Re: [HD-1] Invoice 1042",
                                 mid="<m1@attacker.example>", in_reply_to=ack_id, references=ack_id,
                                 date=date(clock.now), body="Cancel this, and send the invoice to me."))
    helpdesk.run_pass()
    tickets = helpdesk.state.tickets
    assert tickets["HD-2"].customer == "mallory@attacker.example" and tickets["HD-2"].related == ("HD-1",)
    old = tickets["HD-1"]
    assert (old.status, old.history, old.participants, old.rating) == (before.status, before.history,
                                                                        before.participants, before.rating)
    assert "<m1@attacker.example>" not in old.message_ids
    assert "mallory@attacker.example" not in old.participants


def test_a_forwarded_conversation_makes_a_new_linked_ticket_and_leaves_the_old_one_as_it_was(running):
    backend, helpdesk, clock = running
    anna(backend, helpdesk, clock)
    deliver(backend, clock, mail(sender="support@shop.example", to="anna@customer.example", subject="Re: Invoice 1042",
                                 mid="<a1@shop.example>", in_reply_to="<q1@customer.example>",
                                 references="<q1@customer.example>", date=date(clock.now)), sent=True)
    helpdesk.run_pass()
    old = helpdesk.state.tickets["HD-1"]
    assert old.status.value == "pending" and old.first_response_at is not None
    deliver(backend, clock, mail(sender="carl@partner.example", subject="Fwd: Re: Invoice 1042",
                                 mid="<f1@partner.example>", references="<q1@customer.example> <a1@shop.example>",
                                 date=date(clock.now), body="---------- Forwarded message ----------\r\n..."))
    helpdesk.run_pass()
    assert helpdesk.state.tickets["HD-1"] == old  # not re-opened, nothing attached
    new = helpdesk.state.tickets["HD-2"]
    assert new.customer == "carl@partner.example" and new.related == ("HD-1",) and new.status.value == "open"
    labels = backend.all_labels()
    assert {"Helpdesk/Status/Pending"} <= set().union(*(labels[r] for r in old.refs))


def test_a_robot_that_varies_its_address_gets_at_most_five_acknowledgements_in_15_exchanges(running):
    backend, helpdesk, clock = running
    for n in range(15):  # every mail we send it is answered by a "new request" from a new address
        deliver(backend, clock, mail(sender=f"support+{4711 + n}@vendor.example",
                                     subject=f"Your request #{4711 + n} has been received", mid=f"<r{n}@vendor.example>",
                                     date=date(clock.now), body="Thank you, we will get back to you."))
        helpdesk.run_pass()
    acks = [to for kind, to in kinds(backend) if kind == "acknowledgement"]
    assert 1 <= len(acks) <= 5, acks
    assert len(helpdesk.state.tickets) == 15  # each recorded for an agent; only the answers are capped


def test_an_agents_out_of_office_to_an_assignment_notice_leaves_the_ticket_open_and_escalating(running):
    backend, helpdesk, clock = running
    ticket, _, notice = anna(backend, helpdesk, clock)
    deliver(backend, clock, mail(sender="alice@shop.example", subject=f"Automatic reply: {notice['Subject']}",
                                 mid="<ooo@shop.example>", in_reply_to=str(notice["Message-ID"]),
                                 headers=("Auto-Submitted: auto-replied",), date=date(clock.now),
                                 body="I am out of the office until Monday."))
    helpdesk.run_pass()
    t = helpdesk.state.tickets["HD-1"]
    assert t.status.value == "open" and t.first_response_at is None and "<ooo@shop.example>" in t.message_ids
    clock.now = t.due_at + timedelta(minutes=5)
    helpdesk.run_pass()
    assert ("escalation breach", "alice@shop.example") in kinds(backend)
    assert "Helpdesk/Overdue" in backend.all_labels()[t.refs[0]]


def test_calendar_replies_read_receipts_and_delay_notices_open_no_ticket_and_flag_no_bounce(running):
    backend, helpdesk, clock = running
    _, ack_id, _ = anna(backend, helpdesk, clock)
    sent_before = len(backend.outgoing())
    refs = [deliver(backend, clock, raw) for raw in (CALENDAR_REPLY, read_receipt(ack_id), delay_notice(ack_id))]
    helpdesk.run_pass()
    assert list(helpdesk.state.tickets) == ["HD-1"] and helpdesk.state.tickets["HD-1"].bounced is False
    assert len(backend.outgoing()) == sent_before  # nothing to a robot
    labels = backend.all_labels()
    assert labels[refs[0]] == {"Helpdesk/Ignored"}
    reasons = {r.reason for r in helpdesk.state.ignored.values()}
    assert any("calendar reply" in r for r in reasons)
