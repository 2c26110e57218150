"""The only module that acts: labels, sends, and the records that make sends exactly-once."""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable, Iterable

from .compose import compose
from .config import Config
from .errors import MailboxError, SendError, StoreError
from .mailbox.base import Mailbox
from .model import TO_CUSTOMER, Action, HistoryEvent, MailKind, SendMail, SentRecord, SetLabels, State, Status
from .rules.senders import sender_key
from .rules.threading import ref_key

log = logging.getLogger("mailhelpdesk")

RETRY_FIRST = timedelta(minutes=5)  # after a temporary refusal of one message, as Postfix does: 5 min, doubling
RETRY_MAX = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(days=1)  # a mail still refused after a day has lost its point; the ticket says so


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


CUSTOMERS_RESERVE = 0.9  # past this share of the daily sending limit only mail to customers goes out


class Effects:
    def __init__(self, config: Config, mailbox: Mailbox, checkpoint: Callable[[], None]):
        self.config = config
        self.mailbox = mailbox
        self.checkpoint = checkpoint  # saves the state: called before each send (the intent record)
        self.fresh: set[str] = set()  # Message-IDs queued by this pass (no earlier attempt can have left a copy)

    def enqueue(self, state: State, actions: list[Action], now: datetime) -> None:
        """Every send of the pass into the outbox (in memory): whatever saves the state from now on saves the
        intents with the decisions that made them (a ticket marked acknowledged has its acknowledgement queued)."""
        for mail in (a for a in actions if isinstance(a, SendMail)):
            if mail.message_id not in state.sent:
                state.sent[mail.message_id] = SentRecord(mail.key, mail.message_id, mail.to, mail.kind, mail.ticket, now, mail=mail)
                self.fresh.add(mail.message_id)

    def apply(self, state: State, actions: list[Action], now: datetime) -> list[str]:
        """Labels first (so no saved state claims labels that are not there); then every send is written to
        the outbox and saved before the first one leaves; then the outbox is sent, each message exactly once."""
        done = []
        for action in coalesce_labels(actions):
            self.mailbox.set_labels(action.refs, action.add, action.remove)
            done.append(describe(action))
        self.enqueue(state, actions, now)
        fresh = self.fresh
        outbox = [r for r in state.sent.values() if not r.done and r.mail is not None]
        # customers first: when the provider's daily limit or an outage cuts a pass short, notices to agents wait
        outbox.sort(key=lambda r: r.kind not in TO_CUSTOMER)
        if outbox:
            # the intents are on disk before any mail leaves; when the state cannot be saved (a full disk, a
            # read-only folder) this raises and nothing is sent: a send the state file cannot record would be
            # sent again after a restart (fail closed)
            self.checkpoint()
        limit = self.config.mailbox.daily_send_limit
        for record in outbox:
            mail = record.mail
            if record.retry_at is not None and record.retry_at > now:
                continue  # backing off after a temporary refusal; the others go
            if limit and record.kind not in TO_CUSTOMER and (state.sends_last_day(now) or 0) >= CUSTOMERS_RESERVE * limit:
                continue  # the provider's daily limit is near: what is left of it is for customers; notices wait
            if self._pointless(state, record, now):
                continue
            try:
                # a copy in the sent folder proves a send only if no attempt was refused after storing its copy
                maybe_sent = record.message_id not in fresh and record.attempts == 0
                if self._send(state, record, now, maybe_sent=maybe_sent):
                    done.append(describe(mail))
            except SendError as exc:
                if exc.permanent:
                    self._give_up(state, record, str(exc), now)
                elif not exc.only_this:
                    log.error("%s: %s (the outbox waits for the next pass)", record.key, exc)
                    break  # the server is unreachable or busy: do not spend the pass retrying every message
                elif now - record.at >= GIVE_UP_AFTER:
                    self._give_up(state, record, f"{exc} (still refused after {GIVE_UP_AFTER})", now)
                else:  # this message only (a recipient's domain that does not answer...): back off, the rest goes
                    record.attempts += 1
                    record.retry_at = now + min(RETRY_FIRST * 2 ** (record.attempts - 1), RETRY_MAX)
                    log.warning("%s: %s (trying again at %s)", record.key, exc, record.retry_at.isoformat())
            except (MailboxError, StoreError):
                raise  # the connection is gone, or the state cannot be saved: the pass fails, nothing more is sent
            except Exception as exc:  # one message must never block the others, pass after pass
                log.exception("%s: could not be sent", record.key)
                self._give_up(state, record, f"{type(exc).__name__}: {exc}", now)
        return done

    def _pointless(self, state: State, record: SentRecord, now: datetime) -> bool:
        """An acknowledgement that waited in the outbox (an SMTP outage) while an agent answered or solved the
        ticket would only confuse the customer: dropped, and the ticket says so."""
        ticket = state.tickets.get(record.ticket)
        if record.kind != MailKind.ACKNOWLEDGEMENT or ticket is None:
            return False
        if ticket.first_response_at is None and ticket.status == Status.OPEN:
            return False
        record.done, record.mail = True, None
        state.tickets[ticket.key] = ticket.log(now, HistoryEvent.ACK_DROPPED, "answered before it could be sent")
        log.info("%s: not sent, the ticket was answered meanwhile", record.key)
        return True

    def _give_up(self, state: State, record: SentRecord, reason: str, now: datetime) -> None:
        """A send that can never succeed: recorded on the ticket, taken out of the outbox."""
        log.error("%s: giving up: %s", record.key, reason)
        record.done, record.mail = True, None
        ticket = state.tickets.get(record.ticket)
        if ticket is not None:
            state.tickets[ticket.key] = ticket.log(now, HistoryEvent.COULD_NOT_SEND, f"{record.kind} to {record.to}: {reason}")

    def _send(self, state: State, record: SentRecord, now: datetime, maybe_sent: bool) -> bool:
        """Send one outbox message. An intent left by a crash is first looked for in the sent folder: the copy
        is stored before the message is committed to the SMTP server, so a copy there means it went out."""
        mail = record.mail
        assert mail is not None
        if maybe_sent and self.mailbox.already_sent(mail.message_id):
            self._record_done(state, record, "")
            log.info("%s for %s was sent before a restart; not sending again", mail.kind, mail.ticket or "-")
            return False
        ticket = state.tickets.get(mail.ticket)
        labels = frozenset(ticket.labels_applied) if ticket else frozenset()
        message = compose(mail, self.config, now)
        ref = self.mailbox.send(message, labels, mail.thread_id)
        state.count_send(now)
        self._record_done(state, record, ref)  # it went out, whatever happens next: never "given up", never again
        if mail.kind == MailKind.ACKNOWLEDGEMENT:
            state.sender_log.setdefault(sender_key(mail.to), []).append(now)  # rules/senders.py: robots vary addresses
        if not ref:
            self.checkpoint()  # no copy in the mailbox says it went out: the state file must say so at once (a
            # StoreError here stops the outbox; the daemon keeps this state in memory and saves it before anything else)
        log.debug("sent %s for %s to %s", mail.kind, mail.ticket or "-", mail.to)  # the pass reports it (once)
        return True

    def _record_done(self, state: State, record: SentRecord, ref: str) -> None:
        record.done = True
        record.mail = None
        ticket = state.tickets.get(record.ticket)
        if ticket is None:
            return
        state.index[record.message_id] = ticket.key
        if ref:
            state.index[ref_key(ref)] = ticket.key
            ticket = ticket.with_message(record.message_id, ref)
            ticket = dataclasses.replace(ticket, unlabelled=tuple(r for r in ticket.unlabelled if r != ref))
        else:
            ticket = dataclasses.replace(ticket, message_ids=tuple(dict.fromkeys(ticket.message_ids + (record.message_id,))))
        state.tickets[ticket.key] = ticket
