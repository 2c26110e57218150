"""The daemon's own records in the mailbox: what `rebuild` needs that no other mail of ours shows.

Keys are forever (ARCHITECTURE.md). A ticket that never got an acknowledgement (the per-sender cap, the quiet first
run, a promoted robot's mail, a sender failing SPF) has no mail of ours carrying its key, and escalation steps
taken quietly (the backlog) left no reminder in the sent folder. So after each pass decides, and before anything
is sent, the daemon stores one small record message in its records folder (IMAP) or label (Gmail) listing every
ticket that is new, whose escalation ladder moved or that was resolved: its key, the Message-ID of the request that
opened it, the ladder's steps and the due time they belong to, and when it was resolved (so a resolved ticket still
closes on time after a rebuild, and its resolution notice is not sent twice). One message per pass (at most
`PER_MESSAGE` tickets each), not one per ticket: a first run over a backlog of thousands writes a handful, and
Gmail's label limit is never met. Each record also carries the installation's Message-ID secret (`SECRET_HEADER`,
core/mail/factory.py `message_id`): without it a rebuilt state would derive other ids for the same keys.

Records are written by us alone, into a folder no mail is delivered to, from the support address; `rebuild`
reads only those, and only well-formed entries. Later records win over earlier ones (`X-Mailhelpdesk-Record-Seq`).
The records stay in the support mailbox, which holds every conversation anyway; the secret only keeps strangers,
who cannot read it, from computing our Message-IDs. Pure: composing and parsing bytes.
"""

from __future__ import annotations

import email
import email.headerregistry
import email.policy
import json
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Iterable

from mailhelpdesk.model import State, Status, Step, Ticket

RECORD_HEADER = "X-Mailhelpdesk-Record"
SEQ_HEADER = "X-Mailhelpdesk-Record-Seq"
SECRET_HEADER = "X-Mailhelpdesk-Id-Secret"
SECRET_FORM = re.compile(r"^[0-9a-f]{16,128}$")
PER_MESSAGE = 500  # tickets per record message (a line each, ~200 bytes)
SEQ_CURSOR = "record_seq"


@dataclass(frozen=True)
class TicketRecord:
    """One ticket as a record states it."""

    key: str
    request: str  # Message-ID of the message that opened the ticket
    escalations: tuple[Step, ...] = ()
    due: str = ""  # ISO due time the escalation steps belong to ("" when none were taken)
    seq: int = 0
    resolved: str = ""  # ISO time it was resolved, while it is ("" when it is not)
    snoozed: str = ""  # ISO time a `#snooze` ends, while it sleeps ("" when it does not)

    @property
    def number(self) -> int:
        return int(self.key.rsplit("-", 1)[1])


@dataclass(frozen=True)
class Found:
    """What the records say: the latest entry per key, and the installation's Message-ID secret ("" when none)."""

    entries: dict[str, TicketRecord]
    secret: str = ""


def fingerprint(ticket: Ticket) -> str:
    """What a record must say about the ticket; a new record is written when this changes. A new wait (a
    customer's reply) has a new due time, so a reset ladder differs from the one before; a resolution adds its
    time, a re-opening takes it away."""
    if not ticket.escalations:
        ladder = "-"
    else:
        due = ticket.due_at.isoformat() if ticket.due_at else ""
        ladder = ",".join(ticket.escalations) + "@" + due
    return (ladder + (f"|resolved@{ticket.resolved_at.isoformat()}" if _resolved(ticket) else "")
            + (f"|snoozed@{ticket.snoozed_until.isoformat()}" if ticket.snoozed_until else ""))


def _resolved(ticket: Ticket) -> bool:
    return ticket.status == Status.RESOLVED and ticket.resolved_at is not None


def unrecorded(state: State) -> list[Ticket]:
    """Tickets the mailbox holds no current record of."""
    return [t for t in state.tickets.values() if t.message_ids and t.recorded != fingerprint(t)]


