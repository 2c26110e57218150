"""Keys are forever (ARCHITECTURE.md): on a realistic mailbox of 300 conversations, after passes that acknowledge some
tickets and not others (the quiet first run's backlog, the per-sender cap, a sender failing SPF, a robot's mail an
agent turned into a ticket), escalate, and follow agents' label changes, the state file is lost; `rebuild` gives
back every key, status, priority, assignee and escalation step, and the next pass sends nothing. Both backends.

Also: `rebuild` trusts only what we wrote ourselves (a customer's forged X-Mailhelpdesk-Ticket changes nothing),
and keeps the old state file until it has succeeded."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from corpus import build_corpus

from backends import GmailBackend, ImapBackend, addressed_to
from mailhelpdesk.model import HistoryEvent
from mailhelpdesk.store.rebuild import rebuild_from
from mailhelpdesk.store.state import Store
from test_behaviour import backend, desk  # noqa: F401  (fixtures)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Vienna; in the past, as IMAP servers want
CORPUS = build_corpus(n_conversations=300, now=T0)
LEAD = "lead@example.com"
MX = "mx.example.com"
ROOT = "Helpdesk"


def request(sender: str, subject: str, when: datetime, mid: str, extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {CORPUS.support}\r\nSubject: {subject}\r\nDate: {format_datetime(when)}\r\n"
            f"Message-ID: {mid}\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello, {subject.lower()}. Please help.\r\n").encode()


def snapshot(state) -> dict[str, tuple]:
    return {k: (t.message_ids[0], t.customer, t.status.value, t.priority.value, t.assignee, tuple(sorted(t.escalations)))
            for k, t in state.tickets.items()}


def ticket_of(state, message_id: str):
    return state.tickets[state.index[message_id]]


def run_scenario(backend) -> dict:
    refs = {m.message_id: backend.deliver(m.raw, m.when, sent=m.folder == "Sent") for m in CORPUS.messages}
    desk = backend.helpdesk(lambda: T0)
    assert desk.run_pass().quarantined == []  # the first run: the backlog quietly, acknowledgements for the fresh

    # a second request from a customer acknowledged minutes ago: acknowledged too (a person, not a loop)
    acked = next(c for c in CORPUS.conversations if c.expect_ack)
    t1 = T0 + timedelta(minutes=10)
    backend.deliver(request(acked.customer, "Another question entirely", t1, "<capped-1@customer.example>"), t1)
    # a sender failing SPF at our own receiving server never hears from us (backscatter), but has a ticket
    spf = f"Authentication-Results: {MX}; spf=fail smtp.mailfrom=spoofed.example\r\n"
    backend.deliver(request("victim@spoofed.example", "Refund now", t1, "<spf-1@spoofed.example>", spf), t1)
    # a robot's mail an agent turned into a ticket by giving it a status label
    robot = next(m for m in CORPUS.messages if m.kind == "list")
    backend.agent_relabels(refs[robot.message_id], add={f"{ROOT}/Status/Open"}, remove=set())
    # agents' label changes: resolve, re-prioritise, re-assign
    state = desk.state
    fresh = sorted((t for t in state.tickets.values() if t.status.value == "open"), key=lambda t: t.number)
    changes = {
        fresh[0].key: ({f"{ROOT}/Status/Resolved"}, {f"{ROOT}/Status/Open"}),
        fresh[1].key: ({f"{ROOT}/Priority/Urgent"}, {f"{ROOT}/Priority/{fresh[1].priority.value.title()}"}),
        fresh[2].key: ({f"{ROOT}/Assignee/Bob"} if fresh[2].assignee == "Alice" else {f"{ROOT}/Assignee/Alice"},
                       {f"{ROOT}/Assignee/{fresh[2].assignee}"}),
    }
    for key, (add, remove) in changes.items():
        ticket = state.tickets[key]
        backend.agent_relabels(ticket.refs[-1], add=add, remove=remove)
    assert desk.run_pass().quarantined == []
    state = desk.state
    assert ticket_of(state, "<capped-1@customer.example>").logged(HistoryEvent.ACKNOWLEDGED)
    assert ticket_of(state, robot.message_id).status.value == "open"
    # later the same day and the next: the urgent ticket and the fresh ones climb the ladder, mails to agents and lead
    for hours in (3, 26):
        assert desk.run_pass_at(T0 + timedelta(hours=hours)).quarantined == []
    state = desk.state
    ladders = Counter(",".join(sorted(t.escalations)) for t in state.tickets.values())
    assert ladders[""] < len(state.tickets), ladders
    kinds = Counter(str(m["X-Mailhelpdesk-Kind"]) for m in backend.outgoing())
    batched = [m.get_body(("plain",)).get_content() for m in backend.outgoing()
               if str(m["X-Mailhelpdesk-Kind"]) == "notices"]  # many tickets moved at once: one mail per address
    assert kinds["acknowledgement"], kinds
    assert kinds["escalation breach"] or any("OVERDUE" in body for body in batched), kinds
    assert kinds["escalation lead"] or any("Escalated, still unanswered" in body for body in batched), kinds
    no_ack = [t for t in state.tickets.values() if not any(r.kind == "acknowledgement" and r.ticket == t.key
                                                            for r in state.sent.values())]
    assert len(no_ack) > 150, "most tickets have no acknowledgement: nothing of ours that we sent carries their key"
    before, sent, when = snapshot(state), len(backend.outgoing()), desk.clock()
    assert desk.run_pass(dry_run=True).sends == {}, "the control: with its state, the daemon has nothing to send now"
    desk.close()

    desk.store.path.unlink()  # the state is lost
    rebuilt = rebuild_from(backend.config, backend.helpdesk(lambda: when).mailbox, when)
    after = snapshot(rebuilt)
    missing = sorted(set(before) - set(after), key=lambda k: before[k])
    assert not missing, [(k, before[k], [(k2, v) for k2, v in after.items() if v[0] == before[k][0]]) for k in missing[:5]]
    wrong = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
    assert not wrong, (len(wrong), list(wrong.items())[:5])
    assert after == before
    assert rebuilt.next_number == max(t.number for t in rebuilt.tickets.values()) + 1
    Store(desk.store.path).save(rebuilt)

    again = backend.helpdesk(lambda: when)
    report = again.run_pass()
    assert [line for line in report.done if line.startswith("send")] == []
    assert len(backend.outgoing()) == sent
    assert snapshot(again.state) == before
    again.close()
    return {"tickets": len(before), "no_ack": len(no_ack), "ladders": ladders, "kinds": kinds}


@pytest.fixture
def imap_backend(imap_account, smtp_sink, tmp_path, corpus_config):
    return ImapBackend(imap_account, smtp_sink, tmp_path)


def _clocked(backend):
    """`run_pass_at(when)`: a pass on another day, the Gmail fake's clock moved along."""
    make = backend.helpdesk

    def helpdesk(clock):
        now = [clock()]
        desk = make(lambda: now[0])

        def run_pass_at(when):
            now[0] = when
            return desk.run_pass()

        desk.run_pass_at = run_pass_at
        return desk

    backend.helpdesk = helpdesk
    return backend


