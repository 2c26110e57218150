"""The loop: fetch changes, decide, apply, save. Small, and it never dies on one bad message."""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Callable

from mailhelpdesk.core import clock_guard

from mailhelpdesk.app import digest_request

from mailhelpdesk.store import records
from mailhelpdesk.config import Config
from mailhelpdesk.app.effects import Effects, coalesce_labels, describe
from mailhelpdesk.core.engine import Engine
from mailhelpdesk.errors import LockError, MailboxError, StateFileError, StateLostError, StoreError
from mailhelpdesk.app.health import Health, Sending, summary
import secrets

from mailhelpdesk.core.mail.factory import ID_SECRET, UPGRADE_WINDOW, MailFactory
from mailhelpdesk.backends import open_mailbox
from mailhelpdesk.backends.base import Mailbox, stop_on
from mailhelpdesk.core.relocation import relocate
from mailhelpdesk.model import Action, Incoming, SendMail, SetLabels, State
from mailhelpdesk.core.labels import records_label
from mailhelpdesk.core.order import in_order
from mailhelpdesk.core.mail.parse import parse_message
from mailhelpdesk.store.state import Store
from mailhelpdesk.app.systemd import notify

log = logging.getLogger("mailhelpdesk")

MAINTAIN_EVERY = timedelta(hours=1)  # an idle daemon still moves tickets that became history with time
REPAIRS_KEPT = 10  # the store's repairs `status` shows, newest last


