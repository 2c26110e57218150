"""A resolved ticket nobody wrote to for `[resolution] close_after` is closed."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.core import transitions
from mailhelpdesk.core.context import Context
from mailhelpdesk.model import Plan, State, Status, Tick
from mailhelpdesk.core.sla import parse_duration
from mailhelpdesk.core.duties import isolated

NAME = "auto-close"
DESCRIPTION = "close resolved tickets that stayed quiet for close_after"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    close_after = ctx.config.resolution.close_after
    quiet = parse_duration(close_after)
    for ticket in state.tickets.values():
        if ticket.status == Status.RESOLVED and ticket.resolved_at and now - ticket.resolved_at >= quiet:
            with isolated(plan, ticket, NAME, now):
                closed = plan.put(transitions.set_status(ticket, Status.CLOSED, now, f"quiet for {close_after}", ctx.due))
                ctx.sync_labels(plan, closed, now)
    return plan
