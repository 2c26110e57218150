"""The escalation ladder: warn the assignee, remind at the breach (and label Overdue), then tell the lead(s).

The breach is the ticket's own `due_at` (see sla_state), so the reminder, the Overdue label, digests and reports
agree on when a ticket became late. The warning comes when `warn_at` of the business time to `due_at` has passed;
the lead hears `escalate_after` (business time) after the breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import Ticket
from ..sla_state import sla_state

ANNOUNCE_WITHIN = timedelta(hours=24)  # a step crossed longer ago (a backlog) is recorded, not mailed


@dataclass(frozen=True)
class Step:
    name: str  # "warn" | "breach" | "lead"
    at: datetime  # when its threshold was crossed
    announce: bool


def due_steps(ticket: Ticket, warn_at: float, escalate_after: timedelta, has_leads: bool, calendar,
              now: datetime, quiet: bool = False) -> list[Step]:
    """The ladder's steps this ticket has reached in its current wait and not yet taken (each at most once).

    ``quiet`` (the first run over a backlog) records the steps without mailing anyone.
    """
    state = sla_state(ticket, now)
    if not state.waiting or state.due_at is None:
        return []  # answered, or waiting for the customer: the ladder stops
    taken = set(ticket.escalations)
    if "breach" in taken and (not has_leads or "lead" in taken):
        return []  # the ladder's end reached (most waiting tickets of a busy day): nothing to compute
    start = ticket.waiting_since
    thresholds = [("breach", state.due_at)]
    if not taken & {"warn", "breach"}:
        thresholds.insert(0, ("warn", calendar.add(start, calendar.elapsed(start, state.due_at) * warn_at)))
    if has_leads:
        thresholds.append(("lead", calendar.add(state.due_at, escalate_after)))
    steps = [Step(name, at, not quiet and now - at <= ANNOUNCE_WITHIN)
             for name, at in thresholds if name not in ticket.escalations and at <= now]
    if any(s.name == "breach" for s in steps):  # a warning after the breach would only be noise
        steps = [s if s.name != "warn" else Step("warn", s.at, False) for s in steps]
    return steps
