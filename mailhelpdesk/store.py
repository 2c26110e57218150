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
from typing import Any

from tinydb import TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

from .errors import StoreError
from .model import Ignored, SentRecord, State, Ticket

SCHEMA_VERSION = 1


class AtomicJSONStorage(Storage):
    """TinyDB storage that never leaves a half-written file: write a temp file, fsync, rename. Mode 0600."""

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
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{self.path}: the state file is damaged ({exc.msg} at line {exc.lineno}); "
                "move it aside and run `mailhelpdesk rebuild` to recover the tickets from the mailbox"
            ) from None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")))  # the C encoder
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

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
        data = AtomicJSONStorage(self.path).read() or {}
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
                index={sys.intern(k): sys.intern(v) for k, v in meta.get("index", {}).items()},
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
        return state

    def save(self, state: State) -> None:
        """One atomic write of every table, in TinyDB's format (TinyDB(path) opens it)."""
        meta = {
            "schema_version": SCHEMA_VERSION,
            "next_number": state.next_number,
            "rr_index": state.rr_index,
            "index": state.index,
            "cursors": state.cursors,
            "quarantine": state.quarantine,
            "sender_log": {k: [t.isoformat() for t in v] for k, v in state.sender_log.items()},
        }
        AtomicJSONStorage(self.path).write({
            "tickets": _rows(state.tickets.values()),
            "ignored": _rows(state.ignored.values()),
            "sent": _rows(state.sent.values()),
            "meta": {"1": meta},
        })


def _rows(items) -> dict[str, Any]:
    return {str(number): encode(item) for number, item in enumerate(items, start=1)}


def _table(data: dict[str, Any], name: str, cls: type, key: str) -> dict[str, Any]:
    rows = data.pop(name, {}) or {}
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
