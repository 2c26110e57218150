"""Every change of a ticket's status, priority, assignee and wait, in one place. Pure: a ticket in, a ticket out.

The SLA clock (see sla_state): a wait starts when the customer writes to an open ticket that nobody owes an answer
yet, and when a ticket is re-opened; it ends when an agent answers, and stops while the ticket is pending, resolved or
closed. `due_at` follows the current wait and the priority: recomputed whenever either changes (`timed`), and a new
due time means a new escalation ladder.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Callable

from mailhelpdesk.model import HistoryEvent, Priority, Status, Ticket

Due = Callable[[Ticket, datetime], datetime]  # when a wait that started then is due, at the ticket's priority


def timed(ticket: Ticket, due: Due) -> Ticket:
    """`due_at` follows the current wait and priority; a new due time gets a new escalation ladder."""
    if ticket.status != Status.OPEN or ticket.waiting_since is None:
        return ticket
    due_at = due(ticket, ticket.waiting_since)
    if due_at == ticket.due_at:
        return ticket
    return dataclasses.replace(ticket, due_at=due_at, escalations=())


def set_status(ticket: Ticket, status: Status, now: datetime, how: str, due: Due) -> Ticket:
    """An agent (label, command) or a duty (auto-close) sets the status; re-opening starts a new wait."""
    changes: dict = {"status": status, "updated_at": max(now, ticket.updated_at or now), "waiting_since": None}
    if status == Status.RESOLVED:
        changes["resolved_at"] = now
    elif status == Status.CLOSED:
        changes["closed_at"] = now
    elif status == Status.OPEN:
        changes.update(resolved_at=None, closed_at=None, waiting_since=ticket.waiting_since or now)
        if ticket.waiting_since is None:
            changes["escalations"] = ()  # a new wait gets a new ladder
    return timed(ticket.log(now, HistoryEvent.STATUS, f"{ticket.status.value} -> {status.value} ({how})", **changes),
                 due)


def restored(ticket: Ticket, status: Status) -> Ticket:
    """`rebuild`: the status the labels show, read back rather than changed (no history: nothing happened now);
    a ticket that is not open waits for nobody. Its times are restored by the caller (resolved_at from records)."""
    if status == Status.OPEN:
        return dataclasses.replace(ticket, status=status)
    return dataclasses.replace(ticket, status=status, waiting_since=None, ack_wanted=False)


def set_priority(ticket: Ticket, priority: Priority, now: datetime, how: str, due: Due,
                 event: HistoryEvent = HistoryEvent.PRIORITY_SET) -> Ticket:
    return timed(ticket.log(now, event, f"{priority.value} ({how})", priority=priority), due)


def assign(ticket: Ticket, agent: str, now: datetime, how: str) -> Ticket:
    return ticket.log(now, HistoryEvent.ASSIGNED, f"{agent} ({how})", assignee=agent)


def unassign(ticket: Ticket, now: datetime, how: str) -> Ticket:
    return ticket.log(now, HistoryEvent.UNASSIGNED, how, assignee=None)


def agent_reply(ticket: Ticket, who: str, when: datetime, latest: bool) -> Ticket:
    """An agent answered the customer: the first response, the wait ends, an open ticket waits for the customer."""
    changes: dict = {}
    if ticket.first_response_at is None:
        changes["first_response_at"] = when
    if latest and ticket.status == Status.OPEN:
        changes["status"] = Status.PENDING
    if latest:
        changes["updated_at"] = when
        changes["waiting_since"] = None
    return ticket.log(when, HistoryEvent.AGENT_REPLIED, who, ack_wanted=False, **changes)


def customer_reply(ticket: Ticket, sender: str, when: datetime, latest: bool, raised_to: Priority | None, why: str,
                   due: Due) -> Ticket:
    """The customer wrote again: a pending or resolved ticket re-opens with a new wait; a more urgent word raises
    the priority (never lowers it)."""
    changes: dict = {}
    if latest and ticket.snoozed_until is not None:  # the customer's word ends a snooze at once
        ticket = woken(ticket, when, "the customer wrote", due)
    if latest:
        changes["updated_at"] = when
        if ticket.status in (Status.PENDING, Status.RESOLVED):
            changes.update(status=Status.OPEN, resolved_at=None, waiting_since=when, escalations=())
    if raised_to is not None and raised_to.rank < ticket.priority.rank:
        changes["priority"] = raised_to
        ticket = ticket.log(when, HistoryEvent.PRIORITY_RAISED, f"{raised_to.value} ({why})")
    return timed(ticket.log(when, HistoryEvent.CUSTOMER_REPLIED, sender, **changes), due)


def snoozed(ticket: Ticket, until: datetime, now: datetime, how: str) -> Ticket:
    """Out of sight until then: no reminder, not overdue, not in the digests' lists (core/sla_state.py)."""
    return ticket.log(now, HistoryEvent.SNOOZED, f"until {until.isoformat()} ({how})", snoozed_until=until)


def woken(ticket: Ticket, now: datetime, why: str, due: Due) -> Ticket:
    """The snooze ends (its time came, the customer wrote, `#unsnooze`): an open ticket waits again, from now, with
    its full target and a new ladder (the SLA clock did not run while it slept)."""
    if ticket.snoozed_until is None:
        return ticket
    changes: dict = {"snoozed_until": None}
    if ticket.status == Status.OPEN and ticket.waiting_since is not None:
        changes.update(waiting_since=now, escalations=())
    return timed(ticket.log(now, HistoryEvent.SNOOZE_ENDED, why, **changes), due)


def rated(ticket: Ticket, rating: str, when: datetime) -> Ticket:
    """A rating from the resolution notice's links: recorded; the ticket stays solved."""
    return ticket.log(when, HistoryEvent.RATED, rating, rating=rating)
