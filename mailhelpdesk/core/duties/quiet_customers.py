"""A customer who went quiet on a pending ticket is asked once whether anything is left (`[pending]
remind_after`, working days), and the ticket is resolved `resolve_after` later if they stay quiet (its resolution
notice then thanks them and asks for a rating, as for any resolution). Their reply at any time re-opens the ticket
as usual; the reminder is never sent twice for one wait."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.core import transitions
from mailhelpdesk.core.context import Context
from mailhelpdesk.core.duties import isolated
from mailhelpdesk.core.sla import parse_target
from mailhelpdesk.kinds import MailKind
from mailhelpdesk.model import HistoryEvent, Plan, State, Status, Tick

NAME = "quiet customers"
DESCRIPTION = "one reminder to the customer of a pending ticket who went quiet, then resolved (opt-in)"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan | None:
    settings = ctx.config.pending
    if not settings.remind_after or tick.first_run:  # off, or a backlog: nobody is reminded of old mail
        return None
    plan = Plan()
    remind, resolve = parse_target(settings.remind_after), settings.resolve_after and parse_target(settings.resolve_after)
    for ticket in state.tickets.values():
        if ticket.status != Status.PENDING or ticket.updated_at is None:
            continue
        with isolated(plan, ticket, NAME, now):
            since = ticket.updated_at  # the agent's last word (or the label that made it pending)
            if ctx.calendar.add_target(since, remind) > now:
                continue  # too early for a reminder, so none was sent in this wait: its history is not read
            reminded = next((h.at for h in reversed(ticket.history) if h.what == HistoryEvent.MAILED
                             and h.detail == MailKind.CUSTOMER_REMINDER and h.at >= since), None)
            if reminded is None:
                plan.actions.append(ctx.mail.ticket_mail(MailKind.CUSTOMER_REMINDER, ticket, ticket.customer, now,
                                                         occasion=f"{since:%Y%m%dT%H%M%S}",
                                                         will_resolve=bool(settings.resolve_after)))
                plan.put(ticket.log(now, HistoryEvent.MAILED, MailKind.CUSTOMER_REMINDER))
            elif reminded is not None and resolve and ctx.calendar.add_target(reminded, resolve) <= now:
                resolved = transitions.set_status(ticket, Status.RESOLVED, now, "the customer stayed quiet", ctx.due)
                plan.put(resolved)
                ctx.sync_labels(plan, resolved, now)
                plan.notes.append(f"{ticket.key}: resolved, the customer stayed quiet after a reminder")
    return plan
