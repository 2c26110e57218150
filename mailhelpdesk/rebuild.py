"""`mailhelpdesk rebuild`: the state recovered from the mailbox, its source of truth. Keys come from our own
sent mail (it carries X-Mailhelpdesk-Ticket), ticket fields from the labels agents see, and the sent log from
the sent folder, so the next pass sends nothing twice."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from .daemon import Helpdesk, in_order
from .engine import Engine
from .model import Incoming, SentRecord, State
from .parse import parse_message
from .rules.senders import sender_key


def rebuild_state(helpdesk: Helpdesk, now: datetime) -> State:
    config = helpdesk.config
    mailbox = helpdesk.mailbox
    mailbox.connect()
    mailbox.prepare(helpdesk.engine.labels.to_create())
    since = now - timedelta(days=config.imap.import_days)
    changes = mailbox.changes({}, since)
    incoming: list[Incoming] = []
    labels_of: dict[str, frozenset[str]] = {}
    for raw in changes.messages:
        facts = parse_message(raw.raw, config.helpdesk.ticket_prefix)
        incoming.append(Incoming(raw.ref, raw.folder_role, facts, raw.labels, raw.received_at, raw.thread_id))
        labels_of[raw.ref] = raw.labels
    incoming = in_order(incoming, now)  # the daemon's order: by time, replies after what they answer

    state = State()
    known_keys: dict[str, str] = {}
    steps: dict[str, set[str]] = {}
    prefix = config.helpdesk.ticket_prefix
    for message in incoming:  # our own mail first: the sent log and the keys of the requests it answered
        facts = message.facts
        if not (facts.ours and facts.sender == config.support_address):
            continue
        kind = facts.our_kind or "unknown"
        state.sent[facts.message_id] = SentRecord(
            key=f"rebuilt:{facts.message_id}", message_id=facts.message_id, to=facts.to[0] if facts.to else "",
            kind=kind, ticket=facts.ours, at=message.when or now, done=True,
        )
        if kind == "acknowledgement" and facts.in_reply_to:
            known_keys[facts.in_reply_to[0]] = facts.ours
        if kind.startswith("escalation "):
            steps.setdefault(facts.ours, set()).add(kind.split(" ", 1)[1])
        if kind == "acknowledgement" and facts.to:
            state.sender_log.setdefault(sender_key(facts.to[0]), []).append(message.when or now)
    numbers = [int(k.rsplit("-", 1)[1]) for k in known_keys.values() if k.startswith(prefix + "-")]
    state.next_number = max(numbers, default=0) + 1

    engine = Engine(config, known_keys)
    for message in incoming:
        state.merge(engine.on_message(state, message, now))
    for key, ticket in list(state.tickets.items()):
        ticket = dataclasses.replace(ticket, ack_wanted=ticket.ack_wanted and not state.is_ours(engine.message_id(f"ack:{key}")),
                                     escalations=tuple(sorted(steps.get(key, ()))) or ticket.escalations)
        ticket = _from_labels(engine, ticket, labels_of)
        state.tickets[key] = ticket
    state.cursors.update(changes.cursor)
    state.cursors["last_pass"] = now.isoformat()
    state.cursors["digest_at"] = now.isoformat()
    return state


def _from_labels(engine: Engine, ticket, labels_of: dict[str, frozenset[str]]):
    """Status, priority and assignee as the labels on the conversation's newest labelled message say."""
    for ref in reversed(ticket.refs):
        labels = engine.labels.ours(labels_of.get(ref, frozenset()))
        reading = engine.labels.read(labels)
        if not reading.statuses:
            continue
        changes = {"status": reading.statuses[0], "labels_applied": tuple(sorted(labels))}
        if reading.priorities:
            changes["priority"] = reading.priorities[0]
        changes["assignee"] = reading.assignees[0] if reading.assignees else None
        unlabelled = tuple(r for r in ticket.refs if engine.labels.ours(labels_of.get(r, frozenset())) != labels)
        ticket = dataclasses.replace(ticket, unlabelled=unlabelled, **changes)
        if ticket.status.value != "open":
            ticket = dataclasses.replace(ticket, waiting_since=None, ack_wanted=False)
        return ticket
    return ticket

