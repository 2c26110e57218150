"""What every rule and duty may look at besides the state: the config and what is derived from it once (labels,
business calendar, mail factory, who counts as an agent). Built once per config; it replaces the engine's `self`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailhelpdesk.config import Config, calendar
from mailhelpdesk.core.labels import LabelScheme, scheme_for
from mailhelpdesk.core.mail.factory import MailFactory
from mailhelpdesk.model import Incoming, MailKind, Notice, Plan, SetLabels, Ticket, ref_key, thread_key
from mailhelpdesk.core.judge.senders import FREE_MAIL, normalise_address, organisation, same_sender
from mailhelpdesk.core.judge.threading import takes_part


@dataclass(frozen=True)
class Context:
    config: Config
    labels: LabelScheme
    calendar: Any  # sla.BusinessCalendar
    mail: MailFactory
    free_mail: frozenset[str]
    agent_addresses: frozenset[str]
    known_keys: dict[str, str] = field(default_factory=dict)  # rebuild: Message-ID of a request -> its key

    @classmethod
    def of(cls, config: Config, known_keys: dict[str, str] | None = None) -> Context:
        cal = calendar(config)
        return cls(config=config, labels=scheme_for(config), calendar=cal, mail=MailFactory(config, cal),
                   free_mail=frozenset(FREE_MAIL | {d.strip().lower() for d in config.helpdesk.free_mail_domains}),
                   agent_addresses=frozenset(normalise_address(a.email) for a in config.agents),
                   known_keys=dict(known_keys or {}))

    @property
    def support(self) -> str:
        return self.config.support_address

    # --- who ----------------------------------------------------------------------------------------------

    def is_agent(self, incoming: Incoming) -> bool:
        """An agent's mail, or the shared account's: found in the sent folder (only someone logged into the mailbox
        can put it there). A delivered mail `From:` the support address is anyone's (a forgery, or a web form
        sending as us on a visitor's behalf): it is judged like any other sender's."""
        return incoming.folder_role == "sent" or self.config.agent_by_email(incoming.facts.sender) is not None

    def who(self, incoming: Incoming) -> str:
        agent = self.config.agent_by_email(incoming.facts.sender)
        return agent.name if agent else incoming.facts.sender

    def takes_part(self, ticket: Ticket, incoming: Incoming) -> bool:
        """May this message join `ticket`'s conversation? (README, How it decides: threading) The support address is in To
        of every request, but delivered mail from it proves nothing (is_agent)."""
        if self.is_agent(incoming):
            return True
        sender = incoming.facts.sender
        return not same_sender(sender, self.support) and takes_part(ticket, sender, self.agent_addresses, self.free_mail)

    def may_attach(self, ticket: Ticket, incoming: Incoming) -> bool:
        """Participants join; automatic mail about the conversation (an out-of-office to our acknowledgement,
        whoever's) is attached as information, which changes nothing else (README: robots are never answered)."""
        return bool(incoming.facts.automatic) or self.takes_part(ticket, incoming)

    def customer_side(self, ticket: Ticket, address: str) -> bool:
        """The customer, or a colleague at the customer's organisation."""
        org = organisation(ticket.customer, self.free_mail)
        return same_sender(address, ticket.customer) or bool(org) and organisation(address, self.free_mail) == org

    # --- time ---------------------------------------------------------------------------------------------

    def due(self, ticket: Ticket, since: datetime) -> datetime:
        """When a wait that started at `since` is due, at the ticket's priority."""
        return self.calendar.add_target(since, self.config.first_response_target(ticket.priority))

    # --- what every plan that touches a ticket does -------------------------------------------------------

    def index_message(self, plan: Plan, ticket: Ticket, incoming: Incoming, thread: bool = True) -> None:
        """The message, its place (and its provider thread) lead to `ticket`."""
        plan.index[incoming.facts.message_id] = ticket.key
        plan.index[ref_key(incoming.ref)] = ticket.key
        if thread and incoming.thread_id:
            plan.index[thread_key(incoming.thread_id)] = ticket.key

    def notify(self, plan: Plan, kind: MailKind, ticket: Ticket, now: datetime, to: str = "") -> None:
        """Tell an agent (the assignee, unless `to` names someone) or a lead about a ticket: held in the state and
        mailed at the end of the pass, alone or batched with the others to the same address (core/duties/notices.py)."""
        if not to:
            agent = self.config.agent_by_name(ticket.assignee or "")
            if agent is None:
                return
            to = agent.email
        plan.notices.append(Notice(kind, ticket.key, to.lower(), now))

    def sync_labels(self, plan: Plan, ticket: Ticket, now: datetime) -> Ticket:
        """Label the ticket's messages: all of them when its labels changed, else only new ones."""
        desired = self.labels.for_ticket(ticket, now)
        refs = ticket.refs if desired != frozenset(ticket.labels_applied) else ticket.unlabelled
        if refs:
            plan.actions.append(SetLabels(tuple(refs), desired, self.labels.all() - desired, ticket.key))
        if refs or ticket.unlabelled:
            ticket = plan.put(dataclasses.replace(ticket, labels_applied=tuple(sorted(desired)), unlabelled=()))
        return ticket
