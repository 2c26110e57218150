"""The contexts the mail factory builds, for sample tickets, by template name: what `check` renders every template
(the packaged ones and a user's) against, so a broken one is found before a customer would meet it."""

from __future__ import annotations

from typing import Any

from mailhelpdesk.core.mail.render import Rendered


def sample_contexts(config: Any) -> dict[str, list[dict[str, Any]]]:
    """The contexts the mail factory builds, for a sample ticket that has everything a template may show (assigned,
    overdue, earlier tickets, history), by template name. Taken from the factory itself (its `render` is
    intercepted), so a check sees exactly what the daemon will pass."""
    import dataclasses
    from datetime import UTC, datetime, timedelta

    from mailhelpdesk.core.duties import digests as digest
    from mailhelpdesk.config import AgentConfig
    from mailhelpdesk.core.context import Context
    from mailhelpdesk.core.mail.factory import MailFactory
    from mailhelpdesk.kinds import NOTICE_KINDS, TO_CUSTOMER, MailKind
    from mailhelpdesk.model import HistoryEntry, HistoryEvent, Priority, State, Step, Ticket
    from mailhelpdesk.core.mail.parse import parse_message

    captured: dict[str, list[dict[str, Any]]] = {}

    class Capture(MailFactory):
        def render(self, name: str, context: dict[str, Any]) -> Rendered:
            captured.setdefault(name, []).append(context)
            return Rendered(subject="sample", text="sample")

    agents = config.agents or (AgentConfig(name="Alice", email="alice@example.com"),)
    config = dataclasses.replace(config, agents=agents)
    try:
        config = dataclasses.replace(config, sla=dataclasses.replace(config.sla, escalate_to=config.sla.escalate_to or ("lead@example.com",)))
    except (TypeError, AttributeError):
        pass
    ctx = Context.of(config)
    ctx = dataclasses.replace(ctx, mail=Capture(config, ctx.calendar))
    mail = ctx.mail
    now = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
    opened = now - timedelta(days=2)
    domain = config.support_address.rsplit("@", 1)[1]
    ticket = Ticket(
        key=f"{config.helpdesk.ticket_prefix}-42", number=42, customer="anna@customer.example", customer_name="Anna Example",
        subject="The invoice is wrong", created_at=opened, priority=Priority.HIGH, assignee=agents[0].name,
        updated_at=opened, due_at=opened + timedelta(hours=4), waiting_since=opened,
        message_ids=("<sample-1@customer.example>", f"<sample-2@{domain}>"), refs=("INBOX:1:1",),
        participants=("anna@customer.example",), history=(HistoryEntry(opened, HistoryEvent.CREATED, "by mail"),
                                                           HistoryEntry(opened, HistoryEvent.ACK_WITHHELD, "a sample reason")),
    )
    earlier = dataclasses.replace(ticket, key=f"{config.helpdesk.ticket_prefix}-7", number=7, created_at=opened - timedelta(days=30),
                                  subject="Where is my parcel?", due_at=None, waiting_since=None)
    state = State(tickets={ticket.key: ticket, earlier.key: earlier})
    raw = (f"From: Anna <anna@customer.example>\r\nTo: {config.support_address}\r\nSubject: [{ticket.key}] help\r\n"
           "Message-ID: <cmd@customer.example>\r\n\r\n#close\r\n").encode()
    builders = [
        lambda: mail.acknowledgement(ticket, now),
        lambda: mail.assignment(state, ticket, now),
        lambda: mail.resolution(ticket, f"resolved:{ticket.key}", now),
        *(lambda step=step: mail.reminder(ticket, step, agents[0].email, now) for step in Step),
        lambda: mail.notices(agents[0].email, {kind: [ticket, earlier] for kind in NOTICE_KINDS}, now),
        lambda: digest.build_digests(ctx, state, now),
        lambda: digest.backlog_summaries(ctx, state, now),
        lambda: mail.command_rejected(parse_message(raw, config.helpdesk.ticket_prefix), "anna@customer.example",
                                      "commands are accepted only from agents", []),
    ]
    with_builders = {MailKind.ACKNOWLEDGEMENT, MailKind.ASSIGNMENT, MailKind.RESOLUTION, *(s.kind for s in Step),
                     MailKind.NOTICES, MailKind.DIGEST, MailKind.LEAD_DIGEST, MailKind.BACKLOG_SUMMARY,
                     MailKind.COMMAND_REJECTED}
    for kind in set(MailKind) - with_builders:  # a kind made by the generic builder: sampled as the daemon makes it
        to = ticket.customer if kind in TO_CUSTOMER else agents[0].email
        builders.append(lambda kind=kind, to=to: mail.ticket_mail(kind, ticket, to, now))
    for flag in (True, False):  # with and without the rating links
        if config.resolution.ask_rating != flag:
            resolution = dataclasses.replace(config.resolution, ask_rating=flag)
            other = Capture(dataclasses.replace(config, resolution=resolution), ctx.calendar)
            builders.append(lambda other=other: other.resolution(ticket, "r", now))
    for build in builders:
        try:
            build()
        except Exception:  # the factory changed shape: those templates are then parsed, not rendered
            pass
    return captured
