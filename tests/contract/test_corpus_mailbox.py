"""The done-criterion of the foundation: a realistic mailbox of a few hundred messages (threads, replies,
out-of-office and list mail, bounces, re-deliveries, legacy charsets, attachments) against a real Dovecot and
against the Gmail API fake. One ticket per conversation, one acknowledgement per real customer, nothing for
robots, every message labelled, and a second pass that changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from corpus import AUTOMATIC_KINDS, build_corpus

from backends import GmailBackend, ImapBackend, addressed_to

# Dated in the past: an IMAP server keeps the arrival times we give it only when they are not in the future
CORPUS = build_corpus(now=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


def load(backend) -> dict[str, str]:
    """Deliver the corpus; returns ref -> corpus message kind."""
    return {backend.deliver(m.raw, m.when, sent=m.folder == "Sent"): m.kind for m in CORPUS.messages}


def summary(helpdesk) -> list[tuple]:
    """What must not depend on the backend. (Who got which ticket follows the order of arrival, which the
    backends report at different precision, so the assignees are compared as a balance.)"""
    tickets = helpdesk.state.tickets.values()
    load = Counter(t.assignee for t in tickets)
    assert max(load.values()) - min(load.values()) <= 1, load  # round robin spreads the work evenly
    return sorted(
        (t.customer, t.subject, t.status.value, t.priority.value, len(t.message_ids), t.first_response_at is not None)
        for t in tickets
    )


def run_and_check(backend) -> tuple[list[tuple], Counter]:
    kinds = load(backend)
    helpdesk = backend.helpdesk(lambda: CORPUS.now)
    report = helpdesk.run_pass()
    assert report.quarantined == []
    state = helpdesk.state

    # exactly one ticket per customer conversation
    assert len(state.tickets) == len(CORPUS.conversations)
    for conversation in CORPUS.conversations:
        keys = {state.index.get(mid) for mid in conversation.message_ids}
        assert len(keys) == 1 and None not in keys or not conversation.message_ids, (conversation.subject, keys)
    firsts = [c.message_ids[0] for c in CORPUS.conversations if c.message_ids]
    assert len({state.index[mid] for mid in firsts}) == len(firsts), "two conversations merged into one ticket"
    for message_id in CORPUS.automatic_ids:
        key = state.index.get(message_id)
        assert key is None or state.tickets[key].message_ids[0] != message_id, "a robot opened a ticket"

    # every real customer acknowledged once; no robot, list or bounce answered
    out = backend.outgoing()
    acks = Counter(str(m["To"]) for m in out if m["X-Mailhelpdesk-Kind"] == "acknowledgement")
    expected = Counter(c.customer for c in CORPUS.conversations if c.expect_ack)
    assert acks == expected
    automatic_senders = {
        _sender(m.raw) for m in CORPUS.messages if m.kind in AUTOMATIC_KINDS
    } - {c.customer for c in CORPUS.conversations}
    recipients = {str(m["To"]).lower() for m in out}
    assert not (recipients & automatic_senders), recipients & automatic_senders

    # every message is labelled: robots Ignored, the rest exactly one status, priority and assignee
    labels = backend.all_labels()
    for ref, kind in kinds.items():
        names = labels[ref]
        if kind in AUTOMATIC_KINDS:
            assert names == {"Helpdesk/Ignored"} or sum(n.startswith("Helpdesk/Status/") for n in names) == 1, (kind, names)
        else:
            assert sum(n.startswith("Helpdesk/Status/") for n in names) == 1, (ref, kind, names)
            assert sum(n.startswith("Helpdesk/Priority/") for n in names) == 1, (ref, kind, names)

    # a second pass sends and changes nothing
    sent_before = len(out)
    assert helpdesk.run_pass().done == []
    assert len(backend.outgoing()) == sent_before and backend.all_labels() == labels
    result = summary(helpdesk), Counter(str(m["X-Mailhelpdesk-Kind"]) for m in out)
    helpdesk.close()
    return result


def _sender(raw: bytes) -> str:
    import email
    import email.policy
    from email.utils import parseaddr

    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    return parseaddr(str(message.get("From", "")))[1].lower()


def test_a_realistic_mailbox_on_imap_and_on_gmail_gives_the_same_helpdesk(imap_account, smtp_sink, tmp_path):
    from gmail_fake import GmailFake

    imap = run_and_check(ImapBackend(imap_account, smtp_sink, tmp_path / "imap"))
    with GmailFake("support@example.com", seed=11, clock=CORPUS.now.timestamp) as fake:
        gmail = run_and_check(GmailBackend(fake, tmp_path / "gmail"))
    assert gmail == imap


@pytest.fixture(autouse=True)
def _support_address(monkeypatch):
    """The corpus is addressed to its own support address and agents."""
    addressed_to(monkeypatch, CORPUS)
