"""IMAP adapter (IMAPClient): UID checkpoints, CONDSTORE for agents' label changes, IDLE, keywords or
Gmail labels. Never sets \\Seen (BODY.PEEK, read-only selects), never deletes or moves."""

from __future__ import annotations

import email.policy
import logging
import re
import socket
import ssl
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Callable, Iterable, Iterator

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from mailhelpdesk.config import Config
from mailhelpdesk.errors import AuthError, CapabilityError, MailboxError, MailboxSetupError, SendError
from mailhelpdesk.backends.netfaults import connect_problem
from mailhelpdesk.backends.smtp import SmtpSender
from mailhelpdesk.backends import _internals
from mailhelpdesk.core.relocation import Relocation
from mailhelpdesk.backends.base import Changes, RawMessage, new_mail_line
from mailhelpdesk.capabilities import IMAP, SentCopy
from mailhelpdesk.backends.imap_labels import LabelWay, keyword, label_store_for

__all__ = ["ImapMailbox", "chunks", "fetched_size", "keyword", "make_ref", "size_batches", "split_ref", "uid_ranges"]

log = logging.getLogger("mailhelpdesk")

FETCH_CHUNK = 100  # messages per FETCH at most (a short command line, small responses)
FETCH_BUDGET = 32 * 1024 * 1024  # bytes of mail one FETCH may bring at most (RFC822.SIZE, asked first)
KEEP_LIMIT = 1024 * 1024  # what is fetched of one message: all of it up to this size, else its first KEEP_LIMIT
# bytes -- headers and text come first, attachments after; core/mail/parse.py keeps BODY_LIMIT characters of text anyway
STOP_GRACE = 2.0  # seconds a pass has to end by itself once the daemon is stopping, before its connections are cut
COMMIT_GRACE = 4.0  # ... and an SMTP commit in flight to get its verdict (SIGTERM must end the daemon within 10 s)
SENT = b"\\Sent"  # the special-use attribute of the sent folder (RFC 6154)


def chunks(uids: list[int], size: int = 500) -> Iterator[list[int]]:
    """UID lists in pieces: servers refuse command lines much over 8-64 KB (RFC 7162 suggests 8 KB)."""
    ordered = sorted(uids)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def size_batches(sizes: list[tuple[int, int]], budget: int, most: int = FETCH_CHUNK) -> Iterator[list[int]]:
    """UIDs in fetch order, grouped so the bytes of one group (the sizes given) stay within `budget` and a group has
    at most `most` messages; a message bigger than the budget goes alone. Pure: (uid, bytes) pairs in, groups out."""
    group: list[int] = []
    total = 0
    for uid, size in sizes:
        if group and (total + size > budget or len(group) >= most):
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


def fetched_size(size: int) -> int:
    """The bytes a FETCH of a message of `size` bytes brings: all of them, or the first KEEP_LIMIT."""
    return min(size, KEEP_LIMIT)


