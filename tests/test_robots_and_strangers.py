"""Issue 8, items 3, 4 and 6, on the pure engine with a fixed clock: strangers and forwards, robots and loops,
and what counts as the first response (README: How it decides; robots are never answered; the support workflow)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailhelpdesk.model import SendMail, SentRecord, Status
from mailhelpdesk.core.mail.parse import parse_message
from mailhelpdesk.core.judge.senders import domain_key, normalise_address, organisation, sender_key
from mailhelpdesk.core.transitions import set_status
from test_engine import NOW, Desk, make_config


def mail(sender="anna@customer.example", subject="Invoice 1042 shows the wrong VAT", mid="<q1@customer.example>",
         to="support@shop.example", cc="", in_reply_to="", references="", date="Fri, 20 Nov 2026 10:00:00 +0000",
         headers=(), body="Hello, my invoice 1042 shows the wrong VAT.", content_type="text/plain; charset=utf-8",
         name="") -> bytes:
    lines = [f"From: {name + ' ' if name else ''}<{sender}>", f"To: {to}", f"Subject: {subject}", f"Date: {date}",
             f"Message-ID: {mid}"]
    lines += [f"Cc: {cc}"] if cc else []
    lines += [f"In-Reply-To: {in_reply_to}"] if in_reply_to else []
    lines += [f"References: {references}"] if references else []
    lines += [*headers, "MIME-Version: 1.0", f"Content-Type: {content_type}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def sent(desk: Desk, action: SendMail) -> SendMail:
    """What Effects does once a mail has gone out: the sent log and the index know its Message-ID."""
    desk.state.sent[action.message_id] = SentRecord(action.key, action.message_id, action.to, action.kind,
                                                    action.ticket, NOW, done=True)
    if action.ticket:
        desk.state.index[action.message_id] = action.ticket
    if action.kind == "acknowledgement":
        desk.state.sender_log.setdefault(sender_key(action.to), []).append(NOW)
    return action


def opened() -> tuple[Desk, SendMail]:
    """Anna's request, acknowledged; Alice is told she has it."""
    desk = Desk()
    desk.feed(mail())
    desk.tick()
    for action in desk.sends():
        sent(desk, action)
    return desk, desk.sends("acknowledgement")[0]


# --- strangers and forwards (Threading 1) ---------------------------------------------------------------------


def test_a_stranger_who_puts_our_message_id_in_in_reply_to_gets_a_ticket_of_their_own():
    desk, ack = opened()
    resolved = set_status(desk.ticket(), Status.RESOLVED, NOW, "test", desk.engine.ctx.due)  # what a stranger would rate
    desk.state.tickets["HD-1"] = resolved
    desk.feed(mail(sender="mallory@attacker.example", subject="[HD-1] rating: bad", mid="<m1@attacker.example>",
                   in_reply_to=ack.message_id, references=ack.message_id, date="Fri, 20 Nov 2026 10:20:00 +0000"))
    assert desk.ticket("HD-1") == resolved  # not re-opened, not rated, nobody new takes part
    new = desk.ticket("HD-2")
    assert new.customer == "mallory@attacker.example" and new.related == ("HD-1",)
    assert "mallory@attacker.example" not in desk.ticket("HD-1").participants
    # and the subject tag does not let them in afterwards either
    desk.feed(mail(sender="mallory@attacker.example", subject="Re: [HD-1] reopen", mid="<m2@attacker.example>",
                   date="Fri, 20 Nov 2026 10:21:00 +0000"))
    assert desk.ticket("HD-1") == resolved


def test_a_conversation_forwarded_by_someone_outside_it_makes_a_new_linked_ticket_and_leaves_the_old_one():
    desk, ack = opened()
    desk.feed(mail(sender="alice@shop.example", to="anna@customer.example", subject="Re: Invoice 1042",
                   mid="<a1@shop.example>", in_reply_to="<q1@customer.example>", references="<q1@customer.example>",
                   date="Fri, 20 Nov 2026 10:10:00 +0000"), folder_role="sent")
    before = desk.ticket()
    assert before.status == Status.PENDING
    desk.feed(mail(sender="carl@partner.example", subject="Fwd: Re: Invoice 1042", mid="<f1@partner.example>",
                   references="<q1@customer.example> <a1@shop.example>", date="Fri, 20 Nov 2026 10:25:00 +0000",
                   body="See below, can you help us too?"))
    assert desk.ticket() == before  # still pending: a forward is not the customer's word
    new = desk.ticket("HD-2")
    assert new.customer == "carl@partner.example" and new.related == ("HD-1",)
    assert any(h.what == "related" and h.detail == "HD-1" for h in new.history)