def test_rebuild_keeps_every_key_on_a_300_ticket_mailbox_on_imap(imap_backend):
    result = run_scenario(_clocked(imap_backend))
    assert result["tickets"] >= 300


def test_rebuild_keeps_every_key_on_a_300_ticket_mailbox_on_gmail(tmp_path, corpus_config):
    from gmail_fake import GmailFake

    with GmailFake(CORPUS.support, seed=11, clock=T0.timestamp) as fake:
        result = run_scenario(_clocked(GmailBackend(fake, tmp_path)))
    assert result["tickets"] >= 300


@pytest.fixture
def corpus_config(monkeypatch):
    """The corpus's support address and agents, a lead to escalate to, our receiving server's name."""
    addressed_to(monkeypatch, CORPUS, sla={"escalate_to": [LEAD]}, commands={"trusted_authserv_id": MX})


# --- only what we wrote ourselves is trusted ------------------------------------------------------------------

def test_forged_headers_in_customers_mail_change_no_key_and_no_counter(desk, backend):
    from test_behaviour import NOW

    desk.run_pass()
    before = {t.message_ids[0]: k for k, t in desk.state.tickets.items()}
    victim = next(iter(before))
    forged = [
        ("mallory@evil.example", "X-Mailhelpdesk-Ticket: HD-x\r\nX-Mailhelpdesk-Kind: acknowledgement\r\n"),
        ("Support <support@shop.example>", "X-Mailhelpdesk-Ticket: HD-1000000000\r\nX-Mailhelpdesk-Kind: acknowledgement\r\n"),
        ("support@shop.example", "X-Mailhelpdesk-Record: 1\r\nX-Mailhelpdesk-Record-Seq: 99\r\n"),
    ]
    for n, (sender, headers) in enumerate(forged):
        raw = (f"From: {sender}\r\nTo: support@shop.example\r\nSubject: Re: your ticket\r\nMessage-ID: <forged-{n}@evil.example>\r\n"
               f"In-Reply-To: {victim}\r\nDate: Fri, 20 Nov 2026 10:40:00 +0000\r\n{headers}\r\n"
               f'HD-1: {{"key":"HD-1","request":"<forged-{n}@evil.example>","escalations":["warn","breach","lead"]}}\r\n').encode()
        backend.deliver(raw, NOW + timedelta(minutes=10))
    later = NOW + timedelta(minutes=20)
    desk.clock = lambda: later
    desk.run_pass()
    snapshot_before = snapshot(desk.state)
    desk.close()
    desk.store.path.unlink()

    state = rebuild_from(backend.config, backend.helpdesk(lambda: later).mailbox, later)  # no ValueError
    assert snapshot(state) == snapshot_before
    assert {t.message_ids[0]: k for k, t in state.tickets.items() if t.message_ids[0] in before} == before
    assert state.next_number == max(t.number for t in state.tickets.values()) + 1 < 100


def test_rebuild_keeps_the_old_state_file_when_the_mailbox_cannot_be_read(tmp_path):
    from click.testing import CliRunner

    from mailhelpdesk.app.cli import main

    config = tmp_path / "mailhelpdesk.toml"
    config.write_text('[helpdesk]\naddress = "support@shop.example"\nstate_file = "state.json"\n[mailbox]\nbackend = "imap"\n'
                      '[imap]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\nusername = "u"\npassword = "p"\n'
                      '[smtp]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\n')
    state = tmp_path / "state.json"
    state.write_text('{"tickets": {"1": {"key": ')  # damaged: rebuild is allowed without --force
    result = CliRunner().invoke(main, ["rebuild", "--config", str(config)])
    assert result.exit_code != 0 and "127.0.0.1:9" in result.output
    assert state.read_text() == '{"tickets": {"1": {"key": ', "the old state stays until a rebuild succeeded"
    assert not (tmp_path / "state.json.bak").exists()
