"""One answer to "is this ticket late?", used by labels, escalation, digests, `status`, `tickets` and reports.

A ticket is *waiting* while it is open and nobody has answered the customer's latest word (`waiting_since`); its
`due_at` is computed when the wait starts and again whenever its priority changes. It is *overdue* while it waits
past `due_at`. It *breached* when a wait ran past its due time: the first response came late, none came before the
due time (also when the ticket was closed unanswered after it), or the escalation ladder recorded a breach earlier. While a ticket waits for the customer (pending) no clock runs;
the customer's next word starts a new wait with a full target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime

from mailhelpdesk.model import HistoryEvent, Status, Step, Ticket


@dataclass(frozen=True)
class SlaState:
    ticket: Ticket = field(repr=False)
    now: datetime = field(repr=False)
    due_at: datetime | None
    waiting: bool  # open, and the customer's latest word is unanswered
    overdue: bool  # waiting past due_at now

    @cached_property
    def breached(self) -> bool:
        """Missed a due time at some point (reports count these). Computed on demand: it reads the history,
        which labels and sorting (asked for `overdue` on every sync) do not need."""
        ticket, due = self.ticket, self.due_at
        late_answer = due is not None and ticket.first_response_at is not None and ticket.first_response_at > due
        ended = ticket.resolved_at or ticket.closed_at or self.now  # a ticket closed unanswered waited until then
        never_answered = due is not None and ticket.first_response_at is None and ended > due
        return (self.overdue or late_answer or never_answered or Step.BREACH in ticket.escalations
                or ticket.logged(HistoryEvent.ESCALATION_BREACH))


def sla_state(ticket: Ticket, now: datetime) -> SlaState:
    snoozed = ticket.snoozed_until is not None and now < ticket.snoozed_until  # out of sight: no ladder, not late
    waiting = ticket.status == Status.OPEN and ticket.waiting_since is not None and not snoozed
    overdue = waiting and ticket.due_at is not None and ticket.due_at <= now
    return SlaState(ticket, now, ticket.due_at, waiting, overdue)


def work_order(ticket: Ticket, now: datetime) -> tuple:
    """Overdue first, then by status (open, pending, resolved, closed), priority and due time: the order agents
    work in, in digests, summaries and `tickets` alike."""
    return (not sla_state(ticket, now).overdue, list(Status).index(ticket.status), ticket.priority.rank,
            ticket.due_at or ticket.created_at)
