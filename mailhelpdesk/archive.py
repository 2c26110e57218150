"""Closed tickets as history: an append-only archive beside the state file, read by streaming.

The state holds the work in hand; a ticket that is closed and whose conversation has been quiet for `AFTER` moves
here (issue 10: the cost of a mail must not grow with the whole history). Layout, all plain text you can open:

    <state>.archive/2026-12.jsonl   one JSON line per archived ticket (with its sent log), or ignored mail, or a
                                    ticketless sent record (digests); appended in the month it was archived
    <state>.archive/index/ab.tsv    "<Message-ID, thread:..., or key>\\t<key, or month>" lines, in 256 buckets by
                                    hash, so a reply to a ticket closed a year ago is recognised by reading one
                                    small file, never the archive

A move is crash-safe without being atomic: lines are appended and fsynced here first, then the state drops the
ticket (the journal, store.py). A kill in between leaves the ticket in both; it moves again later and readers take
one copy (the state's first, else the last line).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import StoreError
from .model import IGNORED_PREFIX, HistoryEvent, Ignored, SentRecord, Status, Ticket, ref_key, thread_key

AFTER = timedelta(days=7)  # a closed ticket whose conversation has been quiet this long is history
IGNORED_AFTER = timedelta(days=30)  # ignored mail an agent may still promote by label, then history
TICKETLESS_SENT_AFTER = timedelta(days=2)  # digests and summaries: "already sent today" needs a day of them

CONVERSATION = frozenset({
    HistoryEvent.CREATED, HistoryEvent.CREATED_FROM_IGNORED, HistoryEvent.CUSTOMER_REPLIED, HistoryEvent.AGENT_REPLIED,
    HistoryEvent.AGENT_MAIL_ATTACHED, HistoryEvent.AUTOMATIC_MAIL_ATTACHED, HistoryEvent.RATED,
})


def last_message_at(ticket: Ticket) -> datetime:
    """When the conversation last had a message (not when an agent last changed a label)."""
    return max((h.at for h in ticket.history if h.what in CONVERSATION), default=ticket.created_at)


def is_history(ticket: Ticket, now: datetime) -> bool:
    """Closed, and its conversation quiet for `AFTER`: a year-old conversation closed today is history at once."""
    return ticket.status == Status.CLOSED and now - last_message_at(ticket) >= AFTER


@dataclass(frozen=True)
class Entry:
    """One archive line: a ticket with its sent log, an ignored mail, or ticketless sent records."""

    ticket: Ticket | None = None
    sent: tuple[SentRecord, ...] = ()
    ignored: Ignored | None = None

    def names(self) -> Iterator[tuple[str, str]]:
        """(name, value) pairs this entry adds to the index."""
        if self.ticket is not None:
            key = self.ticket.key
            yield key, ""  # the month is filled in by Archive.add
            for message_id in self.ticket.message_ids:
                yield message_id, key
            for thread in self.ticket.thread_ids:
                yield thread_key(thread), key
            for ref in self.ticket.refs:
                yield ref_key(ref), key
        for record in self.sent:
            yield record.message_id, record.ticket or "sent:"
        if self.ignored is not None:
            yield self.ignored.message_id, IGNORED_PREFIX + self.ignored.message_id


class Archive:
    """The folder of monthly JSON-lines files and its Message-ID index."""

    BUCKETS = 256

    def __init__(self, folder: Path, encode: Callable[[Any], Any], decode: Callable[..., Any]):
        self.folder = folder
        self.index_folder = folder / "index"
        self._encode, self._decode = encode, decode

    # --- writing -------------------------------------------------------------------------------------------

    def add(self, entries: Iterable[Entry], now: datetime) -> int:
        """Append entries to this month's file and the index, durably (fsync) before the state forgets them."""
        month = f"{now:%Y-%m}"
        lines, names = [], {}
        for entry in entries:
            lines += self._lines(entry)
            for name, value in entry.names():
                names.setdefault(_bucket(name), []).append(f"{_clean(name)}\t{value or month}\n")
        if not lines:
            return 0
        try:
            self.index_folder.mkdir(parents=True, exist_ok=True)
            _append(self.folder / f"{month}.jsonl", "".join(lines))
            for bucket, rows in names.items():
                _append(self.index_folder / f"{bucket}.tsv", "".join(rows))
            fsync_dir(self.folder)
        except OSError as exc:
            raise StoreError(f"{self.folder}: cannot write the archive ({exc.strerror or exc}); "
                             "closed tickets stay in the state until it can be written") from None
        return len(lines)

    def _lines(self, entry: Entry) -> list[str]:
        """A ticket's line, then its sent log's (readers of tickets skip it unread), or an ignored mail's line."""
        lines = []
        if entry.ticket is not None:
            lines.append({"ticket": self._encode(entry.ticket)})
        if entry.sent:
            lines.append({"sent": [self._encode(r) for r in entry.sent]})
        if entry.ignored is not None:
            lines.append({"ignored": self._encode(entry.ignored)})
        return [json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines]

    # --- reading -------------------------------------------------------------------------------------------

    def lookup(self, name: str) -> str | None:
        """What the index says of a Message-ID (the ticket key, `ignored:...`), a `thread:`/`ref:` name, or a
        ticket key (the month it was archived); None when the archive never saw it. Reads one bucket file."""
        path = self.index_folder / f"{_bucket(name)}.tsv"
        prefix = _clean(name) + "\t"
        found = None
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith(prefix):
                        found = line[len(prefix):].rstrip("\n")  # the last line wins
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the archive index ({exc.strerror or exc})") from None
        return found

    def months(self) -> list[Path]:
        return sorted(self.folder.glob("[0-9][0-9][0-9][0-9]-[0-9][0-9].jsonl"))

    def entries(self, months: Iterable[Path] | None = None, only: str = "",
                containing: str = "", fields: frozenset[str] | None = None) -> Iterator[Entry]:
        """Every archive line, oldest first, decoded one at a time (a torn last line, left by a kill, is skipped).
        `only`: lines of this kind ("ticket", "sent", "ignored"), the others skipped unread; `containing`: lines
        holding this text (a cheap test before a line is parsed)."""
        prefix = f'{{"{only}":' if only else "{"
        for path in self.months() if months is None else months:
            try:
                handle = open(path, encoding="utf-8")
            except OSError as exc:
                raise StoreError(f"{path}: cannot read the archive ({exc.strerror or exc})") from None
            with handle:
                for line in handle:
                    if not line.startswith(prefix) or containing not in line:
                        continue
                    try:
                        data = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a kill: its ticket is still in the state
                    yield Entry(
                        ticket=self._decode(Ticket, data["ticket"], fields) if "ticket" in data else None,
                        sent=tuple(self._decode(SentRecord, r) for r in data.get("sent", ())),
                        ignored=self._decode(Ignored, data["ignored"]) if "ignored" in data else None,
                    )

    def tickets(self, skip: Iterable[str] = (), since: datetime | None = None,
                fields: frozenset[str] | None = None) -> Iterator[Ticket]:
        """Every archived ticket once (a move repeated after a kill leaves two equal lines), minus `skip`. With
        `since`, only files of tickets archived since its month: one archived earlier was closed before it. With
        `fields`, tickets with only those fields read (the rest at their defaults)."""
        seen = set(skip)
        months = [p for p in self.months() if since is None or p.stem >= f"{since:%Y-%m}"]
        for entry in self.entries(months, only="ticket", fields=fields):
            ticket = entry.ticket
            if ticket is not None and ticket.key not in seen:
                seen.add(ticket.key)
                yield ticket

    def find(self, key: str) -> Ticket | None:
        """One archived ticket by key: the index says which month, then only that file's lines naming the key
        are parsed."""
        month = self.lookup(key)
        if not month:
            return None
        found = None
        for entry in self.entries([self.folder / f"{month}.jsonl"], only="ticket", containing=f'"key":"{key}"'):
            if entry.ticket is not None and entry.ticket.key == key:
                found = entry.ticket
        return found


def _bucket(name: str) -> str:
    return hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=1).hexdigest()


def _clean(name: str) -> str:
    """Index names on one line and without our separator (a hostile Message-ID may hold anything)."""
    return name.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def append_durably(path: Path, data: bytes, after: int | None = None) -> bool:
    """Write `data` at the end of `path` (or at byte `after`, cutting off what follows: a torn line) and fsync it.
    On failure the file is as it was: no half line is left behind (a full disk still lets a file shrink).
    Returns whether the file was new (its folder then needs an fsync too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        start = size if after is None else after
        try:
            if start != size:
                os.ftruncate(fd, start)
            view, offset = memoryview(data), start
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)
    return size == 0


def _append(path: Path, text: str) -> None:
    append_durably(path, text.encode("utf-8", "surrogateescape"))


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
