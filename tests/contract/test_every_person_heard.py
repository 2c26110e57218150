"""Every person heard, nobody buried (issue 16), on a real Dovecot + aiosmtpd and on the Gmail API fake.

People are acknowledged whoever else wrote today; loops are stopped by what they are (core/judge/loops.py); a burst of
requests leaves the team a handful of batched notices (core/duties/notices.py), and every withheld acknowledgement
says why where the assignee looks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from test_behaviour import backend  # noqa: F401  (the fixture: imap and gmail)

TUESDAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Vienna, the helpdesk's time zone: open
LEAD = "lead@shop.example"
TOPICS = [
    "the invoice shows last month's prices", "our parcel went to the old address", "the login page loops",
    "we were charged twice", "please add a second seat", "the CSV export drops umlauts", "the app crashes on start",
    "can we pay by bank transfer", "the API returns 502 since noon", "the password reset mail never comes",
    "how do we export all tickets", "the discount code is refused", "our logo is blurry on receipts",
    "the mobile app logs us out", "a refund for the cancelled order", "the webhook fires twice",
    "the report has no totals", "we need an invoice in English", "two-factor codes arrive late",
    "the calendar sync is broken",
]
OPENERS = ["Hello,", "Hi team,", "Good morning,", "Dear support,", "Hey,", "Hallo,"]


def request(sender: str, n: int, when: datetime, name: str = "Pat Customer") -> bytes:
    """A person's request: a subject and words of their own (people do not write the same mail twice)."""
    topic = TOPICS[n % len(TOPICS)]
    opener = OPENERS[(n // len(TOPICS)) % len(OPENERS)]
    return (f"From: {name} <{sender}>\r\nTo: support@shop.example\r\nSubject: {topic.capitalize()}\r\n"
            f"Date: {format_datetime(when)}\r\nMessage-ID: <req-{n}-{sender}>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{opener}\r\n{topic} (request {n} of {sender}). "
            f"Could you look into it?\r\nThanks, {name}\r\n").encode()


def with_lead(backend, **sla) -> None:
    """The harness's config with a lead to escalate to (and `sla` settings of the test's own)."""
    import dataclasses

    backend.config = dataclasses.replace(backend.config, sla=dataclasses.replace(
        backend.config.sla, escalate_to=[LEAD], escalate_after="1h", **sla))


def sent(backend) -> list[tuple[str, str, str, str]]:
    """(kind, to, ticket, body) of every mail that went out."""
    return [(str(m["X-Mailhelpdesk-Kind"]), str(m["To"]).lower(), str(m["X-Mailhelpdesk-Ticket"] or ""),
             m.get_body(("plain",)).get_content()) for m in backend.outgoing()]


def acknowledged(backend) -> Counter:
    return Counter(ticket for kind, _, ticket, _ in sent(backend) if kind == "acknowledgement")


class Day:
    """A helpdesk on a Tuesday, passes run at the times the test names."""

    def __init__(self, backend, start: datetime = TUESDAY):
        self.backend, self.now = backend, [start]
        self.helpdesk = backend.helpdesk(lambda: self.now[0])
        assert self.helpdesk.run_pass().quarantined == []  # the first run over an empty mailbox: nothing to do

    def at(self, when: datetime):
        self.now[0] = when
        report = self.helpdesk.run_pass()
        assert report.quarantined == [], report.quarantined
        return report

    @property
    def state(self):
        return self.helpdesk.state


def test_several_requests_of_one_customer_and_eight_colleagues_are_each_acknowledged(backend):
    day = Day(backend)
    t = TUESDAY
    for n, minutes in enumerate((5, 20, 50)):  # one customer, three separate requests within the hour
        when = t + timedelta(minutes=minutes)
        backend.deliver(request("anna@customer.example", n, when, "Anna Müller"), when)
        day.at(when + timedelta(minutes=1))
    for n in range(8):  # eight colleagues at one company (not free mail), the same day
        when = t + timedelta(hours=1, minutes=7 * n)
        backend.deliver(request(f"person{n}@bigcorp.example", 3 + n, when, f"Colleague {n}"), when)
        day.at(when + timedelta(minutes=1))
    # a team address in Cc does not make the request anyone else's
    when = t + timedelta(hours=2)
    raw = request("lena@bigcorp.example", 11, when, "Lena").replace(
        b"To: support@shop.example\r\n", b"To: support@shop.example\r\nCc: team@bigcorp.example\r\n")
    backend.deliver(raw, when)
    day.at(when + timedelta(minutes=1))
    tickets = day.state.tickets
    assert len(tickets) == 12
    acks = acknowledged(backend)
    assert set(acks) == set(tickets) and set(acks.values()) == {1}, acks  # each once
    assert {to for kind, to, _, _ in sent(backend) if kind == "acknowledgement"} == (
        {"anna@customer.example", "lena@bigcorp.example"} | {f"person{n}@bigcorp.example" for n in range(8)})
    assert not any(t.ack_withheld for t in tickets.values())
    day.helpdesk.close()


def robot_answer(to_us, n: int, when: datetime, how: str) -> bytes:
    """A vendor's auto-responder (no RFC 3834 header, a new +tag address each time) answering a mail of ours."""
    subject = str(to_us["Subject"])
    headers = [f"From: Vendor Support <support+{4700 + n}@vendor.example>", "To: support@shop.example",
               f"Date: {format_datetime(when)}", f"Message-ID: <auto-{n}@vendor.example>"]
    body = "Thank you for contacting Vendor. Your case number is %d. An engineer will reply soon." % (4700 + n)
    if how == "in-reply-to":
        headers += [f"Subject: [Vendor #{4700 + n}] Re: {subject}", f"In-Reply-To: {to_us['Message-ID']}"]
    elif how == "subject-tag":
        headers += [f"Subject: Re: {subject}"]
    elif how == "quoted":
        quoted = "\r\n".join("> " + line for line in to_us.get_body(("plain",)).get_content().splitlines()[:6])
        headers += [f"Subject: [Vendor #{4700 + n}] We got your message"]
        body += "\r\n\r\nYou wrote:\r\n" + quoted
    else:  # a new thread every time, nothing of ours in it: only its sameness gives it away
        headers += [f"Subject: [Vendor #{4700 + n}] We got your message"]
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


@pytest.mark.parametrize("how", ["in-reply-to", "subject-tag", "quoted", "new-thread"])
def test_an_auto_responder_that_varies_its_address_is_answered_at_most_a_few_times(backend, how):
    """A customer at shop-partner.example asks; the vendor's robot (another company) was in the loop and answers
    every mail we send it. Ten rounds: it gets a handful of mails, the customer is served, nothing is silent."""
    day = Day(backend)
    when = TUESDAY + timedelta(minutes=5)
    backend.deliver(request("kim@shop-partner.example", 0, when, "Kim"), when)
    day.at(when)
    first = next(m for m in backend.outgoing() if str(m["X-Mailhelpdesk-Kind"]) == "acknowledgement")
    answered: set[str] = set()
    to_answer = [first]
    n = 0
    for round_ in range(10):
        when = TUESDAY + timedelta(minutes=10 + 3 * round_)
        for mail in to_answer:
            n += 1
            backend.deliver(robot_answer(mail, n, when, how), when)
        day.at(when + timedelta(seconds=30))
        # the robot answers whatever we sent to any of its addresses
        to_answer = [m for m in backend.outgoing() if "vendor.example" in str(m["To"])
                     and str(m["Message-ID"]) not in answered]
        answered |= {str(m["Message-ID"]) for m in to_answer}
    to_robot = [m for m in backend.outgoing() if "vendor.example" in str(m["To"])]
    assert len(to_robot) <= 1, [str(m["Subject"]) for m in to_robot]  # at most one, then the loop is over
    assert n <= 2
    robot_tickets = [t for t in day.state.tickets.values() if "vendor.example" in t.customer]
    assert robot_tickets and all(t.status.value == "open" for t in robot_tickets)  # kept, and an agent can answer
    withheld = [t for t in robot_tickets if t.ack_withheld]
    assert withheld, "the robot's mail says why it had no acknowledgement"
    tagged = "[HD-1]" in str(first["Subject"])  # on Gmail our subject is the thread's: the key is in the body
    if how in ("in-reply-to", "quoted") or how == "subject-tag" and tagged:
        (ticket,) = robot_tickets
        assert "takes no part in it" in ticket.ack_withheld
        assert ticket.related == ("HD-1",)  # linked to the conversation it answers, which it did not change
        assert day.state.tickets["HD-1"].status.value == "open"
    # the assignee reads why, in their notice
    notices = [body for kind, to, _, body in sent(backend) if kind in ("assignment", "notices")]
    assert any("No acknowledgement was sent" in body or "no acknowledgement was sent" in body for body in notices)
    day.helpdesk.close()


def test_sixty_requests_in_minutes_leave_the_team_a_handful_of_batched_mails(backend):
    """An outage day: 60 people write within ten minutes. All 60 are acknowledged at once; over the next three
    hours (notices, warnings, breaches, escalations) each agent and the lead get a handful of mails, and every
    ticket is in them."""
    with_lead(backend, first_response={"urgent": "1h", "high": "2h", "normal": "2h", "low": "2h"})
    day = Day(backend)
    people = [f"user{n}@{'gmail.com' if n % 3 else f'firm{n}.example'}" for n in range(60)]
    for n, person in enumerate(people):
        when = TUESDAY + timedelta(seconds=10 * n)
        backend.deliver(request(person, n, when, f"User {n}"), when)
        if n % 6 == 5:  # the daemon passes while they arrive
            day.at(when + timedelta(seconds=5))
    end = TUESDAY + timedelta(hours=3, minutes=15)
    when = TUESDAY + timedelta(minutes=11)
    while when <= end:  # a pass every two minutes for three hours
        day.at(when)
        when += timedelta(minutes=2)
    mails = sent(backend)
    acks = Counter(to for kind, to, _, _ in mails if kind == "acknowledgement")
    assert set(acks) == set(people) and set(acks.values()) == {1}
    internal = Counter(to for kind, to, _, _ in mails if kind != "acknowledgement")
    assert set(internal) <= {"alice@shop.example", "bob@shop.example", LEAD}, internal
    assert internal["alice@shop.example"] <= 8 and internal["bob@shop.example"] <= 8, internal  # 31 each before
    assert internal[LEAD] <= 4, internal  # 61 before: one escalation mail per ticket
    assert internal[LEAD] >= 1 and internal["alice@shop.example"] >= 2
    tickets = day.state.tickets.values()
    assert all(t.escalations == ("warn", "breach", "lead") for t in tickets)  # the ladder ran for every ticket
    for ticket in tickets:  # ... and each step reached its people, alone or in a batch
        agent = "alice@shop.example" if ticket.assignee == "Alice" else "bob@shop.example"
        theirs = [body for kind, to, key, body in mails if to == agent and kind != "acknowledgement"]
        assert any(f"[{ticket.key}]" in body or f"{ticket.key} " in body for body in theirs), ticket.key
        lead = [body for kind, to, key, body in mails if to == LEAD]
        assert any(f"[{ticket.key}]" in body or f"{ticket.key} " in body for body in lead), ticket.key
    day.helpdesk.close()
