"""The one small mailbox protocol every adapter speaks: changes since a cursor, label, send."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, ClassVar, Iterable, Iterator, Protocol

from mailhelpdesk.core.relocation import Relocation
from mailhelpdesk.capabilities import Capabilities


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
    relocations: list[Relocation] = field(default_factory=list)  # folders whose refs all changed: see relocate()
    notes: list[str] = field(default_factory=list)  # what the adapter had to work around (a vanished sent folder...)


class Mailbox(Protocol):
    CAPABILITIES: ClassVar[Capabilities]  # what the backend can do (capabilities.py); its entry in BACKENDS
    kind: str  # CAPABILITIES.name

    def connect(self) -> None: ...

    def describe(self) -> list[str]:
        """Lines for `check`: the account, what the server supports, how labels are stored."""
        ...

    def prepare(self, labels: Iterable[str], create: bool = True) -> list[str]:
        """Learn the labels and create what they need (Gmail labels; nothing for keywords); lines saying what was
        done. `create=False` (a dry run) only learns them: a dry run changes nothing, not even a label list."""
        ...

    def changes(self, cursor: dict[str, Any], since: datetime) -> Changes: ...

    def set_labels(self, refs: Iterable[str], add: frozenset[str], remove: frozenset[str]) -> None: ...

    def send(self, message: EmailMessage, labels: frozenset[str], thread_id: str = "") -> str:
        """Send, and keep a copy in the sent folder (labelled) unless the provider keeps one; the copy's ref or ""."""
        ...

    def already_sent(self, message_id: str) -> bool:
        """Is a message with this Message-ID in the sent folder? (after a crash between send and record)"""
        ...

    def keep_record(self, message: EmailMessage, folder: str) -> None:
        """Store one of the daemon's records (store/records.py) in `folder` (an IMAP folder, created when missing, or a
        Gmail label): never in the inbox or the sent folder, never sent, marked read."""
        ...

    def records(self, folder: str) -> Iterator[bytes]:
        """Every record kept in `folder` so far (for `rebuild`); nothing when there is no such folder."""
        ...

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Block until new mail may have arrived (IDLE / push), `timeout` seconds passed, or `stop` is set."""
        ...

    def close(self) -> None: ...


def new_mail_line(pushed: str, poll_interval: int, could_push: str = "") -> str:
    """`check`'s line on how new mail is noticed: how it is pushed to us, else the polling, and what would push it
    (`Capabilities.push`) where the server could."""
    if pushed:
        return f"new mail: {pushed}"
    return f"new mail: polling every {poll_interval} s" + (f" (within seconds with {could_push})" if could_push else "")


def stop_on(mailbox: Mailbox, stop: threading.Event) -> None:
    """Let an adapter cut its network calls short once `stop` is set (SIGTERM), from the first pass on: no retry
    starts and a retry's wait ends at once (`retry.persist`), and the IMAP adapter cuts a connection that hangs
    (`ImapMailbox.stop_when`, `GmailMailbox.stop_when`); an adapter without `stop_when` only notices `stop` in
    `wait()`."""
    hook = getattr(mailbox, "stop_when", None)
    if hook is not None:
        hook(stop)
