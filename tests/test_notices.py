"""Notices to agents and leads are held and batched per address (core/duties/notices.py): one notice alone as
before, several in one mail with one line per ticket, at most one mail per address per batch window, urgent ones
at once, and a notice that lost its point (handed over) dropped."""

from __future__ import annotations

from datetime import timedelta

from test_engine import NOW, Desk, make_config

TOPICS = ["the invoice", "a parcel", "the login", "a refund", "the price list", "an address", "the API", "a seat"]


def request(n: int, sender: str = "", subject: str = "", mid: str = "") -> bytes:
    sender = sender or f"{['ann', 'bob', 'cid', 'dee', 'eva', 'fay', 'gil', 'hal'][n]}@customer{n}.example"
    subject = subject or f"Question about {TOPICS[n]}"
    return (f"From: {sender}\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
            f"Date: Fri, 20 Nov 2026 10:0{n}:00 +0000\r\nMessage-ID: {mid or '<n%d@customer.example>' % n}\r\n\r\n"
            f"Hello, a question about {TOPICS[n]}.\r\n").encode()


def one_agent_desk(**extra) -> Desk:
    return Desk(make_config(agents=[{"name": "Alice", "email": "alice@shop.example"}], **extra))


def test_several_new_tickets_in_one_pass_are_one_mail_with_a_line_each_and_withheld_acks_said():
    desk = one_agent_desk()
    for n in range(3):
        desk.feed(request(n))
    desk.feed(request(0, mid="<again@customer.example>"))  # Ann sends the same mail again
    desk.tick()
    assert desk.sends("assignment") == []
    (batch,) = desk.sends("notices")
    assert batch.to == "alice@shop.example" and batch.subject == "4 tickets need you: 4 new"
    lines = batch.body.splitlines()
    rows = [line for line in lines if line.startswith("  [HD-")]
    assert [row.split()[0] for row in rows] == ["[HD-1]", "[HD-2]", "[HD-3]", "[HD-4]"], batch.body  # one line each
    withheld = lines.index(rows[3]) + 1
    assert lines[withheld].strip().startswith("no acknowledgement was sent: the same mail as HD-1"), batch.body
    assert len(desk.sends("acknowledgement")) == 3


def test_an_address_gets_one_notice_mail_per_window_and_what_comes_between_waits_for_the_next():
    desk = one_agent_desk()
    desk.feed(request(0))
    desk.tick()
    assert [m.kind for m in desk.sends() if m.to == "alice@shop.example"] == ["assignment"]  # alone: as before
    for n, minutes in ((1, 3), (2, 6)):
        desk.feed(request(n), now=NOW + timedelta(minutes=minutes))
        desk.tick(NOW + timedelta(minutes=minutes))
    assert len([m for m in desk.sends() if m.to == "alice@shop.example"]) == 1, "within the 10 minutes: held"
    desk.tick(NOW + timedelta(minutes=10))
    notices = [m for m in desk.sends() if m.to == "alice@shop.example"]
    assert [m.kind for m in notices] == ["assignment", "notices"]
    assert "[HD-2]" in notices[1].body and "[HD-3]" in notices[1].body
    desk.tick(NOW + timedelta(minutes=30))
    assert len([m for m in desk.sends() if m.to == "alice@shop.example"]) == 2, "nothing is sent twice"


def test_an_urgent_ticket_is_told_at_once_with_whatever_waits():
    desk = one_agent_desk()
    desk.feed(request(0))
    desk.tick()
    desk.feed(request(1), now=NOW + timedelta(minutes=2))
    desk.tick(NOW + timedelta(minutes=2))
    desk.feed(request(2, subject="URGENT: checkout is down"), now=NOW + timedelta(minutes=4))
    desk.tick(NOW + timedelta(minutes=4))  # inside the window, but urgent
    notices = [m for m in desk.sends() if m.to == "alice@shop.example"]
    assert [m.kind for m in notices] == ["assignment", "notices"]
    assert "[HD-3] urgent" in notices[1].body and "[HD-2]" in notices[1].body


def test_a_held_notice_of_a_ticket_handed_over_meanwhile_is_dropped():
    desk = Desk(make_config())  # Alice and Bob
    desk.feed(request(0))
    desk.tick()
    desk.feed(request(1), now=NOW + timedelta(minutes=1))  # Bob's
    desk.feed(request(2), now=NOW + timedelta(minutes=1))  # Alice's, held: she had a notice a minute ago
    desk.tick(NOW + timedelta(minutes=1))
    ticket = desk.ticket("HD-3")
    assert ticket.assignee == "Alice"
    applied = frozenset(ticket.labels_applied)
    moved = (applied - {"Helpdesk/Assignee/Alice"}) | {"Helpdesk/Assignee/Bob"}
    desk.state.merge(desk.engine.on_labels(desk.state, [(ticket.refs[0], moved)], NOW + timedelta(minutes=5)))
    plan = desk.tick(NOW + timedelta(minutes=11))
    to_alice = [m for m in desk.sends() if m.to == "alice@shop.example"]
    assert len(to_alice) == 1 and "HD-3" not in to_alice[0].subject  # only her first ticket's notice
    assert any("handed over to Bob" in note for note in plan.notes)
