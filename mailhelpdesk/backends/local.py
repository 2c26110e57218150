"""A directory mailbox for the demo and for trying rules offline: INBOX/ and Sent/ hold .eml files,
labels.json holds each message's labels with a change counter (like IMAP's MODSEQ)."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Iterable, Iterator

from mailhelpdesk.config import Config
from mailhelpdesk.backends.base import Changes, RawMessage
from mailhelpdesk.capabilities import LOCAL

FOLDERS = (("INBOX", "inbox"), ("Sent", "sent"))


class LocalMailbox:
    CAPABILITIES = LOCAL
    kind = LOCAL.name

    @classmethod
    def from_config(cls, config: Config) -> "LocalMailbox":
        return cls(config.resolve(config.local.path), config)

    def __init__(self, path: Path, config: Config | None = None):
        self.path = Path(path)
        self.labels_file = self.path / "labels.json"

    def connect(self) -> None:
        for folder, _ in FOLDERS:
            (self.path / folder).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        pass

    def describe(self) -> list[str]:
        return [f"local directory mailbox at {self.path}", "labels are kept in labels.json beside the mail"]

    def prepare(self, labels: Iterable[str], create: bool = True) -> list[str]:
        self.connect()
        return []

    # --- labels store -------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.labels_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"modseq": 0, "messages": {}}

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.labels_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.labels_file)

    def labels_of(self, ref: str) -> frozenset[str]:
        return frozenset(self._load()["messages"].get(ref, {}).get("labels", ()))

    def set_labels(self, refs: Iterable[str], add: frozenset[str], remove: frozenset[str]) -> None:
        data = self._load()
        for ref in refs:
            entry = data["messages"].setdefault(ref, {"labels": [], "modseq": 0})
            new = (set(entry["labels"]) - remove) | add
            if new != set(entry["labels"]):
                data["modseq"] += 1
                entry.update(labels=sorted(new), modseq=data["modseq"])
        self._save(data)

    # --- messages -------------------------------------------------------------------------------

    def deliver(self, folder: str, raw: bytes, when: datetime | None = None) -> str:
        """Put a message into a folder (how mail arrives in the demo); returns its ref."""
        directory = self.path / folder
        directory.mkdir(parents=True, exist_ok=True)
        number = len(list(directory.glob("*.eml"))) + 1
        name = f"{number:06d}.eml"
        (directory / name).write_bytes(raw)
        if when is not None:
            stamp = when.timestamp()
            os.utime(directory / name, (stamp, stamp))
        return f"{folder}/{name}"

    def changes(self, cursor: dict[str, Any], since: datetime) -> Changes:
        data = self._load()
        new_cursor = {"modseq": data["modseq"]}
        fresh: list[tuple[str, str, Path]] = []
        for folder, role in FOLDERS:
            last = cursor.get(folder, "")
            files = sorted((self.path / folder).glob("*.eml"))
            fresh += [(f"{folder}/{f.name}", role, f) for f in files if f.name > last]
            new_cursor[folder] = files[-1].name if files else last
        old_modseq = cursor.get("modseq")
        label_changes = []
        if old_modseq is not None:
            label_changes = [
                (ref, frozenset(entry["labels"]))
                for ref, entry in data["messages"].items()
                if entry["modseq"] > old_modseq
            ]

        def messages() -> Iterator[RawMessage]:
            for ref, role, file in fresh:
                received = datetime.fromtimestamp(file.stat().st_mtime, UTC)
                if received < since and not cursor:
                    continue
                yield RawMessage(ref, role, file.read_bytes(), self.labels_of(ref), received)

        return Changes(messages(), label_changes, new_cursor)

    def send(self, message: EmailMessage, labels: frozenset[str], thread_id: str = "") -> str:
        ref = self.deliver("Sent", bytes(message), datetime.now(UTC))
        self.set_labels([ref], labels, frozenset())
        return ref

    def already_sent(self, message_id: str) -> bool:
        needle = message_id.encode()
        return any(needle in f.read_bytes() for f in (self.path / "Sent").glob("*.eml"))

    def keep_record(self, message: EmailMessage, folder: str) -> None:
        self.deliver(folder.replace("/", "."), bytes(message), datetime.now(UTC))

    def records(self, folder: str) -> Iterator[bytes]:
        for file in sorted((self.path / folder.replace("/", ".")).glob("*.eml")):
            yield file.read_bytes()

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        (stop or threading.Event()).wait(timeout)
