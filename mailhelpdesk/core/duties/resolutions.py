"""Tell the customer their problem is solved (once per resolution) and ask how it went."""

from __future__ import annotations

from datetime import datetime, timedelta

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import Plan, State, Status, Tick
from mailhelpdesk.core.duties import isolated

NAME = "resolutions"
DESCRIPTION = "a resolution notice with rating links, once per resolution, while it is recent"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan | None:
    if not ctx.config.resolution.notify:
        return None
    plan = Plan()
    recent = now - timedelta(hours=ctx.config.autoreply.max_age_hours)
    for ticket in state.tickets.values():
        if ticket.status != Status.RESOLVED or ticket.resolved_at is None or ticket.resolved_at < recent:
            continue
        key = ctx.mail.resolution_key(ticket)
        if state.is_ours(ctx.mail.message_id(key)):
            continue
        with isolated(plan, ticket, NAME, now):
            plan.actions.append(ctx.mail.resolution(ticket, key, now))
    return plan
