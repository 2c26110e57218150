"""History stays history on a real mailbox (issue 10): a ticket moved to the archive is not re-created by a
rebuild, keeps its key, and a customer's reply to it weeks later opens a new ticket linked to it. Both backends."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from mailhelpdesk.model import HistoryEvent, Status
from mailhelpdesk.store.rebuild import rebuild_from
from mailhelpdesk.store.state import Store
from test_behaviour import NOW, backend, desk, eml  # noqa: F401  (fixtures)

LATER = NOW + timedelta(days=9)


def test_an_archived_ticket_survives_a_rebuild_as_history_and_a_late_reply_links_to_it(desk, backend):
    desk.run_pass()
    urgent = desk.state.ticket_of("<u1@bigstore.example>")
    assert urgent is not None
    # an agent closed it and the conversation stayed quiet: the daemon's maintenance moves it to the archive
    closed = urgent.log(NOW, HistoryEvent.STATUS, "open -> closed (label)", status=Status.CLOSED, closed_at=NOW)
    desk.state.tickets[urgent.key] = closed
    desk.save()
    assert desk.store.maintain(desk.state, LATER) >= 1
    assert urgent.key not in desk.state.tickets and desk.state.archived("<u1@bigstore.example>") == urgent.key
    keys = sorted(desk.state.tickets)
    next_number = desk.state.next_number
    desk.close()

    path = desk.store.path
    path.unlink()  # the state is lost; the archive beside it is not
    fresh = backend.helpdesk(lambda: LATER)
    state = rebuild_from(fresh.config, fresh.mailbox, LATER, archive=Store(path).archive)
    fresh.close()
    assert sorted(state.tickets) == keys, "the archived conversation is not a ticket again"
    assert state.next_number == next_number, "and its key is not given again"
    Store(path).save(state)

    reply = eml("urgent.eml").replace(b"<u1@bigstore.example>", b"<u9@bigstore.example>")
    reply = reply.replace(b"Subject: URGENT", b"In-Reply-To: <u1@bigstore.example>\r\nSubject: Re: URGENT")
    backend.deliver(reply, LATER)
    again = backend.helpdesk(lambda: LATER + timedelta(minutes=1))
    again.run_pass()
    new = again.state.ticket_of("<u9@bigstore.example>")
    assert new is not None and new.key not in keys and new.key != urgent.key and new.related == (urgent.key,)
    assert new.number == next_number
    again.close()
    assert dataclasses.replace(Store(path).find(urgent.key), history=()) == dataclasses.replace(
        closed, history=()), "the archived ticket is still there, whole"


def test_the_daemon_moves_a_ticket_an_agent_closed_to_the_archive_once_it_is_quiet(desk, backend):
    """The whole way through the daemon: an agent closes a ticket with a label; passes go on; a week after the
    conversation's last message the ticket is history; the customer's next word opens a linked ticket."""
    clock = [NOW]
    desk.clock = lambda: clock[0]
    desk.run_pass()
    urgent = desk.state.ticket_of("<u1@bigstore.example>")
    for ref in urgent.refs:
        backend.agent_relabels(ref, add={"Helpdesk/Status/Closed"}, remove={"Helpdesk/Status/Open"})
    clock[0] = NOW + timedelta(minutes=5)
    desk.run_pass()
    assert desk.state.tickets[urgent.key].status == Status.CLOSED
    clock[0] = NOW + timedelta(days=3)
    desk.run_pass()
    assert urgent.key in desk.state.tickets, "closed, but its conversation is recent: still in the work in hand"
    clock[0] = NOW + timedelta(days=8)
    desk.run_pass()  # an idle pass: the hourly maintenance moves it
    assert urgent.key not in desk.state.tickets and desk.state.archived("<u1@bigstore.example>") == urgent.key
    assert Store(desk.store.path).find(urgent.key).status == Status.CLOSED
    reply = eml("urgent.eml").replace(b"<u1@bigstore.example>", b"<u7@bigstore.example>")
    reply = reply.replace(b"Subject: URGENT", b"In-Reply-To: <u1@bigstore.example>\r\nSubject: Re: URGENT")
    backend.deliver(reply, clock[0])
    clock[0] += timedelta(minutes=1)
    desk.run_pass()
    new = desk.state.ticket_of("<u7@bigstore.example>")
    assert new is not None and new.related == (urgent.key,) and new.status == Status.OPEN
