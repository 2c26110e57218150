"""Arrival order decides against what we recorded at pass time (issue 9, item 6): a customer's reply that reached the
mailbox after an agent's change re-opens the ticket whatever its `Date:` says; a backdated request is a request of
now. Pure: the `Desk` harness, fixed clocks, arrival times (`Incoming.received_at`) set explicitly."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from mailhelpdesk.model import SetLabels, Status
from mailhelpdesk.core.sla_state import sla_state as sla

from test_engine import NOW, Desk

LABEL_PASS = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # the pass that reads the agent's Resolved label


def feed(desk: Desk, name: str, *, arrived: datetime, now: datetime, **kwargs):
    """Feed a fixture as the daemon would, with its arrival time `arrived` (`replace` may change its `Date:`)."""
    incoming = dataclasses.replace(desk.incoming(name, **kwargs), received_at=arrived)
    plan = desk.engine.on_message(desk.state, incoming, now)
    desk.state.merge(plan)
    desk.actions += plan.actions
    return plan


def resolve_by_label(desk: Desk, ref: str, now: datetime) -> None:
    applied = frozenset(desk.ticket().labels_applied)
    changed = (applied - {"Helpdesk/Status/Open"}) | {"Helpdesk/Status/Resolved"}
    plan = desk.engine.on_labels(desk.state, [(ref, changed)], now)
    desk.state.merge(plan)
    desk.actions += plan.actions
    assert desk.ticket().status == Status.RESOLVED and desk.ticket().updated_at == now


def test_a_reply_dated_before_the_resolved_label_but_arriving_after_it_reopens_the_ticket():
    desk = Desk()
    desk.feed("question.eml", ref="INBOX:1:1")  # Date 10:00
    desk.tick()  # the pass ends (its assignment notice goes)
    resolve_by_label(desk, "INBOX:1:1", LABEL_PASS)
    # the customer's clock is 6 minutes slow: Date 13:57, but the mail reached the mailbox at 14:03
    skewed = {"Date: Fri, 20 Nov 2026 10:20:00 +0000": "Date: Fri, 20 Nov 2026 13:57:00 +0000"}
    arrived = LABEL_PASS + timedelta(minutes=3)
    feed(desk, "followup.eml", replace=skewed, ref="INBOX:1:2", arrived=arrived, now=LABEL_PASS + timedelta(minutes=5))
    t = desk.ticket()
    assert t.status == Status.OPEN and t.resolved_at is None
    assert t.waiting_since == arrived and t.due_at is not None and t.due_at > arrived  # the new wait starts at arrival
    assert any(isinstance(a, SetLabels) and "Helpdesk/Status/Open" in a.add for a in desk.actions)
    # days later it is still open (never auto-closed) and the escalation ladder runs for the new wait
    later = LABEL_PASS + timedelta(days=4)
    desk.tick(later)
    assert desk.ticket().status == Status.OPEN
    assert sla(desk.ticket(), later).overdue
    assert any(a.kind.startswith("escalation") for a in desk.sends())
    assert desk.sends("resolution") == []


def test_a_reply_that_arrived_before_the_agents_answer_does_not_reopen():
    """Arrival only decides against what was recorded later: an older reply fed late still waits behind the
    agent's answer (the batch order of order.in_order is kept)."""
    desk = Desk()
    desk.feed("question.eml")
    desk.feed("agent_reply.eml", folder_role="sent")  # 11:00: pending
    feed(desk, "followup.eml", arrived=datetime(2026, 11, 20, 10, 20, tzinfo=UTC), now=NOW)  # Date and arrival 10:20
    assert desk.ticket().status == Status.PENDING


def test_a_dated_reply_later_than_the_label_change_reopens_as_before():
    desk = Desk()
    desk.feed("question.eml", ref="INBOX:1:1")
    resolve_by_label(desk, "INBOX:1:1", LABEL_PASS)
    later = {"Date: Fri, 20 Nov 2026 10:20:00 +0000": "Date: Fri, 20 Nov 2026 15:00:00 +0000"}
    at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    feed(desk, "followup.eml", replace=later, ref="INBOX:1:2", arrived=at, now=at + timedelta(minutes=1))
    assert desk.ticket().status == Status.OPEN and desk.ticket().waiting_since == at


def test_a_backdated_request_is_acknowledged_and_escalated_from_its_arrival():
    desk = Desk()
    backdated = {"Date: Fri, 20 Nov 2026 10:00:00 +0000": "Date: Mon, 02 Nov 2026 09:00:00 +0000"}  # written offline
    feed(desk, "question.eml", replace=backdated, arrived=NOW, now=NOW)
    t = desk.ticket()
    assert t.created_at == NOW and t.waiting_since == NOW and t.ack_wanted
    assert t.due_at > NOW and not sla(t, NOW).overdue
    desk.tick(NOW)
    (ack,) = desk.sends("acknowledgement")
    assert ack.to == "anna@customer.example"
    assert [a for a in desk.sends() if a.kind.startswith("escalation")] == []
    desk.tick(t.due_at + timedelta(minutes=1))
    breach = [a for a in desk.sends() if a.kind == "escalation breach"]
    assert breach and breach[0].to == "alice@shop.example"


def test_a_request_that_really_is_old_still_gets_no_acknowledgement():
    """Arrival, not Date: mail that reached the mailbox days ago (a backlog) is still not acknowledged."""
    desk = Desk()
    arrived = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)
    feed(desk, "question.eml", arrived=arrived, now=NOW)
    desk.tick(NOW)
    assert desk.sends("acknowledgement") == [] and desk.ticket().created_at == arrived
