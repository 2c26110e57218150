"""Timed duties: what the helpdesk does because time passed or a batch ended, one module each, in the order of
`policy.TIMED_DUTIES`. Each has a NAME, a one-line DESCRIPTION and `decide(ctx, state, tick, now) -> Plan | None`."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Iterator

from mailhelpdesk.model import HistoryEvent, Plan, Ticket
from mailhelpdesk.core.mail.render import UnsafeTemplate


@contextlib.contextmanager
def isolated(plan: Plan, ticket: Ticket, duty: str, now: datetime) -> Iterator[None]:
    """One ticket's failure in a duty is recorded (its history, once; the pass's notes) and the duty goes on with
    the next ticket; what the duty planned for that ticket is dropped. A template that tries to leave the sandbox
    is no per-ticket mistake: it stops the pass."""
    actions, before = len(plan.actions), plan.tickets.get(ticket.key)
    try:
        yield
    except UnsafeTemplate:
        raise
    except Exception as exc:
        del plan.actions[actions:]
        if before is None:
            plan.tickets.pop(ticket.key, None)
        else:
            plan.tickets[ticket.key] = before
        problem = f"{duty}: {type(exc).__name__}: {exc}"
        ticket = before or ticket
        last = ticket.history[-1] if ticket.history else None
        if last is None or (last.what, last.detail) != (HistoryEvent.DUTY_FAILED, problem):  # once, not each pass
            plan.put(ticket.log(now, HistoryEvent.DUTY_FAILED, problem))
        plan.notes.append(f"error: {ticket.key}: {problem}")