def uid_ranges(text: bytes | str) -> list[tuple[int, int]]:
    """The ranges of an IMAP sequence set such as `7,9,12:14` (a MODIFIED response code); "*" and junk skipped."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    ranges = []
    for item in re.split(r"[,\s]+", text.strip()):
        low, _, high = item.partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            a, b = int(low), int(high or low)
            ranges.append((min(a, b), max(a, b)))
    return ranges


def _shutdown(client: imapclient.IMAPClient | None) -> None:
    """Drop a connection that failed half-way (closing must never raise)."""
    if client is not None:
        try:
            client.shutdown()
        except Exception:
            pass


def make_ref(folder: str, uidvalidity: int, uid: int) -> str:
    return f"{folder}:{uidvalidity}:{uid}"


def split_ref(ref: str) -> tuple[str, int, int]:
    folder, validity, uid = ref.rsplit(":", 2)
    return folder, int(validity), int(uid)


class ImapMailbox:
    CAPABILITIES = IMAP
    kind = IMAP.name

    @classmethod
    def from_config(cls, config: Config) -> "ImapMailbox":
        return cls(config)

    def __init__(self, config: Config, sender: SmtpSender | None = None):
        self.config = config
        self.imap = config.imap
        self.root = config.helpdesk.label_root
        self.client: imapclient.IMAPClient | None = None
        self.capabilities: frozenset[bytes] = frozenset()
        self.sent_folder = self.imap.sent_folder
        self.sender = sender or SmtpSender(config.smtp)
        self.names: dict[str, str] = {}  # keyword -> label name, for labels whose keyword differs
        self.appended: set[str] = set()  # refs of our own sent copies: known already, not fetched again
        self._unsent: set[str] = set()  # copies stored for a send the SMTP server then refused
        self.fetch_budget = FETCH_BUDGET  # bytes one FETCH may bring at most
        # CONDSTORE: label writes only over the version of a message we read (UNCHANGEDSINCE). The floor per folder
        # is HIGHESTMODSEQ when changes() selected it (everything up to there was reported); a message read or
        # written since has its own, newer version here.
        self._floor: dict[str, int] = {}
        self._modseq: dict[str, int] = {}
        self.conflicts: list[str] = []  # refs whose label write was skipped: another client changed them first
        self._connected = False  # connected once: a sent folder missing later is a warning, not a setup error
        self._sent_lost = ""  # the sent folder that vanished while we ran ("" while all is well)
        self._notes: list[str] = []  # warnings for the next Changes
        self._stop: threading.Event | None = None
        self._quiet = threading.Event()  # set while wait() blocks or after close(): nothing to cut then

    # --- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Connected, TLS as configured, logged in. Every failure is one line that names the key to check; a
        running daemon retries them all (a MailboxError), `check` and `run` at start-up stop on them."""
        c = self.imap
        where = f"{c.host}:{c.effective_port}"
        self.close()  # never two connections: a reconnect replaces the old one
        self._quiet.clear()
        client = None
        try:
            context = ssl.create_default_context() if c.security != "none" else None
            client = imapclient.IMAPClient(
                c.host, port=c.effective_port, ssl=c.security == "ssl", ssl_context=context, timeout=c.timeout
            )
            if c.security == "starttls":
                if b"STARTTLS" not in client.capabilities():
                    raise CapabilityError(
                        f"IMAP server {where} does not offer STARTTLS; refusing to log in in plaintext "
                        '(check [imap] security and port; set [imap] security = "none" only for a server on a trusted network)'
                    )
                client.starttls(context)
            if (c.username + c.password).isascii():
                client.login(c.username, c.password)
            else:  # LOGIN sends ASCII only: AUTHENTICATE PLAIN carries UTF-8 (RFC 4616), as Dovecot expects it
                client.plain_login(c.username, c.password)
        except LoginError as exc:
            _shutdown(client)
            said = re.sub(r"^b(['\"])(.*)\1$", r"\2", _text(exc))  # imapclient gives the server's words as repr(bytes)
            raise AuthError(f"IMAP login failed for {c.username} at {where}: {said}: "
                            "check [imap] username and [imap] password (an app password where the provider asks for one)") from None
        except MailboxError:
            _shutdown(client)
            raise
        except (OSError, EOFError, IMAPClientError) as exc:
            _shutdown(client)
            raise MailboxSetupError(connect_problem(exc, "IMAP", "imap", c)) from None
        self.client = client
        self.capabilities = frozenset(client.capabilities())
        if self.condstore and b"ENABLE" in self.capabilities:
            client.enable("CONDSTORE")
        if not client.folder_exists(c.folder):
            raise MailboxSetupError(f"[imap] folder {c.folder!r} does not exist on {where}: correct [imap] folder")
        if not self._connected and c.sent_folder and not client.folder_exists(c.sent_folder):
            raise MailboxSetupError(f"[imap] sent_folder {c.sent_folder!r} does not exist on {where}: "
                                    "correct [imap] sent_folder, or leave it out to use the folder marked \\Sent")
        self._connected = True
        self.sent_folder = self._find_sent(client)  # found anew on every connect: it may have gone, or come back

    def _find_sent(self, client: imapclient.IMAPClient) -> str:
        """The sent folder as configured, else the one marked \\Sent; "" when there is none (any more). A folder
        that vanished while we ran is a warning (sending goes on without copies), never a stop."""
        wanted = self.imap.sent_folder
        name = (wanted if client.folder_exists(wanted) else "") if wanted else (client.find_special_folder(SENT) or "")
        gone = self._sent_lost or self.sent_folder
        if not name and gone and self._sent_lost != gone:
            self._sent_lost = gone
            self._warn(f"the sent folder {gone!r} no longer exists on {self.imap.host}: mail is sent without a copy "
                       "there, and our own mail in it is not read, until it is back (create it again, or correct "
                       "[imap] sent_folder)")
        elif name and self._sent_lost:
            log.info("the sent folder %r is there again", name)
            self._sent_lost = ""
        return name

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self._notes.append(message)

    def _sent_vanished(self, client: imapclient.IMAPClient, folder: str) -> bool:
        """After a command on `folder` failed: is it the sent folder, and gone? (then we go on without it)"""
        if not folder or folder != self.sent_folder:
            return False
        try:
            if client.folder_exists(folder):
                return False
        except (IMAPClientError, OSError):
            return False
        self.sent_folder = self._find_sent(client)
        return True

    @property
    def label_store(self) -> LabelWay:
        """How this server keeps labels: keywords, or Gmail labels over IMAP."""
        return label_store_for(self.capabilities)

    @property
    def condstore(self) -> bool:
        return b"CONDSTORE" in self.capabilities

    @property
    def save_sent(self) -> bool:
        if self.imap.save_sent == "auto":
            return self.label_store.sent_copy is SentCopy.OURS  # Gmail keeps a copy of everything sent through it
        return self.imap.save_sent == "yes"

    def _client(self) -> imapclient.IMAPClient:
        if self.client is None:
            self.connect()
        assert self.client is not None
        return self.client

    def close(self) -> None:
        self._quiet.set()
        self.sender.release()
        if self.client is not None:
            client, self.client = self.client, None
            try:
                client.logout()
            except Exception:  # the connection may already be gone; closing must never fail
                try:
                    client.shutdown()
                except Exception:
                    pass

    def describe(self) -> list[str]:
        client = self._client()
        caps = sorted(c.decode() for c in self.capabilities)
        lines = [f"IMAP {self.imap.host}:{self.imap.effective_port} ({self.imap.security}) as {self.imap.username}"]
        lines.append("capabilities: " + " ".join(caps))
        lines.append(f"watching {self.imap.folder!r} and sent folder {self.sent_folder or '(none found)'!r}")
        lines.append(new_mail_line("IDLE (seconds)" if self._idle else "", self.config.mailbox.poll_interval,
                                   IMAP.push if b"IDLE" in self.capabilities else ""))
        lines.append("agents' label changes: " + ("CONDSTORE (cheap)" if self.condstore else "full flag scan each pass"))
        if self.condstore and self.label_store.conditional:
            lines.append("label writes: only over the version we read (CONDSTORE UNCHANGEDSINCE); an agent's change wins")
        lines += self.label_store.describe(client, self.imap.folder, self.root)
        lines.append("sent copies: " + ("appended to the sent folder" if self.save_sent else "kept by the server"))
        return lines

    def prepare(self, labels: Iterable[str], create: bool = True) -> list[str]:
        # keywords are matched without regard to case (RFC 3501); Thunderbird stores the tags it sets lower-cased
        labels = list(labels)
        self.names = {keyword(label).lower(): label for label in labels}
        return self.label_store.prepare(self._client, labels) if create else []

    @property
    def _idle(self) -> bool:
        return self.imap.idle and b"IDLE" in self.capabilities

    # --- reading --------------------------------------------------------------------------------

    def _folders(self) -> list[tuple[str, str]]:
        folders = [(self.imap.folder, "inbox")]
        if self.sent_folder and self.sent_folder != self.imap.folder:
            folders.append((self.sent_folder, "sent"))
        return folders

    def _labels(self, data: dict[bytes, Any]) -> frozenset[str]:
        labels = set()
        for item in data.get(self.label_store.item, ()):
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            low = text.lower()
            if low.startswith(keyword(self.root).lower() + "/") or low.startswith(self.root.lower() + "/"):
                labels.add(self.names.get(low, text))
        return frozenset(labels)

    def changes(self, cursor: dict[str, Any], since: datetime) -> Changes:
        client = self._client()
        new_cursor: dict[str, Any] = {}
        label_changes: list[tuple[str, frozenset[str]]] = []
        relocations: list[Relocation] = []
        todo: list[tuple[str, str, int, list[int]]] = []
        flag_items = [self.label_store.item]
        if self.condstore:
            flag_items.append(b"MODSEQ")
        if self._sent_lost:
            self.sent_folder = self._find_sent(client)  # back yet? (one LIST a pass, only while it is missing)
        for folder, role in self._folders():
            try:
                info = client.select_folder(folder, readonly=True)
            except IMAPClientError:
                if self._sent_vanished(client, folder):
                    continue  # warned; the inbox goes on
                raise
            validity = int(info[b"UIDVALIDITY"])
            uidnext = int(info.get(b"UIDNEXT", 0))
            modseq = int(info.get(b"HIGHESTMODSEQ", 0) or 0)
            self._floor[folder] = modseq if self.condstore else 0
            self._modseq = {ref: n for ref, n in self._modseq.items() if not ref.startswith(folder + ":")}
            old = cursor.get(folder)
            if not old or old.get("uidvalidity") != validity:
                uids = client.search(["SINCE", since.date()]) if info.get(b"EXISTS") else []
                if old and old.get("uidvalidity"):
                    relocation, labelled = self._relocation(client, folder, int(old["uidvalidity"]), validity, flag_items)
                    relocations.append(relocation)
                    label_changes += labelled
            else:
                start = int(old["uidnext"])
                uids = [u for u in client.search(["UID", f"{start}:*"]) if u >= start] if uidnext > start else []
                fresh = set(uids)
                if self.condstore and modseq and old.get("modseq") and modseq != old["modseq"]:
                    touched = client.search(["MODSEQ", str(int(old["modseq"]) + 1)])
                elif not self.condstore and info.get(b"EXISTS"):
                    touched = client.search(["ALL"])  # no CONDSTORE: look at every message's flags
                else:
                    touched = []
                touched = [uid for uid in touched if uid not in fresh]
                for part in chunks(touched):
                    changed = client.fetch(part, flag_items)
                    for uid, data in changed.items():
                        ref = make_ref(folder, validity, uid)
                        self._note_modseq(ref, data)
                        label_changes.append((ref, self._labels(data)))
            top = max(uids, default=0)
            uids = [uid for uid in uids if make_ref(folder, validity, uid) not in self.appended]
            new_cursor[folder] = {"uidvalidity": validity, "uidnext": max(uidnext, top + 1), "modseq": modseq}
            todo.append((folder, role, validity, sorted(uids)))
        notes, self._notes = self._notes, []
        return Changes(self._fetch(todo), label_changes, new_cursor, expected=sum(len(t[3]) for t in todo),
                       relocations=relocations, notes=notes)

    def _relocation(self, client: imapclient.IMAPClient, folder: str, old: int, new: int,
                    flag_items: list[bytes]) -> tuple[Relocation, list[tuple[str, frozenset[str]]]]:
        """Where every message of a folder whose UIDVALIDITY changed is now, by Message-ID (the header and the
        labels only: a few dozen bytes a message, once), and the labels of those that carry ours, as label changes:
        what agents changed while the folder moved is read like any change (the engine skips what is as we left it).
        The Message-ID is read as core/mail/parse.py reads it, so it matches the state's."""
        from mailhelpdesk.core.mail.parse import parse_message  # pure; only needed here

        refs: dict[str, tuple[str, ...]] = {}
        labelled: list[tuple[str, frozenset[str]]] = []
        field = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
        for part in chunks(client.search(["ALL"])):
            for uid, data in client.fetch(part, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", *flag_items]).items():
                ref = make_ref(folder, new, uid)
                self._note_modseq(ref, data)
                labels = self._labels(data)
                if labels:
                    labelled.append((ref, labels))
                head = data.get(field) or b""
                if not re.search(rb"<[^<>]+>", head):
                    continue  # no Message-ID: core/mail/parse.py names it by a hash of the whole message; found when re-read
                message_id = parse_message(head).message_id
                refs[message_id] = refs.get(message_id, ()) + (ref,)
        log.warning("the UIDVALIDITY of %r changed (%d -> %d: the folder was recreated or restored); its %d message(s) "
                    "are found again by Message-ID", folder, old, new, sum(len(r) for r in refs.values()))
        return Relocation(folder, old, new, refs), labelled

    def _note_modseq(self, ref: str, data: dict[bytes, Any]) -> None:
        """Remember the version (MODSEQ) of a message as we read or wrote it."""
        value = data.get(b"MODSEQ")
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        if isinstance(value, int) and value > self._modseq.get(ref, 0):
            self._modseq[ref] = value

    def _fetch(self, todo: list[tuple[str, str, int, list[int]]]) -> Iterator[RawMessage]:
        """The messages, in groups whose bytes stay within `fetch_budget`: the sizes are asked first (RFC822.SIZE),
        a message is fetched only up to KEEP_LIMIT (all that decisions read: headers, the text, the attachments'
        headers), and each message is let go once handed on. Memory is bounded by the budget, whatever the backlog."""
        client = self._client()
        body = b"BODY.PEEK[]<0.%d>" % KEEP_LIMIT  # a smaller message comes whole (RFC 3501 partial fetch)
        labelling = self.label_store
        items = [body, b"INTERNALDATE", b"FLAGS", *labelling.extra]
        if self.condstore:
            items.append(b"MODSEQ")  # the version of the labels we read: set_labels writes only over that one
        for folder, role, validity, uids in todo:
            if not uids:
                continue
            client.select_folder(folder, readonly=True)
            sizes: list[tuple[int, int]] = []
            for part in chunks(uids):
                answered = client.fetch(part, [b"RFC822.SIZE"])
                sizes += [(uid, fetched_size(int(answered[uid].get(b"RFC822.SIZE") or 0)))
                          for uid in part if uid in answered]  # expunged meanwhile: gone
            for group in size_batches(sizes, self.fetch_budget):
                batch = client.fetch(group, items)
                for uid in sorted(batch):
                    data = batch.pop(uid)  # each message is let go as soon as the caller is done with it
                    raw = data.get(b"BODY[]<0>", data.get(b"BODY[]"))
                    if raw is None:
                        continue  # expunged meanwhile
                    ref = make_ref(folder, validity, uid)
                    self._note_modseq(ref, data)
                    received = data.get(b"INTERNALDATE")
                    if isinstance(received, datetime):
                        received = received.astimezone(UTC) if received.tzinfo else received.replace(tzinfo=UTC)
                    yield RawMessage(ref, role, raw, self._labels(data), received, labelling.thread_id(data))
                    del raw, data

    # --- writing --------------------------------------------------------------------------------

    def set_labels(self, refs: Iterable[str], add: frozenset[str], remove: frozenset[str]) -> None:
        """Labels written over the version of each message we read only (CONDSTORE's UNCHANGEDSINCE, RFC 7162):
        a message an agent changed meanwhile is skipped (in `conflicts`), and the next pass reads the agent's
        change and decides again, instead of this write undoing it. Without CONDSTORE, and on Gmail, plain STOREs."""
        client = self._client()
        self.conflicts = []
        by_folder: dict[tuple[str, int], list[int]] = {}
        for ref in refs:
            folder, validity, uid = split_ref(ref)
            by_folder.setdefault((folder, validity), []).append(uid)
        for (folder, validity), all_uids in by_folder.items():
            try:
                info = client.select_folder(folder)
            except IMAPClientError:
                if self._sent_vanished(client, folder):
                    continue  # warned; its messages are labelled when they are found again
                raise
            if int(info[b"UIDVALIDITY"]) != validity:
                continue  # the folder was recreated; the next pass finds its messages again (Relocation)
            known = {f.decode("utf-8", "replace") if isinstance(f, bytes) else f for f in info.get(b"FLAGS", ())}
            labelling = self.label_store
            drop, put = labelling.changes(add, remove, known)
            conditional = self.condstore and labelling.conditional and self._floor.get(folder, 0) > 0
            for uids in chunks(all_uids):
                if not conditional:
                    labelling.write(client, uids, drop, put)
                    continue
                refused: set[int] = set()
                for op, flags in (("-FLAGS", drop), ("+FLAGS", put)):
                    if flags:
                        refused |= self._store_unless_changed(client, folder, validity,
                                                              [u for u in uids if u not in refused], op, flags)
                for uid in sorted(refused):
                    ref = make_ref(folder, validity, uid)
                    log.info("%s: changed by another client since we read it; not relabelled (the next pass reads "
                             "the change and decides again)", ref)
                    self.conflicts.append(ref)

    def _store_unless_changed(self, client: imapclient.IMAPClient, folder: str, validity: int, uids: list[int],
                              op: str, flags: list[str]) -> set[int]:
        """UID STORE (UNCHANGEDSINCE v) op flags, for each message over the version we know of it (the folder's
        floor, or newer); the versions our writes make are remembered for the next write. The UIDs refused."""
        floor = self._floor.get(folder, 0)
        by_version: dict[int, list[int]] = {}
        for uid in uids:
            by_version.setdefault(max(floor, self._modseq.get(make_ref(folder, validity, uid), 0)), []).append(uid)
        refused: set[int] = set()
        for version, group in sorted(by_version.items()):
            typ, data, modified, answers = _internals.store_unless_changed(client, group, version, op, flags)
            if typ != "OK":
                raise MailboxError(f"the server refused to label messages in {folder!r}: {data!r}")
            ranges = uid_ranges(modified)
            refused |= {uid for uid in group if any(a <= uid <= b for a, b in ranges)}
            for answer in answers:
                uid = answer.get(b"UID")
                if isinstance(uid, int) and uid in group and uid not in refused:
                    self._note_modseq(make_ref(folder, validity, uid), answer)
        return refused

    def send(self, message: EmailMessage, labels: frozenset[str], thread_id: str = "") -> str:
        """Send by SMTP and keep a labelled copy in the sent folder. The copy and the SMTP commit are written
        back to back (the APPEND with a LITERAL+ literal, then at once the final dot, then both replies are
        read), so a crash can hardly fall between them: a copy in the sent folder means the mail went out."""
        if not (self.save_sent and self.sent_folder):
            self.sender.send(message)
            return ""
        transaction = self.sender.open(message)
        committed = []
        try:
            ref = self._store_copy(message, labels, then=lambda: (transaction.commit(), committed.append(True)))
        except (IMAPClientError, MailboxError, OSError) as exc:
            folder = self.sent_folder
            vanished = self.client is not None and self._sent_vanished(self.client, folder)
            if not committed and vanished:  # warned: the mail goes out without a copy, as with no sent folder
                transaction.commit()
                transaction.finish()
                return ""
            if not committed:
                transaction.abort()
                raise MailboxError(f"could not store the sent copy in {folder!r}: {exc}") from None
            transaction.finish()  # the SMTP server has it: the mail went out, only the copy is missing
            log.warning("sent %s, but its copy could not be stored in %r: %s", message["Message-ID"], folder, exc)
            return ""
        except BaseException:
            transaction.abort()
            raise
        try:
            transaction.finish()
        except SendError as exc:
            self._unsent.add(str(message["Message-ID"]))
            if exc.only_this:  # refused after the dot (not a lost answer): the copy is of a mail that never went
                self._withdraw_copy(ref)
            raise
        if self.label_store.label_copy and labels and ref:
            self.set_labels([ref], labels, frozenset())
        return ref

    def _store_copy(self, message: EmailMessage, labels: frozenset[str], then: Callable[[], None]) -> str:
        client = self._client()
        flags = [b"\\Seen", *self.label_store.on_copy(labels)]
        data = message.as_bytes(policy=email.policy.SMTP)
        if b"LITERAL+" in self.capabilities:
            typ, text = _internals.append_then(client, self.sent_folder, flags, datetime.now(UTC), data, then)
            if typ != "OK":
                raise MailboxError(f"the server refused to store the sent copy in {self.sent_folder!r}: {text!r}")
        else:
            text = client.append(self.sent_folder, data, flags=flags, msg_time=datetime.now(UTC)) or b""
            then()
        found = re.search(rb"APPENDUID (\d+) (\d+)", text)
        if not found:
            return ""
        ref = make_ref(self.sent_folder, int(found.group(1)), int(found.group(2)))
        self.appended.add(ref)
        return ref

    def _withdraw_copy(self, ref: str) -> None:
        """Take our copy of a refused mail out of the sent folder, so it never stands for a send (and a retry
        does not leave a second one): only that UID, with UIDPLUS's UID EXPUNGE, which touches nothing else.
        Without UIDPLUS the copy stays, and only this process knows it is not proof (`_unsent`)."""
        if not ref or b"UIDPLUS" not in self.capabilities:
            return
        folder, validity, uid = split_ref(ref)
        client = self._client()
        try:
            info = client.select_folder(folder)
            if int(info[b"UIDVALIDITY"]) == validity:
                client.add_flags([uid], [b"\\Deleted"], silent=True)
                client.uid_expunge([uid])
                self.appended.discard(ref)
        except (IMAPClientError, OSError) as exc:
            log.warning("could not take the copy of a refused mail out of %r: %s", folder, exc)

    def already_sent(self, message_id: str) -> bool:
        if not self.sent_folder or message_id in self._unsent:
            return False
        client = self._client()
        try:
            client.select_folder(self.sent_folder, readonly=True)
        except IMAPClientError:
            if self._sent_vanished(client, self.sent_folder):
                return False  # warned; no copy can prove a send now
            raise
        return bool(client.search(["HEADER", "Message-ID", message_id]))

    # --- the daemon's records (store/records.py) ------------------------------------------------------

    def _records_folder(self, folder: str, create: bool) -> str | None:
        """`folder` ("Helpdesk/Records") with the server's hierarchy separator; created when asked and missing."""
        client = self._client()
        listed = client.list_folders("", self.imap.folder)
        separator = listed[0][1] if listed and listed[0][1] else b"/"
        separator = separator.decode() if isinstance(separator, bytes) else separator
        name = folder.replace("/", separator)
        if client.folder_exists(name):
            return name
        if not create:
            return None
        try:
            client.create_folder(name)
        except IMAPClientError as exc:
            raise MailboxError(f"cannot create the records folder {name!r}: {exc}") from None
        return name

    def keep_record(self, message: EmailMessage, folder: str) -> None:
        name = self._records_folder(folder, create=True)
        try:
            self._client().append(name, message.as_bytes(policy=email.policy.SMTP), flags=[b"\\Seen"],
                                  msg_time=datetime.now(UTC))
        except IMAPClientError as exc:
            raise MailboxError(f"cannot store a record in {name!r}: {exc}") from None

    def records(self, folder: str) -> Iterator[bytes]:
        name = self._records_folder(folder, create=False)
        if name is None:
            return
        client = self._client()
        client.select_folder(name, readonly=True)
        uids = client.search("ALL")
        for part in chunks(uids, FETCH_CHUNK):
            for _, data in sorted(client.fetch(part, [b"BODY.PEEK[]"]).items()):
                if data.get(b"BODY[]") is not None:
                    yield data[b"BODY[]"]

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """IDLE (or sleep) until mail may have come, `timeout` passed, or `stop` is set (looked at every second)."""
        if stop is not None:
            self.stop_when(stop)
        self.sender.release()  # the pass's SMTP connection: not held while waiting for mail
        stop = stop or threading.Event()
        self._quiet.set()
        try:
            if not self._idle:
                stop.wait(timeout)
                return
            client = self._client()
            client.select_folder(self.imap.folder, readonly=True)
            deadline = time.monotonic() + min(timeout, 25 * 60)  # RFC 2177: re-issue IDLE well within 29 minutes
            client.idle()
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    if client.idle_check(timeout=min(1.0, max(deadline - time.monotonic(), 0.01))):
                        return  # the server said something: new mail, expunge, flag change
            finally:
                client.idle_done()
        finally:
            self._quiet.clear()

    # --- stopping -------------------------------------------------------------------------------

    def stop_when(self, stop: threading.Event) -> None:
        """When `stop` is set (SIGTERM), a pass blocked on a server that does not answer ends within seconds:
        after STOP_GRACE (for a pass about to end by itself) the IMAP and SMTP connections are cut, except
        that an SMTP commit in flight gets COMMIT_GRACE for its verdict (cutting it could send the mail twice).
        wait() calls this; a daemon may call it before its first pass too."""
        if self._stop is stop:
            return
        self._stop = stop
        self.sender.stop = stop  # no new SMTP attempt, and no retry wait, once stopping
        threading.Thread(target=self._cut_when_stopped, args=(stop,), name="mailhelpdesk-stop", daemon=True).start()

    def _cut_when_stopped(self, stop: threading.Event) -> None:
        stop.wait()
        if self._quiet.wait(STOP_GRACE):
            return  # waiting (IDLE notices the stop within a second) or closed: nothing is blocked
        self.interrupt()

    def interrupt(self) -> None:
        """Cut the connections in use, from another thread: a call blocked on them fails at once."""
        deadline = time.monotonic() + COMMIT_GRACE
        while self.sender.committing.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.sender.interrupt()
        sock = _internals.imap_socket(self.client)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _text(exc: Exception) -> str:
    text = str(exc)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text

