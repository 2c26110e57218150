"""Agents changed labels in their mail client: the ticket follows, then every message is relabelled; a status label
on ignored mail makes it a ticket (without an acknowledgement)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Iterable

from mailhelpdesk.core import transitions
from mailhelpdesk.core.context import Context
from mailhelpdesk.model import (IndexMark, HistoryEvent, Incoming, MailKind, MessageFacts, Plan, SendMail, SetLabels, State, Ticket,
                     ref_key)
from mailhelpdesk.core.rules import new_ticket

NAME = "agent labels"
DESCRIPTION = "an agent's label changes set status, priority and assignee; a status label promotes ignored mail"

Change = tuple[str, frozenset[str]]  # a message's place and all its labels now


def decide(ctx: Context, state: State, changes: Iterable[Change], now: datetime) -> Plan:
    plan = Plan()
    by_ticket: dict[str, list[Change]] = {}
    for ref, labels in changes:
        owner = state.index.get(ref_key(ref), "")
        if owner.startswith(IndexMark.IGNORED):
            promoted = _promote_ignored(ctx, state, owner[len(IndexMark.IGNORED):], labels, now)
            if promoted is not None:
                state = state.previewed(promoted)
                plan.extend(promoted)
        elif owner in state.tickets:
            by_ticket.setdefault(owner, []).append((ref, ctx.labels.ours(labels)))
    for key, seen in by_ticket.items():
        ticket = plan.tickets.get(key) or state.tickets[key]
        changed = _from_labels(ctx, ticket, seen, now)
        if changed is not ticket:
            plan.put(changed)
            if changed.assignee and changed.assignee != ticket.assignee:
                ctx.notify(plan, MailKind.ASSIGNMENT, changed, now)
            plan.notes.append(f"{key}: changed by an agent's labels -> {changed.status}, {changed.priority}, "
                              f"{changed.assignee}")
        # a message left with no status of ours (labels stripped, or a write skipped because another client
        # changed the message meanwhile) is labelled again: every message of a ticket shows exactly one status
        stripped = tuple(ref for ref, labels in seen
                         if not ctx.labels.read(labels).statuses and ref not in changed.unlabelled)
        if stripped:
            changed = plan.put(dataclasses.replace(changed, unlabelled=changed.unlabelled + stripped))
        ctx.sync_labels(plan, changed, now)
    return plan


def _from_labels(ctx: Context, ticket: Ticket, seen: list[Change], now: datetime) -> Ticket:
    applied = frozenset(ticket.labels_applied)
    for ref, labels in seen:
        if ref in ticket.unlabelled or labels == applied:
            continue  # not labelled by us yet, or unchanged
        reading = ctx.labels.read(labels)
        if not reading.statuses:
            continue  # stripped of our labels: no decision of an agent's; labelled again in decide()
        new_status = [s for s in reading.statuses if s != ticket.status]
        if new_status:
            ticket = transitions.set_status(ticket, new_status[0], now, "label", ctx.due)
        new_priority = [p for p in reading.priorities if p != ticket.priority]
        if new_priority:
            ticket = transitions.set_priority(ticket, new_priority[0], now, "label", ctx.due)
        new_assignee = [a for a in reading.assignees if a != ticket.assignee]
        if new_assignee:
            ticket = transitions.assign(ticket, new_assignee[0], now, "label")
        elif ticket.assignee and ctx.labels.assignee(ticket.assignee) in applied and not reading.assignees:
            ticket = transitions.unassign(ticket, now, f"{ticket.assignee} (label removed)")
    return ticket


def _promote_ignored(ctx: Context, state: State, message_id: str, labels: frozenset[str], now: datetime) -> Plan | None:
    record = state.ignored.get(message_id)
    reading = ctx.labels.read(labels)
    if record is None or not reading.statuses:
        return None
    facts = MessageFacts(message_id=message_id, subject=record.subject, title=record.subject, sender=record.sender)
    incoming = Incoming(ref=record.ref, folder_role="inbox", facts=facts, received_at=record.at)
    plan = new_ticket.decide(ctx, state, incoming, now)
    ticket = next(iter(plan.tickets.values()))
    ticket = ticket.log(now, HistoryEvent.CREATED_FROM_IGNORED, record.reason, ack_wanted=False)
    if reading.statuses[0] != ticket.status:  # straight to Resolved: resolved now, so it closes in time
        ticket = transitions.set_status(ticket, reading.statuses[0], now, "label on ignored mail", ctx.due)
    ticket = plan.put(ticket)
    plan.actions = [a for a in plan.actions if not isinstance(a, SendMail)]
    plan.ignored[message_id] = dataclasses.replace(record, ticket=ticket.key)
    plan.actions.append(SetLabels((record.ref,), frozenset(), frozenset({ctx.labels.ignored})))
    ctx.sync_labels(plan, ticket, now)
    return plan
