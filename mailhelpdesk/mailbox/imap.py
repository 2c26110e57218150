"""IMAP adapter (IMAPClient): UID checkpoints, CONDSTORE for agents' label changes, IDLE, keywords or
Gmail labels. Never sets \\Seen (BODY.PEEK, read-only selects), never deletes or moves."""

from __future__ import annotations

import email.policy
import logging
import re
import ssl
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Callable, Iterable, Iterator

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import SENT
from imapclient.datetime_util import datetime_to_INTERNALDATE

from ..config import Config
from ..errors import AuthError, CapabilityError, MailboxError, MailboxSetupError, SendError
from ..netfaults import connect_problem
from ..smtp import SmtpSender
from .base import Changes, RawMessage

log = logging.getLogger("mailhelpdesk")

FETCH_CHUNK = 100
ATOM_SPECIALS = re.compile(r"[^\x21-\x7e]|[(){%*\"\\\]]")


def keyword(label: str) -> str:
    """An IMAP keyword for a label: keywords are atoms, so spaces and specials become '_'."""
    return ATOM_SPECIALS.sub("_", label)


def chunks(uids: list[int], size: int = 500) -> Iterator[list[int]]:
    """UID lists in pieces: servers refuse command lines much over 8-64 KB (RFC 7162 suggests 8 KB)."""
    ordered = sorted(uids)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


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
    kind = "imap"

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

    # --- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Connected, TLS as configured, logged in. Every failure is one line that names the key to check; a
        running daemon retries them all (a MailboxError), `check` and `run` at start-up stop on them."""
        c = self.imap
        where = f"{c.host}:{c.effective_port}"
        self.close()  # never two connections: a reconnect replaces the old one
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
            client.login(c.username, c.password)
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
        if not self.sent_folder:
            self.sent_folder = client.find_special_folder(SENT) or ""
        if not client.folder_exists(c.folder):
            raise MailboxSetupError(f"[imap] folder {c.folder!r} does not exist on {where}: correct [imap] folder")
        if self.sent_folder and not client.folder_exists(self.sent_folder):
            raise MailboxSetupError(f"[imap] sent_folder {self.sent_folder!r} does not exist on {where}: "
                                    "correct [imap] sent_folder, or leave it out to use the folder marked \\Sent")

    @property
    def gmail(self) -> bool:
        return b"X-GM-EXT-1" in self.capabilities

    @property
    def condstore(self) -> bool:
        return b"CONDSTORE" in self.capabilities

    @property
    def save_sent(self) -> bool:
        if self.imap.save_sent == "auto":
            return not self.gmail  # Gmail keeps a copy of everything sent through its SMTP
        return self.imap.save_sent == "yes"

    def _client(self) -> imapclient.IMAPClient:
        if self.client is None:
            self.connect()
        assert self.client is not None
        return self.client

    def close(self) -> None:
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
        lines.append("new mail: " + ("IDLE (seconds)" if self._idle else f"polling every {self.config.mailbox.poll_interval} s"))
        lines.append("agents' label changes: " + ("CONDSTORE (cheap)" if self.condstore else "full flag scan each pass"))
        if self.gmail:
            lines.append("labels: Gmail labels over IMAP (X-GM-LABELS)")
        else:
            info = client.select_folder(self.imap.folder)  # EXAMINE would report no permanent flags at all
            permanent = info.get(b"PERMANENTFLAGS", ())
            if b"\\*" not in permanent:
                raise CapabilityError(
                    f"the server does not allow new IMAP keywords in {self.imap.folder!r} (PERMANENTFLAGS lacks \\*), "
                    "so labels cannot be stored"
                )
            lines.append(f"labels: IMAP keywords such as {keyword(self.root + '/Status/Open')} (mail clients show them as tags)")
        lines.append("sent copies: " + ("appended to the sent folder" if self.save_sent else "kept by the server"))
        return lines

    def prepare(self, labels: Iterable[str]) -> list[str]:
        # keywords are matched without regard to case (RFC 3501); Thunderbird stores the tags it sets lower-cased
        self.names = {keyword(label).lower(): label for label in labels}
        if self.gmail:
            client = self._client()
            existing = {name for _, _, name in client.list_folders()}
            created = []
            for label in sorted(labels):
                if label not in existing:
                    client.create_folder(label)
                    created.append(label)
            return [f"created Gmail label {name}" for name in created]
        return []

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
        if self.gmail:
            raw = data.get(b"X-GM-LABELS", ())
        else:
            raw = data.get(b"FLAGS", ())
        labels = set()
        for item in raw:
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            low = text.lower()
            if low.startswith(keyword(self.root).lower() + "/") or low.startswith(self.root.lower() + "/"):
                labels.add(self.names.get(low, text))
        return frozenset(labels)

    def changes(self, cursor: dict[str, Any], since: datetime) -> Changes:
        client = self._client()
        new_cursor: dict[str, Any] = {}
        label_changes: list[tuple[str, frozenset[str]]] = []
        todo: list[tuple[str, str, int, list[int]]] = []
        flag_items = [b"X-GM-LABELS"] if self.gmail else [b"FLAGS"]
        for folder, role in self._folders():
            info = client.select_folder(folder, readonly=True)
            validity = int(info[b"UIDVALIDITY"])
            uidnext = int(info.get(b"UIDNEXT", 0))
            modseq = int(info.get(b"HIGHESTMODSEQ", 0) or 0)
            old = cursor.get(folder)
            if not old or old.get("uidvalidity") != validity:
                uids = client.search(["SINCE", since.date()]) if info.get(b"EXISTS") else []
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
                    label_changes += [(make_ref(folder, validity, uid), self._labels(data)) for uid, data in changed.items()]
            top = max(uids, default=0)
            uids = [uid for uid in uids if make_ref(folder, validity, uid) not in self.appended]
            new_cursor[folder] = {"uidvalidity": validity, "uidnext": max(uidnext, top + 1), "modseq": modseq}
            todo.append((folder, role, validity, sorted(uids)))
        return Changes(self._fetch(todo), label_changes, new_cursor, expected=sum(len(t[3]) for t in todo))

    def _fetch(self, todo: list[tuple[str, str, int, list[int]]]) -> Iterator[RawMessage]:
        client = self._client()
        items = [b"BODY.PEEK[]", b"INTERNALDATE", b"FLAGS"]
        if self.gmail:
            items += [b"X-GM-LABELS", b"X-GM-THRID"]
        for folder, role, validity, uids in todo:
            if not uids:
                continue
            client.select_folder(folder, readonly=True)
            for start in range(0, len(uids), FETCH_CHUNK):
                chunk = uids[start : start + FETCH_CHUNK]
                for uid, data in sorted(client.fetch(chunk, items).items()):
                    raw = data.get(b"BODY[]")
                    if raw is None:
                        continue  # expunged meanwhile
                    received = data.get(b"INTERNALDATE")
                    if isinstance(received, datetime):
                        received = received.astimezone(UTC) if received.tzinfo else received.replace(tzinfo=UTC)
                    thread = data.get(b"X-GM-THRID")
                    yield RawMessage(
                        make_ref(folder, validity, uid),
                        role,
                        raw,
                        self._labels(data),
                        received,
                        format(thread, "x") if isinstance(thread, int) else "",
                    )

    # --- writing --------------------------------------------------------------------------------

    def set_labels(self, refs: Iterable[str], add: frozenset[str], remove: frozenset[str]) -> None:
        client = self._client()
        by_folder: dict[tuple[str, int], list[int]] = {}
        for ref in refs:
            folder, validity, uid = split_ref(ref)
            by_folder.setdefault((folder, validity), []).append(uid)
        for (folder, validity), all_uids in by_folder.items():
            info = client.select_folder(folder)
            if int(info[b"UIDVALIDITY"]) != validity:
                continue  # the folder was recreated; a resync will label its messages anew
            known = {f.decode("utf-8", "replace") if isinstance(f, bytes) else f for f in info.get(b"FLAGS", ())}
            unwanted = {keyword(label).lower() for label in remove}
            drop = sorted(k for k in known if k.lower() in unwanted)  # as the server spells them
            for uids in chunks(all_uids):
                if self.gmail:
                    if remove:
                        client.remove_gmail_labels(uids, sorted(remove), silent=True)
                    if add:
                        client.add_gmail_labels(uids, sorted(add), silent=True)
                    continue
                if drop:
                    client.remove_flags(uids, drop, silent=True)
                if add:
                    client.add_flags(uids, sorted(map(keyword, add)), silent=True)

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
            if not committed:
                transaction.abort()
                raise MailboxError(f"could not store the sent copy in {self.sent_folder!r}: {exc}") from None
            transaction.finish()  # the SMTP server has it: the mail went out, only the copy is missing
            log.warning("sent %s, but its copy could not be stored in %r: %s", message["Message-ID"], self.sent_folder, exc)
            return ""
        except BaseException:
            transaction.abort()
            raise
        try:
            transaction.finish()
        except SendError:
            self._unsent.add(str(message["Message-ID"]))
            raise
        if self.gmail and labels and ref:
            self.set_labels([ref], labels, frozenset())
        return ref

    def _store_copy(self, message: EmailMessage, labels: frozenset[str], then: Callable[[], None]) -> str:
        client = self._client()
        flags = [b"\\Seen"] + ([] if self.gmail else [k.encode() for k in sorted(map(keyword, labels))])
        data = message.as_bytes(policy=email.policy.SMTP)
        if b"LITERAL+" in self.capabilities:
            imap = client._imap
            tag = imap._new_tag()
            head = b" ".join([
                tag, b"APPEND", _as_bytes(client._normalise_folder(self.sent_folder)),
                b"(" + b" ".join(flags) + b")",
                b'"' + datetime_to_INTERNALDATE(datetime.now(UTC)).encode() + b'"',
            ])
            imap.send(head + b" {%d+}\r\n" % len(data) + data + b"\r\n")
            then()
            typ, response = imap._command_complete("APPEND", tag)
            if typ != "OK":
                raise MailboxError(f"the server refused to store the sent copy in {self.sent_folder!r}: {response!r}")
            text = b" ".join(r for r in response if isinstance(r, bytes))
            text += b" " + b" ".join(r for r in imap.untagged_responses.pop("APPENDUID", []) if isinstance(r, bytes))
        else:
            text = client.append(self.sent_folder, data, flags=flags, msg_time=datetime.now(UTC)) or b""
            then()
        found = re.search(rb"APPENDUID (\d+) (\d+)", text)
        if not found:
            return ""
        ref = make_ref(self.sent_folder, int(found.group(1)), int(found.group(2)))
        self.appended.add(ref)
        return ref

    def already_sent(self, message_id: str) -> bool:
        if not self.sent_folder or message_id in self._unsent:
            return False
        client = self._client()
        client.select_folder(self.sent_folder, readonly=True)
        return bool(client.search(["HEADER", "Message-ID", message_id]))

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
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


def _text(exc: Exception) -> str:
    text = str(exc)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
