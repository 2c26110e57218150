"""The helpdesk's data: tickets, message facts, actions. Plain values, no I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from collections.abc import Sequence
from typing import Any, Protocol


class Status(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is most urgent; used to sort work queues."""
        return list(Priority).index(self)


from mailhelpdesk.kinds import MailKind  # noqa: E402  (what each kind of mail means is one table: kinds.py)


class HistoryEvent(StrEnum):
    """What a history entry records; stored as its value (`HistoryEntry.what`)."""

    CREATED = "created"
    CREATED_FROM_IGNORED = "created from ignored mail"
    RELATED = "related"
    ASSIGNED = "assigned"
    UNASSIGNED = "unassigned"
    PRIORITY_SET = "priority set"
    PRIORITY_RAISED = "priority raised"
    STATUS = "status"
    NOTE = "note"
    COMMAND_REJECTED = "command rejected"
    CUSTOMER_REPLIED = "customer replied"
    AGENT_REPLIED = "agent replied"
    AGENT_MAIL_ATTACHED = "agent mail attached"
    AUTOMATIC_MAIL_ATTACHED = "automatic mail attached"
    RATED = "rated"
    ACKNOWLEDGED = "acknowledged"
    ACK_SKIPPED = "acknowledgement skipped"  # states before issue 16; new ones say ACK_WITHHELD
    ACK_WITHHELD = "acknowledgement withheld"
    ESCALATION_WARN = "escalation: warn"
    ESCALATION_BREACH = "escalation: breach"
    ESCALATION_LEAD = "escalation: lead"
    ACK_DROPPED = "acknowledgement dropped"  # core/outbox.py: it waited in the outbox while an agent answered
    NOTICE_DROPPED = "notice dropped"  # core/outbox.py: a notice or reminder that lost its point while it waited
    SNOOZED = "snoozed"
    SNOOZE_ENDED = "snooze ended"
    MAILED = "mailed"  # a mail of a kind without an event of its own (its detail: the kind), e.g. a customer reminder
    COULD_NOT_SEND = "could not send"
    DUTY_FAILED = "duty failed"



class Step(StrEnum):
    """A rung of the escalation ladder (core/judge/ladder.py); stored as its value (`Ticket.escalations`, records)."""

    WARN = "warn"  # the assignee, before the breach
    BREACH = "breach"  # the assignee, at the breach (and the Overdue label)
    LEAD = "lead"  # the leads, `escalate_after` past the breach

    @property
    def kind(self) -> MailKind:
        """The mail that announces this step."""
        return MailKind(f"escalation {self.value}")

    @property
    def event(self) -> HistoryEvent:
        """The history entry that records it."""
        return HistoryEvent(f"escalation: {self.value}")

    @classmethod
    def of_kind(cls, kind: str) -> Step | None:
        """The step a mail of this kind announces (None: no escalation mail)."""
        return next((step for step in cls if step.kind == kind), None)


class IgnoreReason(StrEnum):
    """Why mail opened no ticket, where the reason drives what happens next (a robot's reason is free text)."""

    OUTGOING = "outgoing mail that answers no ticket"  # not labelled, not indexed by place
    FROM_SUPPORT = "sent from the support address itself"


@dataclass(frozen=True)
class AuthResult:
    """One `method=result` of a header, with the domain it speaks about ("" when it names none)."""

    method: str  # dkim, spf, dmarc (others are kept but never used as proof)
    result: str  # pass, fail, softfail, none, neutral, temperror, permerror, policy ...
    domain: str = ""  # dkim: header.d (or the domain of header.i); spf: smtp.mailfrom's; dmarc: header.from


@dataclass(frozen=True)
class AuthHeader:
    """One Authentication-Results header as parsed: whose it claims to be and what it says."""

    authserv_id: str  # lower-cased; "" when not even that could be read
    results: tuple[AuthResult, ...] = ()
    readable: bool = True


