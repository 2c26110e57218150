"""Closed tickets as history: an append-only archive beside the state file, read by streaming.

The state holds the work in hand; a ticket that is closed and whose conversation has been quiet for `AFTER` moves
here (issue 10: the cost of a mail must not grow with the whole history). Layout, all plain text you can open:

    <state>.archive/2026-12.jsonl   one JSON line per archived ticket (with its sent log), or ignored mail, or a
                                    ticketless sent record (digests); appended in the month it was archived
    <state>.archive/index/ab.tsv    "<Message-ID, thread:..., or key>\\t<key, or month>" lines, in 256 buckets by
                                    hash, so a reply to a ticket closed a year ago is recognised by reading one
                                    small file, never the archive

    <state>.archive/index/covers.json  what the index covers (each month file's size), the total size of its
                                    bucket files, and where the lines the state may still hold begin

A move is crash-safe without being atomic: lines are appended and fsynced here first, then the state drops the
ticket (the journal, store/state.py). A kill in between leaves the ticket in both; the next move finds its lines among
those the state may still hold (`held` in covers.json) and appends nothing again, so each ticket has one line. A
kill between the lines and the index leaves lines the index does not cover: `check` (at every store's first
read, and before each move) indexes them; an index that is missing or smaller than covers.json says is rebuilt
from the month files. Writers hold `<state>.archive/.lock` (flock), so a command reading while the daemon moves
tickets never repairs half a move.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from mailhelpdesk.errors import StoreError
from mailhelpdesk.model import IndexMark, HistoryEvent, Ignored, SentRecord, Status, Ticket, ref_key, thread_key

log = logging.getLogger("mailhelpdesk")

AFTER = timedelta(days=7)  # a closed ticket whose conversation has been quiet this long is history
IGNORED_AFTER = timedelta(days=30)  # ignored mail an agent may still promote by label, then history
TICKETLESS_SENT_AFTER = timedelta(days=2)  # digests and summaries: "already sent today" needs a day of them
INDEX_FIELDS = frozenset({"key", "number", "customer", "subject", "created_at", "message_ids", "refs", "thread_ids"})
COVERS = "covers.json"

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
            yield record.message_id, record.ticket or IndexMark.SENT
        if self.ignored is not None:
            yield self.ignored.message_id, IndexMark.IGNORED + self.ignored.message_id


class Archive:
    """The folder of monthly JSON-lines files and its Message-ID index."""

    BUCKETS = 256

    def __init__(self, folder: Path, encode: Callable[[Any], Any], decode: Callable[..., Any]):
        self.folder = folder
        self.index_folder = folder / "index"
        self._encode, self._decode = encode, decode
        self.repairs: list[str] = []  # what `check` found and mended, in words for `status` and the log

    # --- writing -------------------------------------------------------------------------------------------

    def add(self, entries: Iterable[Entry], now: datetime) -> int:
        """Append entries to this month's file and the index, durably (fsync) before the state forgets them.
        Lines already there from a move a kill cut short (the state still held their tickets) are not written
        again. Returns how many lines were written."""
        month = f"{now:%Y-%m}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._locked(wait=True):
                self._check()
                covers = self._covers() or Covers({}, 0, [])
                regions = [(region, self._region_lines(region)) for region in covers.held]
                present = set().union(*(found for _, found in regions))
                lines, names, held = [], {}, set()
                for entry in entries:
                    own = self._lines(entry)
                    held.update(line for line in own if line in present)
                    new = [line for line in own if line not in present]
                    if not new:
                        continue  # archived already by the move a kill interrupted
                    lines += new
                    for name, value in entry.names():
                        names.setdefault(_bucket(name), []).append(f"{_clean(name)}\t{value or month}\n")
                if not lines:
                    return 0
                self.index_folder.mkdir(exist_ok=True)
                start, end = _append(self.folder / f"{month}.jsonl", "".join(lines))
                for bucket, rows in names.items():
                    _append(self.index_folder / f"{bucket}.tsv", "".join(rows))
                fsync_dir(self.folder)
                # the regions whose lines the state may still hold: this move's, and the earlier ones it met again
                still = [region for region, found in regions if held & found]
                self._write_covers(covers.months | {month: end}, still + [(month, start, end)])
        except OSError as exc:
            raise StoreError(f"{self.folder}: cannot write the archive ({exc.strerror or exc}); "
                             "closed tickets stay in the state until it can be written") from None
        return len(lines)

    def check(self) -> list[str]:
        """Index what a cut-short move left unindexed, and rebuild an index that is missing or damaged, unless a
        writer is at work (it checks before it writes). Returns what was repaired (also kept in `repairs`)."""
        before = len(self.repairs)
        if not self.months():
            return []
        try:
            with self._locked(wait=False) as mine:
                if mine:
                    self._check()
        except OSError as exc:  # a read-only folder: this reader cannot mend it; the daemon will
            log.debug("%s: cannot check the archive index (%s)", self.folder, exc.strerror or exc)
        return self.repairs[before:]

    def _check(self) -> None:
        """`check` under the lock."""
        sizes = {p.stem: p.stat().st_size for p in self.months()}
        if not sizes:
            return
        covers = self._covers()
        buckets = self._index_bytes()
        why = ""
        if not self.index_folder.is_dir() or not buckets:
            why = "was missing"
        elif covers is None:  # written before covers.json existed: adopted as it is (a move a kill cut short
            latest = max(sizes)  # then is in the newest month: its lines are the ones the state may still hold)
            self._write_covers(sizes, [(latest, 0, sizes[latest])])
            return
        elif any(sizes.get(month, 0) < size for month, size in covers.months.items()):
            why = "covered more than the archive files now hold (a file was cut or restored from an older copy)"
        elif buckets < covers.index_bytes:
            why = f"was damaged ({buckets} of its {covers.index_bytes} bytes left)"
        tails = {m: (0 if why else covers.months.get(m, 0), size) for m, size in sizes.items()
                 if why or size > covers.months.get(m, 0)}
        if not why and not tails:
            if buckets != covers.index_bytes:
                why = f"was damaged ({buckets} bytes where {covers.index_bytes} were written)"
                tails = {m: (0, size) for m, size in sizes.items()}
            else:
                return
        names = 0
        for month, (start, end) in sorted(tails.items()):
            names += self._index_region(month, start, end)
        held = [(m, s, e) for m, (s, e) in tails.items()]
        if why:
            latest = max(sizes)  # the lines a cut-short move may have left: the newest month's
            held = [(latest, 0, sizes[latest])]
            self.repairs.append(f"the archive index {why}: rebuilt from {len(sizes)} archive file(s) ({names} names)")
        else:
            held = (covers.held if covers else []) + held
            if names:  # (a torn line alone names nothing: not worth a word)
                self.repairs.append(f"the archive index missed {names} name(s) of a move that was cut short: indexed")
        if why or names:
            log.warning("%s: %s", self.folder, self.repairs[-1])
        self._write_covers(sizes, held)

    def _index_region(self, month: str, start: int, end: int) -> int:
        """Index the whole lines of one month file between two offsets; returns how many names."""
        names: dict[str, list[str]] = {}
        for line in _whole_lines(self.folder / f"{month}.jsonl", start, end):
            entry = self._entry(line, INDEX_FIELDS)
            if entry is None:
                continue
            for name, value in entry.names():
                names.setdefault(_bucket(name), []).append(f"{_clean(name)}\t{value or month}\n")
        self.index_folder.mkdir(exist_ok=True)
        for bucket, rows in names.items():
            _append(self.index_folder / f"{bucket}.tsv", "".join(rows))
        return sum(map(len, names.values()))

    def _region_lines(self, region: tuple[str, int, int]) -> set[str]:
        """The whole lines of a (month, start, end) region."""
        month, start, end = region
        try:
            return set(_whole_lines(self.folder / f"{month}.jsonl", start, end))
        except FileNotFoundError:
            return set()

    def _covers(self) -> "Covers | None":
        try:
            data = json.loads((self.index_folder / COVERS).read_text(encoding="utf-8"))
            return Covers({str(k): int(v) for k, v in data["months"].items()}, int(data["index_bytes"]),
                          [(str(m), int(s), int(e)) for m, s, e in data["held"]])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # damaged: treated as absent (adopted, or the index rebuilt when it is gone too)

    def _write_covers(self, months: dict[str, int], held: list[tuple[str, int, int]]) -> None:
        """covers.json by rename (a kill leaves the old one whole, or covers.json.new to be written over)."""
        self.index_folder.mkdir(exist_ok=True)
        data = {"months": dict(sorted(months.items())), "index_bytes": self._index_bytes(), "held": held}
        tmp = self.index_folder / (COVERS + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(data).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.index_folder / COVERS)
        fsync_dir(self.index_folder)

    def _index_bytes(self) -> int:
        try:
            return sum(p.stat().st_size for p in self.index_folder.glob("[0-9a-f][0-9a-f].tsv"))
        except FileNotFoundError:
            return 0

    @contextlib.contextmanager
    def _locked(self, wait: bool) -> Iterator[bool]:
        """The archive's writer lock (flock on `.lock`): yields False when another process holds it and `wait`
        is False."""
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

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
            if self.index_folder.is_dir() or not self.check():  # the index deleted under a running daemon
                return None
            return self.lookup(name)
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
                    if line.startswith(prefix) and containing in line:
                        entry = self._entry(line, fields)
                        if entry is not None:
                            yield entry

    def _entry(self, line: str, fields: frozenset[str] | None = None) -> Entry | None:
        """One archive line decoded; None for a line a kill cut short (its ticket is still in the state)."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        return Entry(
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


