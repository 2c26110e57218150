"""The one small mailbox protocol every adapter speaks: changes since a cursor, label, send."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Iterable, Iterator, Protocol


@dataclass(frozen=True)
class RawMessage:
    ref: str
    folder_role: str  # "inbox" or "sent"
    raw: bytes
    labels: frozenset[str] = frozenset()
    received_at: datetime | None = None
    thread_id: str = ""


@dataclass
class Changes:
    """What happened since the cursor. `messages` is lazy, so a large backlog is never all in memory."""

    messages: Iterator[RawMessage]
    label_changes: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)
    expected: int | None = None  # how many `messages` will yield, when the adapter knows up front (progress)


class Mailbox(Protocol):
    kind: str

    def connect(self) -> None: ...

    def describe(self) -> list[str]:
        """Lines for `check`: the account, what the server supports, how labels are stored."""
        ...

    def prepare(self, labels: Iterable[str]) -> list[str]:
        """Create what labels need (Gmail labels; nothing for keywords); lines saying what was done."""
        ...

    def changes(self, cursor: dict[str, Any], since: datetime) -> Changes: ...

    def set_labels(self, refs: Iterable[str], add: frozenset[str], remove: frozenset[str]) -> None: ...

    def send(self, message: EmailMessage, labels: frozenset[str], thread_id: str = "") -> str:
        """Send, and keep a copy in the sent folder (labelled) unless the provider keeps one; the copy's ref or ""."""
        ...

    def already_sent(self, message_id: str) -> bool:
        """Is a message with this Message-ID in the sent folder? (after a crash between send and record)"""
        ...

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Block until new mail may have arrived (IDLE / push), `timeout` seconds passed, or `stop` is set."""
        ...

    def close(self) -> None: ...