@dataclass(frozen=True)
class AuthVerdict:
    """What the trusted receiving server said about a message; `problem` says why there is nothing to go by."""

    authserv_id: str = ""
    results: tuple[AuthResult, ...] = ()
    problem: str = "no trusted Authentication-Results"

    @property
    def trusted(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class MessageFacts:
    """What the engine needs to know about one message, parsed once from its bytes."""

    message_id: str
    subject: str
    title: str
    sender: str
    sender_name: str = ""
    reply_to: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    date: datetime | None = None
    ticket_tag: str = ""
    automatic: str = ""
    asks_no_auto_reply: bool = False  # X-Auto-Response-Suppress: a ticket, but no acknowledgement
    bounce_of: tuple[str, ...] = ()
    importance: Priority | None = None
    body: str = ""
    ours: str = ""
    our_kind: str = ""
    auth_headers: tuple[AuthHeader, ...] = ()  # Authentication-Results, topmost first (core/judge/authentication.py)
    from_addresses: tuple[str, ...] = ()  # every address of every From: header (commands need exactly one)
    has_attachments: bool = False
    defects: tuple[str, ...] = ()

    @property
    def customer(self) -> str:
        """The address to answer: Reply-To when a form or a relay sent the mail, else From."""
        return self.reply_to or self.sender

    @property
    def thread_keys(self) -> tuple[str, ...]:
        """Message-IDs this message answers, nearest first."""
        return tuple(dict.fromkeys(self.in_reply_to + tuple(reversed(self.references))))


@dataclass(frozen=True)
class Incoming:
    """A message as an adapter found it: where it is, what labels it has, and its facts."""

    ref: str
    folder_role: str  # "inbox" or "sent"
    facts: MessageFacts
    labels: frozenset[str] = frozenset()
    received_at: datetime | None = None
    thread_id: str = ""

    @property
    def when(self) -> datetime:
        """When it happened: the Date header unless it is missing or later than the server's arrival time."""
        date, received = self.facts.date, self.received_at
        if date is None or (received is not None and date > received):
            return received or date  # type: ignore[return-value]
        return date

    @property
    def arrived(self) -> datetime | None:
        """When it reached the mailbox (IMAP INTERNALDATE, Gmail internalDate); else when it happened. Decides
        against what we recorded at pass time (agents' labels, a new wait): a `Date:` may be skewed or backdated."""
        return self.received_at or self.when


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    what: str
    detail: str = ""


class History(Sequence[HistoryEntry]):
    """A ticket's history as loaded: its JSON rows, decoded the first time the history is read. Listing 5,000
    tickets, or a pass over them, reads few histories; saving one that was never read writes its rows back as
    they were. Behaves as the tuple of entries it stands for."""

    __slots__ = ("_rows", "_entries")

    def __init__(self, rows: list[dict[str, Any]]):
        self._rows: list[dict[str, Any]] | None = rows
        self._entries: tuple[HistoryEntry, ...] | None = None

    def entries(self) -> tuple[HistoryEntry, ...]:
        if self._entries is None:
            fromisoformat = datetime.fromisoformat
            self._entries = tuple(HistoryEntry(fromisoformat(r["at"]), r["what"], r.get("detail", ""))
                                  for r in self._rows or ())
            self._rows = None
        return self._entries

    def holds(self, what: str) -> bool:
        """Whether an entry records `what`: read from the rows while they are not decoded (a report over a year
        asks this of every ticket)."""
        if self._rows is not None:
            return any(r.get("what") == what for r in self._rows)
        return any(h.what == what for h in self._entries or ())

    def rows(self) -> list[dict[str, Any]] | None:
        """The JSON rows while the history was never read (None after)."""
        return self._rows

    def __getitem__(self, index):  # type: ignore[override]
        return self.entries()[index]

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else len(self.entries())

    def __iter__(self):
        return iter(self.entries())

    def __add__(self, other: Any) -> tuple[HistoryEntry, ...]:
        return self.entries() + tuple(other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, History)):
            return self.entries() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.entries())

    def __repr__(self) -> str:
        return repr(self.entries())