def since_boot() -> float:
    """Seconds on a clock that never steps and goes on while the machine sleeps (CLOCK_BOOTTIME; a suspended
    VM's wall clock jumps ahead by the time it slept, and so must this one, or the jump would look false)."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


@dataclass
class PassReport:
    messages: int = 0
    label_changes: int = 0
    planned: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    sends: dict[str, int] = field(default_factory=dict)  # mails this pass sends (or would send), by kind


class Helpdesk:
    """One mailbox, one state file, one engine. `clock` is the wall clock; `monotonic` (seconds) guards against
    its jumps (core/clock_guard.py): the system's boot-time clock by default, none when a clock is injected without
    one (a test that moves its clock between passes means it)."""

    def __init__(self, config: Config, mailbox: Mailbox | None = None, clock: Callable[[], datetime] | None = None,
                 monotonic: Callable[[], float] | None = None):
        self.config = config
        self.engine = Engine(config)
        self.mailbox = mailbox or open_mailbox(config)
        self.store = Store(config.resolve(config.helpdesk.state_file))
        self.clock = clock or (lambda: datetime.now(UTC))
        self.monotonic = monotonic or (since_boot if clock is None else None)
        self.time: clock_guard.Reading | None = None  # the time the last pass decided on, and why (core/clock_guard.py)
        self.state: State = self.store.load()
        path = self.store.path
        self._state_missing = not path.exists() or path.stat().st_size == 0  # lost, or never written yet
        self.health = Health(self.store.path)
        self.sending = Sending.restored(self.health.read().get("sending"))  # an outage outlives a restart
        self._prepared = False
        self.unsaved = ""  # why the state in memory could not be saved ("" when it was)
        self._maintained_at: datetime | None = None
        self.progress: Callable[[int, int | None], None] = lambda seen, expected: None  # per message fetched
        self._repairs_told = 0
        self._tell_repairs(self.clock())

    def _tell_repairs(self, now: datetime) -> None:
        """What the store mended (temp files of a killed compaction, an archive index rebuilt: store/state.py) goes into
        the health file, so `status` says so; the store has logged it already."""
        repairs = self.store.repairs
        if len(repairs) > self._repairs_told:
            told = self.health.read().get("repairs", [])
            new = [{"at": now.isoformat(), "what": what} for what in repairs[self._repairs_told:]]
            self.health.write(repairs=(told + new)[-REPAIRS_KEPT:])
            self._repairs_told = len(repairs)

    def save(self) -> None:
        """Write the state. When it cannot be written (a full disk, a read-only folder) the state in memory is the
        truth (it knows what was sent): it is kept, and the next pass saves it before it does anything else."""
        try:
            self.store.save(self.state)
        except StoreError as exc:
            self.unsaved = str(exc)
            raise
        self.unsaved = ""

    def sending_failed(self, reason: str, now: datetime | None = None) -> None:
        """The SMTP server failed as a whole (at start-up, or in a pass): `status` says so, and the outbox waits
        out a backoff before the next try (health.Sending)."""
        self.sending = self.sending.failed(now or self.clock(), reason)
        self.health.write(sending=self.sending.as_dict())
        log.info("the outbox waits until %s (sending fails since %s)", self.sending.retry_at.isoformat(),
                 self.sending.failing_since.isoformat())

    def sending_works(self, now: datetime | None = None) -> None:
        """The SMTP server took us (logged in at start-up, or took a mail): an outage, if any, is over."""
        if self.sending.failing_since is not None:
            now = now or self.clock()
            minutes = (now - self.sending.failing_since).total_seconds() // 60
            log.warning("sending works again after %d min of failing (since %s)", minutes,
                        self.sending.failing_since.isoformat())
            self.sending = self.sending.worked(now)
            self.health.write(sending=self.sending.as_dict())

    def _time(self, wall: datetime, monotonic: float | None, arrival: datetime | None) -> clock_guard.Reading:
        if monotonic is None:  # an injected clock, unguarded
            return clock_guard.Reading(wall, clock_guard.Anchor(wall, 0.0))
        return clock_guard.decide(self.time.anchor if self.time else None, wall, monotonic, arrival)

    def run_pass(self, dry_run: bool = False) -> PassReport:
        """One pass over the mailbox. With dry_run, decide everything and change nothing."""
        wall = self.clock()
        monotonic = self.monotonic() if self.monotonic is not None else None
        now = self._time(wall, monotonic, None).now  # until this pass's mail says what the server's clock says
        report = PassReport()
        if self.unsaved and not dry_run:
            self.save()  # fail closed: nothing is fetched, decided or sent until the state is on disk again
            log.info("the state file is saved again; the helpdesk goes on")
        if not self._prepared:
            self.mailbox.connect()
            self.mailbox.prepare(self.engine.labels.to_create(), create=not dry_run)
            self._prepared = not dry_run  # a real pass after a dry run creates what the labels need
        state = self.state.copy() if dry_run else self.state  # a dry run decides on a copy: the state stays as it was
        keep_secret(self.engine.ctx.mail, state, now)  # the Message-ID secret, made at the first pass (not by the core)
        since = now - timedelta(days=self.config.imap.import_days)
        changes = self.mailbox.changes(state.cursors, since)
        state.merge(relocate(state, changes.relocations))  # a folder whose UIDVALIDITY changed: same mail, new refs
        report.notes += changes.notes
        actions: list[Action] = []
        incoming: list[Incoming] = []
        for seen, raw in enumerate(changes.messages, 1):
            self.progress(seen, changes.expected)
            try:
                facts = parse_message(raw.raw, self.config.helpdesk.ticket_prefix)
            except Exception as exc:  # the parser is meant never to raise; if it does, keep the mail and go on
                self._quarantine(state, raw.ref, f"unreadable: {type(exc).__name__}: {exc}", actions, report)
                report.messages += 1
                continue
            incoming.append(Incoming(raw.ref, raw.folder_role, facts, raw.labels, raw.received_at, raw.thread_id))
            report.messages += not state.is_ours(facts.message_id)  # our own sent copies are not news
        if self._state_missing:
            self._refuse_if_managed(incoming)
        reading = self._time(wall, monotonic, newest_arrival(incoming))
        now = reading.now
        if not dry_run:
            self.time = reading
            if reading.note:
                log.warning("%s", reading.note)
        incoming = in_order(incoming, now)
        # label changes first: they were read before this pass decided anything, so they compare
        # against the labels as the previous pass left them
        report.label_changes = len(changes.label_changes)
        plan = self.engine.on_labels(state, changes.label_changes, now)
        state.merge(plan)
        actions += plan.actions
        report.notes += plan.notes
        for message in incoming:
            try:
                plan = self.engine.on_message(state, message, now)
            except Exception as exc:
                log.debug("engine failed on %s:\n%s", message.ref, traceback.format_exc())
                self._quarantine(state, message.ref, f"could not be processed: {type(exc).__name__}: {exc}", actions, report)
                continue
            state.merge(plan)
            actions += plan.actions
            report.notes += plan.notes
        plan = self.engine.on_tick(state, now)
        tick_changed = bool(plan.tickets or plan.index or plan.ignored or plan.cursors)
        state.merge(plan)
        actions += plan.actions
        report.notes += plan.notes
        report.planned = [describe(a) for a in [*coalesce_labels(actions), *(a for a in actions if isinstance(a, SendMail))]]
        for action in [*actions, *(r.mail for r in state.sent.values() if not r.done and r.mail is not None)]:
            if isinstance(action, SendMail):
                report.sends[action.kind] = report.sends.get(action.kind, 0) + 1
        report.planned += [f"{describe(r.mail)} (left over from an interrupted pass)"
                           for r in state.sent.values() if not r.done and r.mail is not None]
        if dry_run:
            return report
        actions += digest_request.take(self.engine.context(state), state, now, self.store.path)  # `digest --send`
        effects = Effects(self.config, self.mailbox, self.save, hold=self.sending.waits(now))
        effects.enqueue(state, actions, now)  # any save from here on keeps the sends with the decisions
        if self._state_missing:  # from the first action on, the state file exists: a restart is no lost state
            self.save()
            self._state_missing = False
        recorded = self._keep_records(state, now)  # before any mail shows a key (store/records.py)
        outbox = any(not r.done for r in state.sent.values())
        report.done = effects.apply(state, actions, now)
        self._sending_went(effects, self._later(now, wall, monotonic))
        moved = any(state.cursors.get(k) != v for k, v in changes.cursor.items())
        changed = bool(incoming or changes.label_changes or actions or report.quarantined or outbox or moved
                       or tick_changed or recorded)
        state.cursors.update(changes.cursor)
        if changed:  # an idle pass writes nothing
            state.cursors["last_pass"] = now.isoformat()
            self.save()
        if changed or self._maintained_at is None or now - self._maintained_at >= MAINTAIN_EVERY:
            self._maintain(now)
        written = {"state_written": True} if self.store.path.exists() else {}  # `status` tells a lost state from none yet
        clock = ({"wall": wall.isoformat(), "deciding_on": now.isoformat(), "off": reading.held.total_seconds()}
                 if reading.held is not None else None)
        # the last pass by the system clock, which `status` compares with; the summary as of the time decided on
        self.health.write(last_success=wall.isoformat(), last_messages=report.messages, unsaved=None,
                          summary=summary(state, now), sending=self.sending.as_dict(), clock=clock,
                          **written)  # `status` reads this, not the state
        return report

    def _later(self, now: datetime, wall: datetime, monotonic: float | None) -> datetime:
        """The pass's `now` moved on by the time the pass has taken so far (a backoff counts from the failure: a
        silent server takes the connect timeout, and a backoff counted from the pass's start would be over)."""
        if monotonic is not None and self.monotonic is not None:
            return now + timedelta(seconds=max(self.monotonic() - monotonic, 0.0))
        return now + max(self.clock() - wall, timedelta(0))

    def _sending_went(self, effects: Effects, now: datetime) -> None:
        """After the outbox: a failure of the server starts (or lengthens) the backoff; a mail handed over ends an
        outage. `now`: when the outbox was done."""
        if effects.failure:
            self.sending_failed(effects.failure, now)
        elif effects.handed_over:
            self.sending_works(now)

    def _maintain(self, now: datetime) -> None:
        """History to the archive and the journal compacted (store/state.py): after a pass, never before a send."""
        try:
            moved = self.store.maintain(self.state, now, timedelta(hours=self.config.autoreply.per_sender_hours))
        except StoreError as exc:
            self.unsaved = str(exc)
            raise
        self._maintained_at = now
        self._tell_repairs(now)
        if moved:
            log.info("moved %d closed ticket(s) or old record(s) to the archive", moved)

    def _keep_records(self, state: State, now: datetime) -> int:
        """Leave in the mailbox what `rebuild` needs and no other mail shows: new tickets' keys and the
        escalation steps taken (store/records.py). Written before the pass sends anything; a failure fails the pass."""
        tickets = records.unrecorded(state)
        if not tickets:
            return 0
        seq = int(state.cursors.get(records.SEQ_CURSOR, 1))
        messages = records.compose_records(tickets, self.config.support_address, self.config.helpdesk.name, now, seq,
                                           secret=state.cursors.get(ID_SECRET, ""))
        folder = records_label(self.config.helpdesk.label_root)
        for message in messages:
            self.mailbox.keep_record(message, folder)
        state.cursors[records.SEQ_CURSOR] = seq + len(messages)
        for ticket in tickets:
            state.tickets[ticket.key] = dataclasses.replace(ticket, recorded=records.fingerprint(ticket))
        return len(tickets)

    def _refuse_if_managed(self, incoming: list[Incoming]) -> None:
        """No state file, yet the mailbox carries our labels or our own sent mail: the state was lost. Starting over
        would acknowledge customers again and renumber tickets, so stop and say how to recover (README, Running it for real: keys are forever)."""
        support = self.config.support_address
        ours = self.engine.labels.ours
        # our labels, or our header on mail in the sent folder: a delivered mail can carry any header
        signs = sum(1 for m in incoming if ours(m.labels)
                    or (m.facts.ours and m.facts.sender == support and m.folder_role == "sent"))
        if signs:
            message = (f"{self.store.path}: the state file is missing or empty, but {signs} message(s) in the mailbox "
                       "carry mailhelpdesk's labels or are its own mail: run `mailhelpdesk rebuild` to recover the "
                       "tickets from the mailbox (starting over would answer customers twice and renumber tickets)")
            self.health.write(last_error=message, last_error_at=self.clock().isoformat())  # never raises
            raise StateLostError(message)

    def _quarantine(self, state: State, ref: str, reason: str, actions: list[Action], report: PassReport) -> None:
        log.error("quarantined %s: %s", ref, reason)
        state.quarantine[ref] = reason
        actions.append(SetLabels((ref,), frozenset({self.engine.labels.quarantine}), frozenset()))
        report.quarantined.append(f"{ref}: {reason}")

    def close(self) -> None:
        self.mailbox.close()

    def reset(self) -> None:
        """After a failed pass: drop the connection and whatever the pass decided but did not save."""
        try:
            self.mailbox.close()
        except Exception:
            pass
        self._prepared = False
        if not self.unsaved:  # else the state in memory knows what was sent; the file does not
            self.state = self.store.load()


