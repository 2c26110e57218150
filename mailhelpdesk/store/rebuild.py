"""`mailhelpdesk rebuild`: the state recovered from the mailbox, its source of truth. Keys, escalation steps, the
time of a resolution and the installation's Message-ID secret come from the daemon's records (store/records.py) and our
own sent mail (it carries X-Mailhelpdesk-Ticket), ticket fields from the labels agents see, and the sent log from
the sent folder, so the next pass sends nothing twice.
Only what we wrote ourselves is trusted: records in the records folder and copies in the sent folder, from the
support address; never headers in customers' mail."""

from __future__ import annotations

import dataclasses
import re
import secrets
from datetime import datetime, timedelta
from typing import Callable

from mailhelpdesk.config import Config
from mailhelpdesk.core import transitions
from mailhelpdesk.core.order import in_order
from mailhelpdesk.core.engine import Engine
from mailhelpdesk.core.mail.factory import ID_SECRET, MailFactory
from mailhelpdesk.backends.base import Mailbox
from mailhelpdesk.model import ArchiveLookup, Incoming, MailKind, SentRecord, State, Status, Step, Ticket
from mailhelpdesk.core.mail.parse import parse_message
from mailhelpdesk.core.labels import records_label
from mailhelpdesk.store.records import SEQ_CURSOR, entry_fingerprint, read_records
from mailhelpdesk.core.judge.senders import sender_key


def rebuild_from(config: Config, mailbox: Mailbox, now: datetime,
                 progress: Callable[[int, int | None], None] = lambda seen, expected: None,
                 archive: ArchiveLookup | None = None) -> State:
    """The state as the mailbox shows it. Raises (and changes nothing) when the mailbox cannot be read.
    `progress` hears of each message read, as in a daemon pass (commands.Progress). With the `archive` of closed
    tickets (store/state.py), their mail stays history: the same rules as a pass find it there."""
    engine = Engine(config)
    mailbox.connect()
    mailbox.prepare(engine.labels.to_create())
    prefix = config.helpdesk.ticket_prefix
    found = read_records(mailbox.records(records_label(config.helpdesk.label_root)), config.support_address, prefix)
    entries = found.entries
    since = now - timedelta(days=config.imap.import_days)
    changes = mailbox.changes({}, since)
    incoming: list[Incoming] = []
    labels_of: dict[str, frozenset[str]] = {}
    for seen, raw in enumerate(changes.messages, 1):
        progress(seen, changes.expected)
        facts = parse_message(raw.raw, prefix)
        incoming.append(Incoming(raw.ref, raw.folder_role, facts, raw.labels, raw.received_at, raw.thread_id))
        labels_of[raw.ref] = raw.labels
    incoming = in_order(incoming, now)  # the daemon's order: by time, replies after what they answer

    state = State(archive=archive)
    # the secret our Message-IDs were made with: the newest record's. None recorded (records predate secrets, or
    # none were written): a new one; the ids already in the sent folder stay ours as they are (the sent log below)
    state.cursors[ID_SECRET] = found.secret or secrets.token_hex(16)
    ids = engine.ctx.mail.keyed(state.cursors[ID_SECRET])
    known_keys: dict[str, str] = {}
    acknowledged: set[str] = set()
    notices: dict[str, datetime] = {}  # ticket -> when its newest resolution notice was sent
    steps: dict[str, set[str]] = {}
    key_form = re.compile(rf"^{re.escape(prefix)}-[1-9][0-9]{{0,8}}$")
    for message in incoming:  # our own mail first: the sent log and the keys of the requests it answered
        facts = message.facts
        if not (message.folder_role == "sent" and facts.ours and facts.sender == config.support_address):
            continue  # a customer's mail may carry any header it likes
        if not key_form.match(facts.ours):
            continue
        kind = facts.our_kind or "unknown"
        state.sent[facts.message_id] = SentRecord(
            key=f"rebuilt:{facts.message_id}", message_id=facts.message_id, to=facts.to[0] if facts.to else "",
            kind=kind, ticket=facts.ours, at=message.when or now, done=True,
        )
        when = message.when or now
        if kind == MailKind.ACKNOWLEDGEMENT:
            acknowledged.add(facts.ours)
            if facts.in_reply_to:
                known_keys[facts.in_reply_to[0]] = facts.ours
            if facts.to:
                state.sender_log.setdefault(sender_key(facts.to[0]), []).append(when)
        elif kind == MailKind.RESOLUTION:
            notices[facts.ours] = max(notices.get(facts.ours, when), when)
        elif Step.of_kind(kind) is not None:
            steps.setdefault(facts.ours, set()).add(Step.of_kind(kind))
    known_keys.update({entry.request: key for key, entry in entries.items()})  # records win: written for every ticket
    numbers = [int(k.rsplit("-", 1)[1]) for k in [*known_keys.values(), *entries]]
    state.next_number = max(numbers, default=0) + 1  # a key once given is never given again

    engine = Engine(config, known_keys)
    for message in incoming:
        state.merge(engine.on_message(state, message, now))
    # ignored mail an agent turned into a ticket by giving it a status label: that ticket again, same key
    promoted = [(r.ref, labels_of[r.ref]) for r in state.ignored.values()
                if r.ref in labels_of and engine.labels.read(labels_of[r.ref]).statuses]
    if promoted:
        plan = engine.on_labels(state, promoted, now)
        plan.actions = []
        state.merge(plan)
    for key, ticket in list(state.tickets.items()):
        entry = entries.get(key)
        if entry is not None:  # a record: the escalation ladder as it stood, and the acknowledgement decided
            ticket = dataclasses.replace(ticket, escalations=entry.escalations, ack_wanted=False,
                                         recorded=entry_fingerprint(entry),
                                         snoozed_until=datetime.fromisoformat(entry.snoozed) if entry.snoozed else None)
        else:
            ticket = dataclasses.replace(
                ticket, ack_wanted=ticket.ack_wanted and key not in acknowledged,
                escalations=tuple(sorted(steps.get(key, ()))) or ticket.escalations)
        ticket = _from_labels(engine, ticket, labels_of)
        if ticket.status == Status.RESOLVED:
            ticket = _resolved(state, ids, ticket, entry.resolved if entry else "", notices.get(key), now)
        state.tickets[key] = ticket
    state.next_number = max([state.next_number, *(t.number + 1 for t in state.tickets.values())])
    state.cursors.update(changes.cursor)
    state.cursors["last_pass"] = now.isoformat()
    state.cursors["digest_at"] = now.isoformat()
    state.cursors[SEQ_CURSOR] = max((e.seq for e in entries.values()), default=0) + 1
    return state


