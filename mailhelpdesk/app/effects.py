"""The only module that acts: labels and sends. It reports what happened to each send; the core (`core/outbox.py`)
says what that changes in the state."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Callable, Iterable

from mailhelpdesk.core import outbox
from mailhelpdesk.core.mail.compose import compose
from mailhelpdesk.config import Config
from mailhelpdesk.errors import MailboxError, SendError, StoreError
from mailhelpdesk.backends.base import Mailbox
from mailhelpdesk.model import Action, SentRecord, SetLabels, State
from mailhelpdesk.core.outbox import Outcome, SendOutcome

log = logging.getLogger("mailhelpdesk")


def coalesce_labels(actions: Iterable[Action]) -> list[SetLabels]:
    """One call per distinct label change: for each message the last decision wins."""
    final: dict[str, tuple[frozenset[str], frozenset[str], str]] = {}
    for action in actions:
        if isinstance(action, SetLabels):
            for ref in action.refs:
                if ref in final:
                    add, remove, ticket = final[ref]
                    # a later decision overrides the earlier one on the labels it mentions
                    add = (add - action.remove) | action.add
                    remove = (remove - action.add) | action.remove
                    final[ref] = (add, remove, action.ticket or ticket)
                else:
                    final[ref] = (action.add, action.remove, action.ticket)
    groups: dict[tuple[frozenset[str], frozenset[str]], list[str]] = defaultdict(list)
    tickets: dict[tuple[frozenset[str], frozenset[str]], set[str]] = defaultdict(set)
    for ref, (add, remove, ticket) in final.items():
        groups[(add, remove)].append(ref)
        tickets[(add, remove)].add(ticket)
    return [
        SetLabels(tuple(refs), add, remove, ", ".join(sorted(tickets[(add, remove)] - {""})))
        for (add, remove), refs in groups.items()
    ]


def describe(action: Action) -> str:
    if isinstance(action, SetLabels):
        what = ", ".join(sorted(action.add)) or "-"
        keys = action.ticket.split(", ") if action.ticket else []
        of = f" of {keys[0]}" if len(keys) == 1 else f" of {len(keys)} tickets" if keys else ""
        return f"label {len(action.refs)} message(s){of}: {what}"
    return f"send {action.kind} for {action.ticket or '-'} to {action.to}: {action.subject!r}"


class Effects:
    """Acts on a pass's decisions: labels, then the outbox, each mail exactly once. Each outcome of a send is
    reported to the core (`outbox.recorded`), whose plan is merged into the state; the state is saved whenever it
    must know something before anything else happens (the intents before the first send; a send with no copy in
    the mailbox to prove it)."""

    def __init__(self, config: Config, mailbox: Mailbox, checkpoint: Callable[[], None], hold: bool = False):
        self.config = config
        self.mailbox = mailbox
        self.checkpoint = checkpoint  # saves the state
        self.fresh: set[str] = set()  # Message-IDs queued by this pass (no earlier attempt can have left a copy)
        self.hold = hold  # the server failed lately and the daemon backs off (health.Sending): the outbox waits
        self.failure = ""  # why the server as a whole failed in this pass ("" when it did not)
        self.handed_over = 0  # mails the server took in this pass

    def enqueue(self, state: State, actions: list[Action], now: datetime) -> None:
        """The pass's sends into the outbox (in memory): any save from now on keeps them with their decisions."""
        plan = outbox.queue(state, actions, now)
        state.merge(plan)
        self.fresh |= set(plan.sent)

    def apply(self, state: State, actions: list[Action], now: datetime) -> list[str]:
        """Labels first (so no saved state claims labels that are not there); then every send is written to
        the outbox and saved before the first one leaves; then the outbox is sent, each message exactly once."""
        done = []
        for action in coalesce_labels(actions):
            self.mailbox.set_labels(action.refs, action.add, action.remove)
            done.append(describe(action))
        self.enqueue(state, actions, now)
        dropped = outbox.review(state, now)  # what lost its point while it waited goes, with a note on its ticket
        state.merge(dropped)
        for note in dropped.notes:
            log.info("%s", note)
        waiting = [] if self.hold else outbox.waiting(state)
        if waiting:
            # the intents are on disk before any mail leaves; when the state cannot be saved (a full disk, a
            # read-only folder) this raises and nothing is sent: a send the state file cannot record would be
            # sent again after a restart (fail closed)
            self.checkpoint()
        limit = self.config.mailbox.daily_send_limit
        for record in waiting:
            if not outbox.may_send(state, record, now, limit):
                continue  # backing off after a refusal, or the day's limit is near and this is not for a customer
            mail = record.mail
            assert mail is not None
            try:
                # a copy in the sent folder proves a send only if no attempt was refused after storing its copy
                maybe_sent = record.message_id not in self.fresh and record.attempts == 0
                if self._send(state, record, now, maybe_sent=maybe_sent):
                    done.append(describe(mail))
            except SendError as exc:
                if exc.permanent:
                    self._gave_up(state, record, str(exc), now)
                elif not exc.only_this:
                    log.error("%s: %s (the outbox waits)", record.key, exc)
                    self.failure = exc.reason
                    break  # the server is unreachable or busy: do not spend the pass retrying every message
                elif outbox.refused_for_a_day(record, now):
                    self._gave_up(state, record, f"{exc} (still refused after {outbox.GIVE_UP_AFTER})", now)
                else:  # this message only (a recipient's domain that does not answer...): back off, the rest goes
                    self._report(state, SendOutcome(Outcome.DEFERRED, record.message_id, reason=str(exc)), now)
                    log.warning("%s: %s (trying again at %s)", record.key, exc,
                                state.sent[record.message_id].retry_at.isoformat())
            except (MailboxError, StoreError):
                raise  # the connection is gone, or the state cannot be saved: the pass fails, nothing more is sent
            except Exception as exc:  # one message must never block the others, pass after pass
                log.exception("%s: could not be sent", record.key)
                self._gave_up(state, record, f"{type(exc).__name__}: {exc}", now)
        return done

    def _gave_up(self, state: State, record: SentRecord, reason: str, now: datetime) -> None:
        """A send that can never succeed: recorded on the ticket, taken out of the outbox."""
        log.error("%s: giving up: %s", record.key, reason)
        self._report(state, SendOutcome(Outcome.GAVE_UP, record.message_id, reason=reason), now)

    def _send(self, state: State, record: SentRecord, now: datetime, maybe_sent: bool) -> bool:
        """Send one outbox message. An intent left by a crash is first looked for in the sent folder: the copy
        is stored before the message is committed to the SMTP server, so a copy there means it went out."""
        mail = record.mail
        assert mail is not None
        if maybe_sent and self.mailbox.already_sent(mail.message_id):
            self._report(state, SendOutcome(Outcome.FOUND_SENT, mail.message_id), now)
            log.info("%s for %s was sent before a restart; not sending again", mail.kind, mail.ticket or "-")
            return False
        ticket = state.tickets.get(mail.ticket)
        labels = frozenset(ticket.labels_applied) if ticket else frozenset()
        message = compose(mail, self.config, now)
        ref = self.mailbox.send(message, labels, mail.thread_id)
        self.handed_over += 1
        self._report(state, SendOutcome(Outcome.SENT, mail.message_id, ref=ref), now)  # it went out, whatever
        # happens next: never "given up", never again
        if not ref:
            self.checkpoint()  # no copy in the mailbox says it went out: the state file must say so at once (a
            # StoreError here stops the outbox; the daemon keeps this state in memory and saves it before anything else)
        log.debug("sent %s for %s to %s", mail.kind, mail.ticket or "-", mail.to)  # the pass reports it (once)
        return True

    @staticmethod
    def _report(state: State, outcome: SendOutcome, now: datetime) -> None:
        state.merge(outbox.recorded(state, outcome, now))
