"""A customer's new request: a ticket, numbered, prioritised, assigned, due, linked to an earlier one."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import HistoryEvent, Incoming, MailKind, Plan, State, Ticket, shape_key
from mailhelpdesk.core.judge import loops
from mailhelpdesk.core.judge.assignment import choose_assignee
from mailhelpdesk.core.judge.authentication import sender_failed, verdict
from mailhelpdesk.core.judge.priority import priority_for
from mailhelpdesk.core.judge.threading import find_ticket, with_people

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
                    ack_wanted=config.autoreply.enabled and fresh, shape=loops.shape(facts, ctx.free_mail))
    ticket = ticket.with_message(facts.message_id, incoming.ref, facts.sender, incoming.thread_id)
    ticket = dataclasses.replace(ticket, participants=tuple(dict.fromkeys(ticket.participants + (facts.customer,))))
    ticket = with_people(ticket, facts.to + facts.cc)  # colleagues in Cc may answer in the conversation
    ticket = ticket.log(when, HistoryEvent.CREATED, f"priority {priority.value} ({reason})", due_at=ctx.due(ticket, when))
    related = find_ticket(state, incoming)
    earlier = related.related or (related.ticket.key if related.ticket else "")
    # an archived ticket's people are not known: there, only the shape counts
    loop = (loops.answers_our_mail(state, facts, earlier, prefix) if earlier in state.tickets or not earlier
            else None)
    earlier = earlier or (loop.ticket if loop else "")
    withheld = ticket.ack_wanted and _withheld(ctx, state, incoming, ticket, loop, when)
    if withheld:
        ticket = ticket.log(when, HistoryEvent.ACK_WITHHELD, withheld, ack_wanted=False)
    if earlier:
        ticket = ticket.log(when, HistoryEvent.RELATED, earlier, related=(earlier,))
    if assignee:
        ticket = ticket.log(when, HistoryEvent.ASSIGNED, f"{assignee} ({config.assignment.strategy})")
    plan.put(ticket)
    plan.next_number = max(number + 1, state.next_number)
    plan.rr_index = rr_index
    ctx.index_message(plan, ticket, incoming)
    plan.index[shape_key(ticket.shape)] = key
    plan.notes.append(f"{key}: new ticket from {facts.customer}: {facts.title!r} [{priority.value}]")
    ctx.sync_labels(plan, ticket, now)
    if assignee and config.assignment.notify and fresh and not state.first_run:  # the backlog: a summary
        ctx.notify(plan, MailKind.ASSIGNMENT, ticket, now)
    return plan


def _withheld(ctx: Context, state: State, incoming: Incoming, ticket: Ticket, loop: loops.Loop | None,
              when: datetime) -> str:
    """Why this request gets no acknowledgement ("" when it gets one): a forged sender never hears from us
    (backscatter), and a loop is stopped by what it is (core/judge/loops.py)."""
    facts = incoming.facts
    forged = sender_failed(verdict(facts.auth_headers, ctx.config.commands.trusted_authserv_id), facts.sender)
    if forged:
        return f"{forged}: the sender may be forged"
    if loop is not None:
        return f"{loop.reason}, from {facts.sender}, who takes no part in it: a robot's or a forwarded answer"
    if facts.asks_no_auto_reply:
        return "the sender asks for no automatic replies (X-Auto-Response-Suppress)"
    previous = state.tickets.get(state.index.get(shape_key(ticket.shape), ""))
    window = timedelta(hours=ctx.config.autoreply.same_shape_hours)
    if previous is not None and timedelta(0) <= when - previous.created_at <= window:
        return (f"the same mail as {previous.key} ({previous.customer}, {previous.created_at:%Y-%m-%d %H:%M} UTC) "
                f"again: a robot answering every mail, or a request sent twice")
    return ""