def compose_records(tickets: list[Ticket], support: str, name: str, now: datetime, seq: int,
                    secret: str = "") -> list[EmailMessage]:
    """Record messages for these tickets, `PER_MESSAGE` per message, numbered from `seq` on, each with the
    installation's Message-ID secret (the state's `id_secret` cursor)."""
    messages = []
    for start in range(0, len(tickets), PER_MESSAGE):
        part = tickets[start : start + PER_MESSAGE]
        number = seq + start // PER_MESSAGE
        lines = [
            "mailhelpdesk keeps this record of its tickets so that `mailhelpdesk rebuild` gives every ticket its",
            "number back if the state file is ever lost. Please keep it (it is small and never sent to anyone).",
            "",
        ]
        for ticket in part:
            entry = {"key": ticket.key, "request": ticket.message_ids[0], "escalations": list(ticket.escalations)}
            if ticket.escalations and ticket.due_at:
                entry["due"] = ticket.due_at.isoformat()
            if _resolved(ticket):
                entry["resolved"] = ticket.resolved_at.isoformat()  # type: ignore[union-attr]
            if ticket.snoozed_until:
                entry["snoozed"] = ticket.snoozed_until.isoformat()
            lines.append(f"{ticket.key}: {json.dumps(entry, ensure_ascii=True, separators=(',', ':'))}")
        msg = EmailMessage()
        local, _, domain = support.partition("@")
        msg["From"] = email.headerregistry.Address(name, local, domain)
        msg["To"] = support
        keys = ", ".join(t.key for t in part[:5]) + (f" and {len(part) - 5} more" if len(part) > 5 else "")
        msg["Subject"] = f"mailhelpdesk record {number}: {keys}"
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = f"<mhd.record.{number}.{int(now.timestamp())}@{domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg[RECORD_HEADER] = "1"
        msg[SEQ_HEADER] = str(number)
        if secret:
            msg[SECRET_HEADER] = secret
        msg.set_content("\n".join(lines) + "\n")
        messages.append(msg)
    return messages


def read_records(raws: Iterable[bytes], support: str, prefix: str) -> Found:
    """The latest entry per key from record messages, and the secret of the latest record that carries one (of two
    with the same number, the one found later: a pass that failed after its record numbered the next one alike).
    Anything not written by us is skipped: a message without our record header or not from the support address, a
    line that is not one of our entries, a malformed key or secret."""
    key_form = re.compile(rf"^{re.escape(prefix)}-[1-9][0-9]{{0,8}}$")
    latest: dict[str, TicketRecord] = {}
    secret, secret_seq = "", -1
    for raw in raws:
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if msg.get(RECORD_HEADER, "").strip() != "1":
                continue
            if parseaddr(str(msg.get("From", "")))[1].lower() != support.lower():
                continue
            seq = int(str(msg.get(SEQ_HEADER, "0")).strip() or 0)
            body = msg.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            found = str(msg.get(SECRET_HEADER, "")).strip()
        except (ValueError, TypeError, LookupError, AttributeError):
            continue
        if SECRET_FORM.match(found) and seq >= secret_seq:
            secret, secret_seq = found, seq
        for line in text.splitlines():
            entry = _entry(line, seq, key_form)
            if entry is not None and (entry.key not in latest or latest[entry.key].seq <= seq):
                latest[entry.key] = entry
    return Found(latest, secret)


def _entry(line: str, seq: int, key_form: re.Pattern[str]) -> TicketRecord | None:
    head, sep, rest = line.partition(": ")
    if not sep or not rest.startswith("{"):
        return None
    try:
        data = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    key, request, steps, due = data.get("key"), data.get("request"), data.get("escalations", []), data.get("due", "")
    resolved, snoozed = data.get("resolved", ""), data.get("snoozed", "")
    if not (isinstance(key, str) and key == head and key_form.match(key) and isinstance(request, str) and request):
        return None
    if not (isinstance(steps, list) and all(s in set(Step) for s in steps) and isinstance(due, str)):
        return None
    if not (isinstance(resolved, str) and isinstance(snoozed, str)):
        return None
    for stamp in (due, resolved, snoozed):
        try:
            if stamp and datetime.fromisoformat(stamp).tzinfo is None:
                return None
        except ValueError:
            return None
    return TicketRecord(key, request, tuple(Step(s) for s in steps), due, seq, resolved, snoozed)


def entry_fingerprint(entry: TicketRecord) -> str:
    """The fingerprint (see `fingerprint`) of the ticket this entry describes."""
    ladder = ",".join(entry.escalations) + "@" + entry.due if entry.escalations else "-"
    return (ladder + (f"|resolved@{entry.resolved}" if entry.resolved else "")
            + (f"|snoozed@{entry.snoozed}" if entry.snoozed else ""))
