"""Mailbox adapters behind one small protocol (see base.py)."""

from __future__ import annotations

from ..config import Config
from .base import Mailbox


def open_mailbox(config: Config) -> Mailbox:
    """The adapter the config asks for (not yet connected)."""
    backend = config.mailbox.backend
    if backend == "local":
        from .local import LocalMailbox

        return LocalMailbox(config.resolve(config.local.path), config)
    if backend == "imap":
        from .imap import ImapMailbox

        return ImapMailbox(config)
    from .gmail import GmailMailbox

    return GmailMailbox(config)
