"""Which ticket does a message belong to? References first, then the provider's thread, then the subject tag —
each only for someone who takes part in the ticket's conversation (README, How it decides: threading)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Collection, Iterable

from mailhelpdesk.model import Incoming, IndexMark, State, Ticket, thread_key
from mailhelpdesk.core.judge.senders import FREE_MAIL, normalise_address, organisation

MAX_PARTICIPANTS = 200  # a ticket remembers at most this many people (a mail to 5,000 addresses is not a team)
MAX_NEW_PER_MESSAGE = 20

# Who may join a ticket: (ticket, incoming) -> bool. None: no check (the caller already knows the sender is an agent).
Member = Callable[[Ticket, Incoming], bool]


@dataclass(frozen=True)
class Match:
    ticket: Ticket | None
    how: str = ""
    related: str = ""  # a ticket the message points into (references, thread, subject tag) but the sender may not join
    via: str = ""  # the Message-ID of ours or of the ticket's that the message answers, when it matched by reference


def find_ticket(state: State, incoming: Incoming, member: Member | None = None) -> Match:
    facts = incoming.facts
    outsider = ""
    for message_id in facts.thread_keys:
        ticket = state.ticket_of(message_id)
        if ticket is not None:
            if member is None or member(ticket, incoming):
                return Match(ticket, f"references {message_id}", via=message_id)
            outsider = ticket.key  # forwarded to, or guessed: a new ticket, linked (unless a report is about ours)
            break
    for message_id in facts.bounce_of:  # a delivery failure is about our mail, whoever's server reports it
        ticket = state.ticket_of(message_id)
        if ticket is not None:
            return Match(ticket, f"delivery report of {message_id}", via=message_id)
    if outsider:
        return Match(None, related=outsider)
    if incoming.thread_id:
        key = state.index.get(thread_key(incoming.thread_id))
        if key in state.tickets:
            ticket = state.tickets[key]
            if member is None or member(ticket, incoming):
                return Match(ticket, f"thread {incoming.thread_id}")
            return Match(None, related=ticket.key)
    if facts.ticket_tag and facts.ticket_tag in state.tickets:
        ticket = state.tickets[facts.ticket_tag]
        joins = (member(ticket, incoming) if member is not None
                 else takes_part(ticket, facts.sender, ()) or facts.customer in ticket.participants)
        if joins:
            return Match(ticket, f"subject tag [{ticket.key}]")
        return Match(None, related=ticket.key)
    return Match(None, related=in_archive(state, incoming))


def in_archive(state: State, incoming: Incoming) -> str:
    """The archived ticket a message points into (references, thread, subject tag), or "": a reply to a
    conversation closed long ago starts a new ticket linked to it (README, How it decides: threading). Asked last, and only of the
    archive's index, so the archive is never loaded."""
    if state.archive is None:
        return ""
    facts = incoming.facts
    names = [*facts.thread_keys[:20], *([thread_key(incoming.thread_id)] if incoming.thread_id else [])]
    for name in names:
        key = state.archived(name)
        if key and IndexMark.of(key) is None:
            return key
    if facts.ticket_tag and state.archived(facts.ticket_tag):
        return facts.ticket_tag
    return ""


def takes_part(ticket: Ticket, address: str, agents: Collection[str], free: frozenset[str] = FREE_MAIL) -> bool:
    """The customer, a colleague at the customer's organisation (same domain, not free mail), anyone who was
    in From/To/Cc of one of the ticket's messages, or an agent (`agents`: normalised addresses)."""
    normal = normalise_address(address)
    if not normal:
        return False
    if normal in agents or normal == normalise_address(ticket.customer):
        return True
    if any(normalise_address(p) == normal for p in ticket.participants):
        return True
    org = organisation(ticket.customer, free)
    return bool(org) and organisation(normal, free) == org


def with_people(ticket: Ticket, addresses: Iterable[str]) -> Ticket:
    """A copy that counts these addresses (a joining message's To/Cc) among the ticket's participants."""
    known = set(ticket.participants)
    new = [a for a in dict.fromkeys(a.strip().lower() for a in addresses) if a and a not in known]
    room = MAX_PARTICIPANTS - len(ticket.participants)
    new = new[:max(0, min(room, MAX_NEW_PER_MESSAGE))]
    return dataclasses.replace(ticket, participants=ticket.participants + tuple(new)) if new else ticket
