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
from mailhelpdesk.model import Incoming, Plan, State

TEMPLATE_ERROR = "template_error"  # the state cursor `status` reads: the last user template that failed to render


class Engine:
    """Decides what the helpdesk does. Built once per config; every method is pure and changes nothing of its own."""

    def __init__(self, config: Config, known_keys: dict[str, str] | None = None):
        self.ctx = Context.of(config, known_keys)
        self.config = config
        self.labels = self.ctx.labels

    def context(self, state: State) -> Context:
        """The context that decides for this state: making this installation's Message-IDs with the secret the
        state holds (core/mail/factory.py `message_id`; the secret is made outside the core, app/daemon.py)."""
        secret = state.cursors.get(ID_SECRET, "")
        return self.ctx if secret == self.ctx.mail.secret else dataclasses.replace(
            self.ctx, mail=self.ctx.mail.keyed(secret))

    def on_message(self, state: State, incoming: Incoming, now: datetime) -> Plan:
        """One message found in the mailbox: the message rules, in order; the first that answers wins."""
        return self._noted(policy.on_message(self.context(state), state, incoming, now), now)

    def on_labels(self, state: State, changes: Iterable[tuple[str, frozenset[str]]], now: datetime) -> Plan:
        """Agents changed labels in their mail client."""
        return self._noted(policy.on_labels(self.context(state), state, changes, now), now)

    def on_tick(self, state: State, now: datetime) -> Plan:
        """The timed duties, in order."""
        return self._noted(policy.on_tick(self.context(state), state, now), now)

    def _noted(self, plan: Plan, now: datetime) -> Plan:
        """A user's template that failed (the packaged one was used): kept in the state for `status`."""
        problems = self.ctx.mail.take_problems()  # every keyed factory shares the base's list
        if problems:
            plan.cursors[TEMPLATE_ERROR] = {"at": now.isoformat(), "error": problems[-1], "count": len(problems)}
            plan.notes.extend(f"template error: {p}" for p in dict.fromkeys(problems))
        return plan
