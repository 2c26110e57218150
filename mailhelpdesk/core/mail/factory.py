"""The mail factory: every mail we send is built here, one builder per `MailKind`. Each sets the stable key that
makes it exactly-once, the Message-ID derived from that key and the installation's secret, the subject (with the
ticket key, or Gmail's thread subject), the thread headers and `Auto-Submitted`, and renders its template. Pure:
`now` is passed in, and the secret is made outside the core (app/daemon.py `keep_secret`)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from urllib.parse import quote

from mailhelpdesk.config import Config
from mailhelpdesk.capabilities import capabilities
from mailhelpdesk.kinds import ANSWERS, KINDS, TO_CUSTOMER, Audience, MailKind, template_of
from mailhelpdesk.model import OUR_ID_PREFIX, MessageFacts, SendMail, State, Step, Ticket
from mailhelpdesk.core.judge.mail_commands import known_commands
from mailhelpdesk.core.judge.rating import RATINGS
from mailhelpdesk.core.sla import describe_due
from mailhelpdesk.errors import ConfigError
from mailhelpdesk.core.mail.render import Rendered, UnsafeTemplate, render

ID_SECRET = "id_secret"  # the state cursor with this installation's Message-ID secret (see `message_id`)
UPGRADE_WINDOW = timedelta(days=7)  # see app/daemon.py `keep_secret`


def hours_text(delta: timedelta) -> str:
    """`3 h 05 min`, `40 min`: how long, as mail shows it."""
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


@dataclass(frozen=True)
class MailFactory:
    config: Config
    calendar: Any  # sla.BusinessCalendar
    # this installation's Message-ID secret (the state's `id_secret` cursor); "" only for a state that predates it
    secret: str = field(default="", repr=False)

    @property
    def support(self) -> str:
        return self.config.support_address

    def keyed(self, secret: str) -> MailFactory:
        """This factory making the Message-IDs of the installation whose secret this is."""
        return self if secret == self.secret else dataclasses.replace(self, secret=secret)

    # --- what every mail has ------------------------------------------------------------------------------

    def message_id(self, key: str) -> str:
        """The Message-ID of the send with this key: the same for every retry (a crash, a restart: exactly-once and
        "already sent today" compare ids), and nobody else can compute it. The digest is an HMAC of the key with the
        installation's secret, so a stranger who knows a ticket's key cannot write our acknowledgement's id into
        `References` and be taken into the ticket's conversation (issue 8)."""
        if not self.secret:  # a state saved before secrets: the daemon gives it one before its next pass decides
            return self.legacy_message_id(key)
        return self._message_id(key, hmac.new(self.secret.encode(), f"{key}|{self.support}".encode(),
                                              hashlib.sha256).hexdigest()[:16])

    def legacy_message_id(self, key: str) -> str:
        """The id this key had before installations had a secret (sha256 of key and address: guessable)."""
        return self._message_id(key, hashlib.sha256(f"{key}|{self.support}".encode()).hexdigest()[:16])

    def _message_id(self, key: str, digest: str) -> str:
        domain = self.support.rsplit("@", 1)[1]
        # short enough that "Message-ID: <...>" fits one 78-character line: a folded id trips up naive parsers
        room = max(0, 78 - len("Message-ID: <mhd..@>") - len(digest) - len(domain))
        readable = re.sub(r"[^A-Za-z0-9-]+", ".", key)[:room].strip(".")
        return f"{OUR_ID_PREFIX}{readable}.{digest}@{domain}>" if readable else f"{OUR_ID_PREFIX}{digest}@{domain}>"

    # what failed to render from the user's templates_dir since the engine last asked (`take_problems`)
    problems: list[str] = field(default_factory=list, compare=False, repr=False)

    def render(self, name: str, context: dict) -> Rendered:
        """The user's template (`[helpdesk] templates_dir`) when it renders; one that fails (a typo, a missing
        Subject line, a value it cannot show) never stops the pass: the packaged template of the same name is
        used, a warning names the file and line, and `status` shows it (the engine's `template_error` cursor).
        A template that tries to leave the sandbox is refused, never replaced (UnsafeTemplate)."""
        h = self.config.helpdesk
        if not h.templates_dir:
            return render(name, context, "", h.language)
        try:
            return render(name, context, str(self.config.resolve(h.templates_dir)), h.language)
        except UnsafeTemplate:
            raise
        except ConfigError as exc:
            try:
                rendered = render(name, context, "", h.language)
            except ConfigError:  # no packaged template of that name: the user's error is the one to fix
                self.problems.append(f"{exc} (no packaged {name} template: that mail was not made)")
                raise exc from None
            problem = f"{exc} (the packaged {name} template was used instead)"
            logging.getLogger("mailhelpdesk").warning("template error: %s", problem)
            self.problems.append(problem)
            return rendered

    def take_problems(self) -> list[str]:
        taken, self.problems[:] = list(self.problems), []
        return taken

    def context_base(self, now: datetime) -> dict:
        return {"helpdesk": self.config.helpdesk, "now": now, "tz": self.config.helpdesk.tz}

    def context(self, ticket: Ticket, now: datetime) -> dict:
        return dict(self.context_base(now), ticket=ticket, due_text=self.due_text(ticket, now))

    def due_text(self, ticket: Ticket, now: datetime) -> str:
        """When the answer is due, in the customer's words ("tomorrow by 10:00 CET"), "" when nothing is due."""
        h = self.config.helpdesk
        return describe_due(ticket.due_at, now, h.tz, h.language, calendar=self.calendar) if ticket.due_at else ""

    def link(self, ticket: Ticket) -> str:
        """Where an agent opens the conversation: the thread's web page where the backend has them (Gmail), else a
        search for the key."""
        page = capabilities(self.config).thread_link(self.support, ticket.thread_ids[0]) if ticket.thread_ids else ""
        return page or f"search your mail client for {ticket.key} (subject tag [{ticket.key}])"

    def _mail(self, kind: MailKind, key: str, to: str, rendered: Rendered, *, ticket: Ticket | None = None,
              in_reply_to: str = "", references: Iterable[str] = ()) -> SendMail:
        """The one constructor, reading the kinds table (kinds.py). Mail to the customer goes into the ticket's
        provider thread; answers to a message are `auto-replied`, notices nobody asked for `auto-generated`
        (RFC 3834)."""
        html = KINDS[kind].html
        thread_id = ticket.thread_ids[0] if kind in TO_CUSTOMER and ticket and ticket.thread_ids else ""
        subject = rendered.subject
        if thread_id and capabilities(self.config).threads_by_id:
            # Gmail files a reply into a thread only when its subject matches the thread's ("Re: " aside),
            # so there the key stays in the body and our X-Mailhelpdesk-Ticket header, not in the subject
            subject = f"Re: {ticket.subject}"  # type: ignore[union-attr]
        return SendMail(key=key, kind=kind, to=to, subject=subject, body=rendered.text,
                        html=rendered.html if html else None, message_id=self.message_id(key),
                        ticket=ticket.key if ticket else "", in_reply_to=in_reply_to, references=tuple(references),
                        auto_submitted="auto-replied" if kind in ANSWERS else "auto-generated", thread_id=thread_id)

    def ticket_mail(self, kind: MailKind, ticket: Ticket, to: str, now: datetime, occasion: str = "",
                    **extra: Any) -> SendMail:
        """A mail of any kind about one ticket, from the kinds table: its template (with the ticket's context, its
        link and `extra`), a key that makes it exactly once (the kind, the ticket, `occasion` — e.g. the wait it is
        about — and the address), and its place in the conversation: to the customer in reply to their last
        message, to the team beside the request. A new kind needs no builder of its own."""
        context = dict(self.context(ticket, now), link=self.link(ticket), **extra)
        key = ":".join(p for p in (kind.value.replace(" ", "_"), ticket.key, occasion, to) if p)
        in_reply_to, references = self._thread(ticket, KINDS[kind].audience)
        return self._mail(kind, key, to, self.render(template_of(kind), context), ticket=ticket,
                          in_reply_to=in_reply_to, references=references)

    @staticmethod
    def _thread(ticket: Ticket, audience: Audience) -> tuple[str, tuple[str, ...]]:
        """In-Reply-To and References: the customer's last message and the conversation for the customer; the
        request for the team."""
        first = ticket.message_ids[0]
        if audience != Audience.CUSTOMER:
            return first, (first,)
        last = next((m for m in reversed(ticket.message_ids) if not m.startswith(OUR_ID_PREFIX)), first)
        return last, ticket.message_ids[:20]

    # --- the kinds with builders of their own (keys as they always were: a Message-ID is derived from its key) -

    def acknowledgement(self, ticket: Ticket, now: datetime) -> SendMail:
        first = ticket.message_ids[0]
        rendered = self.render(self.config.autoreply.template, self.context(ticket, now))
        return self._mail(MailKind.ACKNOWLEDGEMENT, f"ack:{ticket.key}", ticket.customer, rendered, ticket=ticket,
                          in_reply_to=first, references=(first,))

    def reminder(self, ticket: Ticket, step: Step, to: str, now: datetime) -> SendMail:
        key = f"{step}:{ticket.key}:{ticket.due_at:%Y%m%dT%H%M}:{to}"  # a new due time (wait, priority): a new ladder
        since = ticket.waiting_since or ticket.created_at
        context = dict(self.context(ticket, now), step=step, waited=hours_text(self.calendar.elapsed(since, now)),
                       waited_wall=hours_text(now - since), link=self.link(ticket),
                       target=self.config.sla.first_response.get(ticket.priority.value, "24h"))
        in_reply_to, references = self._thread(ticket, Audience.TEAM)
        return self._mail(step.kind, key, to, self.render(template_of(step.kind), context), ticket=ticket,
                          in_reply_to=in_reply_to, references=references)

    def resolution_key(self, ticket: Ticket) -> str:
        return f"resolution:{ticket.key}:{ticket.resolved_at:%Y%m%dT%H%M%S}"

    def resolution(self, ticket: Ticket, key: str, now: datetime) -> SendMail:
        def link(rating: str) -> str:
            subject = f"[{ticket.key}] rating: {rating}"
            return f"mailto:{self.support}?subject={quote(subject)}&body={quote('(you may add a comment here)')}"

        context = dict(self.context(ticket, now), ask_rating=self.config.resolution.ask_rating,
                       ratings={r: link(r) for r in RATINGS}, close_after=self.config.resolution.close_after)
        rendered = self.render(self.config.resolution.template, context)
        in_reply_to, references = self._thread(ticket, Audience.CUSTOMER)
        return self._mail(MailKind.RESOLUTION, key, ticket.customer, rendered, ticket=ticket, in_reply_to=in_reply_to,
                          references=references)

    def assignment(self, state: State, ticket: Ticket, now: datetime) -> SendMail:
        agent = self.config.agent_by_name(ticket.assignee or "")
        assert agent is not None
        earlier = sorted((t for t in state.tickets.values() if t.customer == ticket.customer and t.key != ticket.key),
                         key=lambda t: t.created_at, reverse=True)[:10]
        rendered = self.render(template_of(MailKind.ASSIGNMENT), dict(self.context(ticket, now), agent=agent,
                                                                       earlier=earlier))
        return self._mail(MailKind.ASSIGNMENT, f"assigned:{ticket.key}:{agent.name}", agent.email, rendered,
                          ticket=ticket)

    def notices(self, to: str, tickets: dict[MailKind, list[Ticket]], now: datetime) -> SendMail:
        """Several notices to one address, batched into one mail (core/duties/notices.py): the new assignments, the
        warnings, the breaches and the escalations, each a list of tickets."""
        context = dict(self.context_base(now), agent=self.config.agent_by_email(to), to=to, link=self.link,
                       due_text=lambda t: self.due_text(t, now),
                       count=len({t.key for group in tickets.values() for t in group}),
                       assigned=tickets.get(MailKind.ASSIGNMENT, []), warned=tickets.get(MailKind.ESCALATION_WARN, []),
                       overdue=tickets.get(MailKind.ESCALATION_BREACH, []),
                       escalated=tickets.get(MailKind.ESCALATION_LEAD, []))
        return self._mail(MailKind.NOTICES, f"notices:{to}:{now:%Y%m%dT%H%M%S}", to,
                          self.render(template_of(MailKind.NOTICES), context))

    def command_rejected(self, facts: MessageFacts, to: str, problem: str, commands: list[str]) -> SendMail:
        rendered = self.render(template_of(MailKind.COMMAND_REJECTED), {
            "helpdesk": self.config.helpdesk, "problem": problem, "subject": facts.subject, "commands": commands,
            "known": known_commands(self.config.helpdesk.language),
        })
        return self._mail(MailKind.COMMAND_REJECTED, f"rejected:{facts.message_id}", to, rendered,
                          in_reply_to=facts.message_id, references=(facts.message_id,))

    def digest(self, kind: MailKind, to: str, day: date | None, now: datetime, extra: dict,
               asked: bool = False) -> SendMail:
        """A digest, a lead's digest or a first run's backlog summary. One asked for (`digest --send`) has a key of
        its own: a test at night does not use up the morning's scheduled digest."""
        template = template_of(kind)
        key = f"{template}:{to}:{day.isoformat()}" if day else f"{template}:{to}"
        key += ":asked" if asked else ""
        context = dict(self.context_base(now), day=day, now=now, link=self.link, **extra)
        return self._mail(kind, key, to, self.render(template, context))
