"""Mail the daemon sent itself, found in the sent folder: never an agent's reply."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import Incoming, Plan, State

NAME = "ours"
DESCRIPTION = "our own sent copy: joins its ticket, answers nothing"


def decide(ctx: Context, state: State, incoming: Incoming, now: datetime) -> Plan | None:
    facts = incoming.facts
    # our copy: a Message-ID in our sent log, or (state rebuilt, copy found again) our header on mail in the sent
    # folder; never headers in delivered mail, which anyone can write (a forged "From: support@" with our header)
    if not (state.is_ours(facts.message_id) or (facts.ours and facts.sender == ctx.support
                                                 and incoming.folder_role == "sent")):
        return None
    plan = Plan()
    record = state.sent.get(facts.message_id)
    ticket = state.tickets.get(record.ticket if record else facts.ours)
    if ticket is not None:
        ticket = plan.put(ticket.with_message(facts.message_id, incoming.ref, thread_id=incoming.thread_id))
        ctx.index_message(plan, ticket, incoming, thread=False)
        ctx.sync_labels(plan, ticket, now)
    return plan