def newest_arrival(messages: list[Incoming]) -> datetime | None:
    """The latest time the server stamped on mail delivered to the inbox in this pass (IMAP INTERNALDATE, Gmail
    internalDate): the mail server's clock, as core/clock_guard.py asks for it."""
    return max((m.received_at for m in messages if m.folder_role == "inbox" and m.received_at), default=None)


def keep_secret(mail: MailFactory, state: State, now: datetime) -> str:
    """The installation's Message-ID secret, made (random) when the state has none: a new installation's first
    pass, or the first pass of one whose state predates secrets. The daemon calls this at the start of a pass,
    before the engine decides: the pure core only reads the secret, never makes one. Saved with the state (a
    cursor) and in every record (store/records.py), so `rebuild` gets it back.

    A state that predates secrets sent mail under the old, guessable ids. Those stay ours as they are: the sent
    log is looked up, never recomputed. So that a key sent shortly before the upgrade is not sent again under its
    new id (a resolution notice, today's digest: checks that derive the id from the key), the sends of the last
    UPGRADE_WINDOW are recorded under their new id too."""
    secret = state.cursors.get(ID_SECRET)
    if isinstance(secret, str) and secret:
        return secret
    secret = state.cursors[ID_SECRET] = secrets.token_hex(16)
    keyed = mail.keyed(secret)
    for record in list(state.sent.values()):
        if record.done and now - record.at <= UPGRADE_WINDOW and record.message_id == mail.legacy_message_id(record.key):
            new_id = keyed.message_id(record.key)
            state.sent.setdefault(new_id, dataclasses.replace(record, message_id=new_id, mail=None))
    return secret


