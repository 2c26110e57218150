"""Nobody buried: notices to agents and leads (new assignments, warnings, breaches, escalations) are held in the
state and mailed here, at the end of the pass, after the acknowledgements (so an assignment notice can say that
none was sent, and why). One notice alone goes as its own mail; several to one address go as one mail listing
them all. An address gets at most one notice mail per `[notices] batch_minutes`: what comes in between waits and
goes in the next one, unless it is about an urgent ticket, which goes at once (with whatever waits for that
address). Mail to customers is never held or batched."""

from __future__ import annotations

from datetime import datetime, timedelta

from mailhelpdesk.core.context import Context
from mailhelpdesk.kinds import NOTICE_KINDS, MailKind
from mailhelpdesk.model import HELD_NOTICES, Notice, Plan, Priority, State, Step, Tick, Ticket
from mailhelpdesk.core.outbox import pointless

NAME = "notices"
DESCRIPTION = "notices to agents and leads, one mail per address per batch, listing every ticket"
SENT_AT = "notices_sent_at"  # the state cursor: address -> when its last notice mail was decided
ORDER = (MailKind.ASSIGNMENT, MailKind.ESCALATION_WARN, MailKind.ESCALATION_BREACH, MailKind.ESCALATION_LEAD)


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    held = state.held_notices()
    if not held:
        return plan
    window = timedelta(minutes=ctx.config.notices.batch_minutes)
    sent_at = {to: at for to, at in state.cursors.get(SENT_AT, {}).items()
               if now - datetime.fromisoformat(at) < window}  # only what still holds a batch back
    by_address: dict[str, dict[tuple[MailKind, str], tuple[Notice, Ticket]]] = {}
    for notice in held:
        ticket = state.tickets.get(notice.ticket)
        reason = _pointless(ctx, state, notice, ticket, now)
        if reason or ticket is None:
            plan.notes.append(f"{notice.kind} for {notice.ticket} to {notice.to} not sent: {reason}")
            continue
        by_address.setdefault(notice.to, {})[(notice.kind, notice.ticket)] = (notice, ticket)  # each once
    waiting: list[Notice] = []
    for to, notices in list(by_address.items()):
        urgent = any(t.priority == Priority.URGENT for _, t in notices.values())
        if to in sent_at and not urgent:  # a notice mail went to this address within the window: these go next
            waiting += [n for n, _ in notices.values()]
            del by_address[to]
    for to, notices in by_address.items():
        try:
            plan.actions.append(_mail(ctx, state, to, list(notices.values()), now))
        except Exception as exc:  # one bad notice (a template, a ticket) must not stop the others' mail
            plan.notes.append(f"error: notices to {to}: {type(exc).__name__}: {exc}")
            continue
        sent_at[to] = now.isoformat()
    plan.cursors[HELD_NOTICES] = [n.encode() for n in waiting]
    plan.cursors[SENT_AT] = sent_at
    if waiting:
        plan.notes.append(f"{len(waiting)} notice(s) wait for the next batch ([notices] batch_minutes = "
                          f"{ctx.config.notices.batch_minutes})")
    return plan


def _pointless(ctx: Context, state: State, notice: Notice, ticket: Ticket | None, now: datetime) -> str:
    """Why a held notice lost its point (the outbox's reasons, and an assignment handed over since)."""
    reason = pointless(state, notice.kind, notice.ticket, notice.to, notice.at, now)
    if reason or ticket is None:
        return reason or "the ticket is no longer in the working set"
    if notice.kind == MailKind.ASSIGNMENT:
        agent = ctx.config.agent_by_name(ticket.assignee or "")
        if agent is None or agent.email.lower() != notice.to:
            return f"it was handed over to {ticket.assignee or 'nobody'} since"
    return ""


def _mail(ctx: Context, state: State, to: str, notices: list[tuple[Notice, Ticket]], now: datetime):
    """One notice: the mail of its kind, as before batching. Several: one mail listing them by kind."""
    if len(notices) == 1:
        notice, ticket = notices[0]
        if notice.kind == MailKind.ASSIGNMENT:
            return ctx.mail.assignment(state, ticket, now)
        step = Step.of_kind(notice.kind)
        assert step is not None, notice.kind
        return ctx.mail.reminder(ticket, step, to, now)
    grouped: dict[MailKind, list[Ticket]] = {}
    for kind in ORDER:
        grouped[kind] = sorted((t for n, t in notices if n.kind == kind), key=lambda t: (t.priority.rank, t.number))
    assert set(grouped) == NOTICE_KINDS
    return ctx.mail.notices(to, grouped, now)