@dataclass(frozen=True)
class Covers:
    """covers.json: each month file's size the index covers, the index's size then, and the (month, start, end)
    regions of lines whose tickets the state may still hold (a kill came before it dropped them)."""

    months: dict[str, int]
    index_bytes: int
    held: list[tuple[str, int, int]]


def _whole_lines(path: Path, start: int = 0, end: int | None = None) -> Iterator[str]:
    """The lines of `path` between two offsets that end in a newline (a torn line is left out), streamed."""
    with open(path, "rb") as handle:
        handle.seek(start)
        left = -1 if end is None else end - start
        for raw in handle:
            if left >= 0:
                if left == 0:
                    break
                raw, left = raw[:left], max(left - len(raw), 0)
            if raw.endswith(b"\n") and raw.strip():
                yield raw.decode("utf-8", "surrogateescape")


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


def _append(path: Path, text: str) -> tuple[int, int]:
    """Append whole lines; after a torn line (a kill mid-write) on a new line, so the torn one stays alone and
    readers skip it. Returns the offsets the new lines start and end at."""
    data = text.encode("utf-8", "surrogateescape")
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size and (handle.seek(size - 1), handle.read(1))[1] != b"\n":
                data = b"\n" + data
    except FileNotFoundError:
        size = 0
    append_durably(path, data)
    return size, size + len(data)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
