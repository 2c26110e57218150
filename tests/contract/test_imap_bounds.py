"""Memory is bounded by design: the IMAP adapter asks the sizes first (RFC822.SIZE), fetches mail in groups whose
bytes stay within its budget (a message bigger than the budget alone), and fetches a huge message only up to
KEEP_LIMIT, which still holds everything decisions read. Observed on the wire to a real Dovecot with a small
budget; the figures for a backlog of 100 mails of 8 MB are in bench/big_mail.py (no test measures memory or time)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest

from backends import ImapBackend
from mailhelpdesk.app.daemon import Helpdesk
from mailhelpdesk.backends import imap as adapter
from mailhelpdesk.backends.imap import ImapMailbox, size_batches, split_ref
from mailhelpdesk.core.mail.parse import parse_message

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday
NOW = T0 + timedelta(minutes=30)


@pytest.mark.parametrize("sizes, budget, most, groups", [
    ([], 100, 10, []),
    ([(1, 40), (2, 40), (3, 40)], 100, 10, [[1, 2], [3]]),
    ([(1, 50), (2, 50), (3, 50)], 100, 10, [[1, 2], [3]]),  # exactly the budget fits
    ([(1, 10), (2, 500), (3, 10)], 100, 10, [[1], [2], [3]]),  # bigger than the budget: alone
    ([(1, 500)], 100, 10, [[1]]),
    ([(u, 1) for u in range(1, 8)], 100, 3, [[1, 2, 3], [4, 5, 6], [7]]),  # and a few messages a command at most
    ([(5, 0), (9, 0)], 100, 10, [[5, 9]]),
])
def test_size_batches(sizes, budget, most, groups):
    assert list(size_batches(sizes, budget, most)) == groups


def test_what_one_fetch_brings_is_capped():
    assert adapter.fetched_size(10) == 10
    assert adapter.fetched_size(adapter.KEEP_LIMIT * 8) == adapter.KEEP_LIMIT


def customer_mail(i: int, attachment: int, when: datetime = T0) -> bytes:
    """A request with a line of text and an attachment of about `attachment` bytes (base64); one company each."""
    payload = base64.encodebytes(bytes(range(256)) * (attachment // 340 + 1)).replace(b"\n", b"\r\n")[:attachment]
    head = (f"From: Customer {i} <customer{i}@customer{i}.example>\r\nTo: support@shop.example\r\n"
            f"Subject: Broken part {i}\r\nDate: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
            f"Message-ID: <part.{i}@customer{i}.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"The part of order {i} arrived broken, photo attached.\r\n"
            '--b1\r\nContent-Type: image/jpeg; name="photo.jpg"\r\nContent-Disposition: attachment; filename="photo.jpg"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    return head + payload.rsplit(b"\r\n", 1)[0] + b"\r\n--b1--\r\n"


class Wire:
    """The FETCH commands of one IMAPClient that ask for message bodies, and the bytes each one brought back."""

    def __init__(self, client) -> None:
        self.fetches: list[dict] = []
        imap = client._imap
        send, read = imap.send, imap.read

        def sending(data: bytes) -> None:
            found = re.match(rb"\S+ (?:UID )?(\w+)", data)
            if found:
                words = re.match(rb"\S+ UID FETCH ([\d,:]+) \((.*)\)", data)
                if words and b"BODY" in words.group(2):
                    self.fetches.append({"uids": _uids(words.group(1)), "items": words.group(2), "received": 0})
                else:
                    self.fetches.append({"uids": [], "items": b"", "received": 0, "other": True})
            return send(data)

        def reading(size: int) -> bytes:  # imaplib reads every literal (a message body) with read()
            data = read(size)
            if self.fetches:
                self.fetches[-1]["received"] += len(data)
            return data

        imap.send, imap.read = sending, reading

    def body_fetches(self) -> list[dict]:
        return [f for f in self.fetches if not f.get("other")]


def _uids(text: bytes) -> list[int]:
    uids = []
    for item in text.split(b","):
        low, _, high = item.partition(b":")
        uids += range(int(low), int(high or low) + 1)
    return uids


def test_no_fetch_asks_for_more_than_the_budget_and_a_huge_mail_comes_only_as_far_as_decisions_read(
        imap_account, smtp_sink, tmp_path, monkeypatch):
    monkeypatch.setattr(adapter, "KEEP_LIMIT", 200_000)  # small figures, the same rules
    budget = 300_000
    sizes = [60_000, 60_000, 60_000, 60_000, 60_000, 90_000, 1_500_000, 10_000, 250_000, 120_000]
    client = imap_account.client()
    for i, size in enumerate(sizes):
        client.append("INBOX", customer_mail(i, size), msg_time=T0 + timedelta(seconds=i))
    client.select_folder("INBOX", readonly=True)
    on_server = {uid: d[b"RFC822.SIZE"] for uid, d in client.fetch(client.search("ALL"), ["RFC822.SIZE"]).items()}

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    mailbox = ImapMailbox(backend.config)
    mailbox.fetch_budget = budget
    mailbox.connect()
    wire = Wire(mailbox.client)
    changes = mailbox.changes({}, T0 - timedelta(days=1))
    got = {m.ref: m for m in changes.messages}
    mailbox.close()

    assert len(got) == len(sizes) == changes.expected
    fetches = wire.body_fetches()
    assert [uid for f in fetches for uid in f["uids"]] == sorted(on_server)  # each message once, in order
    for fetch in fetches:
        asked = sum(min(on_server[uid], adapter.KEEP_LIMIT) for uid in fetch["uids"])
        assert asked <= budget or len(fetch["uids"]) == 1, fetch
        assert fetch["received"] <= asked, fetch  # and the server sent no more than that
        assert b"<0.200000>" in fetch["items"]  # never a whole body without a bound
    assert len(fetches) >= sum(min(n, adapter.KEEP_LIMIT) for n in on_server.values()) // budget  # several groups

    huge = next(m for m in got.values() if b"Broken part 6" in m.raw)
    assert len(huge.raw) == adapter.KEEP_LIMIT < on_server[split_ref(huge.ref)[2]]
    facts = parse_message(huge.raw)
    assert (facts.subject, facts.sender, facts.message_id) == ("Broken part 6", "customer6@customer6.example",
                                                               "<part.6@customer6.example>")
    assert "order 6 arrived broken" in facts.body and facts.has_attachments
    small = next(m for m in got.values() if b"Broken part 7" in m.raw)
    assert len(small.raw) == on_server[split_ref(small.ref)[2]]  # under the limit: all of it


def test_a_backlog_of_big_mail_becomes_tickets_with_a_small_budget(imap_account, smtp_sink, tmp_path, monkeypatch):
    """The whole pass, not only the adapter: every big request is a ticket, none quarantined, one acknowledgement
    each, and no FETCH asked for more than the budget."""
    monkeypatch.setattr(adapter, "KEEP_LIMIT", 100_000)
    client = imap_account.client()
    for i in range(6):
        client.append("INBOX", customer_mail(i, 400_000), msg_time=T0 + timedelta(seconds=i))
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    desk = Helpdesk(backend.config, clock=lambda: NOW)
    desk.mailbox.fetch_budget = 250_000
    wires = []
    connect = desk.mailbox.connect

    def watched() -> None:
        connect()
        wires.append(Wire(desk.mailbox.client))

    desk.mailbox.connect = watched
    report = desk.run_pass()
    desk.close()
    assert report.messages == 6 and not report.quarantined
    assert sorted(t.customer for t in desk.state.tickets.values()) == [f"customer{i}@customer{i}.example" for i in range(6)]
    acks = [m for m in smtp_sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement"]
    assert len(acks) == 6
    fetches = [f for w in wires for f in w.body_fetches()]
    assert fetches and all(len(f["uids"]) <= 2 and f["received"] <= 250_000 for f in fetches)
