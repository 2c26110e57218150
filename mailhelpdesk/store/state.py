"""The state: the work in hand in a TinyDB file, a journal of changes beside it, closed tickets in the archive.

    <state>           TinyDB's JSON, one document per line, keyed by what names it (ticket key, Message-ID):
                      the working set (tickets not yet history, recent ignored mail, the sent log) and `meta`
    <state>.journal   one JSON line per save: the documents that changed and the ones that went; appended and
                      fsynced, so a save costs what the change costs, and an intent is on disk before its send
    <state>.archive/  closed tickets and old records (store/archive.py), read by streaming

Loading reads the file and replays the journal's lines newer than the file (`meta.journal_seq`). Compaction
writes the file whole (temp file, fsync, rename), then starts a new journal by rename: a kill at any moment
leaves a file and a journal that together say everything that was saved. A reader opens the journal before the
file, so a compaction between the two never hides a change from it.

A kill during a compaction leaves its temp file (`.<state>.XXXXXXXX.tmp`, a whole copy of the state) behind. The
writer holds an flock on its temp file until the rename, so any store's first read removes the ones nobody holds
(`Store.repairs` says so): a reader never takes the daemon's file in flight, and only files of exactly our
names are touched.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import json
import logging
import os
import re
import stat
import tempfile
import types
import typing
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tinydb import Query, TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage
from tinydb.table import Document, Table

from mailhelpdesk.store import archive
from mailhelpdesk.store.archive import Archive, Entry, append_durably, fsync_dir
from mailhelpdesk.errors import StoreError
from mailhelpdesk.model import History, HistoryEntry, Ignored, SentRecord, State, Ticket

log = logging.getLogger("mailhelpdesk")

SCHEMA_VERSION = 2  # 1: one file, tables keyed 1, 2, 3 ... and everything in it; 2: keyed by name, journal, archive
LAYOUT_MARK = "{\n"  # our files start with a bare "{" line, then one document per line
TABLES = {"tickets": (Ticket, "key"), "ignored": (Ignored, "message_id"), "sent": (SentRecord, "message_id")}
COMPACT_AT = 1 << 20  # compact once the journal is over this many bytes and over half the file's size
DAMAGED = "move it aside and run `mailhelpdesk rebuild` to recover the tickets from the mailbox"
TEMP_SUFFIX = ".tmp"


def temp_pattern(state_name: str) -> re.Pattern[str]:
    """Our compaction temp files' names: tempfile.mkstemp's, `.<state>.` and 8 of its letters, then `.tmp`
    (optional: older versions wrote none)."""
    return re.compile(rf"\.{re.escape(state_name)}\.[a-z0-9_]{{8}}(?P<suffix>{re.escape(TEMP_SUFFIX)})?")


def claimed(create: Callable[[], tuple[int, str]]) -> tuple[int, str]:
    """A new temp file, locked (flock) by this process until it closes it: a store opened meanwhile never takes
    it for one a kill left. If a cleaner took it between its creation and the lock, another is made."""
    for _ in range(5):
        fd, name = create()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            mine = os.fstat(fd)
            there = os.stat(name, follow_symlinks=False)
            if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                return fd, name
        except FileNotFoundError:
            pass
        os.close(fd)
    raise OSError(f"{name}: a temp file kept disappearing")


def remove_abandoned(path: Path, starts: bytes | None = None, empty: bool = False) -> bool:
    """Remove `path` if no live process holds its lock (the writer that made it was killed), it is a plain
    file and, when `starts` is given, it begins with those bytes (`empty`: it holds nothing). Returns whether
    it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive: the daemon in the middle of a compaction
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or (empty and found.st_size):
            return False
        if starts is not None and os.pread(fd, len(starts), 0) != starts:
            return False
        there = os.stat(path, follow_symlinks=False)
        if (there.st_dev, there.st_ino) != (found.st_dev, found.st_ino):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class NamedTable(Table):
    """Documents keyed by what names them ("HD-42", a Message-ID), as the JSON file shows them."""

    document_id_class = str

    def _get_next_id(self):  # every document is written with its own id
        raise StoreError("internal: a state document without a name")


