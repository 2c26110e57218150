"""The escalation ladder (core/judge/ladder.py) taken: warn the assignee, remind at the breach, tell the lead(s)."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import Plan, State, Step, Tick
from mailhelpdesk.core.judge.ladder import due_steps
from mailhelpdesk.core.sla import parse_duration
from mailhelpdesk.core.duties import isolated

NAME = "escalations"
DESCRIPTION = "each step of the escalation ladder a waiting ticket reached: recorded once, mailed when recent"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    sla = ctx.config.sla
    leads = tuple(sla.escalate_to)
    escalate_after = parse_duration(sla.escalate_after)
    for ticket in state.tickets.values():
        with isolated(plan, ticket, NAME, now):
            steps = due_steps(ticket, sla.warn_at, escalate_after, bool(leads), ctx.calendar, now,
                              quiet=tick.first_run)
            if not steps:
                continue
            for due in steps:
                ticket = ticket.log(now, due.step.event, "" if due.announce else "backlog, not mailed",
                                    escalations=ticket.escalations + (due.step,))
                if not due.announce:
                    continue
                agent = ctx.config.agent_by_name(ticket.assignee or "")
                recipients = leads if due.step == Step.LEAD or agent is None else (agent.email,)
                for to in recipients:
                    ctx.notify(plan, due.step.kind, ticket, now, to=to)
            plan.put(ticket)
            plan.notes.append(f"{ticket.key}: escalation {', '.join(s.step for s in steps)}")
            ctx.sync_labels(plan, ticket, now)
    return plan
