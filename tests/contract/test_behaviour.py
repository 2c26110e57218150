"""The helpdesk's behaviour, the same tests against both backends: a real Dovecot + aiosmtpd, and the Gmail API
fake driven through the real google-api-python-client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backends import GmailBackend, ImapBackend

EML = Path(__file__).parent.parent / "fixtures" / "eml"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
OPEN, RESOLVED = "Helpdesk/Status/Open", "Helpdesk/Status/Resolved"
MAILBOX = [("question.eml", 0), ("followup.eml", 20), ("ooo.eml", 1), ("newsletter.eml", -60), ("urgent.eml", 5),
           ("koi8r.eml", 10)]


def eml(name: str) -> bytes:
    return (EML / name).read_bytes()


@pytest.fixture(params=["imap", "gmail"])
def backend(request, tmp_path):
    if request.param == "imap":
        harness = ImapBackend(request.getfixturevalue("imap_account"), request.getfixturevalue("smtp_sink"), tmp_path)
    else:
        from gmail_fake import GmailFake

        fake = GmailFake("support@shop.example", seed=7)
        fake.start()
        request.addfinalizer(fake.stop)
        harness = GmailBackend(fake, tmp_path)
    yield harness
    harness.close()


@pytest.fixture
def desk(backend):
    refs = {name: backend.deliver(eml(name), T0 + timedelta(minutes=minutes)) for name, minutes in MAILBOX}
    helpdesk = backend.helpdesk(lambda: NOW)
    helpdesk.refs = refs
    yield helpdesk
    helpdesk.close()


def customers(helpdesk):
    return sorted((t.customer, t.priority.value) for t in helpdesk.state.tickets.values())


def test_first_pass_makes_one_ticket_per_conversation_and_acknowledges_each_customer_once(desk, backend):
    report = desk.run_pass()
    assert report.messages == 6 and report.quarantined == []
    assert customers(desk) == [("anna@customer.example", "normal"), ("ben@bigstore.example", "urgent"),
                               ("ivan@mail.example", "normal")]
    out = backend.outgoing()
    acks = [m for m in out if m["X-Mailhelpdesk-Kind"] == "acknowledgement"]
    assert sorted(str(m["To"]) for m in acks) == ["anna@customer.example", "ben@bigstore.example", "ivan@mail.example"]
    # three acknowledgements and, this being the first run over what the mailbox held, one summary to each agent
    # instead of a notice per ticket; nothing to the robots
    assert sorted((str(m["X-Mailhelpdesk-Kind"]), str(m["To"])) for m in out if m not in acks) == [
        ("backlog summary", "alice@shop.example"), ("backlog summary", "bob@shop.example")]
    known = {mid for t in desk.state.tickets.values() for mid in t.message_ids}
    for m in acks:
        assert m["Auto-Submitted"] == "auto-replied" and m["X-Auto-Response-Suppress"] == "All"
        assert m["In-Reply-To"] in known and m["X-Mailhelpdesk-Ticket"] in desk.state.tickets
        key = m["X-Mailhelpdesk-Ticket"]
        if backend.name == "gmail":  # Gmail threads a reply only when the subject matches
            assert m["Subject"] == "Re: " + desk.state.tickets[key].subject and key in m.get_content()
        else:
            assert m["Subject"].startswith(f"[{key}] ")
    labels = backend.all_labels()
    assert labels[desk.refs["ooo.eml"]] == {"Helpdesk/Ignored"}
    assert labels[desk.refs["newsletter.eml"]] == {"Helpdesk/Ignored"}
    assert len([ref for ref, names in labels.items() if not names]) == 2  # the summaries' copies: no ticket
    for ref, names in labels.items():
        if names and names != {"Helpdesk/Ignored"}:
            assert sum(n.startswith("Helpdesk/Status/") for n in names) == 1, (ref, names)
            assert sum(n.startswith("Helpdesk/Priority/") for n in names) == 1, (ref, names)
            assert sum(n.startswith("Helpdesk/Assignee/") for n in names) == 1, (ref, names)
    anna = next(t for t in desk.state.tickets.values() if t.customer == "anna@customer.example")
    assert labels[desk.refs["question.eml"]] == labels[desk.refs["followup.eml"]] == set(anna.labels_applied)


def test_a_second_pass_sends_and_changes_nothing(desk, backend):
    desk.run_pass()
    sent, labels = len(backend.outgoing()), backend.all_labels()
    assert desk.run_pass().done == []
    restarted = backend.helpdesk(lambda: NOW + timedelta(minutes=1))  # a restart reads the saved state
    assert restarted.run_pass().done == []
    restarted.close()
    assert len(backend.outgoing()) == sent
    assert backend.all_labels() == labels


def test_agent_reply_and_agent_label_change_show_in_the_ticket(desk, backend):
    desk.run_pass()
    anna = next(t for t in desk.state.tickets.values() if t.customer == "anna@customer.example")
    backend.deliver(eml("agent_reply.eml"), NOW, sent=True)
    desk.run_pass()
    anna = desk.state.tickets[anna.key]
    assert anna.status.value == "pending" and anna.first_response_at == NOW  # arrival time: its Date is later

    urgent = next(t for t in desk.state.tickets.values() if t.priority.value == "urgent")
    backend.agent_relabels(desk.refs["urgent.eml"], add={RESOLVED}, remove={OPEN})
    report = desk.run_pass()
    urgent = desk.state.tickets[urgent.key]
    assert urgent.status.value == "resolved" and urgent.resolved_at == NOW
    labels = backend.all_labels()
    for ref in urgent.refs:  # every message of the ticket follows, our acknowledgement's copy too
        assert RESOLVED in labels[ref] and OPEN not in labels[ref]
    assert report.label_changes >= 1
    assert desk.run_pass().done == []


def test_new_mail_after_the_first_pass_becomes_a_ticket(desk, backend):
    desk.run_pass()
    count = len(backend.outgoing())
    raw = eml("question.eml").replace(b"<q1@customer.example>", b"<new@customer.example>")
    raw = raw.replace(b"Invoice 1042 shows the wrong VAT", b"Password reset link expired")
    # another customer: one who already had an acknowledgement today gets no second one (per-sender limit)
    raw = raw.replace(b"anna@customer.example", b"nina@another.example")
    backend.deliver(raw, NOW)
    report = desk.run_pass()
    assert report.messages == 1
    assert len(backend.outgoing()) == count + 2  # its acknowledgement and its assignee's notice
    # the customer first: if a pass is cut short (the provider's daily limit, an outage), the notice waits
    assert [str(m["X-Mailhelpdesk-Kind"]) for m in backend.outgoing()[count:]] == ["acknowledgement", "assignment"]
    assert any(t.subject == "Password reset link expired" for t in desk.state.tickets.values())


def test_a_re_delivered_message_is_not_a_second_ticket(desk, backend):
    desk.run_pass()
    count = len(backend.outgoing())
    ref = backend.deliver(eml("urgent.eml"), NOW)
    desk.run_pass()
    assert len(desk.state.tickets) == 3 and len(backend.outgoing()) == count
    urgent = next(t for t in desk.state.tickets.values() if t.priority.value == "urgent")
    assert ref in urgent.refs and set(urgent.labels_applied) == backend.all_labels()[ref]


def test_a_dry_run_changes_nothing_in_the_mailbox_not_even_the_label_list(desk, backend):
    """A first dry run (no state yet) decides everything and creates no Gmail label, sets no keyword, sends nothing;
    the real pass after it creates and sets them."""
    before = backend.all_labels()
    names = {label["name"] for label in backend.fake.labels()} if backend.name == "gmail" else set()
    report = desk.run_pass(dry_run=True)
    assert report.sends and report.messages == 6  # it decided: acknowledgements would go
    assert backend.all_labels() == before and backend.outgoing() == []
    if backend.name == "gmail":
        assert {label["name"] for label in backend.fake.labels()} == names
        assert not any(n.startswith("Helpdesk") for n in names)
    assert not desk.store.path.exists()
    desk.run_pass()
    assert any("Helpdesk/Status/Open" in labels for labels in backend.all_labels().values())
    if backend.name == "gmail":
        assert "Helpdesk/Status/Open" in {label["name"] for label in backend.fake.labels()}


def with_a_new_request(backend):
    """A running helpdesk (its first run behind it) that has just made a ticket of question.eml; its clock."""
    clock = [T0]
    desk = backend.helpdesk(lambda: clock[0])
    desk.run_pass()
    backend.deliver(eml("question.eml"), T0 + timedelta(minutes=1))
    clock[0] = T0 + timedelta(minutes=2)
    desk.run_pass()
    return clock, desk


def test_a_quiet_customer_gets_one_reminder_then_one_resolution_notice(backend):
    """[pending] on a real mailbox: the agent answered, the customer went quiet; one reminder in the thread, then
    resolved (labelled so) with its notice; later passes send nothing more."""
    import dataclasses

    from mailhelpdesk.config import PendingConfig

    backend.config = dataclasses.replace(backend.config, pending=PendingConfig(remind_after="1d", resolve_after="1d"))
    clock, desk = with_a_new_request(backend)
    answer = (b"From: support@shop.example\r\nTo: anna@customer.example\r\nSubject: Re: Invoice 1042 shows the wrong VAT"
              b"\r\nDate: Fri, 20 Nov 2026 10:30:00 +0000\r\nMessage-ID: <answer@shop.example>\r\n"
              b"In-Reply-To: <q1@customer.example>\r\n\r\nA corrected invoice is attached.\r\n")
    backend.deliver(answer, T0 + timedelta(minutes=30), sent=True)
    clock[0] = T0 + timedelta(minutes=31)
    desk.run_pass()
    (ticket,) = desk.state.tickets.values()
    assert ticket.status.value == "pending"
    for day, hour in ((23, 10), (23, 11), (24, 11), (25, 9), (25, 12)):  # Mon 10:31 is a working day later
        clock[0] = datetime(2026, 11, day, hour, 0, tzinfo=UTC)
        assert desk.run_pass().quarantined == []
    kinds = [str(m["X-Mailhelpdesk-Kind"]) for m in backend.outgoing()]
    assert kinds.count("customer reminder") == 1 and kinds.count("resolution") == 1, kinds
    reminder = next(m for m in backend.outgoing() if str(m["X-Mailhelpdesk-Kind"]) == "customer reminder")
    assert str(reminder["To"]) == "anna@customer.example" and str(reminder["In-Reply-To"]) == "<answer@shop.example>"
    (ticket,) = desk.state.tickets.values()
    assert ticket.status.value == "resolved"
    assert all(RESOLVED in labels for ref, labels in backend.all_labels().items() if ref in ticket.refs)
    desk.close()


def test_a_ticket_snoozed_by_mail_sleeps_comes_back_on_time_and_rebuild_keeps_the_snooze(backend):
    from mailhelpdesk.store.rebuild import rebuild_from

    clock, desk = with_a_new_request(backend)
    command = (b"From: support@shop.example\r\nTo: support@shop.example\r\nSubject: Re: Invoice 1042 shows the wrong VAT"
               b"\r\nDate: Fri, 20 Nov 2026 10:05:00 +0000\r\nMessage-ID: <snooze@shop.example>\r\n"
               b"In-Reply-To: <q1@customer.example>\r\n\r\n#snooze monday\r\n")
    backend.deliver(command, T0 + timedelta(minutes=5), sent=True)  # from the shared account: trusted
    clock[0] = T0 + timedelta(minutes=6)
    desk.run_pass()
    (ticket,) = desk.state.tickets.values()
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Vienna
    assert ticket.snoozed_until == monday
    assert all("Helpdesk/Snoozed" in labels for ref, labels in backend.all_labels().items() if ref in ticket.refs)
    rebuilt = rebuild_from(backend.config, backend.helpdesk(lambda: clock[0]).mailbox, clock[0])
    assert rebuilt.tickets[ticket.key].snoozed_until == monday, "the records carry the snooze"
    clock[0] = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # Saturday: still asleep, nothing sent
    before = len(backend.outgoing())
    desk.run_pass()
    assert len(backend.outgoing()) == before
    clock[0] = monday + timedelta(minutes=1)
    desk.run_pass()
    (ticket,) = desk.state.tickets.values()
    assert ticket.snoozed_until is None
    assert not any("Helpdesk/Snoozed" in labels for ref, labels in backend.all_labels().items() if ref in ticket.refs)
    desk.close()
