"""What each backend can do, declared once. Config validation, the wizard, `check` and the rules ask
`capabilities(config)` instead of comparing the backend's name; the adapter class carries its entry as
`CAPABILITIES`. Pure data: importing this imports no adapter, no network library and no config.

An IMAP server may do more than the "imap" entry promises: Gmail over IMAP keeps labels and sent copies itself.
The IMAP adapter finds that out when it connects (`imap_labels.label_store_for`); the entry says what holds
before anyone has connected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class LabelStore(StrEnum):
    """How a backend keeps labels on messages."""

    LABELS = "labels"  # provider labels (Gmail): created up front, with colours; mail clients show them as folders
    KEYWORDS = "keywords"  # IMAP keywords: atoms, made by the first write; Thunderbird shows them as tags
    FILE = "file"  # labels.json beside the mail (the local folder backend)


class SentCopy(StrEnum):
    """Who puts a copy of what we send into the sent folder."""

    SERVER = "server"  # the provider files everything sent through it
    OURS = "ours"  # we store it (an IMAP APPEND, a file)


class Login(StrEnum):
    """What a founder sets up so the daemon may use the mailbox."""

    PASSWORD = "password"  # an IMAP and SMTP login, the password in an environment variable or a file
    OAUTH = "oauth"  # a token written by `mailhelpdesk auth` (or a Workspace service account)
    NONE = "none"  # nothing (a folder on this machine)


@dataclass(frozen=True)
class Capabilities:
    name: str  # the value of [mailbox] backend
    adapter: str  # "module:Class" of the adapter, imported only when a mailbox is opened
    summary: str  # one phrase for the config file and the wizard
    sections: tuple[str, ...]  # the config sections it reads, its own first
    login: Login
    labels: LabelStore
    required: tuple[str, ...] = ()  # "section.key" pairs that must be set
    threads_by_id: bool = False  # send() files mail into the provider's thread by its id (RawMessage.thread_id),
    # and the provider keeps it there only when the subject matches the thread's ("Re: " aside): mail into a
    # ticket's thread keeps the customer's subject
    push: str = ""  # how new mail can be noticed within seconds, and the keys for it ("" when the backend only polls)
    thread_url: str = ""  # a web page of one thread, from {account} and {thread}; "" when there is none
    sent_copy: SentCopy = SentCopy.OURS
    daily_send_limit: int = 0  # the default of [mailbox] daily_send_limit: what the provider lets one account send
    notices_to_agents: bool = True  # the default of [assignment] notify: a mail to the agent who gets a new ticket

    @property
    def sends_by_smtp(self) -> bool:
        """Mail goes out through [smtp]: `check` and `run` log in there too."""
        return "smtp" in self.sections

    def thread_link(self, account: str, thread_id: str) -> str:
        """Where an agent opens a thread in a browser; "" when the backend has no web pages for threads."""
        if not (self.thread_url and thread_id):
            return ""
        return self.thread_url.format(account=account, thread=thread_id)


IMAP = Capabilities(
    "imap", "mailhelpdesk.backends.imap:ImapMailbox", "any IMAP server (Gmail over IMAP too), mail out by SMTP",
    sections=("imap", "smtp"), login=Login.PASSWORD, labels=LabelStore.KEYWORDS,
    required=("imap.host", "imap.username", "smtp.host"),
    push="IMAP IDLE ([imap] idle)",
    daily_send_limit=2000,
)

GMAIL = Capabilities(
    "gmail", "mailhelpdesk.backends.gmail:GmailMailbox",
    "the Gmail API (OAuth; labels with colours, replies in the customer's thread)",
    sections=("gmail",), login=Login.OAUTH, labels=LabelStore.LABELS,
    threads_by_id=True,
    push="Gmail through Pub/Sub ([gmail] pubsub_topic, pubsub_subscription)",
    thread_url="https://mail.google.com/mail/u/{account}/#all/{thread}",
    sent_copy=SentCopy.SERVER,
    daily_send_limit=2000,  # Google Workspace; a consumer account may send 500
    # the daily limit binds at ~1,000 tickets a day when each costs two sends; the assignee label (and its colour)
    # and the digests tell agents at no send
    notices_to_agents=False,
)

LOCAL = Capabilities(
    "local", "mailhelpdesk.backends.local:LocalMailbox", "a folder of .eml files, for trying it out",
    sections=("local",), login=Login.NONE, labels=LabelStore.FILE,
)  # nothing leaves the machine: no sending limit

BACKENDS: dict[str, Capabilities] = {c.name: c for c in (IMAP, GMAIL, LOCAL)}


def capabilities(config_or_name: Any) -> Capabilities:
    """The capabilities of the backend a config (or a backend name) uses. The config was validated, so a name is
    known; an unknown name is a KeyError."""
    name = config_or_name if isinstance(config_or_name, str) else config_or_name.mailbox.backend
    return BACKENDS[name]


def adapter_class(name: str) -> type:
    """The adapter class of a backend, imported now."""
    from importlib import import_module

    module, _, cls = BACKENDS[name].adapter.partition(":")
    return getattr(import_module(module), cls)
