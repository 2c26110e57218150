"""After the batch, so a backlog conversation an agent already answered is not acknowledged."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from ..context import Context
from ..model import HistoryEvent, Plan, State, Status, Tick
from ..rules.senders import sender_key
from . import isolated

NAME = "acknowledgements"
DESCRIPTION = "acknowledge each new request nobody answered yet, within the per-sender limit"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    limits = ctx.config.autoreply
    window = now - timedelta(hours=limits.per_sender_hours)
    acks_to: dict[str, int] = {}
    for ticket in state.tickets.values():
        if not ticket.ack_wanted:
            continue
        with isolated(plan, ticket, NAME, now):
            if ticket.first_response_at is not None or ticket.status != Status.OPEN:
                plan.put(dataclasses.replace(ticket, ack_wanted=False))
                continue
            customer = sender_key(ticket.customer)  # rules/senders.py: without case or +tag
            recent = sum(1 for t in state.sender_log.get(customer, ()) if t > window) + acks_to.get(customer, 0)
            if recent >= limits.max_per_sender:
                plan.put(ticket.log(now, HistoryEvent.ACK_SKIPPED, "per-sender limit reached", ack_wanted=False))
                plan.notes.append(f"{ticket.key}: no acknowledgement, {customer} reached the per-sender limit")
                continue
            plan.actions.append(ctx.mail.acknowledgement(ticket, now))
            plan.put(ticket.log(now, HistoryEvent.ACKNOWLEDGED, customer, ack_wanted=False))
            acks_to[customer] = acks_to.get(customer, 0) + 1
    return plan