@dataclass(frozen=True, slots=True)
class Ticket:
    key: str
    number: int
    customer: str
    subject: str
    created_at: datetime
    customer_name: str = ""
    status: Status = Status.OPEN
    priority: Priority = Priority.NORMAL
    assignee: str | None = None
    updated_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    due_at: datetime | None = None
    waiting_since: datetime | None = None
    ack_wanted: bool = False
    escalations: tuple[Step, ...] = ()
    rating: str | None = None
    message_ids: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    unlabelled: tuple[str, ...] = ()
    labels_applied: tuple[str, ...] = ()
    participants: tuple[str, ...] = ()
    thread_ids: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    bounced: bool = False
    history: tuple[HistoryEntry, ...] = ()  # a History when loaded (the same, decoded when first read)
    recorded: str = ""  # what the mailbox's record of this ticket says (store/records.py); "" before the first one
    snoozed_until: datetime | None = None  # `#snooze`: out of sight, no reminder, until then (core/duties/snoozes.py)
    shape: str = ""  # the request's shape (core/judge/loops.py): the same mail again and again is a robot's

    @property
    def ack_withheld(self) -> str:
        """Why no acknowledgement was sent ("" when one was, or none was due): the history's last word on it."""
        for entry in reversed(self.history):
            if entry.what in (HistoryEvent.ACK_WITHHELD, HistoryEvent.ACK_SKIPPED):
                return entry.detail
            if entry.what in (HistoryEvent.ACKNOWLEDGED, HistoryEvent.CREATED):
                return ""
        return ""

    def log(self, at: datetime, what: HistoryEvent, detail: str = "", **changes: Any) -> Ticket:
        """A copy with `changes` applied and one more history entry."""
        entry = HistoryEntry(at, what, detail)
        return dataclasses.replace(self, history=self.history + (entry,), **changes)

    def logged(self, what: HistoryEvent, since: datetime | None = None) -> bool:
        """Whether the history holds `what` (at or after `since`)."""
        if since is None and isinstance(self.history, History):
            return self.history.holds(what)
        return any(h.what == what and (since is None or h.at >= since) for h in self.history)

    def with_message(self, message_id: str, ref: str, participant: str = "", thread_id: str = "") -> Ticket:
        """A copy that knows one more message of the conversation (not yet labelled)."""
        return dataclasses.replace(
            self,
            message_ids=_add(self.message_ids, message_id),
            refs=_add(self.refs, ref),
            unlabelled=_add(self.unlabelled, ref),
            participants=_add(self.participants, participant),
            thread_ids=_add(self.thread_ids, thread_id),
        )


def _add(items: tuple[str, ...], item: str) -> tuple[str, ...]:
    return items if not item or item in items else items + (item,)


@dataclass(frozen=True)
class Ignored:
    """Mail that opened no ticket, and why; an agent can still turn it into one."""

    message_id: str
    ref: str
    reason: str  # an IgnoreReason, or a robot's reason in words
    sender: str
    subject: str
    at: datetime
    ticket: str | None = None


OUR_ID_PREFIX = "<mhd."  # every Message-ID we make starts so (mail.MailFactory.message_id); a hint, never proof:
# anyone can write it. Ours are the ids recorded in the state's sent log (State.is_ours), looked up, never recomputed.

# --- keys of the index (Message-IDs are keys as they are) ----------------------------------

class IndexMark(StrEnum):
    """What an index name leads to when it is not a ticket's key; stored as its value (the prefix of the entry)."""

    IGNORED = "ignored:"  # + the Message-ID of mail that opened no ticket (State.ignored)
    SENT = "sent:"  # the archive: our mail about no ticket (a digest)

    @classmethod
    def of(cls, entry: str) -> IndexMark | None:
        """The mark an index entry carries (None: the entry is a ticket's key)."""
        return next((mark for mark in cls if entry.startswith(mark)), None)


def thread_key(thread_id: str) -> str:
    """Index key of a provider thread id (kept in the same index as Message-IDs)."""
    return f"thread:{thread_id}"


def ref_key(ref: str) -> str:
    """Index key of a message's place in the mailbox."""
    return f"ref:{ref}"


def shape_key(shape: str) -> str:
    """Index key of a request's shape: the latest ticket whose request had it (core/judge/loops.py)."""
    return f"shape:{shape}"


@dataclass(frozen=True)
class Tick:
    """The event of the timed duties: the end of a pass's batch."""

    first_run: bool  # the pass over a backlog (State.first_run when the tick began)


# --- actions: what the engine asks the effects module to do -------------------------------


@dataclass(frozen=True)
class SetLabels:
    """Make these messages carry `add` and none of `remove` (label names, not provider ids)."""

    refs: tuple[str, ...]
    add: frozenset[str]
    remove: frozenset[str]
    ticket: str = ""


