"""The outbox against a real SMTP server that refuses one recipient for now (450 at RCPT, Postfix's answer for a
domain that does not answer): the others go at once, the refused one is retried with backoff and given up after a
day with a note on its ticket; an acknowledgement that waited while an agent answered is never sent."""

from __future__ import annotations

from datetime import timedelta

from backends import ImapBackend
from servers import _SinkHandler
from test_behaviour import NOW

SUPPORT_REPLY = (
    "From: support@shop.example\r\nTo: {to}\r\nSubject: Re: {subject}\r\nDate: Fri, 20 Nov 2026 10:40:00 +0000\r\n"
    "Message-ID: <answer-{n}@shop.example>\r\nIn-Reply-To: <req-{n}@c.example>\r\n\r\nDone.\r\n"
)


TOPICS = ("the invoice", "the parcel", "the login", "a refund", "the price list", "an address change")


def request(n: int, sender: str) -> bytes:
    """A person's request, in words of their own (the same mail again would be a robot's: core/judge/loops.py)."""
    topic = TOPICS[n % len(TOPICS)]
    return (f"From: <{sender}>\r\nTo: support@shop.example\r\nSubject: Request about {topic}\r\n"
            f"Date: Fri, 20 Nov 2026 10:0{n}:00 +0000\r\nMessage-ID: <req-{n}@c.example>\r\n\r\nHelp with {topic}.\r\n"
            ).encode()


class RefusingHandler(_SinkHandler):
    """Answers 450 at RCPT for the addresses in `refused`, like a server whose next hop does not answer."""

    refused: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "450 4.1.2 <%s>: Recipient address rejected: Domain not found" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"


class Unavailable(_SinkHandler):
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return "421 4.3.2 Service not available, closing transmission channel"


def acks_to(sink) -> list[str]:
    return [str(m.message["To"]) for m in sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement"]


def test_one_refused_recipient_blocks_nobody_and_is_retried_with_backoff(imap_account, smtp_sink, tmp_path):
    handler = RefusingHandler(smtp_sink)
    handler.refused = {"b@typo.example"}
    smtp_sink.controller.handler = handler  # new sessions get the refusing handler
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    empty = backend.helpdesk(lambda: NOW - timedelta(hours=1))
    empty.run_pass()  # a running helpdesk, so the three requests below are new mail, not a backlog
    empty.close()
    for n, sender in enumerate(["a@c.example", "b@typo.example", "c@c.example"], 1):
        backend.deliver(request(n, sender), NOW - timedelta(minutes=30))
    clock = [NOW]
    desk = backend.helpdesk(lambda: clock[0])
    desk.run_pass()
    assert sorted(acks_to(smtp_sink)) == ["a@c.example", "c@c.example"], "the refused one blocks nobody"
    record = next(r for r in desk.state.sent.values() if r.to == "b@typo.example" and r.kind == "acknowledgement")
    assert not record.done and record.attempts == 1 and record.retry_at == NOW + timedelta(minutes=5)

    tries_before = len(acks_to(smtp_sink))
    clock[0] = NOW + timedelta(minutes=1)
    desk.run_pass()  # backing off: not tried again yet
    clock[0] = NOW + timedelta(minutes=6)
    desk.run_pass()  # tried and refused again: the wait doubles
    record = desk.state.sent[record.message_id]
    assert record.attempts == 2 and record.retry_at == NOW + timedelta(minutes=16)
    assert len(acks_to(smtp_sink)) == tries_before

    handler.refused = set()  # the domain answers again
    clock[0] = NOW + timedelta(minutes=17)
    desk.run_pass()
    assert sorted(acks_to(smtp_sink)) == ["a@c.example", "b@typo.example", "c@c.example"]
    assert desk.state.sent[record.message_id].done
    desk.close()


def test_a_recipient_refused_for_a_day_is_given_up_and_noted_on_the_ticket(imap_account, smtp_sink, tmp_path):
    handler = RefusingHandler(smtp_sink)
    handler.refused = {"b@typo.example"}
    smtp_sink.controller.handler = handler
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    backend.helpdesk(lambda: NOW - timedelta(hours=1)).run_pass()
    backend.deliver(request(2, "b@typo.example"), NOW - timedelta(minutes=30))
    clock = [NOW]
    desk = backend.helpdesk(lambda: clock[0])
    for minutes in range(0, 25 * 60, 30):
        clock[0] = NOW + timedelta(minutes=minutes)
        desk.run_pass()
    record = next(r for r in desk.state.sent.values() if r.kind == "acknowledgement")
    assert record.done and record.mail is None and acks_to(smtp_sink) == []
    ticket = desk.state.tickets[record.ticket]
    assert any(h.what == "could not send" and "still refused after" in h.detail for h in ticket.history)
    desk.close()


def test_an_acknowledgement_held_by_an_outage_is_dropped_once_an_agent_has_answered(imap_account, smtp_sink, tmp_path):
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    backend.helpdesk(lambda: NOW - timedelta(hours=1)).run_pass()
    backend.deliver(request(1, "a@c.example"), NOW - timedelta(minutes=30))
    smtp_sink.controller.handler = Unavailable(smtp_sink)  # an SMTP outage: the acknowledgement waits in the outbox
    desk = backend.helpdesk(lambda: NOW)
    desk.run_pass()
    waiting = [r for r in desk.state.sent.values() if not r.done and r.kind == "acknowledgement"]
    assert [r.kind for r in waiting] == ["acknowledgement"]
    # meanwhile an agent answers from the shared account
    backend.deliver(SUPPORT_REPLY.format(to="a@c.example", subject="Request 1", n=1).encode(),
                    NOW + timedelta(minutes=10), sent=True)
    smtp_sink.controller.handler = _SinkHandler(smtp_sink)  # the server is back
    desk.clock = lambda: NOW + timedelta(hours=8)
    desk.run_pass()
    assert acks_to(smtp_sink) == []
    ticket = desk.state.tickets[waiting[0].ticket]
    assert desk.state.sent[waiting[0].message_id].done
    assert any(h.what == "acknowledgement dropped" for h in ticket.history)
    desk.close()