class InstanceLock:
    """One daemon per state file: a second one stops with a clear message."""

    def __init__(self, state_file: Path):
        self.path = state_file.with_name(state_file.name + ".lock")
        self.handle = None

    def __enter__(self) -> "InstanceLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.path, "a+")
        except OSError as exc:
            raise StateFileError(
                f"{self.path}: cannot create the lock file ({exc.strerror or exc}); the state folder must be writable: "
                "correct [helpdesk] state_file (a relative one goes into $STATE_DIRECTORY when that is set)"
            ) from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise LockError(f"another mailhelpdesk is already running on {self.path.with_suffix('')} (lock {self.path})") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def serve(helpdesk: Helpdesk, on_report: Callable[[PassReport], None], stop: threading.Event | None = None) -> None:
    """The daemon: a pass, then wait for mail (IDLE) or the poll interval; reconnect with backoff on faults."""
    stop = stop or threading.Event()
    stop_on(helpdesk.mailbox, stop)  # SIGTERM cuts blocked IMAP/SMTP calls short, also in the first pass

    def request_stop(signum: int, frame: object) -> None:
        log.info("stopping (signal %d)", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    backoff = 1.0
    interval = helpdesk.config.mailbox.poll_interval
    health = helpdesk.health
    last_success = helpdesk.clock()
    notify("READY=1")
    while not stop.is_set():
        try:
            report = helpdesk.run_pass()
            last_success = helpdesk.clock()
            notify("WATCHDOG=1")
            on_report(report)
            backoff = 1.0
            if not stop.is_set():
                helpdesk.mailbox.wait(interval, stop)
        except StateLostError:
            raise  # nothing to retry: a person must run `rebuild`
        except MailboxError as exc:
            health.write(last_error=str(exc), last_error_at=helpdesk.clock().isoformat())
            _complain_if_stale(helpdesk, last_success)
            log.error("%s; reconnecting in %.0f s", exc, backoff)
            helpdesk.reset()
            stop.wait(backoff)
            backoff = min(backoff * 2, 300)
        except StoreError as exc:  # a full disk, a read-only folder: nothing is sent until the state is saved
            health.write(last_error=str(exc), last_error_at=helpdesk.clock().isoformat(), unsaved=str(exc))
            _complain_if_stale(helpdesk, last_success)
            log.error("%s; trying again in %.0f s", exc, backoff)
            helpdesk.reset()
            stop.wait(backoff)
            backoff = min(backoff * 2, 300)
        except Exception as exc:  # a dropped connection or a bug in one pass: log it, wait, go on
            health.write(last_error=f"{type(exc).__name__}: {exc}", last_error_at=helpdesk.clock().isoformat())
            _complain_if_stale(helpdesk, last_success)
            log.error("pass failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, backoff)
            log.debug("%s", traceback.format_exc())
            helpdesk.reset()
            stop.wait(backoff)
            backoff = min(backoff * 2, 300)
    notify("STOPPING=1")
    helpdesk.close()


def _complain_if_stale(helpdesk: Helpdesk, last_success: datetime) -> None:
    quiet = helpdesk.clock() - last_success
    if quiet.total_seconds() > helpdesk.config.mailbox.stale_after:
        log.critical("no successful pass for %d min: mail is not being processed", quiet.total_seconds() // 60)
