"""What `status` shows, kept beside the state: when the last pass succeeded, the last error, and a summary of the
work in hand as of that pass, so that `status` (a monitoring probe, every few minutes) never loads the state."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailhelpdesk.model import HistoryEvent, State, Status, Ticket
from mailhelpdesk.core.sla_state import sla_state

log = logging.getLogger("mailhelpdesk")

QUARANTINE_SHOWN = 20
WITHHELD_WINDOW = timedelta(days=7)  # `status` counts the acknowledgements withheld this far back
WITHHELD = (HistoryEvent.ACK_WITHHELD, HistoryEvent.ACK_SKIPPED)
SEND_RETRY_FIRST = timedelta(seconds=10)  # after the SMTP server as a whole failed: 10 s, doubling, at most 5 min
SEND_RETRY_MOST = timedelta(minutes=5)


@dataclass(frozen=True)
class Sending:
    """How sending goes, across passes and restarts (kept in the health file for `status`): failing since when
    and why, and when to try again. After a failure of the server as a whole (down, refusing, silent, 421) later
    passes leave the outbox alone until `retry_at`, so a server that is not there holds no pass: new mail is
    fetched and labelled meanwhile, and the outbox waits. Pure: `now` in, a new Sending out."""

    failing_since: datetime | None = None
    reason: str = ""
    failures: int = 0  # in a row, in this process (the backoff starts again at a restart)
    retry_at: datetime | None = None
    recovered_at: datetime | None = None  # the last outage: when it ended ...
    failed_from: datetime | None = None  # ... and when it began

    def failed(self, now: datetime, reason: str) -> Sending:
        failures = self.failures + 1
        wait = min(SEND_RETRY_FIRST * 2 ** min(failures - 1, 16), SEND_RETRY_MOST)
        return Sending(self.failing_since or now, reason, failures, now + wait)

    def worked(self, now: datetime) -> Sending:
        """A mail was handed over: the outage, if any, is over."""
        return self if self.failing_since is None else Sending(recovered_at=now, failed_from=self.failing_since)

    def waits(self, now: datetime) -> bool:
        """Backing off: this pass sends nothing (the outbox keeps every mail)."""
        return self.retry_at is not None and now < self.retry_at

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (v.isoformat() if isinstance(v, datetime) else v)
                for f in dataclasses.fields(self) if (v := getattr(self, f.name)) not in (None, "", 0)}

    @classmethod
    def restored(cls, data: Any) -> Sending:
        """What a previous process left in the health file: an outage goes on (its start and reason), its
        backoff does not (a new process tries at once)."""
        if not isinstance(data, dict):
            return cls()

        def when(key: str) -> datetime | None:
            try:
                return datetime.fromisoformat(data[key]) if data.get(key) else None
            except (TypeError, ValueError):
                return None

        return cls(when("failing_since"), str(data.get("reason") or ""), recovered_at=when("recovered_at"),
                   failed_from=when("failed_from"))


def withheld_since(ticket: Ticket, since: datetime) -> bool:
    """An acknowledgement of this ticket was withheld (a guard, a ceiling) at or after `since`. The rows are
    looked at first, without decoding the history (a pass asks it of every ticket)."""
    history = ticket.history
    holds = getattr(history, "holds", None)
    if holds is not None and not any(holds(what) for what in WITHHELD):
        return False
    return any(h.what in WITHHELD and h.at >= since for h in history)


def summary(state: State, now: datetime) -> dict[str, Any]:
    """The figures `status` prints, from the state as a pass left it."""
    active = [t for t in state.tickets.values() if t.status == Status.OPEN]
    withheld = [t.key for t in state.tickets.values() if withheld_since(t, now - WITHHELD_WINDOW)]
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
        "acks_withheld_7d": len(withheld),
        "acks_withheld_keys": withheld[-10:],
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


