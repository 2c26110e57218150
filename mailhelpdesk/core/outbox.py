"""The outbox, decided by the core: which mail is queued, which goes next, which lost its point while it waited,
and what each outcome of a send changes in the state. Pure: (state, ..., now) -> Plan; `app/effects.py` only sends
and reports outcomes, and the daemon merges the plans here.

A mail can wait (an SMTP outage, a temporary refusal, the daily limit): when its moment comes it is looked at
again, and a mail whose reason has gone (the customer was answered, the ticket re-opened, a newer digest exists)
is dropped with a note on its ticket instead of confusing anyone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from mailhelpdesk.kinds import TO_CUSTOMER, MailKind, kind_of
from mailhelpdesk.model import SENDS_CURSOR, Action, HistoryEvent, Plan, SendMail, SentRecord, State, Ticket, counted, ref_key
from mailhelpdesk.core.judge.senders import sender_key

CUSTOMERS_RESERVE = 0.9  # past this share of the daily sending limit only mail to customers goes out
RETRY_FIRST = timedelta(minutes=5)  # after a temporary refusal of one message, as Postfix does: 5 min, doubling
RETRY_MAX = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(days=1)  # a mail still refused after a day has lost its point; the ticket says so
DIGEST_KEEPS = timedelta(hours=20)  # a digest that waited longer is replaced by the next one


class Outcome(StrEnum):
    SENT = "sent"  # handed to the provider (`ref`: its copy in the mailbox, "" when there is none)
    FOUND_SENT = "found sent"  # an attempt before a restart left its copy in the sent folder: it went out
    DEFERRED = "deferred"  # refused for now: tried again later, the others go
    GAVE_UP = "gave up"  # can never be sent (a permanent refusal, or refused for a day)


@dataclass(frozen=True)
class SendOutcome:
    outcome: Outcome
    message_id: str
    ref: str = ""
    reason: str = ""


def queue(state: State, actions: list[Action], now: datetime) -> Plan:
    """Every send of a pass into the outbox: whatever saves the state from now on saves the intents with the
    decisions that made them (a ticket marked acknowledged has its acknowledgement queued)."""
    plan = Plan()
    for mail in (a for a in actions if isinstance(a, SendMail)):
        if mail.message_id not in state.sent and mail.message_id not in plan.sent:
            plan.sent[mail.message_id] = SentRecord(mail.key, mail.message_id, mail.to, mail.kind, mail.ticket, now, mail=mail)
    return plan


def waiting(state: State) -> list[SentRecord]:
    """The outbox in the order it goes: customers first (when the daily limit or an outage cuts a pass short,
    notices to agents wait), then as queued."""
    records = [r for r in state.sent.values() if not r.done and r.mail is not None]
    records.sort(key=lambda r: r.kind not in TO_CUSTOMER)
    return records


def may_send(state: State, record: SentRecord, now: datetime, daily_limit: int) -> bool:
    """Not while backing off after a refusal; notices to agents not once the day's sends near the limit."""
    if record.retry_at is not None and record.retry_at > now:
        return False
    if daily_limit and record.kind not in TO_CUSTOMER:
        return (state.sends_last_day(now) or 0) < CUSTOMERS_RESERVE * daily_limit
    return True


def lost_point(state: State, record: SentRecord, now: datetime) -> str:
    """Why a waiting mail is no longer worth sending ("" while it is)."""
    return pointless(state, record.kind, record.ticket, record.to, record.at, now)


def pointless(state: State, kind: str, ticket_key: str, to: str, since: datetime, now: datetime) -> str:
    """Why a mail of this kind about this ticket, decided at `since`, is no longer worth sending ("" while it
    is): asked of mail waiting in the outbox and of notices held for their batch (core/duties/notices.py). Each kind's
    reason is its entry in the kinds table."""
    spec = kind_of(kind)
    if spec is None:
        return ""
    if spec.newer_replaces:
        return "a newer digest replaces it" if now - since > DIGEST_KEEPS else ""
    if not spec.per_ticket or spec.lost_point is None:
        return ""
    ticket = state.tickets.get(ticket_key)
    if ticket is None:
        return "the ticket is closed and archived" if spec.batched and ticket_key else ""
    return spec.lost_point(ticket, now)


def review(state: State, now: datetime) -> Plan:
    """Drop what lost its point while it waited, each with a note on its ticket."""
    plan = Plan()
    for record in waiting(state):
        reason = lost_point(state, record, now)
        if not reason:
            continue
        plan.sent[record.message_id] = dataclasses.replace(record, done=True, mail=None)
        plan.notes.append(f"{record.kind} for {record.ticket or '-'} not sent: {reason}")
        ticket = plan.tickets.get(record.ticket) or state.tickets.get(record.ticket)
        if ticket is not None:
            what = HistoryEvent.ACK_DROPPED if record.kind == MailKind.ACKNOWLEDGEMENT else HistoryEvent.NOTICE_DROPPED
            plan.put(ticket.log(now, what, reason if what == HistoryEvent.ACK_DROPPED else f"{record.kind}: {reason}"))
    return plan


def recorded(state: State, outcome: SendOutcome, now: datetime) -> Plan:
    """What one outcome changes: the outbox entry, its ticket (the message is part of the conversation, or the
    failure is on its history), the per-sender log and the day's send count."""
    plan = Plan()
    record = state.sent[outcome.message_id]
    ticket = state.tickets.get(record.ticket)
    if outcome.outcome == Outcome.DEFERRED:
        attempts = record.attempts + 1
        plan.sent[record.message_id] = dataclasses.replace(
            record, attempts=attempts, retry_at=now + min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_MAX))
        return plan
    plan.sent[record.message_id] = dataclasses.replace(record, done=True, mail=None)
    if outcome.outcome == Outcome.GAVE_UP:
        if ticket is not None:
            plan.put(ticket.log(now, HistoryEvent.COULD_NOT_SEND, f"{record.kind} to {record.to}: {outcome.reason}"))
        return plan
    if outcome.outcome == Outcome.SENT:
        plan.cursors[SENDS_CURSOR] = counted(state.cursors.get(SENDS_CURSOR, {}), now)
        if record.kind == MailKind.ACKNOWLEDGEMENT:  # core/judge/senders.py: robots vary their addresses
            plan.senders.append((sender_key(record.to), now))
    if ticket is not None:
        plan.put(_in_conversation(ticket, record.message_id, outcome.ref))
        plan.index[record.message_id] = ticket.key
        if outcome.ref:
            plan.index[ref_key(outcome.ref)] = ticket.key
    return plan


def _in_conversation(ticket: Ticket, message_id: str, ref: str) -> Ticket:
    """Our mail is part of the ticket's conversation; its copy in the mailbox carries the labels already."""
    if ref:
        ticket = ticket.with_message(message_id, ref)
        return dataclasses.replace(ticket, unlabelled=tuple(r for r in ticket.unlabelled if r != ref))
    return dataclasses.replace(ticket, message_ids=tuple(dict.fromkeys(ticket.message_ids + (message_id,))))


def refused_for_a_day(record: SentRecord, now: datetime) -> bool:
    return now - record.at >= GIVE_UP_AFTER