def test_people_in_cc_and_colleagues_at_the_customers_company_join_the_conversation():
    desk = Desk()
    desk.feed(mail(cc="Bert <bert@partner.example>"))
    desk.feed(mail(sender="bert@partner.example", subject="Re: Invoice 1042", mid="<b1@partner.example>",
                   in_reply_to="<q1@customer.example>", date="Fri, 20 Nov 2026 10:05:00 +0000"))
    desk.feed(mail(sender="Chef@Customer.example", subject="Re: Invoice 1042", mid="<c1@customer.example>",
                   in_reply_to="<q1@customer.example>", date="Fri, 20 Nov 2026 10:06:00 +0000"))
    assert list(desk.state.tickets) == ["HD-1"] and len(desk.ticket().message_ids) == 3


def test_on_a_free_mail_domain_the_same_domain_is_no_colleague():
    desk = Desk()
    desk.feed(mail(sender="anna@gmail.com"))
    desk.feed(mail(sender="somebody@gmail.com", subject="Re: Invoice", mid="<g1@gmail.com>",
                   in_reply_to="<q1@customer.example>", date="Fri, 20 Nov 2026 10:05:00 +0000"))
    assert sorted(desk.state.tickets) == ["HD-1", "HD-2"] and desk.ticket("HD-2").related == ("HD-1",)


# --- first response means an answer to the customer (Who is an agent) ----------------------------------------


def assignment_notice(desk: Desk) -> SendMail:
    return next(a for a in desk.sends("assignment"))


def test_an_agents_out_of_office_to_the_assignment_notice_leaves_the_ticket_open_and_escalating():
    desk, _ = opened()
    notice = assignment_notice(desk)
    desk.feed(mail(sender="alice@shop.example", subject="Automatic reply: " + notice.subject, mid="<ooo@shop.example>",
                   in_reply_to=notice.message_id, headers=("Auto-Submitted: auto-replied",),
                   date="Fri, 20 Nov 2026 10:31:00 +0000", body="I am on holiday until Monday."))
    t = desk.ticket()
    assert t.status == Status.OPEN and t.first_response_at is None and t.waiting_since is not None
    assert t.history[-1].what == "automatic mail attached" and "<ooo@shop.example>" in t.message_ids
    desk.tick(t.due_at + timedelta(minutes=1))  # the ladder goes on: the breach is mailed
    assert any(a.kind.startswith("escalation") for a in desk.sends())


def test_an_agents_answer_to_our_notice_or_to_a_colleague_is_information_not_a_first_response():
    desk, _ = opened()
    notice = assignment_notice(desk)
    desk.feed(mail(sender="alice@shop.example", subject="Re: " + notice.subject, mid="<int1@shop.example>",
                   in_reply_to=notice.message_id, date="Fri, 20 Nov 2026 10:32:00 +0000",
                   body="Bob, can you take this one?"))
    t = desk.ticket()
    assert t.status == Status.OPEN and t.first_response_at is None
    assert t.history[-1].what == "agent mail attached" and "assignment" in t.history[-1].detail
    # written in the customer's conversation, but to a colleague only: not an answer either
    desk.feed(mail(sender="alice@shop.example", to="bob@shop.example", subject="Re: Invoice 1042",
                   mid="<int2@shop.example>", in_reply_to="<q1@customer.example>",
                   date="Fri, 20 Nov 2026 10:33:00 +0000"))
    assert desk.ticket().first_response_at is None and desk.ticket().status == Status.OPEN
    # the answer to Anna is
    desk.feed(mail(sender="alice@shop.example", to="anna@customer.example", cc="support@shop.example",
                   subject="Re: Invoice 1042", mid="<ans@shop.example>", in_reply_to="<q1@customer.example>",
                   date="Fri, 20 Nov 2026 10:40:00 +0000"))
    t = desk.ticket()
    assert t.status == Status.PENDING and t.first_response_at == NOW.replace(minute=40)


