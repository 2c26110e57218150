"""The whole helpdesk against a real Dovecot (IMAP) and a real SMTP server (aiosmtpd), both on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailhelpdesk.config import config_from_dict
from mailhelpdesk.daemon import Helpdesk

EML = Path(__file__).parent.parent / "fixtures" / "eml"
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
OPEN, PENDING, RESOLVED = "Helpdesk/Status/Open", "Helpdesk/Status/Pending", "Helpdesk/Status/Resolved"


def imap_config(account, sink, tmp_path, **extra):
    data = {
        "helpdesk": {"address": "support@shop.example", "name": "Shop Support", "timezone": "Europe/Vienna",
                     "state_file": str(tmp_path / "state.json")},
        "mailbox": {"backend": "imap"},
        "imap": {"host": account.host, "port": account.port, "security": "none", "username": account.username,
                 "password": account.password, "sent_folder": "Sent"},
        "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
        "agents": [{"name": "Alice", "email": "alice@shop.example"}, {"name": "Bob", "email": "bob@shop.example"}],
    }
    for key, values in extra.items():
        data[key] = {**data.get(key, {}), **values}
    return config_from_dict(data, tmp_path / "mailhelpdesk.toml")


def fixture_mail(name: str) -> bytes:
    return (EML / name).read_bytes()


def flags_by_uid(client, folder: str) -> dict[int, set[str]]:
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    return {uid: {f.decode() for f in data[b"FLAGS"]} for uid, data in client.fetch(uids, ["FLAGS"]).items()}


@pytest.fixture
def desk(imap_account, smtp_sink, tmp_path):
    for name, folder, minutes in [
        ("question.eml", "INBOX", 0), ("followup.eml", "INBOX", 20), ("ooo.eml", "INBOX", 1),
        ("newsletter.eml", "INBOX", -60), ("urgent.eml", "INBOX", 5), ("koi8r.eml", "INBOX", 10),
    ]:
        imap_account.append(folder, fixture_mail(name), when=datetime(2026, 11, 20, 10, 0, tzinfo=UTC) + timedelta(minutes=minutes))
    config = imap_config(imap_account, smtp_sink, tmp_path)
    helpdesk = Helpdesk(config, clock=lambda: NOW)
    yield helpdesk
    helpdesk.close()


def test_first_pass_makes_tickets_labels_every_message_and_acknowledges_customers(desk, imap_account, smtp_sink):
    report = desk.run_pass()
    assert report.messages == 6 and report.quarantined == []
    state = desk.state
    assert sorted((t.customer, t.priority.value) for t in state.tickets.values()) == [
        ("anna@customer.example", "normal"), ("ben@bigstore.example", "urgent"), ("ivan@mail.example", "normal"),
    ]
    received = smtp_sink.wait_for(6)
    acks = [m for m in received if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement"]
    assert sorted(m.rcpt_tos[0] for m in acks) == ["anna@customer.example", "ben@bigstore.example", "ivan@mail.example"]
    for m in acks:
        assert m.message["Auto-Submitted"] == "auto-replied"
        assert m.message["Subject"].startswith("[HD-")
        assert m.message["In-Reply-To"] in {mid for t in state.tickets.values() for mid in t.message_ids}
    client = imap_account.client()
    inbox = flags_by_uid(client, "INBOX")
    assert len(inbox) == 6, "nothing deleted or moved"
    assert all("\\Seen" not in flags for flags in inbox.values()), "fetching never marks mail read"
    statuses = [sorted(f for f in flags if f.startswith("Helpdesk/")) for flags in inbox.values()]
    assert statuses.count(["Helpdesk/Ignored"]) == 2  # the out-of-office and the newsletter
    for flags in statuses:
        assert flags == ["Helpdesk/Ignored"] or sum(f.startswith("Helpdesk/Status/") for f in flags) == 1
    sent = flags_by_uid(client, "Sent")
    assert len(sent) == len(received), "a labelled copy of each message we sent is in the sent folder"
    assert all(any(f.startswith("Helpdesk/Status/") for f in flags) for flags in sent.values())


def test_second_pass_sends_and_changes_nothing(desk, imap_account, smtp_sink):
    desk.run_pass()
    sent_first = len(smtp_sink.wait_for(6))
    client = imap_account.client()
    before = {folder: flags_by_uid(client, folder) for folder in ("INBOX", "Sent")}
    modseq = client.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
    report = desk.run_pass()
    assert report.done == []
    again = Helpdesk(desk.config, clock=lambda: NOW + timedelta(minutes=1))  # a restart reads the saved state
    assert again.run_pass().done == []
    again.close()
    assert len(smtp_sink.messages) == sent_first
    assert {folder: flags_by_uid(client, folder) for folder in ("INBOX", "Sent")} == before
    assert client.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == modseq


def test_agent_reply_in_sent_folder_and_agent_keyword_change_show_in_the_ticket(desk, imap_account, smtp_sink):
    desk.run_pass()
    anna = next(t for t in desk.state.tickets.values() if t.customer == "anna@customer.example")
    imap_account.append("Sent", fixture_mail("agent_reply.eml"), flags=[b"\\Seen"], when=NOW)
    desk.run_pass()
    anna = desk.state.tickets[anna.key]
    assert anna.status.value == "pending" and anna.first_response_at == NOW  # its Date is later than its arrival: arrival wins

    # an agent marks the urgent ticket resolved in Thunderbird: adds the Resolved tag, removes Open
    client = imap_account.client()
    client.select_folder("INBOX")
    urgent = next(t for t in desk.state.tickets.values() if t.priority.value == "urgent")
    uid = int(urgent.refs[0].rsplit(":", 1)[1])
    client.add_flags([uid], [RESOLVED.encode()])
    client.remove_flags([uid], [OPEN.encode()])
    desk.run_pass()
    urgent = desk.state.tickets[urgent.key]
    assert urgent.status.value == "resolved" and urgent.resolved_at is not None
    # every message of that ticket now says Resolved, the sent copy of its acknowledgement too
    for ref in urgent.refs:
        folder, _, uid = ref.rsplit(":", 2)
        flags = flags_by_uid(client, folder)[int(uid)]
        assert RESOLVED in flags and OPEN not in flags


def test_new_mail_after_the_first_pass_is_picked_up_by_uid(desk, imap_account, smtp_sink):
    desk.run_pass()
    count = len(smtp_sink.wait_for(6))
    raw = fixture_mail("question.eml").replace(b"<q1@customer.example>", b"<new@customer.example>")
    raw = raw.replace(b"Invoice 1042 shows the wrong VAT", b"Password reset link expired")
    imap_account.append("INBOX", raw, when=NOW)
    report = desk.run_pass()
    assert report.messages == 1
    assert len(smtp_sink.wait_for(count + 2)) == count + 2  # its acknowledgement and its assignment notice
    assert any(t.subject == "Password reset link expired" for t in desk.state.tickets.values())
