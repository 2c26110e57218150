"""A message of a conversation we know: an agent's reply, a customer's reply, or a robot's."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.core import transitions
from mailhelpdesk.core.context import Context
from mailhelpdesk.kinds import TO_CUSTOMER
from mailhelpdesk.model import HistoryEvent, Incoming, Plan, State, Status, Ticket
from mailhelpdesk.core.judge.priority import priority_for
from mailhelpdesk.core.judge.rating import rating_in
from mailhelpdesk.core.judge.threading import Match, find_ticket, with_people

NAME = "in ticket"
DESCRIPTION = "a reply in a known conversation: an agent's answer, the customer's word, a robot's note"


def decide(ctx: Context, state: State, incoming: Incoming, now: datetime) -> Plan | None:
    match = find_ticket(state, incoming, ctx.may_attach)
    if match.ticket is None:
        return None  # none, or one the sender takes no part in: a new ticket, linked (core/rules/new_ticket.py)
    facts, ticket, plan = incoming.facts, match.ticket, Plan()
    agent = ctx.is_agent(incoming)
    if ticket.status == Status.CLOSED and not agent and not facts.automatic and not rating_in(facts.subject):
        return None  # a customer writing into a closed ticket starts a new one (linked)
    when = incoming.when or now
    member = ctx.takes_part(ticket, incoming)  # else a robot's mail, attached: it makes nobody a participant
    ticket = ticket.with_message(facts.message_id, incoming.ref, facts.sender if member else "", incoming.thread_id)
    ticket = with_people(ticket, facts.to + facts.cc) if member else ticket
    latest = ticket.updated_at is None or when >= ticket.updated_at
    arrived = incoming.arrived
    if not latest and not agent and not facts.automatic and arrived is not None and arrived >= ticket.updated_at:
        # the customer's word reached us after the last change (an agent's label, read at pass time): it is the
        # latest whatever its skewed or offline `Date:` says, and its new wait starts at arrival
        when, latest = min(arrived, now), True
    if facts.automatic:  # an out-of-office, an agent's too: information, never an answer nor a new wait
        bounced = any(state.is_ours(mid) or mid in ticket.message_ids for mid in facts.bounce_of)
        ticket = ticket.log(when, HistoryEvent.AUTOMATIC_MAIL_ATTACHED, facts.automatic,
                            bounced=ticket.bounced or bounced)
    elif agent:
        not_an_answer = _not_an_answer(ctx, state, ticket, match, incoming)
        if not_an_answer:
            ticket = ticket.log(when, HistoryEvent.AGENT_MAIL_ATTACHED, f"{ctx.who(incoming)}: {not_an_answer}")
        else:
            ticket = transitions.agent_reply(ticket, ctx.who(incoming), when, latest)
    else:
        rating = rating_in(facts.subject)
        if rating and ticket.status in (Status.RESOLVED, Status.CLOSED):
            ticket = transitions.rated(ticket, rating, when)
        else:
            priority, reason = priority_for(facts, ctx.config)
            ticket = transitions.customer_reply(ticket, facts.sender, when, latest, priority, reason, ctx.due)
    plan.put(ticket)
    ctx.index_message(plan, ticket, incoming)
    plan.notes.append(f"{ticket.key}: {facts.sender} ({match.how}) -> {ticket.status}")
    ctx.sync_labels(plan, ticket, now)
    return plan


def _not_an_answer(ctx: Context, state: State, ticket: Ticket, match: Match, incoming: Incoming) -> str:
    """Why an agent's mail in a ticket does not answer the customer ("" when it does): only a mail to the
    customer (To or Cc), in the customer's conversation, is a first response (README, The support workflow)."""
    record = state.sent.get(match.via) if match.via else None
    if record is not None and record.kind not in TO_CUSTOMER:
        return f"a reply to our {record.kind} notice"
    if not any(ctx.customer_side(ticket, a) for a in incoming.facts.to + incoming.facts.cc):
        return "not written to the customer"
    return ""
