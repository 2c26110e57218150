"""Mailbox adapters behind one small protocol (see base.py), and what each backend can do (capabilities.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailhelpdesk.config import Config
    from mailhelpdesk.backends.base import Mailbox


def open_mailbox(config: Config) -> Mailbox:
    """The adapter the config asks for (not yet connected)."""
    from mailhelpdesk.capabilities import adapter_class

    return adapter_class(config.mailbox.backend).from_config(config)
