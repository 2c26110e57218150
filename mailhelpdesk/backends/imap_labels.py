"""How the IMAP adapter keeps labels: as IMAP keywords (any server), or as Gmail labels over IMAP (X-GM-LABELS,
when the server offers X-GM-EXT-1). One object per way, chosen from the server's capabilities (`label_store_for`);
the adapter asks it instead of testing for Gmail here and there."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import imapclient

from mailhelpdesk.errors import CapabilityError
from mailhelpdesk.capabilities import LabelStore, SentCopy

ATOM_SPECIALS = re.compile(r"[^\x21-\x7e]|[(){%*\"\\\]]")


def keyword(label: str) -> str:
    """An IMAP keyword for a label: keywords are atoms, so spaces and specials become '_'."""
    return ATOM_SPECIALS.sub("_", label)


class LabelWay:
    """A way of keeping labels over IMAP: what the adapter reads, writes and says about them."""

    kind: LabelStore
    item: bytes  # the FETCH and STORE item that carries the labels
    extra: tuple[bytes, ...]  # what else a new message is fetched with
    removes: str  # the IMAPClient methods that take labels off ...
    adds: str  # ... and put them on
    sent_copy: SentCopy  # who keeps a copy of what we send, unless [imap] save_sent says otherwise
    conditional: bool  # with CONDSTORE, writes go only over the version we read (UNCHANGEDSINCE)
    label_copy: bool  # our sent copy is labelled after it is stored (else with the flags it is stored with)

    def describe(self, client: imapclient.IMAPClient, folder: str, root: str) -> list[str]:
        """Lines for `check`; a CapabilityError when labels cannot be kept in `folder`."""
        raise NotImplementedError

    def prepare(self, client: Callable[[], imapclient.IMAPClient], labels: Iterable[str]) -> list[str]:
        """Create what the labels need (connecting only then); lines saying what was done."""
        raise NotImplementedError

    def changes(self, add: frozenset[str], remove: frozenset[str], present: Iterable[str]) -> tuple[list[str], list[str]]:
        """(what to take off, what to put on), as the server is to be told; `present`: the folder's FLAGS."""
        raise NotImplementedError

    def write(self, client: imapclient.IMAPClient, uids: list[int], drop: list[str], add: list[str]) -> None:
        if drop:
            getattr(client, self.removes)(uids, drop, silent=True)
        if add:
            getattr(client, self.adds)(uids, add, silent=True)

    def on_copy(self, labels: Iterable[str]) -> list[bytes]:
        """The flags our sent copy is stored with, besides \\Seen."""
        return []

    def thread_id(self, data: dict[bytes, Any]) -> str:
        """The provider's thread of a fetched message ("" when the server has no threads)."""
        return ""


class Keywords(LabelWay):
    """Labels as IMAP keywords (RFC 3501 flags): matched without regard to case, made by the first STORE that sets
    them (when PERMANENTFLAGS allows new ones); Thunderbird shows them as tags."""

    kind = LabelStore.KEYWORDS
    item = b"FLAGS"
    extra = ()
    removes, adds = "remove_flags", "add_flags"
    sent_copy = SentCopy.OURS
    conditional = True
    label_copy = False

    def describe(self, client: imapclient.IMAPClient, folder: str, root: str) -> list[str]:
        info = client.select_folder(folder)  # EXAMINE would report no permanent flags at all
        if b"\\*" not in info.get(b"PERMANENTFLAGS", ()):
            raise CapabilityError(
                f"the server does not allow new IMAP keywords in {folder!r} (PERMANENTFLAGS lacks \\*), "
                "so labels cannot be stored"
            )
        return [f"labels: IMAP keywords such as {keyword(root + '/Status/Open')} (mail clients show them as tags)"]

    def prepare(self, client: Callable[[], imapclient.IMAPClient], labels: Iterable[str]) -> list[str]:
        return []  # a keyword exists once a message carries it

    def changes(self, add: frozenset[str], remove: frozenset[str], present: Iterable[str]) -> tuple[list[str], list[str]]:
        """The keywords to drop as the server spells them (Thunderbird lower-cases those it sets), the ones to add
        as we spell them."""
        unwanted = {keyword(label).lower() for label in remove}
        return sorted(k for k in present if k.lower() in unwanted), sorted(map(keyword, add))

    def on_copy(self, labels: Iterable[str]) -> list[bytes]:
        return [k.encode() for k in sorted(map(keyword, labels))]


class GmailLabels(LabelWay):
    """Gmail labels over IMAP (X-GM-LABELS): created up front as folders, set by name; Gmail keeps a copy of all
    that is sent through its SMTP, and files mail into threads (X-GM-THRID)."""

    kind = LabelStore.LABELS
    item = b"X-GM-LABELS"
    extra = (b"X-GM-LABELS", b"X-GM-THRID")
    removes, adds = "remove_gmail_labels", "add_gmail_labels"
    sent_copy = SentCopy.SERVER
    conditional = False  # whether Gmail honours UNCHANGEDSINCE on X-GM-LABELS is unproven: plain writes
    label_copy = True

    def describe(self, client: imapclient.IMAPClient, folder: str, root: str) -> list[str]:
        return ["labels: Gmail labels over IMAP (X-GM-LABELS)"]

    def prepare(self, client: Callable[[], imapclient.IMAPClient], labels: Iterable[str]) -> list[str]:
        connection = client()
        existing = {name for _, _, name in connection.list_folders()}
        created = []
        for label in sorted(labels):
            if label not in existing:
                connection.create_folder(label)
                created.append(label)
        return [f"created Gmail label {name}" for name in created]

    def changes(self, add: frozenset[str], remove: frozenset[str], present: Iterable[str]) -> tuple[list[str], list[str]]:
        return sorted(remove), sorted(add)

    def thread_id(self, data: dict[bytes, Any]) -> str:
        thread = data.get(b"X-GM-THRID")
        return format(thread, "x") if isinstance(thread, int) else ""


KEYWORDS, GMAIL_LABELS = Keywords(), GmailLabels()


def label_store_for(server_capabilities: frozenset[bytes]) -> LabelWay:
    """The way labels are kept on a server with these capabilities."""
    return GMAIL_LABELS if b"X-GM-EXT-1" in server_capabilities else KEYWORDS
