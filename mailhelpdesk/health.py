"""What `status` shows, kept beside the state: when the last pass succeeded, the last error, and a summary of the
work in hand as of that pass, so that `status` (a monitoring probe, every few minutes) never loads the state."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .model import State, Status
from .sla_state import sla_state

log = logging.getLogger("mailhelpdesk")

QUARANTINE_SHOWN = 20


def summary(state: State, now: datetime) -> dict[str, Any]:
    """The figures `status` prints, from the state as a pass left it."""
    active = [t for t in state.tickets.values() if t.status == Status.OPEN]
    sent = state.sends_last_day(now)
    if sent is None:  # a state from before the counter: what the sent log still holds
        sent = sum(1 for r in state.sent.values() if r.done and r.mail is None and now - r.at < timedelta(hours=24))
    return {
        "as_of": now.astimezone(UTC).isoformat(),
        "open": len(active),
        "overdue": sum(sla_state(t, now).overdue for t in active),
        "unassigned": sum(1 for t in active if not t.assignee),
        "pending": sum(1 for t in state.tickets.values() if t.status == Status.PENDING),
        "quarantined": len(state.quarantine),
        "quarantine": dict(list(state.quarantine.items())[:QUARANTINE_SHOWN]),
        "ack_rate_limited": state.cursors.get("ack_rate_limited") or {},
        "template_error": state.cursors.get("template_error") or {},
        "sent_last_day": sent,
        "waiting": sum(1 for r in state.sent.values() if not r.done),
    }


class Health:
    """A tiny file beside the state: when the last pass succeeded, and the last error (for `status`)."""

    def __init__(self, state_file: Path):
        self.path = state_file.with_name(state_file.name + ".health")

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def newer_than_state(self) -> bool:
        """Written after the state's last change (its file and journal): its summary is the state's."""
        try:
            mine = self.path.stat().st_mtime_ns
        except OSError:
            return False
        state = self.path.with_name(self.path.name.removesuffix(".health"))
        for path in (state, state.with_name(state.name + ".journal")):
            try:
                if path.stat().st_mtime_ns > mine:
                    return False
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True

    def write(self, **changes: object) -> None:
        """Best effort: a full disk or a read-only folder must not turn a report about a problem into a crash."""
        data = self.read()
        data.update(changes, pid=os.getpid())
        text = json.dumps(data, default=str)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if not self._overwrite(text):  # a full disk still lets a small file be rewritten in its own blocks
                log.warning("cannot write the health file %s: %s", self.path, exc.strerror or exc)

    def _overwrite(self, text: str) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except OSError:
            return False
        try:
            data = text.encode()
            if os.write(fd, data) != len(data):
                return False
            os.ftruncate(fd, len(data))
            return True
        except OSError:
            return False
        finally:
            os.close(fd)


