"""The JSON state file (TinyDB): atomic writes, a schema version, and a clear error when it is unreadable."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import tempfile
import types
import typing
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

from tinydb import TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

from .errors import StoreError
from .model import Ignored, SentRecord, State, Ticket

SCHEMA_VERSION = 1
LAYOUT_MARK = "{\n"  # our files start with a bare "{" line, then one document per line


class AtomicJSONStorage(Storage):
    """TinyDB storage that never leaves a half-written file: write a temp file, fsync, rename. Mode 0600."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def read_rows(self) -> Iterator[tuple[str, str, Any]] | None:
        """(table, doc id, document) one at a time from a file in our line layout; None for any other file
        (written by TinyDB itself, or hand-edited): then `read` parses it whole."""
        try:
            handle = open(self.path, encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read the state file: {exc.strerror or exc}") from None
        if handle.readline() != LAYOUT_MARK.rstrip("\n") + "\n":
            handle.close()
            return None

        def rows() -> Iterator[tuple[str, str, Any]]:
            table = ""
            with handle:
                for number, line in enumerate(handle, start=2):
                    line = line.rstrip("\n")
                    if not line or line.startswith("}"):
                        continue
                    try:
                        if line.endswith(": {"):
                            table = json.loads(line[:-3])
                            continue
                        doc_id, row = next(iter(json.loads("{" + line.rstrip(",") + "}").items()))
                    except (json.JSONDecodeError, StopIteration) as exc:
                        raise StoreError(
                            f"{self.path}: the state file is damaged (line {number}: {exc}); "
                            "move it aside and run `mailhelpdesk rebuild` to recover the tickets from the mailbox"
                        ) from None
                    yield table, doc_id, row

        return rows()

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
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{self.path}: the state file is damaged ({exc.msg} at line {exc.lineno}); "
                "move it aside and run `mailhelpdesk rebuild` to recover the tickets from the mailbox"
            ) from None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.write_tables({name: iter(rows.items()) for name, rows in data.items()})

    def write_tables(self, tables: dict[str, Iterator[tuple[str, Any]]]) -> None:
        """TinyDB's JSON, one document per line, written as it is encoded (never one giant string), so
        `read_rows` can read it back a line at a time."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write the state file ({exc.strerror or exc}); "
                             "its folder must be writable by this user") from None
        try:
            self._write_temp(fd, tables)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:  # a full disk, a read-only folder: the old file stays whole, and the daemon says why
            Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"{self.path}: cannot save the state file ({exc.strerror or exc}); "
                             "nothing is sent until it can be saved") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _write_temp(fd: int, tables: dict[str, Iterator[tuple[str, Any]]]) -> None:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(LAYOUT_MARK)
            for number, (name, rows) in enumerate(tables.items()):
                handle.write(("\n},\n" if number else "") + json.dumps(name) + ": {")
                separator = "\n"
                for doc_id, row in rows:
                    handle.write(separator + json.dumps(doc_id) + ": " + json.dumps(row, ensure_ascii=False, separators=(",", ":")))
                    separator = ",\n"
            handle.write("\n}\n}\n")
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        pass


class Store:
    """Loads the whole state at start and saves it in one atomic write per pass."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def _db(self) -> TinyDB:
        middleware = CachingMiddleware(AtomicJSONStorage)
        middleware.WRITE_CACHE_SIZE = 1 << 30  # we flush once, explicitly
        return TinyDB(self.path, storage=middleware)

    def load(self) -> State:
        """The whole state, decoded straight from TinyDB's tables (no per-document copies), each table
        freed as it is read, so loading a large file needs little more than the objects it yields."""
        storage = AtomicJSONStorage(self.path)
        rows = storage.read_rows()
        if rows is None:
            data = storage.read() or {}
        else:
            data = {"tickets": {}, "ignored": {}, "sent": {}, "meta": {}}
            decoders = {"tickets": (Ticket, "key"), "ignored": (Ignored, "message_id"), "sent": (SentRecord, "message_id")}
            decoded: dict[str, dict[str, Any]] = {name: {} for name in decoders}
            try:
                for table, _, row in rows:  # decoded as read: the file's JSON tree never exists whole
                    if table in decoders:
                        cls, key = decoders[table]
                        item = decode(cls, row)
                        decoded[table][getattr(item, key)] = item
                    else:
                        data.setdefault(table, {})[_] = row
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise StoreError(f"{self.path}: the state file is not in the expected form ({exc!r}); "
                                 "move it aside and run `mailhelpdesk rebuild`") from None
            if not data["meta"]:  # written last: without it the file was cut short
                raise StoreError(f"{self.path}: the state file is damaged (it ends early); "
                                 "move it aside and run `mailhelpdesk rebuild` to recover the tickets from the mailbox")
            data.update({name: _Decoded(items) for name, items in decoded.items()})
        try:
            meta = next(iter(data.pop("meta", {}).values()), {})
            version = meta.get("schema_version", SCHEMA_VERSION)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer mailhelpdesk (schema {version}, this one reads {SCHEMA_VERSION})"
                )
            state = State(
                tickets=_table(data, "tickets", Ticket, "key"),
                ignored=_table(data, "ignored", Ignored, "message_id"),
                sent=_table(data, "sent", SentRecord, "message_id"),
                sender_log={k: [datetime.fromisoformat(t) for t in v] for k, v in meta.get("sender_log", {}).items()},
                cursors=meta.get("cursors", {}),
                quarantine=meta.get("quarantine", {}),
                next_number=meta.get("next_number", 1),
                rr_index=meta.get("rr_index", 0),
            )
        except StoreError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(
                f"{self.path}: the state file is not in the expected form ({exc!r}); "
                "move it aside and run `mailhelpdesk rebuild`"
            ) from None
        state.rebuild_index()
        return state

    def save(self, state: State) -> None:
        """One atomic write of every table, in TinyDB's format (TinyDB(path) opens it)."""
        meta = {
            "schema_version": SCHEMA_VERSION,
            "next_number": state.next_number,
            "rr_index": state.rr_index,
            "cursors": state.cursors,
            "quarantine": state.quarantine,
            "sender_log": {k: [t.isoformat() for t in v] for k, v in state.sender_log.items()},
        }
        AtomicJSONStorage(self.path).write_tables({
            "tickets": _rows(state.tickets.values()),
            "ignored": _rows(state.ignored.values()),
            "sent": _rows(state.sent.values()),
            "meta": iter([("1", meta)]),
        })


