"""The pure core: (state, event, config, now) -> Plan. No I/O, no clock: `now` is always passed in."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import datetime, timedelta
from typing import Callable, Iterable

from .config import AgentConfig, Config, calendar
from .labels import LabelScheme, scheme_for
from .model import IGNORED_PREFIX, Ignored, Incoming, Plan, Priority, SendMail, SetLabels, State, Status, Ticket
from .rules.assignment import choose_assignee
from .rules.authentication import sender_failed, verdict
from .rules.commands import Command, parse_commands, trusted_sender
from .rules.escalation import due_steps
from .rules.priority import priority_for
from .rules.rating import RATINGS, rating_in
from .sla import parse_duration
from .rules.senders import FREE_MAIL, domain_key, normalise_address, organisation, same_sender, sender_key
from .rules.threading import Match, find_ticket, ref_key, takes_part, thread_key, with_people
from .templates import render



class Engine:
    """Decides what the helpdesk does. Built once per config; every method is pure."""

    def __init__(self, config: Config, known_keys: dict[str, str] | None = None):
        self.config = config
        self.known_keys = known_keys or {}  # rebuild: Message-ID of a request -> the key it had
        self.labels: LabelScheme = scheme_for(config)
        self.calendar = calendar(config)
        self.support = config.support_address
        domain = self.support.rsplit("@", 1)[1]
        self.id_domain = domain
        self.free_mail = FREE_MAIL | {d.strip().lower() for d in config.helpdesk.free_mail_domains}
        self.agent_addresses = frozenset(normalise_address(a) for a in [self.support, *(a.email for a in config.agents)])

    # --- messages ------------------------------------------------------------------------

    def on_message(self, state: State, incoming: Incoming, now: datetime) -> Plan:
        """One message found in the mailbox; the rules below run in order, the first that answers wins."""
        for rule in self.MESSAGE_RULES:
            plan = rule(self, state, incoming, now)
            if plan is not None:
                return plan
        raise AssertionError("the last message rule always answers")

    def _known(self, state: State, incoming: Incoming, now: datetime) -> Plan | None:
        """A message we already know (a re-delivery, or our own sent copy): only make sure it is labelled."""
        message_id = incoming.facts.message_id
        plan = Plan()
        ticket = state.ticket_of(message_id)
        if self._another_message(state, ticket, incoming):
            return self.on_message(state, _renamed(incoming), now)
        if ticket is not None:
            if incoming.ref not in ticket.refs:
                ticket = plan.put(ticket.with_message(message_id, incoming.ref, thread_id=incoming.thread_id))
                plan.index[ref_key(incoming.ref)] = ticket.key
                self._index_thread(plan, ticket, incoming)
                plan.notes.append(f"{ticket.key}: known message {message_id} found again at {incoming.ref}")
            self._sync_labels(plan, ticket)
            return plan
        ignored = state.ignored.get(message_id)
        if ignored is not None:
            if incoming.ref != ignored.ref and incoming.folder_role == "inbox":
                plan.index[ref_key(incoming.ref)] = IGNORED_PREFIX + message_id
                plan.actions.append(SetLabels((incoming.ref,), frozenset({self.labels.ignored}), frozenset()))
            return plan
        return None

    def _another_message(self, state: State, ticket: Ticket | None, incoming: Incoming) -> bool:
        """A known Message-ID from another sender with another subject: broken clients reuse ids (`<1@localhost>`),
        so this is another message, not a re-delivery (PRODUCT.md, Threading)."""
        facts = incoming.facts
        if facts.message_id.endswith(REUSED_ID_DOMAIN) or state.is_ours(facts.message_id) or self._is_agent(incoming):
            return False
        if ticket is not None:
            if any(same_sender(facts.sender, p) for p in (ticket.customer, *ticket.participants)):
                return False
            return facts.title != ticket.subject
        ignored = state.ignored.get(facts.message_id)
        return ignored is not None and not same_sender(facts.sender, ignored.sender) and facts.subject != ignored.subject

    def _ours(self, state: State, incoming: Incoming, now: datetime) -> Plan | None:
        """Mail the daemon sent itself (found in the sent folder): never an agent reply."""
        facts = incoming.facts
        if not (state.is_ours(facts.message_id) or (facts.ours and facts.sender == self.support)):
            return None
        plan = Plan()
        record = state.sent.get(facts.message_id)
        key = record.ticket if record else facts.ours
        ticket = state.tickets.get(key)
        if ticket is not None:
            ticket = plan.put(ticket.with_message(facts.message_id, incoming.ref, thread_id=incoming.thread_id))
            plan.index[facts.message_id] = ticket.key
            plan.index[ref_key(incoming.ref)] = ticket.key
            self._sync_labels(plan, ticket)
        return plan

    def _in_ticket(self, state: State, incoming: Incoming, now: datetime) -> Plan | None:
        """A message of a conversation we know: an agent's reply, a customer's reply, or a robot's."""
        match = find_ticket(state, incoming, self._may_attach)
        if match.ticket is None:
            return None  # none, or one the sender takes no part in: a new ticket, linked (_new_ticket)
        facts, ticket, plan = incoming.facts, match.ticket, Plan()
        if (
            match.ticket.status == Status.CLOSED
            and not self._is_agent(incoming)
            and not facts.automatic
            and not rating_in(facts.subject)
        ):
            return None  # a customer writing into a closed ticket starts a new one (linked below)
        when = incoming.when or now
        member = self._takes_part(ticket, incoming)  # else a robot's mail, attached: it makes nobody a participant
        ticket = ticket.with_message(facts.message_id, incoming.ref, facts.sender if member else "", incoming.thread_id)
        ticket = with_people(ticket, facts.to + facts.cc) if member else ticket
        latest = ticket.updated_at is None or when >= ticket.updated_at
        if facts.automatic:  # an out-of-office, an agent's too: information, never an answer nor a new wait
            bounced = any(state.is_ours(mid) or mid in ticket.message_ids for mid in facts.bounce_of)
            ticket = ticket.log(when, "automatic mail attached", facts.automatic, bounced=ticket.bounced or bounced)
        elif self._is_agent(incoming):
            not_an_answer = self._not_an_answer(state, ticket, match, incoming)
            if not_an_answer:
                ticket = ticket.log(when, "agent mail attached", f"{self._who(incoming)}: {not_an_answer}")
            else:
                ticket = self._agent_reply(ticket, incoming, when, latest)
        else:
            ticket = self._customer_reply(ticket, incoming, when, latest)
        plan.put(ticket)
        plan.index[facts.message_id] = ticket.key
        plan.index[ref_key(incoming.ref)] = ticket.key
        self._index_thread(plan, ticket, incoming)
        plan.notes.append(f"{ticket.key}: {facts.sender} ({match.how}) -> {ticket.status}")
        self._sync_labels(plan, ticket)
        return plan

    def _agent_reply(self, ticket: Ticket, incoming: Incoming, when: datetime, latest: bool) -> Ticket:
        changes: dict = {}
        if ticket.first_response_at is None:
            changes["first_response_at"] = when
        if latest and ticket.status == Status.OPEN:
            changes["status"] = Status.PENDING
        if latest:
            changes["updated_at"] = when
            changes["waiting_since"] = None
        return ticket.log(when, "agent replied", self._who(incoming), ack_wanted=False, **changes)

    CUSTOMER_KINDS = ("acknowledgement", "resolution")  # our mail to customers; the rest are internal notices

    def _not_an_answer(self, state: State, ticket: Ticket, match: Match, incoming: Incoming) -> str:
        """Why an agent's mail in a ticket does not answer the customer ("" when it does): only a mail to the
        customer (To or Cc), in the customer's conversation, is a first response (PRODUCT.md, Who is an agent)."""
        record = state.sent.get(match.via) if match.via else None
        if record is not None and record.kind not in self.CUSTOMER_KINDS:
            return f"a reply to our {record.kind} notice"
        if not any(self._customer_side(ticket, a) for a in incoming.facts.to + incoming.facts.cc):
            return "not written to the customer"
        return ""

    def _customer_side(self, ticket: Ticket, address: str) -> bool:
        """The customer, or a colleague at the customer's organisation."""
        org = organisation(ticket.customer, self.free_mail)
        return same_sender(address, ticket.customer) or bool(org) and organisation(address, self.free_mail) == org

    def _who(self, incoming: Incoming) -> str:
        agent = self.config.agent_by_email(incoming.facts.sender)
        return agent.name if agent else incoming.facts.sender

    def _customer_reply(self, ticket: Ticket, incoming: Incoming, when: datetime, latest: bool) -> Ticket:
        rating = rating_in(incoming.facts.subject)
        if rating and ticket.status in (Status.RESOLVED, Status.CLOSED):
            return ticket.log(when, "rated", rating, rating=rating)  # recorded; the ticket stays solved
        changes: dict = {}
        if latest:
            changes["updated_at"] = when
            if ticket.status in (Status.PENDING, Status.RESOLVED):
                changes["status"] = Status.OPEN
                changes["resolved_at"] = None
                changes["waiting_since"] = when
                changes["escalations"] = ()  # a new wait gets a new ladder
        priority, reason = priority_for(incoming.facts, self.config)
        if priority.rank < ticket.priority.rank:
            changes["priority"] = priority
            ticket = ticket.log(when, "priority raised", f"{priority.value} ({reason})")
        return self._timed(ticket.log(when, "customer replied", incoming.facts.sender, **changes))

    def _command(self, state: State, incoming: Incoming, now: datetime) -> Plan | None:
        """`#assign bob`, `#resolve`... on the first lines of an agent's mail to the support address."""
        facts = incoming.facts
        commands = parse_commands(facts.body)
        agent = self.config.agent_by_email(facts.sender)
        if not commands:
            return None
        if incoming.folder_role == "sent":
            # only someone logged into the shared mailbox puts mail there: trusted, when it is written to us
            if self.support not in facts.to + facts.cc:
                return None  # an answer to a customer that happens to start with '#'
            agent = agent or AgentConfig(name=f"the shared account ({self.support})", email=self.support)
            ok, why = True, "written from the shared account"
        elif agent is None or incoming.folder_role != "inbox":
            return None  # a stranger's "#assign" is just text in a customer's mail
        else:
            ok, why = trusted_sender(facts, agent, self.config.commands)
        plan = Plan()
        when = incoming.when or now
        match = find_ticket(state, incoming)
        ticket = match.ticket
        problem = "" if ok else why
        if not problem and ticket is None:
            problem = "no ticket found: reply in the ticket's conversation or put its [KEY] in the subject"
        if not problem:
            assert ticket is not None
            before = ticket
            ticket, problem = self._run_commands(ticket, commands, agent.name, when)
            if problem:
                ticket = before
        if problem:
            plan.actions.append(self._command_rejected(facts, agent.email, problem, commands))
            plan.notes.append(f"rejected commands from {facts.sender}: {problem}")
            if ticket is None:
                return plan
            ticket = ticket.log(when, "command rejected", f"{agent.name}: {problem}")
        ticket = ticket.with_message(facts.message_id, incoming.ref, thread_id=incoming.thread_id)
        plan.put(ticket)
        plan.index[facts.message_id] = ticket.key
        plan.index[ref_key(incoming.ref)] = ticket.key
        if not problem:
            plan.notes.append(f"{ticket.key}: commands from {agent.name}: {', '.join('#' + c.verb for c in commands)}")
            if ticket.assignee and ticket.assignee != (match.ticket.assignee if match.ticket else None):
                plan.actions.append(self._assignment_notice(state, ticket, now))
        self._sync_labels(plan, ticket)
        return plan

    def _run_commands(self, ticket: Ticket, commands: list[Command], who: str, when: datetime) -> tuple[Ticket, str]:
        status_verbs = {"close": Status.CLOSED, "resolve": Status.RESOLVED, "reopen": Status.OPEN, "pending": Status.PENDING}
        for command in commands:
            if command.verb in status_verbs:
                ticket = self._set_status(ticket, status_verbs[command.verb], when, f"#{command.verb} by {who}")
            elif command.verb == "assign":
                target = self.config.agent_by_name(command.argument)
                if target is None:
                    names = ", ".join(a.name for a in self.config.agents) or "none configured"
                    return ticket, f"#assign {command.argument!r}: no such agent (agents: {names})"
                ticket = ticket.log(when, "assigned", f"{target.name} (#assign by {who})", assignee=target.name)
            elif command.verb == "unassign":
                ticket = ticket.log(when, "unassigned", f"#unassign by {who}", assignee=None)
            elif command.verb == "priority":
                try:
                    priority = Priority(command.argument.lower())
                except ValueError:
                    return ticket, f"#priority {command.argument!r}: use urgent, high, normal or low"
                ticket = self._timed(ticket.log(when, "priority set", f"{priority.value} (#priority by {who})",
                                                priority=priority))
            elif command.verb == "note":
                ticket = ticket.log(when, "note", f"{who}: {command.argument}")
        return ticket, ""

    def _command_rejected(self, facts, to: str, problem: str, commands: list[Command]) -> SendMail:
        key = f"rejected:{facts.message_id}"
        rendered = self._render("command_rejected", {
            "helpdesk": self.config.helpdesk, "problem": problem, "subject": facts.subject,
            "commands": ["#" + (c.verb + " " + c.argument).strip() for c in commands],
        })
        return SendMail(key=key, kind="command rejected", to=to, subject=rendered.subject, body=rendered.text,
                        message_id=self.message_id(key), in_reply_to=facts.message_id,
                        references=(facts.message_id,), auto_submitted="auto-replied")

    def _not_a_request(self, state: State, incoming: Incoming, now: datetime) -> Plan | None:
        """Robots, lists, bounces, and our agents' unrelated outgoing mail: recorded, labelled, never answered."""
        facts = incoming.facts
        if self._is_agent(incoming):
            reason, label = "outgoing mail that answers no ticket", False
        elif facts.automatic:
            reason, label = facts.automatic, True
        elif facts.customer in (self.support, ""):
            reason, label = "sent from the support address itself", True
        else:
            return None
        plan = Plan()
        plan.ignored[facts.message_id] = Ignored(
            facts.message_id, incoming.ref, reason, facts.sender, facts.subject, incoming.when or now
        )
        if label:
            plan.index[ref_key(incoming.ref)] = IGNORED_PREFIX + facts.message_id
            plan.actions.append(SetLabels((incoming.ref,), frozenset({self.labels.ignored}), frozenset()))
        plan.notes.append(f"ignored {facts.message_id} from {facts.sender or '?'}: {reason}")
        return plan

    def _new_ticket(self, state: State, incoming: Incoming, now: datetime) -> Plan:
        """A customer's new request."""
        facts = incoming.facts
        plan = Plan()
        when = min(incoming.when or now, now)
        number = state.next_number
        key = self.known_keys.get(facts.message_id) or f"{self.config.helpdesk.ticket_prefix}-{number}"
        if key in state.tickets:
            key = f"{self.config.helpdesk.ticket_prefix}-{number}"
        number = int(key.rsplit("-", 1)[1])
        priority, reason = priority_for(facts, self.config)
        assignee, rr_index = choose_assignee(state, self.config, when)
        fresh = now - when <= timedelta(hours=self.config.autoreply.max_age_hours)
        ticket = Ticket(
            key=key,
            number=number,
            customer=facts.customer,
            customer_name=facts.sender_name if facts.customer == facts.sender else "",
            subject=facts.title,
            created_at=when,
            updated_at=when,
            waiting_since=when,
            priority=priority,
            assignee=assignee,
            ack_wanted=self.config.autoreply.enabled and fresh,
        )
        ticket = ticket.with_message(facts.message_id, incoming.ref, facts.sender, incoming.thread_id)
        ticket = dataclasses.replace(ticket, participants=tuple(dict.fromkeys(ticket.participants + (facts.customer,))))
        ticket = with_people(ticket, facts.to + facts.cc)  # colleagues in Cc may answer in the conversation
        ticket = ticket.log(when, "created", f"priority {priority.value} ({reason})", due_at=self._due(ticket, when))
        forged = sender_failed(verdict(facts.auth_headers, self.config.commands.trusted_authserv_id), facts.sender)
        if forged and ticket.ack_wanted:  # backscatter: a forged sender never hears from us
            ticket = ticket.log(when, "acknowledgement withheld", f"{forged}: the sender may be forged", ack_wanted=False)
        related = find_ticket(state, incoming)
        earlier = related.related or (related.ticket.key if related.ticket else "")
        if earlier:
            ticket = ticket.log(when, "related", earlier, related=(earlier,))
        if assignee:
            ticket = ticket.log(when, "assigned", f"{assignee} ({self.config.assignment.strategy})")
        plan.put(ticket)
        plan.next_number = max(number + 1, state.next_number)
        plan.rr_index = rr_index
        plan.index[facts.message_id] = key
        plan.index[ref_key(incoming.ref)] = key
        self._index_thread(plan, ticket, incoming)
        plan.notes.append(f"{key}: new ticket from {facts.customer}: {facts.title!r} [{priority.value}]")
        self._sync_labels(plan, ticket)
        if assignee and self.config.assignment.notify and fresh and not state.first_run:  # the backlog: a summary
            plan.actions.append(self._assignment_notice(state, ticket, now))
        return plan

    MESSAGE_RULES: tuple[Callable[..., Plan | None], ...] = (
        _known,
        _ours,
        _command,
        _in_ticket,
        _not_a_request,
        _new_ticket,
    )

    # --- agents' label changes -------------------------------------------------------------

    def on_labels(self, state: State, changes: Iterable[tuple[str, frozenset[str]]], now: datetime) -> Plan:
        """Agents changed labels in their mail client: the ticket follows, then every message is relabelled."""
        plan = Plan()
        by_ticket: dict[str, list[tuple[str, frozenset[str]]]] = {}
        for ref, labels in changes:
            owner = state.index.get(ref_key(ref), "")
            if owner.startswith(IGNORED_PREFIX):
                promoted = self._promote_ignored(state, owner[len(IGNORED_PREFIX):], labels, now)
                if promoted is not None:
                    state = _preview(state, promoted)
                    plan.extend(promoted)
            elif owner in state.tickets:
                by_ticket.setdefault(owner, []).append((ref, self.labels.ours(labels)))
        for key, seen in by_ticket.items():
            ticket = plan.tickets.get(key) or state.tickets[key]
            changed = self._ticket_from_labels(ticket, seen, now)
            if changed is not ticket:
                plan.put(changed)
                if changed.assignee and changed.assignee != ticket.assignee:
                    plan.actions.append(self._assignment_notice(state, changed, now))
                plan.notes.append(f"{key}: changed by an agent's labels -> {changed.status}, {changed.priority}, {changed.assignee}")
            self._sync_labels(plan, changed)
        return plan

    def _ticket_from_labels(self, ticket: Ticket, seen: list[tuple[str, frozenset[str]]], now: datetime) -> Ticket:
        applied = frozenset(ticket.labels_applied)
        for ref, labels in seen:
            if ref in ticket.unlabelled or labels == applied:
                continue  # not labelled by us yet, or unchanged
            reading = self.labels.read(labels)
            new_status = [s for s in reading.statuses if s != ticket.status]
            if new_status:
                ticket = self._set_status(ticket, new_status[0], now, "label")
            new_priority = [p for p in reading.priorities if p != ticket.priority]
            if new_priority:
                ticket = self._timed(ticket.log(now, "priority set", f"{new_priority[0].value} (label)",
                                                priority=new_priority[0]))
            new_assignee = [a for a in reading.assignees if a != ticket.assignee]
            if new_assignee:
                ticket = ticket.log(now, "assigned", f"{new_assignee[0]} (label)", assignee=new_assignee[0])
            elif ticket.assignee and self.labels.assignee(ticket.assignee) in applied and not reading.assignees:
                ticket = ticket.log(now, "unassigned", f"{ticket.assignee} (label removed)", assignee=None)
        return ticket

    def _set_status(self, ticket: Ticket, status: Status, now: datetime, how: str) -> Ticket:
        changes: dict = {"status": status, "updated_at": max(now, ticket.updated_at or now)}
        changes["waiting_since"] = None
        if status == Status.RESOLVED:
            changes["resolved_at"] = now
        elif status == Status.CLOSED:
            changes["closed_at"] = now
        elif status == Status.OPEN:
            changes.update(resolved_at=None, closed_at=None, waiting_since=ticket.waiting_since or now)
            if ticket.waiting_since is None:
                changes["escalations"] = ()  # a new wait gets a new ladder
        return self._timed(ticket.log(now, "status", f"{ticket.status.value} -> {status.value} ({how})", **changes))

    def _promote_ignored(self, state: State, message_id: str, labels: frozenset[str], now: datetime) -> Plan | None:
        """An agent gave ignored mail a status label: it becomes a ticket (without an acknowledgement)."""
        record = state.ignored.get(message_id)
        reading = self.labels.read(labels)
        if record is None or not reading.statuses:
            return None
        from .model import MessageFacts

        facts = MessageFacts(message_id=message_id, subject=record.subject, title=record.subject, sender=record.sender)
        incoming = Incoming(ref=record.ref, folder_role="inbox", facts=facts, received_at=record.at)
        plan = self._new_ticket(state, incoming, now)
        ticket = next(iter(plan.tickets.values()))
        ticket = ticket.log(now, "created from ignored mail", record.reason, ack_wanted=False, status=reading.statuses[0])
        plan.put(ticket)
        plan.actions = [a for a in plan.actions if not isinstance(a, SendMail)]
        plan.ignored[message_id] = dataclasses.replace(record, ticket=ticket.key)
        plan.actions.append(SetLabels((record.ref,), frozenset(), frozenset({self.labels.ignored})))
        self._sync_labels(plan, ticket)
        return plan

    # --- time and state based duties ------------------------------------------------------------

    def on_tick(self, state: State, now: datetime) -> Plan:
        """Duties that depend on time or on a whole batch, in this order."""
        plan = Plan()
        for duty in (self._ack_limits, self._acknowledgements, self._escalations, self._resolutions, self._auto_close):
            plan.extend(duty(_preview(state, plan) if plan.tickets else state, now))
        from .digest import backlog_summaries, digests_due

        preview = _preview(state, plan) if plan.tickets else state
        plan.extend(backlog_summaries(self, preview, now) if state.first_run else digests_due(self, preview, now))
        return plan

    def _ack_limits(self, state: State, now: datetime) -> Plan:
        """Before the per-sender limit (_acknowledgements): a company domain gets a handful of acknowledgements
        (a robot that varies its address), and all of them together a cap per hour (a flood from many senders:
        spam, backscatter), which leaves a warning for `status`."""
        plan = Plan()
        limits = self.config.autoreply
        hour, window = now - timedelta(hours=1), now - timedelta(hours=limits.per_sender_hours)
        budget = limits.max_per_hour - sum(1 for log in state.sender_log.values() for t in log if t > hour)
        senders: dict[str, int] = {}
        domains: dict[str, int] = {}
        skipped = 0
        for ticket in state.tickets.values():
            if not ticket.ack_wanted or ticket.first_response_at is not None or ticket.status != Status.OPEN:
                continue
            sender, domain = sender_key(ticket.customer), domain_key(ticket.customer, self.free_mail)
            if sender not in senders:
                senders[sender] = sum(1 for t in state.sender_log.get(sender, ()) if t > window)
            if senders[sender] >= limits.max_per_sender:
                continue  # _acknowledgements holds this one back
            if domain and domain not in domains:
                domains[domain] = sum(1 for key, log in state.sender_log.items() if key.endswith("@" + domain)
                                      for t in log if t > window)
            if domain and domains[domain] >= limits.max_per_domain:
                plan.put(ticket.log(now, "acknowledgement skipped", f"limit of {limits.max_per_domain} per "
                                    f"{limits.per_sender_hours} h to {domain} reached", ack_wanted=False))
                plan.notes.append(f"{ticket.key}: no acknowledgement, {domain} reached the per-domain limit")
                continue
            if budget <= 0:
                skipped += 1
                plan.put(ticket.log(now, "acknowledgement skipped",
                                    f"rate limit: {limits.max_per_hour} acknowledgements per hour", ack_wanted=False))
                continue
            budget -= 1
            senders[sender] += 1
            if domain:
                domains[domain] += 1
        if skipped:
            plan.notes.append(f"warning: {skipped} requests not acknowledged, the limit of {limits.max_per_hour} "
                              f"acknowledgements per hour ([autoreply] max_per_hour) was reached")
            earlier = state.cursors.get("ack_rate_limited") or {}
            same_hour = earlier.get("at", "") > hour.isoformat()
            plan.cursors["ack_rate_limited"] = {"at": now.isoformat(), "limit": limits.max_per_hour,
                                                "skipped": skipped + (earlier.get("skipped", 0) if same_hour else 0)}
        return plan

    def _acknowledgements(self, state: State, now: datetime) -> Plan:
        """After the batch, so a backlog conversation an agent already answered is not acknowledged."""
        plan = Plan()
        acks_to: dict[str, int] = {}
        for ticket in state.tickets.values():
            if not ticket.ack_wanted:
                continue
            if ticket.first_response_at is not None or ticket.status != Status.OPEN:
                plan.put(dataclasses.replace(ticket, ack_wanted=False))
                continue
            customer = sender_key(ticket.customer)  # rules/senders.py: without case or +tag
            window = now - timedelta(hours=self.config.autoreply.per_sender_hours)
            recent = sum(1 for t in state.sender_log.get(customer, ()) if t > window) + acks_to.get(customer, 0)
            if recent >= self.config.autoreply.max_per_sender:
                plan.put(ticket.log(now, "acknowledgement skipped", "per-sender limit reached", ack_wanted=False))
                plan.notes.append(f"{ticket.key}: no acknowledgement, {customer} reached the per-sender limit")
                continue
            acks_to[customer] = acks_to.get(customer, 0) + 1
            plan.actions.append(self._acknowledgement(ticket, now))
            plan.put(ticket.log(now, "acknowledged", customer, ack_wanted=False))
        return plan

    def _escalations(self, state: State, now: datetime) -> Plan:
        plan = Plan()
        sla = self.config.sla
        leads = tuple(sla.escalate_to)
        escalate_after = parse_duration(sla.escalate_after)
        for ticket in state.tickets.values():
            steps = due_steps(ticket, sla.warn_at, escalate_after, bool(leads), self.calendar, now,
                              quiet=state.first_run)
            if not steps:
                continue
            for step in steps:
                ticket = ticket.log(now, f"escalation: {step.name}", "" if step.announce else "backlog, not mailed",
                                    escalations=ticket.escalations + (step.name,))
                if not step.announce:
                    continue
                agent = self.config.agent_by_name(ticket.assignee or "")
                recipients = leads if step.name == "lead" or agent is None else (agent.email,)
                for to in recipients:
                    plan.actions.append(self._reminder(ticket, step.name, to, now))
            plan.put(ticket)
            plan.notes.append(f"{ticket.key}: escalation {', '.join(s.name for s in steps)}")
            self._sync_labels(plan, ticket)
        return plan

    def _resolutions(self, state: State, now: datetime) -> Plan:
        """Tell the customer their problem is solved (once per resolution) and ask how it went."""
        plan = Plan()
        if not self.config.resolution.notify:
            return plan
        recent = now - timedelta(hours=self.config.autoreply.max_age_hours)
        for ticket in state.tickets.values():
            if ticket.status != Status.RESOLVED or ticket.resolved_at is None or ticket.resolved_at < recent:
                continue
            key = f"resolution:{ticket.key}:{ticket.resolved_at:%Y%m%dT%H%M%S}"
            if state.is_ours(self.message_id(key)):
                continue
            plan.actions.append(self._resolution_notice(ticket, key, now))
        return plan

    def _auto_close(self, state: State, now: datetime) -> Plan:
        plan = Plan()
        quiet = parse_duration(self.config.resolution.close_after)
        for ticket in state.tickets.values():
            if ticket.status == Status.RESOLVED and ticket.resolved_at and now - ticket.resolved_at >= quiet:
                closed = self._set_status(ticket, Status.CLOSED, now, f"quiet for {self.config.resolution.close_after}")
                plan.put(closed)
                self._sync_labels(plan, closed)
        return plan

    # --- helpers ---------------------------------------------------------------------------------

    def _takes_part(self, ticket: Ticket, incoming: Incoming) -> bool:
        """May this message join `ticket`'s conversation? (PRODUCT.md, Threading 1)"""
        return self._is_agent(incoming) or takes_part(ticket, incoming.facts.sender, self.agent_addresses, self.free_mail)

    def _may_attach(self, ticket: Ticket, incoming: Incoming) -> bool:
        """Participants join; automatic mail about the conversation (an out-of-office to our acknowledgement,
        whoever's) is attached as information, which changes nothing else (PRODUCT.md, Mail that is not from a person)."""
        return bool(incoming.facts.automatic) or self._takes_part(ticket, incoming)

    def _is_agent(self, incoming: Incoming) -> bool:
        sender = incoming.facts.sender
        return incoming.folder_role == "sent" or sender == self.support or self.config.agent_by_email(sender) is not None

    def _due(self, ticket: Ticket, since: datetime) -> datetime:
        return self.calendar.add_target(since, self.config.first_response_target(ticket.priority))

    def _timed(self, ticket: Ticket) -> Ticket:
        """`due_at` follows the current wait and priority: recomputed when either changed; a new due time means
        a new escalation ladder."""
        if ticket.status != Status.OPEN or ticket.waiting_since is None:
            return ticket
        due = self._due(ticket, ticket.waiting_since)
        if due == ticket.due_at:
            return ticket
        return dataclasses.replace(ticket, due_at=due, escalations=())

    def _index_thread(self, plan: Plan, ticket: Ticket, incoming: Incoming) -> None:
        if incoming.thread_id:
            plan.index[thread_key(incoming.thread_id)] = ticket.key

    def _sync_labels(self, plan: Plan, ticket: Ticket) -> Ticket:
        """Label the ticket's messages: all of them when its labels changed, else only new ones."""
        desired = self.labels.for_ticket(ticket)
        if desired != frozenset(ticket.labels_applied):
            refs = ticket.refs
        else:
            refs = ticket.unlabelled
        if refs:
            plan.actions.append(SetLabels(tuple(refs), desired, self.labels.all() - desired, ticket.key))
        if refs or ticket.unlabelled:
            ticket = plan.put(dataclasses.replace(ticket, labels_applied=tuple(sorted(desired)), unlabelled=()))
        return ticket

    def message_id(self, key: str) -> str:
        """Deterministic Message-ID for a send: a retry after a crash produces the same id."""
        digest = hashlib.sha256(f"{key}|{self.support}".encode()).hexdigest()[:16]
        # short enough that "Message-ID: <...>" fits one 78-character line: a folded id trips up naive parsers
        room = max(0, 78 - len("Message-ID: <mhd..@>") - len(digest) - len(self.id_domain))
        readable = re.sub(r"[^A-Za-z0-9-]+", ".", key)[:room].strip(".")
        return f"<mhd.{readable}.{digest}@{self.id_domain}>" if readable else f"<mhd.{digest}@{self.id_domain}>"

    def context_base(self, now: datetime) -> dict:
        return {"helpdesk": self.config.helpdesk, "now": now, "tz": self.config.helpdesk.tz}

    def context(self, ticket: Ticket, now: datetime) -> dict:
        from .sla import describe_due

        due_text = describe_due(ticket.due_at, now, self.config.helpdesk.tz, self.config.helpdesk.language) if ticket.due_at else ""
        return dict(self.context_base(now), ticket=ticket, due_text=due_text)

    def _render(self, name: str, context: dict):
        h = self.config.helpdesk
        return render(name, context, str(self.config.resolve(h.templates_dir)) if h.templates_dir else "", h.language)

    def _acknowledgement(self, ticket: Ticket, now: datetime) -> SendMail:
        key = f"ack:{ticket.key}"
        first = ticket.message_ids[0]
        rendered = self._render(self.config.autoreply.template, self.context(ticket, now))
        thread_id = ticket.thread_ids[0] if ticket.thread_ids else ""
        return SendMail(
            key=key,
            kind="acknowledgement",
            to=ticket.customer,
            subject=self._thread_subject(rendered.subject, ticket, thread_id),
            body=rendered.text,
            html=rendered.html,
            message_id=self.message_id(key),
            ticket=ticket.key,
            in_reply_to=first,
            references=(first,),
            auto_submitted="auto-replied",
            thread_id=thread_id,
        )

    def _thread_subject(self, subject: str, ticket: Ticket, thread_id: str) -> str:
        """Gmail files a reply into a thread only when its subject matches the thread's ("Re: " aside),
        so there the key stays in the body and our X-Mailhelpdesk-Ticket header, not in the subject."""
        if thread_id and self.config.mailbox.backend == "gmail":
            return f"Re: {ticket.subject}"
        return subject

    def link(self, ticket: Ticket) -> str:
        """Where an agent opens the conversation: a Gmail link on Gmail, else a search for the key."""
        if self.config.mailbox.backend == "gmail" and ticket.thread_ids:
            return f"https://mail.google.com/mail/u/{self.support}/#all/{ticket.thread_ids[0]}"
        return f"search your mail client for {ticket.key} (subject tag [{ticket.key}])"

    def _reminder(self, ticket: Ticket, step: str, to: str, now: datetime) -> SendMail:
        key = f"{step}:{ticket.key}:{ticket.due_at:%Y%m%dT%H%M}:{to}"  # a new due time (wait, priority): a new ladder
        waited = self.calendar.elapsed(ticket.waiting_since or ticket.created_at, now)
        context = dict(self.context(ticket, now), step=step, waited=_hours(waited),
                       waited_wall=_hours(now - (ticket.waiting_since or ticket.created_at)), link=self.link(ticket),
                       target=self.config.sla.first_response.get(ticket.priority.value, "24h"))
        rendered = self._render("reminder", context)
        first = ticket.message_ids[0]
        return SendMail(key=key, kind=f"escalation {step}", to=to, subject=rendered.subject, body=rendered.text,
                        message_id=self.message_id(key), ticket=ticket.key, in_reply_to=first, references=(first,),
                        auto_submitted="auto-generated")

    def _resolution_notice(self, ticket: Ticket, key: str, now: datetime) -> SendMail:
        from urllib.parse import quote

        def link(rating: str) -> str:
            subject = f"[{ticket.key}] rating: {rating}"
            return f"mailto:{self.support}?subject={quote(subject)}&body={quote('(you may add a comment here)')}"

        context = dict(self.context(ticket, now), ask_rating=self.config.resolution.ask_rating,
                       ratings={r: link(r) for r in RATINGS},
                       close_after=self.config.resolution.close_after)
        rendered = self._render(self.config.resolution.template, context)
        thread_id = ticket.thread_ids[0] if ticket.thread_ids else ""
        last = next((m for m in reversed(ticket.message_ids) if not m.startswith("<mhd.")), ticket.message_ids[0])
        return SendMail(key=key, kind="resolution", to=ticket.customer,
                        subject=self._thread_subject(rendered.subject, ticket, thread_id), body=rendered.text,
                        html=rendered.html, message_id=self.message_id(key), ticket=ticket.key, in_reply_to=last,
                        references=tuple(m for m in ticket.message_ids[:20]), auto_submitted="auto-replied",
                        thread_id=thread_id)

    def _assignment_notice(self, state: State, ticket: Ticket, now: datetime) -> SendMail:
        agent = self.config.agent_by_name(ticket.assignee or "")
        assert agent is not None
        earlier = sorted(
            (t for t in state.tickets.values() if t.customer == ticket.customer and t.key != ticket.key),
            key=lambda t: t.created_at,
            reverse=True,
        )[:10]
        key = f"assigned:{ticket.key}:{agent.name}"
        rendered = self._render("assigned", dict(self.context(ticket, now), agent=agent, earlier=earlier))
        return SendMail(
            key=key,
            kind="assignment",
            to=agent.email,
            subject=rendered.subject,
            body=rendered.text,
            html=rendered.html,
            message_id=self.message_id(key),
            ticket=ticket.key,
            auto_submitted="auto-generated",
        )


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


REUSED_ID_DOMAIN = "@reused-id.mailhelpdesk>"


def _renamed(incoming: Incoming) -> Incoming:
    """The message under an id of its own, derived from the reused id, its sender and its subject (so that its
    own re-delivery is recognised)."""
    facts = incoming.facts
    digest = hashlib.sha256(f"{facts.message_id}|{facts.sender}|{facts.subject}".encode()).hexdigest()[:32]
    facts = dataclasses.replace(facts, message_id=f"<{digest}{REUSED_ID_DOMAIN}")
    return dataclasses.replace(incoming, facts=facts)


def _preview(state: State, plan: Plan) -> State:
    """A shallow copy of state with a plan merged, so later decisions in one event see earlier ones."""
    copy = dataclasses.replace(state, tickets=dict(state.tickets), index=dict(state.index), ignored=dict(state.ignored))
    copy.merge(plan)
    return copy


__all__ = ["Engine", "Priority"]
