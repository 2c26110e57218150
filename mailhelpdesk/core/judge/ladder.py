"""The escalation ladder: warn the assignee, remind at the breach (and label Overdue), then tell the lead(s).

The breach is the ticket's own `due_at` (see sla_state), so the reminder, the Overdue label, digests and reports
agree on when a ticket became late. The warning comes when `warn_at` of the business time to `due_at` has passed;
the lead hears `escalate_after` (business time) after the breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailhelpdesk.model import Step, Ticket
from mailhelpdesk.core.sla_state import sla_state

ANNOUNCE_WITHIN = timedelta(hours=24)  # a step crossed longer ago (a backlog) is recorded, not mailed


@dataclass(frozen=True)
class Due:
    """A step of the ladder a ticket has reached: when, and whether it is recent enough to be mailed."""

    step: Step
    at: datetime  # when its threshold was crossed
    announce: bool


def due_steps(ticket: Ticket, warn_at: float, escalate_after: timedelta, has_leads: bool, calendar,
              now: datetime, quiet: bool = False) -> list[Due]:
    """The ladder's steps this ticket has reached in its current wait and not yet taken (each at most once).

    ``quiet`` (the first run over a backlog) records the steps without mailing anyone.
    """
    state = sla_state(ticket, now)
    if not state.waiting or state.due_at is None:
        return []  # answered, or waiting for the customer: the ladder stops
    taken = set(ticket.escalations)
    if Step.BREACH in taken and (not has_leads or Step.LEAD in taken):
        return []  # the ladder's end reached (most waiting tickets of a busy day): nothing to compute
    start = ticket.waiting_since
    thresholds = [(Step.BREACH, state.due_at)]
    if not taken & {Step.WARN, Step.BREACH}:
        thresholds.insert(0, (Step.WARN, calendar.add(start, calendar.elapsed(start, state.due_at) * warn_at)))
    if has_leads:
        thresholds.append((Step.LEAD, calendar.add(state.due_at, escalate_after)))
    steps = [Due(step, at, not quiet and now - at <= ANNOUNCE_WITHIN)
             for step, at in thresholds if step not in taken and at <= now]
    if any(s.step == Step.BREACH for s in steps):  # a warning after the breach would only be noise
        steps = [Due(s.step, s.at, False) if s.step == Step.WARN else s for s in steps]
    return steps