def _rows(items) -> Iterator[tuple[str, Any]]:
    return ((str(number), encode(item)) for number, item in enumerate(items, start=1))


class _Decoded(dict):
    """A table whose rows are already objects (the streaming reader decodes as it reads)."""


def _table(data: dict[str, Any], name: str, cls: type, key: str) -> dict[str, Any]:
    rows = data.pop(name, {}) or {}
    if isinstance(rows, _Decoded):
        return dict(sorted(rows.items(), key=lambda kv: _order(kv[1]))) if cls is Ticket else dict(rows)
    result = {}
    while rows:
        _, row = rows.popitem()
        item = decode(cls, row)
        result[getattr(item, key)] = item
    return dict(sorted(result.items(), key=lambda kv: _order(kv[1]))) if cls is Ticket else result


def _order(ticket: Any) -> int:
    return ticket.number


def encode(value: Any) -> Any:
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


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    """Field types of a dataclass (evaluating annotations is slow: once per class, not per object)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def decode(hint: Any, data: Any) -> Any:
    if data is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return decode(next(a for a in args if a is not type(None)), data)
    if dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        return hint(**{k: decode(hints[k], v) for k, v in data.items() if k in hints})
    if origin is tuple:
        return tuple(decode(args[0], v) for v in data)
    if origin is list:
        return [decode(args[0], v) for v in data]
    if hint is datetime:
        return datetime.fromisoformat(data)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(data)
    if isinstance(data, str) and len(data) < 64:
        return sys.intern(data)  # keys, addresses and ids repeat across tickets and the index
    return data