class StateDB(TinyDB):
    table_class = NamedTable


class SnapshotStorage(Storage):
    """TinyDB storage that never leaves a half-written file: temp file, fsync, rename. Mode 0600."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read the state file: {exc.strerror or exc}") from None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: the state file is damaged ({exc.msg} at line {exc.lineno}); {DAMAGED}") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise StoreError(f"{self.path}: the state file is not in the expected form; {DAMAGED}")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """TinyDB's JSON, one document per line (diffable, and readable with any editor)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = claimed(lambda: tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX,
                                                       dir=self.path.parent))
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write the state file ({exc.strerror or exc}); "
                             "its folder must be writable by this user") from None
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as handle:  # fd keeps the lock to the rename
                handle.write(LAYOUT_MARK)
                for number, (name, rows) in enumerate(data.items()):
                    handle.write(("\n},\n" if number else "") + json.dumps(name) + ": {")
                    separator = "\n"
                    for doc_id, row in rows.items():
                        handle.write(separator + json.dumps(str(doc_id)) + ": " + _dumps(row))
                        separator = ",\n"
                handle.write("\n}\n}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:  # a full disk, a read-only folder: the old file stays whole, and the daemon says why
            Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"{self.path}: cannot save the state file ({exc.strerror or exc}); "
                             "nothing is sent until it can be saved") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    def close(self) -> None:
        pass


class Journal:
    """The append-only file of saves since the last compaction: one JSON line each, fsynced."""

    def __init__(self, path: Path):
        self.path = path
        self.new_path = path.with_name(path.name + ".new")  # the empty journal before its rename
        self.end = 0  # bytes of whole lines (a torn last line, left by a kill, is cut off before the next append)

    def read(self, after: int) -> Iterator[dict[str, Any]]:
        """Lines whose `seq` is above `after`; stops at a line a kill cut short (it was never fsynced, so the save
        it belonged to never returned and nothing was sent on its strength)."""
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            self.end = 0
            return
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read the journal ({exc.strerror or exc})") from None
        with handle:
            end = 0
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line) if line.endswith(b"\n") else None
                except json.JSONDecodeError:
                    record = None
                if record is None:
                    if handle.read(1):  # saves follow it: not a torn last line but a damaged journal
                        raise StoreError(f"{self.path}: the journal is damaged at line {number}; {DAMAGED}")
                    break
                end += len(line)
                if record.get("seq", 0) > after:
                    yield record
            self.end = end

    def append(self, record: dict[str, Any]) -> int:
        """One line, durably; on failure the file is as it was (the save did not happen). Returns its size."""
        data = (_dumps(record) + "\n").encode("utf-8", "surrogateescape")
        try:
            if append_durably(self.path, data, after=self.end):
                fsync_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot save the state file ({exc.strerror or exc}); "
                             "nothing is sent until it can be saved") from None
        self.end += len(data)
        return len(data)

    def restart(self) -> None:
        """An empty journal, by rename: a reader that opened the old one keeps reading it whole."""
        tmp = self.new_path
        try:
            fd, _ = claimed(lambda: (os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), str(tmp)))
            try:
                os.replace(tmp, self.path)
            finally:
                os.close(fd)
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot start a new journal ({exc.strerror or exc})") from None
        self.end = 0


