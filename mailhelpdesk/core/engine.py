"""The pure core's front door: (state, event, config, now) -> Plan. No I/O, no clock: `now` is always passed in.

The rules themselves and their order are in `core/policy.py`; this class keeps the interface the daemon, `rebuild`,
the read-only commands and the tests use."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Iterable

from mailhelpdesk.core import policy
from mailhelpdesk.config import Config
from mailhelpdesk.core.context import Context
from mailhelpdesk.core.mail.factory import ID_SECRET
from mailhelpdesk.model import Incoming, Plan, Priority, State, Ticket

TEMPLATE_ERROR = "template_error"  # the state cursor `status` reads: the last user template that failed to render


class Engine:
    """Decides what the helpdesk does. Built once per config; every method is pure."""

    def __init__(self, config: Config, known_keys: dict[str, str] | None = None):
        self.ctx = Context.of(config, known_keys)
        self.config = config
        self.labels = self.ctx.labels
        self.mail = self.ctx.mail
        self.calendar = self.ctx.calendar

    def keyed(self, state: State) -> Engine:
        """The engine making this installation's Message-IDs: with the secret `state` holds (core/mail/factory.py `message_id`)."""
        secret = state.cursors.get(ID_SECRET, "")
        if secret != self.mail.secret:
            self.mail = self.mail.keyed(secret)
            self.ctx = dataclasses.replace(self.ctx, mail=self.mail)
        return self

    def on_message(self, state: State, incoming: Incoming, now: datetime) -> Plan:
        """One message found in the mailbox: the message rules, in order; the first that answers wins."""
        return self._noted(policy.on_message(self.keyed(state).ctx, state, incoming, now), now)

    def on_labels(self, state: State, changes: Iterable[tuple[str, frozenset[str]]], now: datetime) -> Plan:
        """Agents changed labels in their mail client."""
        return self._noted(policy.on_labels(self.keyed(state).ctx, state, changes, now), now)

    def on_tick(self, state: State, now: datetime) -> Plan:
        """The timed duties, in order."""
        return self._noted(policy.on_tick(self.keyed(state).ctx, state, now), now)

    def _noted(self, plan: Plan, now: datetime) -> Plan:
        """A user's template that failed (the packaged one was used): kept in the state for `status`."""
        problems = self.mail.take_problems()
        if problems:
            plan.cursors[TEMPLATE_ERROR] = {"at": now.isoformat(), "error": problems[-1], "count": len(problems)}
            plan.notes.extend(f"template error: {p}" for p in dict.fromkeys(problems))
        return plan

    # what callers outside the core ask of it

    def message_id(self, key: str) -> str:
        return self.mail.message_id(key)

    def context(self, ticket: Ticket, now: datetime) -> dict:
        return self.mail.context(ticket, now)

    def context_base(self, now: datetime) -> dict:
        return self.mail.context_base(now)

    def link(self, ticket: Ticket) -> str:
        return self.mail.link(ticket)


__all__ = ["Engine", "Priority"]