@dataclass(frozen=True)
class SendMail:
    """One message to send; `key` makes it idempotent (never sent twice)."""

    key: str
    kind: MailKind  # a plain string once loaded from the outbox: compare with MailKind members
    to: str
    subject: str
    body: str
    message_id: str
    ticket: str = ""
    html: str | None = None
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    auto_submitted: str = "auto-replied"
    thread_id: str = ""


Action = SetLabels | SendMail


@dataclass(frozen=True)
class Notice:
    """A notice to an agent or a lead (a new assignment, an escalation step), held until it is mailed: alone when
    it is the only one, else batched with the others to the same address (core/duties/notices.py)."""

    kind: MailKind  # one of NOTICE_KINDS
    ticket: str
    to: str
    at: datetime

    def encode(self) -> dict[str, str]:
        return {"kind": str(self.kind), "ticket": self.ticket, "to": self.to, "at": self.at.isoformat()}

    @classmethod
    def decode(cls, row: dict[str, str]) -> Notice:
        return cls(MailKind(row["kind"]), row["ticket"], row["to"], datetime.fromisoformat(row["at"]))


HELD_NOTICES = "held_notices"  # the state cursor of the notices waiting for their batch (Notice.encode rows)


@dataclass
class Plan:
    """A decision: state changes to merge, and actions to carry out."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    index: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, Ignored] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    next_number: int | None = None
    rr_index: int | None = None
    cursors: dict[str, Any] = field(default_factory=dict)
    sent: dict[str, SentRecord] = field(default_factory=dict)  # the outbox and sent log (core/outbox.py)
    senders: list[tuple[str, datetime]] = field(default_factory=list)  # acknowledgements sent, for core/judge/senders.py
    notices: list[Notice] = field(default_factory=list)  # notices to hold for the next batch (core/duties/notices.py)

    def put(self, ticket: Ticket) -> Ticket:
        self.tickets[ticket.key] = ticket
        return ticket

    def extend(self, other: Plan) -> Plan:
        self.tickets.update(other.tickets)
        self.index.update(other.index)
        self.ignored.update(other.ignored)
        self.actions += other.actions
        self.notes += other.notes
        self.cursors.update(other.cursors)
        self.sent.update(other.sent)
        self.senders += other.senders
        self.notices += other.notices
        self.next_number = other.next_number if other.next_number is not None else self.next_number
        self.rr_index = other.rr_index if other.rr_index is not None else self.rr_index
        return self


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One mail of the outbox and then of the sent log; replaced, never changed in place (core/outbox.py)."""

    key: str
    message_id: str
    to: str
    kind: str
    ticket: str
    at: datetime
    done: bool = False
    mail: SendMail | None = None  # the message itself until it is sent (the outbox), then dropped
    attempts: int = 0  # temporary refusals of this message so far
    retry_at: datetime | None = None  # not before then (backoff after a temporary refusal)


SENDS_CURSOR = "sends_by_hour"


def counted(buckets: dict[str, int], now: datetime) -> dict[str, int]:
    """Hourly send counts with one more at `now`, the last day's only: their sum is checked against the provider's
    daily limit (the sent log cannot say it once old tickets have moved to the archive)."""
    hour = now.astimezone(UTC).strftime("%Y-%m-%dT%H")
    oldest = (now - timedelta(hours=25)).astimezone(UTC).strftime("%Y-%m-%dT%H")
    result = {h: n for h, n in buckets.items() if h >= oldest}
    result[hour] = result.get(hour, 0) + 1
    return result


class ArchiveLookup(Protocol):
    def lookup(self, name: str) -> str | None: ...


