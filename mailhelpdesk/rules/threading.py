"""Which ticket does a message belong to? References first, then the provider's thread, then the subject tag."""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Incoming, State, Ticket, ref_key, thread_key  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Match:
    ticket: Ticket | None
    how: str = ""
    related: str = ""  # a ticket the subject tag named but the sender may not join


def find_ticket(state: State, incoming: Incoming) -> Match:
    facts = incoming.facts
    for message_id in facts.thread_keys + facts.bounce_of:
        ticket = state.ticket_of(message_id)
        if ticket is not None:
            return Match(ticket, f"references {message_id}")
    if incoming.thread_id:
        key = state.index.get(thread_key(incoming.thread_id))
        if key in state.tickets:
            return Match(state.tickets[key], f"thread {incoming.thread_id}")
    if facts.ticket_tag and facts.ticket_tag in state.tickets:
        ticket = state.tickets[facts.ticket_tag]
        if facts.sender in ticket.participants or facts.customer in ticket.participants:
            return Match(ticket, f"subject tag [{ticket.key}]")
        return Match(None, related=ticket.key)
    return Match(None)
