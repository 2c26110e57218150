"""The SMTP commit point (issue 9, item 4) against a real Dovecot and an aiosmtpd server that misbehaves after the
final dot for one message: it answers 451 (the message is refused, for now), or it has taken the message and
hangs up before answering (the one window no protocol closes). README, "Exactly once": a message refused for now
waits with backoff while the others go, and its copy in the sent folder is no proof of sending, restart or not;
after a dropped connection the running daemon sends it again (at most one duplicate), and after a restart the copy
stored at the commit counts as sent. No other message is blocked or lost. The clock is injected."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from backends import ImapBackend
from servers import _SinkHandler
from test_behaviour import NOW
from test_outbox_faults import request  # people's requests, each in words of their own

VICTIM = "b@c.example"
CUSTOMERS = ["a@c.example", VICTIM, "c@c.example"]


class OneFault(_SinkHandler):
    """Misbehaves once, for the first message to VICTIM (`faults` says whether it did); takes everything else."""

    def __init__(self, sink):
        super().__init__(sink)
        self.faults: list[str] = []

    def first(self, envelope) -> bool:
        if VICTIM in envelope.rcpt_tos and not self.faults:
            self.faults.append(VICTIM)
            return True
        return False


class RefusedAfterTheDot(OneFault):
    """451 after the final dot (the server could not queue it)."""

    async def handle_DATA(self, server, session, envelope):
        if self.first(envelope):
            return "451 4.3.0 Error: queue file write error"
        return await super().handle_DATA(server, session, envelope)


class DroppedAfterTheDot(OneFault):
    """The message is taken (kept, as a server that queued it), then the connection is cut before the answer: the
    client cannot know whether it went."""

    async def handle_DATA(self, server, session, envelope):
        status = await super().handle_DATA(server, session, envelope)
        if self.first(envelope):
            server.transport.abort()  # no answer ever reaches the client
        return status


@pytest.fixture
def harness(imap_account, smtp_sink, tmp_path):
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    empty = backend.helpdesk(lambda: NOW - timedelta(hours=1))
    empty.run_pass()  # a running helpdesk, so the requests below are new mail, not a backlog
    empty.close()
    for n, sender in enumerate(CUSTOMERS, 1):
        backend.deliver(request(n, sender), NOW - timedelta(minutes=30))
    return backend


def delivered(sink) -> Counter:
    """What the server took, by (kind, recipient, ticket)."""
    return Counter((str(m.message["X-Mailhelpdesk-Kind"]), str(m.message["To"]), str(m.message["X-Mailhelpdesk-Ticket"]))
                   for m in sink.messages)


def ack_to(address: str, mails) -> int:
    return sum(n for (kind, to, _), n in mails.items() if (kind, to) == ("acknowledgement", address))


def copies_in_sent(backend, message_id: str) -> int:
    backend.client.select_folder("Sent", readonly=True)
    return len(backend.client.search(["HEADER", "Message-ID", message_id]))


def first_pass(harness, sink, handler: OneFault, copies: int):
    """The pass that meets the fault: the clock, the helpdesk, what the server took, the victim's outbox record;
    `copies`: of the victim's mail in the sent folder after the fault."""
    sink.controller.handler = handler  # new sessions get it
    clock = [NOW]
    desk = harness.helpdesk(lambda: clock[0])
    desk.run_pass()
    assert handler.faults == [VICTIM]
    record = next(r for r in desk.state.sent.values() if r.to == VICTIM and r.kind == "acknowledgement")
    assert not record.done and copies_in_sent(harness, record.message_id) == copies
    return clock, desk, delivered(sink), record


def expected(first_pass: Counter, record) -> Counter:
    """Every mail of the first pass once, and the victim's acknowledgement once."""
    return first_pass + Counter({("acknowledgement", VICTIM, record.ticket): 1})


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_a_451_after_the_dot_is_retried_with_backoff_and_its_copy_is_no_proof(harness, smtp_sink, restart):
    # stored at the commit, taken out again when the server refused it: no copy stands for a mail that never went
    clock, desk, first, record = first_pass(harness, smtp_sink, RefusedAfterTheDot(smtp_sink), copies=0)
    assert [to for kind, to, _ in first if kind == "acknowledgement"] == ["a@c.example", "c@c.example"], "nobody waits"
    # each once: two acknowledgements, Bob's assignment notice and Alice's two in one mail (core/duties/notices.py)
    assert sum(first.values()) == len(first) == 4, first
    assert record.attempts == 1 and record.retry_at == NOW + timedelta(minutes=5)

    clock[0] = NOW + timedelta(minutes=2)
    desk.run_pass()  # backing off: not tried again yet
    assert delivered(smtp_sink) == first
    if restart:
        desk.close()
        desk = harness.helpdesk(lambda: clock[0])  # a new process: the copy in Sent must not count as sent
    clock[0] = NOW + timedelta(minutes=6)
    desk.run_pass()
    assert delivered(smtp_sink) == expected(first, record), "sent once, when the server took it"
    assert desk.state.sent[record.message_id].done
    clock[0] = NOW + timedelta(hours=2)
    desk.run_pass()
    assert delivered(smtp_sink) == expected(first, record), "and never again"
    ticket = desk.state.tickets[record.ticket]
    assert not any(h.what == "could not send" for h in ticket.history)
    assert copies_in_sent(harness, record.message_id) == 1, "one copy, of the send that went"
    desk.close()


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_a_connection_dropped_after_the_dot_sends_at_most_one_duplicate(harness, smtp_sink, restart):
    clock, desk, first, record = first_pass(harness, smtp_sink, DroppedAfterTheDot(smtp_sink), copies=1)  # it may have gone
    assert ack_to(VICTIM, first) == 1  # the server has it; the daemon cannot know
    waiting = {(str(r.kind), r.to, r.ticket) for r in desk.state.sent.values() if not r.done}
    assert ack_to("c@c.example", first) == 0  # the server may be in trouble: the rest waits for the next pass
    assert len(waiting) == 4 and sum(first.values()) == 2  # Alice's two assignment notices are one mail

    if restart:
        desk.close()
        desk = harness.helpdesk(lambda: clock[0])
    clock[0] = NOW + timedelta(minutes=1)
    desk.run_pass()
    clock[0] = NOW + timedelta(minutes=2)
    desk.run_pass()
    final = delivered(smtp_sink)
    duplicates = 0 if restart else 1  # restarted: the copy stored at the commit is proof; running: sent again
    assert ack_to(VICTIM, final) == 1 + duplicates
    assert set(final) == set(first) | waiting, "nothing lost"
    assert {to for kind, to, _ in final if kind == "acknowledgement"} == set(CUSTOMERS)
    assert sum(final.values()) == len(final) + duplicates, "nothing else twice"
    assert all(r.done for r in desk.state.sent.values()) and copies_in_sent(harness, record.message_id) == 1 + duplicates
    desk.close()
