"""The escalation ladder: warn the assignee, remind at the breach (and label Overdue), then tell the lead(s)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import Status, Ticket

ANNOUNCE_WITHIN = timedelta(hours=24)  # a step crossed longer ago (a backlog) is recorded, not mailed


@dataclass(frozen=True)
class Step:
    name: str  # "warn" | "breach" | "lead"
    at: datetime  # when its threshold was crossed
    announce: bool


def due_steps(ticket: Ticket, target: timedelta, warn_at: float, escalate_after: timedelta, has_leads: bool,
              calendar, now: datetime) -> list[Step]:
    """The ladder's steps this ticket has reached and not yet taken. Each step is taken at most once."""
    if ticket.status != Status.OPEN or ticket.waiting_since is None:
        return []  # answered, or waiting for the customer: the ladder stops
    start = ticket.waiting_since
    thresholds = [("warn", target * warn_at), ("breach", target)]
    if has_leads:
        thresholds.append(("lead", target + escalate_after))
    steps = []
    for name, offset in thresholds:
        if name in ticket.escalations:
            continue
        at = calendar.due(start, offset)
        if at <= now:
            steps.append(Step(name, at, now - at <= ANNOUNCE_WITHIN))
    if any(s.name == "breach" for s in steps):  # a warning after the breach would only be noise
        steps = [s if s.name != "warn" else Step("warn", s.at, False) for s in steps]
    return steps
