"""After the batch, so a backlog conversation an agent already answered is not acknowledged; after the ceilings
(ack_limits), so what they held back is not sent. Every other new request of a person is acknowledged, once."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import HistoryEvent, Plan, State, Status, Tick
from mailhelpdesk.core.judge.senders import sender_key
from mailhelpdesk.core.duties import isolated

NAME = "acknowledgements"
DESCRIPTION = "acknowledge each new request nobody answered yet"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    for ticket in state.tickets.values():
        if not ticket.ack_wanted:
            continue
        with isolated(plan, ticket, NAME, now):
            if ticket.first_response_at is not None or ticket.status != Status.OPEN:
                plan.put(dataclasses.replace(ticket, ack_wanted=False))
                continue
            plan.actions.append(ctx.mail.acknowledgement(ticket, now))
            plan.put(ticket.log(now, HistoryEvent.ACKNOWLEDGED, sender_key(ticket.customer), ack_wanted=False))
    return plan
