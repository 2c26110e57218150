"""A message we already know (a re-delivery, or found again elsewhere): only make sure it is indexed and labelled."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import IndexMark, Incoming, Plan, SetLabels, State, Ticket, ref_key
from mailhelpdesk.core.judge.senders import same_sender

NAME = "known"
DESCRIPTION = "a message we already know: re-delivered or found again, only indexed and labelled"

REUSED_ID_DOMAIN = "@reused-id.mailhelpdesk>"


def decide(ctx: Context, state: State, incoming: Incoming, now: datetime) -> Plan | None:
    message_id = incoming.facts.message_id
    plan = Plan()
    ticket = state.ticket_of(message_id)
    if ticket is not None:
        if incoming.ref not in ticket.refs:
            ticket = plan.put(ticket.with_message(message_id, incoming.ref, thread_id=incoming.thread_id))
            ctx.index_message(plan, ticket, incoming)
            plan.notes.append(f"{ticket.key}: known message {message_id} found again at {incoming.ref}")
        ticket = ctx.sync_labels(plan, ticket, now)
        _relabel(ctx, plan, ticket, incoming, now)
        return plan
    ignored = state.ignored.get(message_id)
    if ignored is not None:
        if incoming.folder_role == "inbox" and (incoming.ref != ignored.ref or ctx.labels.ignored not in incoming.labels):
            plan.index[ref_key(incoming.ref)] = IndexMark.IGNORED + message_id
            plan.actions.append(SetLabels((incoming.ref,), frozenset({ctx.labels.ignored}), frozenset()))
        return plan
    archived = state.archived(message_id)
    if archived:
        plan.notes.append(f"{message_id}: already in the archive ({archived}); nothing to do")
        return plan  # a re-delivery or a re-sync of a closed conversation: history, never a new ticket
    return None


def _relabel(ctx: Context, plan: Plan, ticket: Ticket, incoming: Incoming, now: datetime) -> None:
    """A known message seen again (after a restart, a re-sync) that does not carry its ticket's labels: the pass
    that decided them was stopped between saving and labelling. Labelled now, so no message stays without."""
    if any(isinstance(a, SetLabels) and incoming.ref in a.refs for a in plan.actions):
        return  # sync_labels labels it already
    desired = ctx.labels.for_ticket(ticket, now)
    if ctx.labels.ours(incoming.labels) & ctx.labels.all() != desired:
        plan.actions.append(SetLabels((incoming.ref,), desired, ctx.labels.all() - desired, ticket.key))


def distinct(ctx: Context, state: State, incoming: Incoming) -> Incoming:
    """Broken clients reuse Message-IDs (`<1@localhost>`): a known id from another sender with another subject is
    another message, not a re-delivery (README, How it decides: threading). It gets an id of its own, derived from the reused
    id, its sender and its subject (so that its own re-delivery is recognised)."""
    if not _another_message(ctx, state, state.ticket_of(incoming.facts.message_id), incoming):
        return incoming
    facts = incoming.facts
    digest = hashlib.sha256(f"{facts.message_id}|{facts.sender}|{facts.subject}".encode()).hexdigest()[:32]
    return dataclasses.replace(incoming, facts=dataclasses.replace(facts, message_id=f"<{digest}{REUSED_ID_DOMAIN}"))


def _another_message(ctx: Context, state: State, ticket: Ticket | None, incoming: Incoming) -> bool:
    facts = incoming.facts
    if facts.message_id.endswith(REUSED_ID_DOMAIN) or state.is_ours(facts.message_id) or ctx.is_agent(incoming):
        return False
    if ticket is not None:
        if any(same_sender(facts.sender, p) for p in (ticket.customer, *ticket.participants)):
            return False
        return facts.title != ticket.subject
    ignored = state.ignored.get(facts.message_id)
    return ignored is not None and not same_sender(facts.sender, ignored.sender) and facts.subject != ignored.subject