class Store:
    """Loads the working set once; each save appends what changed to the journal; `maintain` moves history to the
    archive and compacts. The state in memory is the only copy a process changes (one daemon per state file)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.journal = Journal(self.path.with_name(self.path.name + ".journal"))
        self.archive = Archive(self.path.with_name(self.path.name + ".archive"), encode, decode)
        self.seq = 0  # the last journal line written or read
        self.baseline: dict[str, dict[str, Any]] | None = None  # what the file and journal hold, by table and name
        self.baseline_meta: dict[str, Any] = {}  # _meta_parts as last saved
        self.file_size = 0
        self._migrated = False
        self.partial = False  # loaded without the sent log and ignored mail (read-only commands)
        self._tidied = False
        self._repairs: list[str] = []

    @property
    def repairs(self) -> list[str]:
        """What this store mended when it was first read (temp files a kill left, the archive index), in words
        for `status` and the log; empty when all was well."""
        return self._repairs + self.archive.repairs

    def tidy(self) -> None:
        """Once per store, before its first read: remove what killed compactions left and check the archive."""
        if self._tidied:
            return
        self._tidied = True
        pattern = temp_pattern(self.path.name)
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            names = []
        removed = [name for name in sorted(names) if (match := pattern.fullmatch(name)) and remove_abandoned(
            self.path.parent / name, None if match["suffix"] else LAYOUT_MARK.encode() + b'"')]  # older ones:
        # only a state copy (a probe, or anything else of that name, stays)
        if self.journal.new_path.name in names and remove_abandoned(self.journal.new_path, empty=True):
            removed.append(self.journal.new_path.name)
        if removed:
            self._repairs.append(f"removed {len(removed)} temp file(s) that killed compactions left: {', '.join(removed)}")
            log.warning("%s: %s", self.path.parent, self._repairs[-1])
        self.archive.check()

    # --- reading -------------------------------------------------------------------------------------------

    def open_db(self) -> StateDB:
        """The working set as a TinyDB database (the file with the journal replayed), for queries."""
        self.tidy()
        journal = list(self.journal.read(-1))  # opened first: see the module's docstring
        db = StateDB(self.path, storage=CachingMiddleware(SnapshotStorage))
        raw = db.storage.read() or {}
        if not raw:
            journal = []  # a journal means nothing without the file it follows (its first save writes the file)
        version = _meta(raw).get("schema_version", 1 if raw else SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer mailhelpdesk (schema {version}, this one reads {SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            raw = _migrate(raw)
        after = int(_meta(raw).get("journal_seq", 0))
        self.seq = after
        for record in journal:
            if record.get("seq", 0) <= after:
                continue
            self.seq = record["seq"]
            for name, rows in record.get("put", {}).items():
                raw.setdefault(name, {}).update(rows)
            for name, names in record.get("drop", {}).items():
                table = raw.get(name, {})
                for doc_id in names:
                    table.pop(doc_id, None)
            if "meta" in record:
                meta = raw.setdefault("meta", {}).setdefault("1", {})
                for path, value in record["meta"].get("set", {}).items():
                    section, _, key = path.partition("/")
                    if key:
                        meta.setdefault(section, {})[key] = value
                    else:
                        meta[section] = value
                for path in record["meta"].get("unset", ()):
                    section, _, key = path.partition("/")
                    (meta.get(section, {}) if key else meta).pop(key or section, None)
        db.storage.cache = raw  # CachingMiddleware's cache: TinyDB reads the replayed tables from it
        self.file_size = self.path.stat().st_size if self.path.exists() else 0
        self._migrated = version < SCHEMA_VERSION
        return db

    def load(self, tables: tuple[str, ...] = tuple(TABLES)) -> State:
        """The state; a command that only reads tickets passes `tables=("tickets",)` and the sent log and ignored
        mail are not decoded (such a state must not be saved: `save` refuses it)."""
        db = self.open_db()
        try:
            raw = db.storage.cache or {}  # decoded straight from TinyDB's tables (its Documents would be copies)
            decoded = {name: {doc_id: _decoder(cls)(row) for doc_id, row in raw.get(name, {}).items()}
                       if name in tables else {} for name, (cls, _) in TABLES.items()}
            meta = _meta(raw)
            state = State(
                tickets=dict(sorted(decoded["tickets"].items(), key=lambda kv: kv[1].number)),
                ignored=decoded["ignored"],
                sent=decoded["sent"],
                sender_log={k: [datetime.fromisoformat(t) for t in v] for k, v in meta.get("sender_log", {}).items()},
                cursors=meta.get("cursors", {}),
                quarantine=meta.get("quarantine", {}),
                next_number=meta.get("next_number", 1),
                rr_index=meta.get("rr_index", 0),
            )
        except StoreError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"{self.path}: the state file is not in the expected form ({exc!r}); {DAMAGED}") from None
        if len(tables) == len(TABLES):  # the index serves the rules; a read-only command loading part needs none
            state.rebuild_index()
        state.archive = self.archive
        if len(tables) < len(TABLES):
            self.baseline, self.partial = None, True
        elif self._migrated or not self.file_size:
            self.baseline = None  # the first save writes the file whole (in the new form)
        else:
            self._set_baseline(state)
        return state

    def tickets(self, state: State, since: datetime | None = None,
                fields: frozenset[str] | None = None) -> Iterator[Ticket]:
        """Every ticket once, the work in hand first, then the archive's, streamed (for reports); with `since`,
        the archive's files from that month on; with `fields`, archived tickets with those fields read
        (archive.Archive.tickets)."""
        yield from state.tickets.values()
        yield from self.archive.tickets(skip=state.tickets, since=since, fields=fields)

    def find(self, key: str) -> Ticket | None:
        """One ticket by its key: the working set's document (TinyDB, nothing else decoded), else the archive's."""
        document = self.open_db().table("tickets").get(doc_id=key)
        return decode(Ticket, document) if document is not None else self.archive.find(key)

    def with_status(self, statuses: Iterable[str]) -> tuple[list[Ticket], int]:
        """The working set's tickets in these statuses (a TinyDB query, only its matches decoded), and how many
        tickets the working set holds."""
        table = self.open_db().table("tickets")
        found = table.search(Query().status.one_of(sorted(statuses)))
        return [decode(Ticket, document) for document in found], len(table)

    # --- writing -------------------------------------------------------------------------------------------

    def save(self, state: State) -> None:
        """What changed since the last save, as one journal line (fsynced). A store that has not loaded this
        state (a rebuild, a migration) writes the file whole instead."""
        if self.partial:
            raise StoreError(f"{self.path}: internal: a state loaded in part cannot be saved")
        if self.baseline is None:
            self.compact(state)
            return
        put: dict[str, dict[str, Any]] = {}
        drop: dict[str, list[str]] = {}
        for name in TABLES:
            current, before = getattr(state, name), self.baseline[name]
            changed = {k: v for k, v in current.items() if before.get(k) is not v}  # records are replaced, never changed
            gone = [k for k in before if k not in current]
            if changed:
                put[name] = {k: encode(v) for k, v in changed.items()}
            if gone:
                drop[name] = gone
        meta = _meta_parts(state)
        changed_meta = {k: v for k, v in meta.items() if self.baseline_meta.get(k) != v}
        unset = [k for k in self.baseline_meta if k not in meta]
        if not put and not drop and not changed_meta and not unset:
            return
        record: dict[str, Any] = {"seq": self.seq + 1}
        if put:
            record["put"] = put
        if drop:
            record["drop"] = drop
        if changed_meta or unset:  # by key: a pass that moves a cursor writes that cursor, not every sender's log
            record["meta"] = {"set": {k: _meta_value(state, k) for k in changed_meta}, "unset": unset}
        self.journal.append(record)
        self.seq += 1
        for name in TABLES:
            table = self.baseline[name]
            for key in drop.get(name, ()):
                table.pop(key, None)
            for key in put.get(name, ()):
                table[key] = getattr(state, name)[key]
        self.baseline_meta = meta

    def compact(self, state: State) -> None:
        """The whole working set into the file (through TinyDB), then a new journal."""
        db = StateDB(self.path, storage=CachingMiddleware(SnapshotStorage))
        db.storage.cache = {}
        for name in TABLES:
            db.table(name).insert_multiple(_documents(getattr(state, name)))
        meta = _meta_of(state) | {"schema_version": SCHEMA_VERSION, "journal_seq": self.seq}
        db.table("meta").insert(Document(meta, "1"))  # type: ignore[arg-type]
        db.storage.flush()  # SnapshotStorage.write: atomic
        self.journal.restart()
        self.file_size = self.path.stat().st_size
        self._set_baseline(state)
        state.archive = self.archive

    def _set_baseline(self, state: State) -> None:
        self.baseline = {name: dict(getattr(state, name)) for name in TABLES}
        self.baseline_meta = _meta_parts(state)

    def maintain(self, state: State, now: datetime, sender_window: timedelta = timedelta(hours=24)) -> int:
        """Between passes: history to the archive, old sender counts forgotten, the journal compacted when it has
        grown. Returns how many records moved to the archive."""
        moved = self.move_history(state, now)
        horizon = now - max(sender_window, timedelta(hours=1))
        for sender in [s for s, times in state.sender_log.items() if not times or times[-1] < horizon]:
            del state.sender_log[sender]
        self.save(state)
        if self.journal.end > max(COMPACT_AT, self.file_size // 2):
            try:
                self.compact(state)
            except StoreError as exc:  # the journal holds every save: compaction waits for space, nothing is lost
                log.warning("%s (the journal keeps every change meanwhile)", exc)
        return moved

    def move_history(self, state: State, now: datetime) -> int:
        """Closed, quiet tickets (with their sent log), old ignored mail and old ticketless sends: appended to the
        archive, then taken out of the state (the next save journals that they went)."""
        waiting = {r.ticket for r in state.sent.values() if not r.done}
        by_ticket: dict[str, list[SentRecord]] = {}
        for record in state.sent.values():
            by_ticket.setdefault(record.ticket, []).append(record)
        entries = [Entry(ticket=t, sent=tuple(by_ticket.get(t.key, ())))
                   for t in state.tickets.values() if t.key not in waiting and archive.is_history(t, now)]
        entries += [Entry(ignored=i) for i in state.ignored.values() if now - i.at >= archive.IGNORED_AFTER]
        ticketless = tuple(r for key, records in by_ticket.items() if key not in state.tickets for r in records
                           if r.done and (key or now - r.at >= archive.TICKETLESS_SENT_AFTER))  # digests; or the
        # sent log of a ticket the state no longer holds (a rebuild finds our copies of archived tickets' mail)
        if ticketless:
            entries.append(Entry(sent=ticketless))
        if not entries:
            return 0
        try:
            self.archive.add(entries, now)  # durable before the state forgets anything
        except StoreError as exc:  # the tickets stay in the state, which stays right; the next pass tries again
            log.warning("%s", exc)
            return 0
        for entry in entries:
            if entry.ticket is not None:
                state.forget_ticket(entry.ticket)
            for record in entry.sent:
                state.sent.pop(record.message_id, None)
                state.index.pop(record.message_id, None)
            if entry.ignored is not None:
                state.forget_ignored(entry.ignored)
        return len(entries)


def _documents(rows: dict[str, Any]) -> Iterator[Document]:
    return (Document(encode(v), k) for k, v in rows.items())  # type: ignore[arg-type]  (named, not numbered)


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    return next(iter(raw.get("meta", {}).values()), {}) or {}


def _meta_of(state: State) -> dict[str, Any]:
    return {
        "next_number": state.next_number,
        "rr_index": state.rr_index,
        "cursors": state.cursors,
        "quarantine": state.quarantine,
        "sender_log": {k: [t.isoformat() for t in v] for k, v in state.sender_log.items()},
    }


def _meta_parts(state: State) -> dict[str, Any]:
    """The meta document as "section/key" parts, each with a cheap fingerprint of its value (JSON for cursors; the
    length for a sender's log, which only grows until the sender is dropped whole)."""
    parts: dict[str, Any] = {"next_number": state.next_number, "rr_index": state.rr_index}
    parts.update((f"cursors/{k}", _dumps(v)) for k, v in state.cursors.items())
    parts.update((f"quarantine/{k}", v) for k, v in state.quarantine.items())
    parts.update((f"sender_log/{k}", len(v)) for k, v in state.sender_log.items())
    return parts


def _meta_value(state: State, path: str) -> Any:
    section, _, key = path.partition("/")
    if section == "sender_log":
        return [t.isoformat() for t in state.sender_log[key]]
    return getattr(state, section)[key] if key else getattr(state, section)


def _migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (tables keyed 1, 2, 3 ...) to 2 (keyed by name). The closed tickets it holds move to the archive
    at the daemon's first `maintain`."""
    migrated: dict[str, Any] = {"meta": {"1": dict(_meta(raw), schema_version=SCHEMA_VERSION, journal_seq=0)}}
    for name, (_, key) in TABLES.items():
        migrated[name] = {row[key]: row for row in raw.get(name, {}).values()}
    return migrated


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encode(value: Any) -> Any:
    if isinstance(value, History):
        rows = value.rows()  # never read since it was loaded: written back as it was
        return rows if rows is not None else [encode(h) for h in value]
    if dataclasses.is_dataclass(value):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def _plain(data: Any) -> Any:
    return data


@functools.lru_cache(maxsize=None)
def _decoder(hint: Any) -> Callable[[Any], Any]:
    """A function that turns JSON into a value of type `hint`, built once per type: a load is a tight loop that
    converts only the fields JSON cannot hold as they are (dates, enums, tuples, nested records)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = _decoder(next(a for a in args if a is not type(None)))
        return inner if inner is _plain else (lambda data: None if data is None else inner(data))
    if dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    if origin is tuple and args[0] is HistoryEntry:
        return History  # decoded when first read (model.History)
    if origin is tuple:
        item = _decoder(args[0])
        return tuple if item is _plain else (lambda data: tuple(map(item, data)))
    if origin is list:
        item = _decoder(args[0])
        return list if item is _plain else (lambda data: list(map(item, data)))
    if hint is datetime:
        return datetime.fromisoformat
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    return _plain


_ABSENT = object()


@functools.lru_cache(maxsize=None)
def _dataclass_decoder(cls: type, only: frozenset[str] | None = None) -> Callable[[Any], Any]:
    """One generated function per record type: each field read from the JSON object, converted where it must be,
    its default where the object lacks it (written by an older version); keys this version does not know are
    left (written by a newer one). Generated because it runs for every ticket and history entry of a load.
    `only`: read just these fields (the rest keep their defaults): a report over a year needs a few."""
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {"cls": cls, "_ABSENT": _ABSENT}
    args: list[tuple[str, str]] = []  # (field, the expression that reads it)
    for number, f in enumerate(dataclasses.fields(cls)):
        if only is not None and f.name not in only:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}.{f.name} has no default: it cannot be left out")
            continue
        convert = _decoder(hints[f.name])
        if convert is not _plain:
            namespace[f"c{number}"] = convert
        wrap = (lambda expr: f"c{number}({expr})") if convert is not _plain else (lambda expr: expr)
        if f.default is not dataclasses.MISSING:
            namespace[f"d{number}"] = f.default
            args.append((f.name, wrap(f"get({f.name!r}, d{number})")))
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"f{number}"] = f.default_factory
            args.append((f.name, f"(f{number}() if (v{number} := get({f.name!r}, _ABSENT)) is _ABSENT else {wrap(f'v{number}')})"))
        else:
            args.append((f.name, wrap(f"data[{f.name!r}]")))
    # by position when every field is read; by keyword when some are left out (they keep their defaults)
    call = ", ".join(expr if only is None else f"{name}={expr}" for name, expr in args)
    source = f"def decode(data):\n    get = data.get\n    return cls({call})\n"
    exec(source, namespace)  # noqa: S102  (our own field names, from the dataclass)
    return namespace["decode"]


def decode(hint: Any, data: Any, only: frozenset[str] | None = None) -> Any:
    """JSON to a value of type `hint`; for a record type, `only` these fields (the others keep their defaults)."""
    if data is None:
        return None
    return _dataclass_decoder(hint, only)(data) if only is not None else _decoder(hint)(data)


__all__ = ["Store", "StateDB", "Query", "encode", "decode", "SCHEMA_VERSION"]