# --- robots and loops --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["support+{n}@vendor.example", "ticket-{n}@vendor.example",
                                     "Support+{n}@VENDOR.example"])
def test_a_robot_that_varies_its_address_gets_at_most_a_handful_of_acknowledgements(address):
    desk = Desk()
    now = NOW
    for n in range(15):  # it answers each acknowledgement with a new "request" from a new address
        desk.feed(mail(sender=address.format(n=n), subject=f"Your ticket #{1000 + n} has been received",
                       mid=f"<r{n}@vendor.example>", date=now.strftime("%a, %d %b %Y %H:%M:%S +0000")), now=now)
        desk.tick(now)
        for action in desk.sends("acknowledgement"):
            if action.message_id not in desk.state.sent:
                sent(desk, action)
        now += timedelta(minutes=1)
    acks = desk.sends("acknowledgement")
    assert 1 <= len(acks) <= 5, len(acks)
    assert len(desk.state.tickets) == 15  # each is still recorded, for an agent to look at


def test_a_flood_from_many_senders_meets_the_global_rate_limit_with_a_warning():
    desk = Desk(make_config(autoreply={"max_per_hour": 10}))
    names = ("ann bob cat dan eve fay gus hal ivy jon kim lea max ned oli pam quinn rob sam tom uma vic wes xia "
             "yan").split()  # 25 people (addresses that differ only by digits are one sender: core/judge/loops.py)
    for n, name in enumerate(names):
        desk.feed(mail(sender=f"{name}@gmail.com", subject=f"Question {n}", mid=f"<p{n}@gmail.com>"))
    plan = desk.tick()
    assert len(desk.sends("acknowledgement")) == 10
    assert any(note.startswith("warning: 15 requests not acknowledged") for note in plan.notes)
    assert desk.state.cursors["ack_rate_limited"]["skipped"] == 15


CALENDAR_REPLY = mail(
    sender="anna@customer.example", subject="Accepted: Call about invoice 1042", mid="<cal@customer.example>",
    content_type='multipart/alternative; boundary="X"',
    body="--X\r\nContent-Type: text/plain\r\n\r\nAnna has accepted.\r\n--X\r\n"
         "Content-Type: text/calendar; charset=utf-8\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
         "ATTENDEE;PARTSTAT=ACCEPTED:mailto:anna@customer.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--X--")


def read_receipt(about: str) -> bytes:
    return mail(
        sender="anna@customer.example", subject="Read: [HD-1] Invoice 1042 shows the wrong VAT",
        mid="<mdn@customer.example>", content_type='multipart/report; report-type=disposition-notification; boundary="R"',
        body="--R\r\nContent-Type: text/plain\r\n\r\nThe message was displayed.\r\n--R\r\n"
             "Content-Type: message/disposition-notification\r\n\r\nReporting-UA: Thunderbird\r\n"
             f"Original-Message-ID: {about}\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n--R\r\n"
             f"Content-Type: text/rfc822-headers\r\n\r\nFrom: support@shop.example\r\nMessage-ID: {about}\r\n--R--")


def delay_notice(about: str) -> bytes:
    return mail(
        sender="MAILER-DAEMON@mx.customer.example", subject="Delayed Mail (still being retried)",
        mid="<delay@mx.customer.example>", headers=("Return-Path: <>",),
        content_type='multipart/report; report-type=delivery-status; boundary="D"',
        body="--D\r\nContent-Type: text/plain\r\n\r\nStill trying.\r\n--D\r\nContent-Type: message/delivery-status\r\n\r\n"
             "Reporting-MTA: dns; mx.customer.example\r\n\r\nFinal-Recipient: rfc822; anna@customer.example\r\n"
             "Action: delayed\r\nStatus: 4.4.1\r\n--D\r\n"
             f"Content-Type: text/rfc822-headers\r\n\r\nFrom: support@shop.example\r\nMessage-ID: {about}\r\n--D--")