def _resolved(state: State, ids: MailFactory, ticket: Ticket, recorded: str, notice: datetime | None,
              now: datetime) -> Ticket:
    """A ticket the labels show resolved gets back the time it was resolved, which auto-close counts from: as the
    daemon recorded it; else (records written before they said so) when its newest resolution notice was sent;
    else now, the moment the label is seen (it closes `close_after` from now: later than it would have, never
    sooner). Its resolution notice was decided when the resolution was seen (the record is written before
    anything is sent, as for acknowledgements): it is never sent again, also where no copy of it can show that it
    went (`save_sent = "no"`): its key is entered in the sent log."""
    resolved_at = datetime.fromisoformat(recorded) if recorded else notice or now
    ticket = dataclasses.replace(ticket, resolved_at=resolved_at)
    key = ids.resolution_key(ticket)
    message_id = ids.message_id(key)
    state.sent.setdefault(message_id, SentRecord(key=key, message_id=message_id, to=ticket.customer,
                                                 kind=MailKind.RESOLUTION.value, ticket=ticket.key,
                                                 at=notice or resolved_at, done=True))
    return ticket


def _from_labels(engine: Engine, ticket, labels_of: dict[str, frozenset[str]]):
    """Status, priority and assignee as the labels on the conversation's newest labelled message say."""
    for ref in reversed(ticket.refs):
        labels = engine.labels.ours(labels_of.get(ref, frozenset()))
        reading = engine.labels.read(labels)
        if not reading.statuses:
            continue
        changes = {"labels_applied": tuple(sorted(labels))}
        if reading.priorities:
            changes["priority"] = reading.priorities[0]
        changes["assignee"] = reading.assignees[0] if reading.assignees else None
        unlabelled = tuple(r for r in ticket.refs if engine.labels.ours(labels_of.get(r, frozenset())) != labels)
        return transitions.restored(dataclasses.replace(ticket, unlabelled=unlabelled, **changes), reading.statuses[0])
    return ticket