@dataclass
class State:
    """Everything the daemon remembers between passes; small, and rebuildable from the mailbox."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    index: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, Ignored] = field(default_factory=dict)
    sent: dict[str, SentRecord] = field(default_factory=dict)  # by Message-ID, derived from the key
    sender_log: dict[str, list[datetime]] = field(default_factory=dict)
    cursors: dict[str, Any] = field(default_factory=dict)
    quarantine: dict[str, str] = field(default_factory=dict)
    next_number: int = 1
    rr_index: int = 0
    archive: ArchiveLookup | None = field(default=None, compare=False, repr=False)  # closed tickets (store/archive.py)

    @property
    def first_run(self) -> bool:
        """No pass has completed yet: the mailbox holds a backlog, handled quietly (README, The support workflow: the first run is quiet)."""
        return "last_pass" not in self.cursors

    def merge(self, plan: Plan) -> None:
        """Take a plan's state changes (the actions are carried out elsewhere)."""
        self.tickets.update(plan.tickets)
        self.index.update(plan.index)
        self.ignored.update(plan.ignored)
        if plan.notices:  # a new list (a preview's copy shares the old one); before the cursors, so that the
            # notices duty's list of what still waits (it saw these in its preview) has the last word
            self.cursors[HELD_NOTICES] = [*self.cursors.get(HELD_NOTICES, ()), *(n.encode() for n in plan.notices)]
        self.cursors.update(plan.cursors)
        self.sent.update(plan.sent)
        for sender, at in plan.senders:
            self.sender_log.setdefault(sender, []).append(at)
        if plan.next_number is not None:
            self.next_number = plan.next_number
        if plan.rr_index is not None:
            self.rr_index = plan.rr_index

    def previewed(self, plan: Plan) -> State:
        """A shallow copy with `plan` merged, so later decisions of one event see earlier ones."""
        if not (plan.tickets or plan.index or plan.ignored or plan.cursors or plan.sent or plan.senders
                or plan.notices):
            return self
        copy = self.copy()
        copy.merge(plan)
        return copy

    def copy(self) -> State:
        """A copy whose tables can change without touching this one (their values are immutable; a dry run
        decides on a copy and leaves the state as it was)."""
        return dataclasses.replace(
            self, tickets=dict(self.tickets), index=dict(self.index), ignored=dict(self.ignored), sent=dict(self.sent),
            cursors=dict(self.cursors), quarantine=dict(self.quarantine),
            sender_log={k: list(v) for k, v in self.sender_log.items()})

    def rebuild_index(self) -> None:
        """The index is derived state: Message-IDs, places and threads of every ticket, and ignored mail.
        It is rebuilt at load rather than stored (it would double the file)."""
        index: dict[str, str] = {}
        for record in self.ignored.values():
            if record.reason != IgnoreReason.OUTGOING:
                index[ref_key(record.ref)] = IndexMark.IGNORED + record.message_id
        for ticket in self.tickets.values():
            key = ticket.key
            for message_id in ticket.message_ids:
                index[message_id] = key
            for ref in ticket.refs:
                index[ref_key(ref)] = key
            for thread in ticket.thread_ids:
                index[thread_key(thread)] = key
            if ticket.shape:
                latest = index.get(shape_key(ticket.shape))
                if latest is None or self.tickets[latest].created_at <= ticket.created_at:
                    index[shape_key(ticket.shape)] = key
        self.index = index

    def sends_last_day(self, now: datetime) -> int | None:
        """Mails sent in the last 24 hours (to the hour), or None before the counter existed."""
        buckets = self.cursors.get(SENDS_CURSOR)
        if buckets is None:
            return None
        since = (now - timedelta(hours=23)).astimezone(UTC).strftime("%Y-%m-%dT%H")
        return sum(n for hour, n in buckets.items() if hour >= since)

    def forget_ticket(self, ticket: Ticket) -> None:
        """Take a ticket (moved to the archive) out of the working set and the index."""
        self.tickets.pop(ticket.key, None)
        shapes = (shape_key(ticket.shape),) if ticket.shape else ()
        for name in (*ticket.message_ids, *map(ref_key, ticket.refs), *map(thread_key, ticket.thread_ids), *shapes):
            if self.index.get(name) == ticket.key:
                del self.index[name]

    def forget_ignored(self, record: Ignored) -> None:
        self.ignored.pop(record.message_id, None)
        if self.index.get(ref_key(record.ref)) == IndexMark.IGNORED + record.message_id:
            del self.index[ref_key(record.ref)]

    def archived(self, name: str) -> str | None:
        """The archive's word on a Message-ID, `thread:`/`ref:` name or ticket key (None: not in the archive).
        Asked only when the working set does not know the name: it reads a file."""
        return self.archive.lookup(name) if self.archive is not None else None

    def held_notices(self) -> list[Notice]:
        return [Notice.decode(row) for row in self.cursors.get(HELD_NOTICES, ())]

    def ticket_of(self, message_id: str) -> Ticket | None:
        key = self.index.get(message_id)
        return self.tickets.get(key) if key else None

    def is_ours(self, message_id: str) -> bool:
        return message_id in self.sent