def test_calendar_replies_read_receipts_and_delay_notices_are_robots_but_not_bounces():
    desk, ack = opened()
    for raw, reason in ((CALENDAR_REPLY, "calendar reply"), (read_receipt(ack.message_id), "read receipt"),
                        (delay_notice(ack.message_id), "delay")):
        facts = parse_message(raw)
        assert reason in facts.automatic and facts.bounce_of == (), facts.automatic
        desk.feed(raw)
    desk.tick()
    assert list(desk.state.tickets) == ["HD-1"] and desk.ticket().bounced is False
    assert len(desk.sends()) == 2  # the acknowledgement and the assignment notice: nothing to the robots
    assert "<cal@customer.example>" in desk.state.ignored


@pytest.mark.parametrize("sender, headers, robot", [
    ("no.reply.john@smith.example", (), False),  # a person's odd address: weak alone
    ("john@smith.example", ("List-Unsubscribe: <mailto:u@smith.example>",), False),  # a CRM's link on a 1:1 mail
    ("no.reply.john@smith.example", ("List-Unsubscribe: <mailto:u@smith.example>",), True),  # two weak signs
    ("noreply@shop.example", (), True),
    ("no-reply+4711@billing.example", (), True),
    ("donotreply-invoices@vendor.example", (), True),
    ("john@smith.example", ("List-Id: <news.smith.example>",), True),
    ("john@smith.example", ("Auto-Submitted: auto-generated",), True),
    ("john@smith.example", ("Return-Path: <>",), True),
])
def test_look_alike_humans_are_weighed(sender, headers, robot):
    assert bool(parse_message(mail(sender=sender, headers=headers)).automatic) == robot


def test_the_same_message_id_from_another_sender_with_another_subject_is_another_message():
    desk = Desk()
    desk.feed(mail(mid="<1@localhost>"))
    desk.feed(mail(sender="ben@bigstore.example", subject="Where is my order?", mid="<1@localhost>"))
    assert sorted(desk.state.tickets) == ["HD-1", "HD-2"] and desk.ticket("HD-2").customer == "ben@bigstore.example"
    desk.feed(mail(sender="ben@bigstore.example", subject="Where is my order?", mid="<1@localhost>"))  # re-delivered
    desk.feed(mail(mid="<1@localhost>"))  # Anna's, re-delivered
    assert sorted(desk.state.tickets) == ["HD-1", "HD-2"]
    assert len(desk.ticket("HD-1").message_ids) == len(desk.ticket("HD-2").message_ids) == 1


def test_sender_normalisation():
    assert normalise_address("Anna.Smith+shop@GMail.com") == "annasmith@gmail.com"
    assert sender_key("Support+17@Vendor.example") == "support@vendor.example"
    assert domain_key("x@vendor.example") == "vendor.example" and domain_key("x@gmail.com") == ""
    assert organisation("bob@gmail.com") == "" and organisation("bob@Bigstore.example") == "bigstore.example"
    assert organisation("bob@brightdesk.example", frozenset({"brightdesk.example"})) == ""


def test_a_person_who_asks_for_no_automatic_replies_gets_a_ticket_and_no_acknowledgement():
    """X-Auto-Response-Suppress (Outlook, some CRMs) asks that nobody answer automatically: a person's request is
    still a ticket, its acknowledgement is withheld and says why; with another robot sign it is a robot's."""
    desk = Desk()
    desk.feed(mail(headers=("X-Auto-Response-Suppress: All",), subject="Question about wholesale prices"))
    desk.feed(mail(sender="ben@bigstore.example", mid="<q2@bigstore.example>", subject="Delivery on Saturdays?",
                   headers=("X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply",)))
    desk.feed(mail(sender="news@shop-news.example", mid="<n1@shop-news.example>", subject="Our December offers",
                   headers=("X-Auto-Response-Suppress: All", "List-Unsubscribe: <mailto:u@shop-news.example>")))
    desk.tick()
    assert sorted(t.customer for t in desk.state.tickets.values()) == ["anna@customer.example", "ben@bigstore.example"]
    assert all("asks for no automatic replies" in t.ack_withheld for t in desk.state.tickets.values())
    assert desk.sends("acknowledgement") == []
    (ignored,) = desk.state.ignored.values()
    assert "X-Auto-Response-Suppress" in ignored.reason and "List-Unsubscribe" in ignored.reason
