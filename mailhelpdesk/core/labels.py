"""How a ticket's state is written as labels, and read back from labels an agent changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from mailhelpdesk.model import Priority, Status, Ticket
from mailhelpdesk.core.sla_state import sla_state


def records_label(root: str) -> str:
    """Where the daemon keeps its records (store/records.py): an IMAP folder (with the server's hierarchy separator in
    place of '/') or a Gmail label, beside the labels agents see."""
    return f"{root}/Records"


@dataclass(frozen=True)
class LabelScheme:
    root: str
    agents: tuple[str, ...]

    def status(self, status: Status) -> str:
        return f"{self.root}/Status/{status.value.title()}"

    def priority(self, priority: Priority) -> str:
        return f"{self.root}/Priority/{priority.value.title()}"

    def assignee(self, agent: str) -> str:
        return f"{self.root}/Assignee/{agent}"

    @property
    def overdue(self) -> str:
        return f"{self.root}/Overdue"

    @property
    def snoozed(self) -> str:
        return f"{self.root}/Snoozed"

    @property
    def ignored(self) -> str:
        return f"{self.root}/Ignored"

    @property
    def quarantine(self) -> str:
        return f"{self.root}/Quarantine"

    def all(self) -> frozenset[str]:
        """Every label we may set: what we remove when a ticket's labels change."""
        return frozenset(
            [self.status(s) for s in Status]
            + [self.priority(p) for p in Priority]
            + [self.assignee(a) for a in self.agents]
            + [self.overdue, self.snoozed, self.ignored]
        )

    def to_create(self) -> frozenset[str]:
        """Every label the mailbox must have: ours to set and clear, and Quarantine (never cleared by us)."""
        return self.all() | {self.quarantine}

    def ours(self, labels: Iterable[str]) -> frozenset[str]:
        prefix = self.root + "/"
        return frozenset(label for label in labels if label.startswith(prefix))

    def for_ticket(self, ticket: Ticket, now: datetime) -> frozenset[str]:
        """The labels a ticket shows at `now`; Overdue exactly when `sla_state` says so."""
        labels = {self.status(ticket.status), self.priority(ticket.priority)}
        if ticket.assignee:
            labels.add(self.assignee(ticket.assignee))
        if sla_state(ticket, now).overdue:
            labels.add(self.overdue)
        if ticket.snoozed_until is not None and now < ticket.snoozed_until:
            labels.add(self.snoozed)
        return frozenset(labels)

    def read(self, labels: Iterable[str]) -> LabelReading:
        """Split labels into the values they name (several when an agent added one without removing another)."""
        labels = set(labels)
        return LabelReading(
            statuses=tuple(s for s in Status if self.status(s) in labels),
            priorities=tuple(p for p in Priority if self.priority(p) in labels),
            assignees=tuple(a for a in self.agents if self.assignee(a) in labels),
        )


@dataclass(frozen=True)
class LabelReading:
    statuses: tuple[Status, ...]
    priorities: tuple[Priority, ...]
    assignees: tuple[str, ...]


def scheme_for(config) -> LabelScheme:  # config: Config
    return LabelScheme(config.helpdesk.label_root, tuple(a.name for a in config.agents))
