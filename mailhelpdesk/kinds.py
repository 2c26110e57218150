"""Every kind of mail we send, and what it means, in one table: who it is for, whether it answers a message
(RFC 3834: `auto-replied`) or is a notice nobody asked for (`auto-generated`), whether it is about one ticket,
whether it is held and batched per address, its template, and when it loses its point while it waits in the
outbox. The mail factory, the outbox, the notices duty and `check` read this table; a new kind is one member and
one entry here (and its template pair). Pure, and below everything else: no top-level imports from the package
(the ladder's lost point asks `core/sla_state.py`, imported when asked)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from mailhelpdesk.model import Ticket


class MailKind(StrEnum):
    """What a mail we send is; stored as its value (`SendMail.kind`, `SentRecord.kind`, X-Mailhelpdesk-Kind)."""

    ACKNOWLEDGEMENT = "acknowledgement"
    RESOLUTION = "resolution"
    ASSIGNMENT = "assignment"
    COMMAND_REJECTED = "command rejected"
    ESCALATION_WARN = "escalation warn"
    ESCALATION_BREACH = "escalation breach"
    ESCALATION_LEAD = "escalation lead"
    DIGEST = "digest"
    LEAD_DIGEST = "lead digest"
    BACKLOG_SUMMARY = "backlog summary"
    NOTICES = "notices"  # several notices to one agent or lead, batched into one mail (core/duties/notices.py)
    CUSTOMER_REMINDER = "customer reminder"  # a pending ticket's quiet customer asked once (core/duties/quiet_customers.py)


class Audience(StrEnum):
    CUSTOMER = "customer"  # goes into the customer's thread, first in the outbox, never batched
    TEAM = "team"  # agents and leads


LostPoint = Callable[["Ticket", datetime], str]  # why a waiting mail about this ticket is no longer worth sending


def _answered(ticket: Ticket, now: datetime) -> str:
    answered = ticket.first_response_at is not None or ticket.status != "open"
    return "answered before it could be sent" if answered else ""


def _reopened(ticket: Ticket, now: datetime) -> str:
    return "" if ticket.status in ("resolved", "closed") else "the ticket was re-opened before it went out"


def _settled(ticket: Ticket, now: datetime) -> str:
    return "" if ticket.status in ("open", "pending") else f"the ticket is {ticket.status} already"


def _still_pending(ticket: Ticket, now: datetime) -> str:
    return "" if ticket.status == "pending" else "the customer wrote, or the ticket moved on, before it went out"


def _no_longer_waiting(ticket: Ticket, now: datetime) -> str:
    """The escalation ladder: only while the customer still waits for the answer the reminder is about."""
    from mailhelpdesk.core.sla_state import sla_state

    return "" if sla_state(ticket, now).waiting else "the customer was answered before the reminder went out"


@dataclass(frozen=True)
class Kind:
    audience: Audience
    answers: bool = False  # it answers a message (`auto-replied`); else a notice nobody asked for (`auto-generated`)
    per_ticket: bool = True  # about one ticket (a digest is not)
    batched: bool = False  # a notice to the team: held and batched per address (core/duties/notices.py)
    template: str = ""  # its template's name; "" for the kind's value with "_" for " "
    html: bool = True  # an HTML part beside the text, when the template has one
    lost_point: LostPoint | None = None
    newer_replaces: bool = False  # a digest: one that waited too long is replaced by the next (outbox.DIGEST_KEEPS)


KINDS: dict[MailKind, Kind] = {
    MailKind.ACKNOWLEDGEMENT: Kind(Audience.CUSTOMER, answers=True, lost_point=_answered),
    MailKind.RESOLUTION: Kind(Audience.CUSTOMER, answers=True, lost_point=_reopened),
    MailKind.ASSIGNMENT: Kind(Audience.TEAM, batched=True, template="assigned", lost_point=_settled),
    MailKind.COMMAND_REJECTED: Kind(Audience.TEAM, answers=True, per_ticket=False, html=False),
    MailKind.ESCALATION_WARN: Kind(Audience.TEAM, batched=True, template="reminder", html=False,
                                   lost_point=_no_longer_waiting),
    MailKind.ESCALATION_BREACH: Kind(Audience.TEAM, batched=True, template="reminder", html=False,
                                     lost_point=_no_longer_waiting),
    MailKind.ESCALATION_LEAD: Kind(Audience.TEAM, batched=True, template="reminder", html=False,
                                   lost_point=_no_longer_waiting),
    MailKind.DIGEST: Kind(Audience.TEAM, per_ticket=False, newer_replaces=True),
    MailKind.LEAD_DIGEST: Kind(Audience.TEAM, per_ticket=False, newer_replaces=True),
    MailKind.BACKLOG_SUMMARY: Kind(Audience.TEAM, per_ticket=False, newer_replaces=True),
    MailKind.NOTICES: Kind(Audience.TEAM, per_ticket=False, html=False),
    MailKind.CUSTOMER_REMINDER: Kind(Audience.CUSTOMER, lost_point=_still_pending),
}
assert set(KINDS) == set(MailKind), "every kind has its entry"


def kind_of(kind: str) -> Kind | None:
    """The table's entry for a stored kind (None for a kind this version does not know: an old outbox entry)."""
    try:
        return KINDS[MailKind(kind)]
    except ValueError:
        return None


def template_of(kind: MailKind) -> str:
    return KINDS[kind].template or kind.value.replace(" ", "_")


TO_CUSTOMER = frozenset(k for k, spec in KINDS.items() if spec.audience == Audience.CUSTOMER)
ANSWERS = frozenset(k for k, spec in KINDS.items() if spec.answers)
NOTICE_KINDS = frozenset(k for k, spec in KINDS.items() if spec.batched)
