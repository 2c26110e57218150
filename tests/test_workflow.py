"""The support workflow, decided by the pure engine from a given `now`: SLA, escalation ladder, digests,
resolution and ratings, commands by mail, auto-close."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse
from zoneinfo import ZoneInfo

import pytest

from mailhelpdesk.model import SendMail, SetLabels, Status
from test_engine import EML, Desk, make_config

NY = ZoneInfo("America/New_York")
# Friday 15 January 2027, 19:00 in New York: after hours, before the Martin Luther King Jr. Day weekend
FRIDAY_EVENING = datetime(2027, 1, 15, 19, 0, tzinfo=NY)


def question(when: datetime, message_id="<wf1@customer.example>", sender="anna@customer.example", subject="Export fails"):
    return (
        f"From: Anna <{sender}>\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S %z')}\r\nMessage-ID: {message_id}\r\n\r\nThe CSV export fails.\r\n"
    ).encode()


def workflow_desk(**extra):
    sections = dict(
        helpdesk={"timezone": "America/New_York"},
        # the ladder's arithmetic in business hours (24 working hours); `1d` has tests of its own
        sla={"holidays_country": "US", "escalate_to": ["lead@shop.example"], "escalate_after": "4h",
             "first_response": {"normal": "24h"}},
        commands={"trusted_authserv_id": "mx.shop.example"},  # the receiving server vouches (test_command_auth.py)
    )
    sections.update(extra)
    return Desk(make_config(**sections))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, minute, tzinfo=NY)


def reminders(desk, kind=None):
    return [a for a in desk.sends() if a.kind.startswith("escalation") and (kind is None or a.kind == kind)]


def test_due_time_skips_the_weekend_and_the_holiday_and_the_customer_is_told():
    desk = workflow_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING + timedelta(minutes=1))
    desk.tick(FRIDAY_EVENING + timedelta(minutes=1))
    ticket = desk.ticket()
    # 24 business hours from Tuesday 09:00 (Monday is a holiday): Tue 9 h + Wed 9 h + Thu 6 h -> Thursday 15:00
    assert ticket.due_at == at(21, 15)
    assert "on Thursday by 15:00 EST" in desk.sends("acknowledgement")[0].body


def test_escalation_ladder_warns_reminds_and_escalates_each_once():
    desk = workflow_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING)
    desk.tick(FRIDAY_EVENING)  # the pass that made the ticket ends (its assignment notice goes alone)
    for now in (at(16, 12), at(19, 10), at(20, 17, 59)):  # weekend, holiday, just before 75 %
        desk.tick(now)
    assert reminders(desk) == []
    desk.tick(at(20, 18, 0))  # 18 business hours = 75 % of 24: the warning
    desk.tick(at(20, 18, 30))
    (warning,) = reminders(desk)
    assert warning.kind == "escalation warn" and warning.to == "alice@shop.example"
    assert warning.subject.startswith("[HD-1] due soon") and warning.in_reply_to == "<wf1@customer.example>"
    desk.tick(at(21, 15, 1))  # the breach: a reminder to the assignee and the Overdue label
    breach = reminders(desk, "escalation breach")
    assert [m.to for m in breach] == ["alice@shop.example"] and "OVERDUE" in breach[0].subject
    assert "Helpdesk/Overdue" in desk.ticket().labels_applied
    assert "anna@customer.example" in breach[0].body and "Waiting:   24 h 01 min" in breach[0].body
    desk.tick(at(21, 18, 59))
    assert reminders(desk, "escalation lead") == []
    desk.tick(at(22, 10, 0))  # 4 business hours after the breach: Thu 15-18 + Fri 9-10
    desk.tick(at(25, 10, 0))
    (lead,) = reminders(desk, "escalation lead")
    assert lead.to == "lead@shop.example" and "escalated" in lead.subject
    assert len(reminders(desk)) == 3
    assert desk.ticket().escalations == ("warn", "breach", "lead")


SHARED_ACCOUNT_REPLY = (  # from the sent folder, Thursday 21 January 16:30
    "From: support@shop.example\r\nTo: anna@customer.example\r\nSubject: Re: Export fails\r\n"
    "Date: Thu, 21 Jan 2027 16:30:00 -0500\r\nMessage-ID: <wf-reply@shop.example>\r\n"
    "In-Reply-To: <wf1@customer.example>\r\n\r\nFixed.\r\n"
).encode()


def test_an_agent_reply_stops_the_ladder_and_clears_overdue():
    desk = workflow_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING)
    desk.tick(FRIDAY_EVENING)  # the pass that made the ticket ends (its assignment notice goes alone)
    desk.tick(at(21, 16))
    assert "Helpdesk/Overdue" in desk.ticket().labels_applied
    desk.feed(SHARED_ACCOUNT_REPLY, folder_role="sent", now=at(21, 16, 31))
    sent_before = len(reminders(desk))
    for day in (22, 25, 26):
        desk.tick(at(day, 12))
    assert len(reminders(desk)) == sent_before == 1
    assert "Helpdesk/Overdue" not in desk.ticket().labels_applied and desk.ticket().status == Status.PENDING


def test_no_reminder_when_the_agent_answers_in_time():
    desk = workflow_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING)
    desk.tick(FRIDAY_EVENING)  # the pass that made the ticket ends (its assignment notice goes alone)
    reply = (
        "From: alice@shop.example\r\nTo: anna@customer.example\r\nCc: support@shop.example\r\nSubject: Re: Export fails\r\n"
        "Date: Tue, 19 Jan 2027 10:00:00 -0500\r\nMessage-ID: <wf-r2@shop.example>\r\nReferences: <wf1@customer.example>\r\n\r\nOn it.\r\n"
    ).encode()
    desk.feed(reply, now=at(19, 10, 1))
    for day in range(19, 30):
        desk.tick(at(day, 17))
    assert reminders(desk) == []
    assert desk.ticket().first_response_at == at(19, 10)


def test_a_backlog_breach_is_labelled_but_not_mailed():
    desk = workflow_desk()
    desk.feed(question(FRIDAY_EVENING), now=at(28, 12))  # first seen two weeks later
    desk.tick(at(28, 12))
    assert reminders(desk) == []
    assert "Helpdesk/Overdue" in desk.ticket().labels_applied and "breach" in desk.ticket().escalations


def test_digests_list_each_agents_open_tickets_overdue_first_and_tell_the_lead():
    desk = workflow_desk()
    desk.feed(question(at(18, 9)), now=at(18, 9))  # holiday: Alice; due Thu 18:00 (after the holiday)
    desk.feed(question(at(19, 9), "<wf2@c.example>", "ben@c.example", "URGENT: shop is down"), now=at(19, 9))  # Bob
    desk.feed(question(at(19, 10), "<wf3@c.example>", "cy@c.example", "Question"), now=at(19, 10))  # Alice
    desk.tick(at(19, 10))  # the first pass starts the digest clock
    assert [a for a in desk.sends() if "digest" in a.kind] == []
    desk.tick(at(20, 9, 5))  # Wednesday 09:00 has passed: the digests go out, once
    desk.tick(at(20, 9, 30))
    digests = {a.to: a for a in desk.sends() if "digest" in a.kind}
    assert set(digests) == {"alice@shop.example", "bob@shop.example", "lead@shop.example"}
    assert digests["alice@shop.example"].body.index("HD-1") < digests["alice@shop.example"].body.index("HD-3")
    bob = digests["bob@shop.example"]
    assert "HD-2" in bob.body and "HD-1" not in bob.body and "(1 overdue)" in bob.subject  # urgent: 1 h
    lead = digests["lead@shop.example"]
    assert "Overdue (1)" in lead.body and "HD-2" in lead.body and "new tickets:       2" in lead.body


def test_resolution_notice_rating_link_records_a_rating_without_reopening():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), ref="INBOX:1:1", now=at(19, 9))
    applied = frozenset(desk.ticket().labels_applied)
    resolved = (applied - {"Helpdesk/Status/Open"}) | {"Helpdesk/Status/Resolved"}
    desk.state.merge(desk.engine.on_labels(desk.state, [("INBOX:1:1", resolved)], at(19, 11)))
    desk.tick(at(19, 11))
    (notice,) = desk.sends("resolution")
    assert notice.to == "anna@customer.example" and "solved" in notice.subject
    assert notice.html and "mailto:" in notice.html
    good = next(line.split()[-1] for line in notice.body.splitlines() if line.strip().startswith("Good:"))
    link = urlparse(good)
    assert link.scheme == "mailto" and link.path == "support@shop.example"
    subject = parse_qs(link.query)["subject"][0]
    from mailhelpdesk.model import SentRecord

    desk.state.sent[notice.message_id] = SentRecord(notice.key, notice.message_id, notice.to, notice.kind, "HD-1", at(19, 11), True)
    desk.state.index[notice.message_id] = "HD-1"
    rating = (
        f"From: Anna <anna@customer.example>\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
        f"Date: Tue, 19 Jan 2027 12:00:00 -0500\r\nMessage-ID: <wf-rating@customer.example>\r\n"
        f"In-Reply-To: {notice.message_id}\r\n\r\n{unquote(parse_qs(link.query)['body'][0])}\r\n"
    ).encode()
    desk.feed(rating, now=at(19, 12, 1))
    desk.tick(at(19, 12, 2))
    ticket = desk.ticket()
    assert (ticket.rating, ticket.status) == ("good", Status.RESOLVED)
    assert len(desk.sends("resolution")) == 1
    desk.tick(at(22, 11, 1))  # three quiet days later the ticket closes itself
    assert desk.ticket().status == Status.CLOSED


def test_a_customer_reply_after_resolution_reopens():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), ref="INBOX:1:1", now=at(19, 9))
    applied = frozenset(desk.ticket().labels_applied)
    desk.state.merge(desk.engine.on_labels(desk.state, [("INBOX:1:1", applied | {"Helpdesk/Status/Resolved"})], at(19, 11)))
    more = question(at(19, 13), "<wf-more@customer.example>", subject="Re: Export fails").replace(
        b"\r\n\r\n", b"\r\nIn-Reply-To: <wf1@customer.example>\r\n\r\n", 1)
    desk.feed(more, now=at(19, 13, 1))
    assert desk.ticket().status == Status.OPEN and desk.ticket().waiting_since == at(19, 13)


def command_mail(sender: str, body: str, auth: str = "dkim=pass header.d=shop.example",
                 subject="Re: [HD-1] Export fails") -> bytes:
    headers = f"Authentication-Results: mx.shop.example; {auth}\r\n" if auth else ""
    return (
        f"{headers}From: {sender}\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
        f"Date: Tue, 19 Jan 2027 10:00:00 -0500\r\nMessage-ID: <cmd-{abs(hash(sender + body + auth))}@shop.example>\r\n"
        f"In-Reply-To: <wf1@customer.example>\r\n\r\n{body}\r\n"
    ).encode()


def test_agent_commands_by_mail_are_carried_out_and_never_count_as_a_reply():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.tick(at(19, 9))  # each pass ends with its notices
    assert desk.ticket().assignee == "Alice"
    desk.feed(command_mail("alice@shop.example", "#assign bob\n#priority urgent\n#note customer on the phone\n\nthanks"),
              now=at(19, 10))
    desk.tick(at(19, 10))
    ticket = desk.ticket()
    assert (ticket.assignee, ticket.priority.value, ticket.first_response_at) == ("Bob", "urgent", None)
    assert any(h.what == "note" and "customer on the phone" in h.detail for h in ticket.history)
    assert [a.to for a in desk.sends("assignment")] == ["alice@shop.example"]
    # urgent since 10:00 and due within the hour of 09:00: Bob hears of the assignment and the breach in one mail
    (batch,) = desk.sends("notices")
    assert batch.to == "bob@shop.example" and batch.subject == "1 ticket needs you: 1 new, 1 overdue"
    assert "New, assigned to you (1):\n  [HD-1] urgent" in batch.body and "OVERDUE" in batch.body
    labels = [a for a in desk.actions if isinstance(a, SetLabels)][-1]
    assert "Helpdesk/Assignee/Bob" in labels.add and "Helpdesk/Assignee/Alice" in labels.remove
    assert not [a for a in desk.sends() if a.to == "anna@customer.example" and a.kind != "acknowledgement"]


def test_a_strangers_commands_are_refused():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(command_mail("mallory@evil.example", "#assign bob\n#close"), now=at(19, 10))
    ticket = desk.ticket()
    assert ticket.assignee == "Alice" and ticket.status == Status.OPEN


@pytest.mark.parametrize(
    "auth, accepted",
    [
        ("dkim=pass header.d=shop.example; spf=pass smtp.mailfrom=alice@shop.example", True),
        ("dkim=fail header.d=shop.example; spf=softfail smtp.mailfrom=alice@shop.example", False),
        ("dkim=pass header.d=evil.example", False),
    ],
)
def test_commands_need_a_dkim_or_spf_pass_where_the_server_checks(auth, accepted):
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(command_mail("alice@shop.example", "#close", auth=auth), now=at(19, 10))
    assert (desk.ticket().status == Status.CLOSED) is accepted
    rejected = desk.sends("command rejected")
    assert bool(rejected) is not accepted
    if rejected:
        assert rejected[0].to == "alice@shop.example" and "DKIM" in rejected[0].body


def test_an_unknown_agent_in_assign_is_rejected_with_a_clear_reply():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(command_mail("bob@shop.example", "#assign zoe"), now=at(19, 10))
    (reply,) = desk.sends("command rejected")
    assert "no such agent" in reply.body and "Alice, Bob" in reply.body
    assert desk.ticket().assignee == "Alice"


def test_agents_off_shift_get_no_new_tickets():
    agents = [{"name": "Alice", "email": "alice@shop.example", "hours": "Mon-Fri 09:00-12:00"},
              {"name": "Bob", "email": "bob@shop.example"}]
    desk = workflow_desk(agents=agents)
    for i in range(3):
        desk.feed(question(at(19, 14), f"<shift{i}@c.example>", f"c{i}@c.example", f"Q{i}"), now=at(19, 14))
    assert [t.assignee for t in desk.state.tickets.values()] == ["Bob", "Bob", "Bob"]


def test_reassignment_history_is_kept():
    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(command_mail("alice@shop.example", "#assign bob"), now=at(19, 10))
    owners = [h.detail.split(" ")[0] for h in desk.ticket().history if h.what == "assigned"]
    assert owners == ["Alice", "Bob"]


def test_mail_we_send_never_carries_a_header_from_customer_text():
    desk = workflow_desk()
    evil = question(at(19, 9), subject="=?utf-8?q?Hi=0D=0ABcc=3A_victim=40evil=2Eexample?=")
    desk.feed(evil, now=at(19, 9))
    desk.tick(at(19, 9))
    from mailhelpdesk.core.mail.compose import compose

    message = compose(desk.sends("acknowledgement")[0], desk.config, at(19, 9))
    raw = bytes(message)
    assert b"\nBcc:" not in raw and message["Bcc"] is None
    assert isinstance(desk.sends()[0], SendMail)


def test_a_send_that_can_never_succeed_is_recorded_and_does_not_block_the_outbox(tmp_path):
    """A refused address (5xx) is given up with a note on the ticket; the other messages still go out."""
    from email.message import EmailMessage

    from mailhelpdesk.app.effects import Effects
    from mailhelpdesk.errors import SendError
    from mailhelpdesk.model import State

    class Mailbox:
        sent: list[str] = []

        def set_labels(self, refs, add, remove):
            pass

        def already_sent(self, message_id):
            return False

        def send(self, message: EmailMessage, labels, thread_id=""):
            if "bad@" in str(message["To"]):
                raise SendError("550 no such user", permanent=True)
            self.sent.append(str(message["To"]))
            return ""

    desk = workflow_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(question(at(19, 9), "<wf-bad@c.example>", "bad@c.example", "Other"), now=at(19, 9))
    desk.tick(at(19, 9))
    state: State = desk.state
    mailbox = Mailbox()
    Effects(desk.config, mailbox, lambda: None).apply(state, desk.actions, at(19, 9))
    assert "anna@customer.example" in mailbox.sent and "bad@c.example" not in mailbox.sent
    assert all(r.done for r in state.sent.values())
    bad = state.tickets["HD-2"]
    assert any(h.what == "could not send" and "550" in h.detail for h in bad.history)
    again = Effects(desk.config, mailbox, lambda: None).apply(state, [], at(19, 10))
    assert again == []
