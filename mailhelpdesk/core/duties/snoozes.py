"""A snoozed ticket (`#snooze`) comes back when its time comes: the label goes, an open ticket waits again from
now with its full target (the SLA clock did not run while it slept), and it is back in its assignee's digest."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.core import transitions
from mailhelpdesk.core.context import Context
from mailhelpdesk.core.duties import isolated
from mailhelpdesk.model import Plan, State, Tick

NAME = "snoozes"
DESCRIPTION = "snoozed tickets come back when their time comes"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    for ticket in state.tickets.values():
        if ticket.snoozed_until is None or ticket.snoozed_until > now:
            continue
        with isolated(plan, ticket, NAME, now):
            woken = plan.put(transitions.woken(ticket, now, "its time came", ctx.due))
            ctx.sync_labels(plan, woken, now)
            plan.notes.append(f"{ticket.key}: back from its snooze")
    return plan
