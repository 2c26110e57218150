"""A customer's new request: a ticket, numbered, prioritised, assigned, due, linked to an earlier one."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from ..context import Context
from ..model import HistoryEvent, Incoming, Plan, State, Ticket
from .assignment import choose_assignee
from .authentication import sender_failed, verdict
from .priority import priority_for
from .threading import find_ticket, with_people

NAME = "new ticket"
DESCRIPTION = "anything else is a customer's new request (the last rule: it always answers)"


def decide(ctx: Context, state: State, incoming: Incoming, now: datetime) -> Plan:
    config, facts, plan = ctx.config, incoming.facts, Plan()
    when = min(incoming.arrived or now, now)  # a backdated `Date:` is not an old request: its wait starts at arrival
    number = state.next_number
    prefix = config.helpdesk.ticket_prefix
    key = ctx.known_keys.get(facts.message_id) or f"{prefix}-{number}"
    if key in state.tickets:
        key = f"{prefix}-{number}"
    number = int(key.rsplit("-", 1)[1])
    priority, reason = priority_for(facts, config)
    assignee, rr_index = choose_assignee(state, config, when)
    fresh = now - when <= timedelta(hours=config.autoreply.max_age_hours)
    ticket = Ticket(key=key, number=number, customer=facts.customer,
                    customer_name=facts.sender_name if facts.customer == facts.sender else "", subject=facts.title,
                    created_at=when, updated_at=when, waiting_since=when, priority=priority, assignee=assignee,
                    ack_wanted=config.autoreply.enabled and fresh)
    ticket = ticket.with_message(facts.message_id, incoming.ref, facts.sender, incoming.thread_id)
    ticket = dataclasses.replace(ticket, participants=tuple(dict.fromkeys(ticket.participants + (facts.customer,))))
    ticket = with_people(ticket, facts.to + facts.cc)  # colleagues in Cc may answer in the conversation
    ticket = ticket.log(when, HistoryEvent.CREATED, f"priority {priority.value} ({reason})", due_at=ctx.due(ticket, when))
    forged = sender_failed(verdict(facts.auth_headers, config.commands.trusted_authserv_id), facts.sender)
    if forged and ticket.ack_wanted:  # backscatter: a forged sender never hears from us
        ticket = ticket.log(when, HistoryEvent.ACK_WITHHELD, f"{forged}: the sender may be forged", ack_wanted=False)
    related = find_ticket(state, incoming)
    earlier = related.related or (related.ticket.key if related.ticket else "")
    if earlier:
        ticket = ticket.log(when, HistoryEvent.RELATED, earlier, related=(earlier,))
    if assignee:
        ticket = ticket.log(when, HistoryEvent.ASSIGNED, f"{assignee} ({config.assignment.strategy})")
    plan.put(ticket)
    plan.next_number = max(number + 1, state.next_number)
    plan.rr_index = rr_index
    ctx.index_message(plan, ticket, incoming)
    plan.notes.append(f"{key}: new ticket from {facts.customer}: {facts.title!r} [{priority.value}]")
    ctx.sync_labels(plan, ticket, now)
    if assignee and config.assignment.notify and fresh and not state.first_run:  # the backlog: a summary
        plan.actions.append(ctx.mail.assignment(state, ticket, now))
    return plan
