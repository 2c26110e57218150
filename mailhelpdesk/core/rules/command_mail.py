"""`#assign bob`, `#resolve`... on the first lines of an agent's mail to the support address (core/judge/mail_commands.py
holds the command set and who may command)."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.config import AgentConfig
from mailhelpdesk.core.context import Context
from mailhelpdesk.model import HistoryEvent, Incoming, MailKind, Plan, State
from mailhelpdesk.core.judge.mail_commands import CommandProblem, Run, parse_commands, run_commands, trusted_sender
from mailhelpdesk.core.judge.threading import find_ticket

NAME = "command"
DESCRIPTION = "commands by mail from a proven agent: carried out, or refused with a reply that says why"


def _agents_take_part_in_every_ticket(ticket, incoming) -> bool:
    """A proven agent may act on any ticket: by replying in its conversation, or with its [KEY] in the subject."""
    return True


def decide(ctx: Context, state: State, incoming: Incoming, now: datetime) -> Plan | None:
    facts = incoming.facts
    commands = parse_commands(facts.body)
    if not commands:
        return None
    agent = ctx.config.agent_by_email(facts.sender)
    if incoming.folder_role == "sent":
        # only someone logged into the shared mailbox puts mail there: trusted, when it is written to us
        if ctx.support not in facts.to + facts.cc:
            return None  # an answer to a customer that happens to start with '#'
        agent = agent or AgentConfig(name=f"the shared account ({ctx.support})", email=ctx.support)
        ok, why = True, "written from the shared account"
    elif agent is None or incoming.folder_role != "inbox":
        return None  # a stranger's "#assign" is just text in a customer's mail
    else:
        ok, why = trusted_sender(facts, agent, ctx.config.commands)
    plan = Plan()
    when = incoming.when or now
    before = find_ticket(state, incoming, member=_agents_take_part_in_every_ticket).ticket
    ticket = before
    problem = "" if ok else why
    if not problem and ticket is None:
        problem = "no ticket found: reply in the ticket's conversation or put its [KEY] in the subject"
    if not problem:
        assert ticket is not None
        try:
            ticket = run_commands(ticket, commands, Run(ctx.config, agent.name, when, ctx.due, ctx.calendar))
        except CommandProblem as refused:
            problem = str(refused)
    if problem:
        shown = ["#" + (c.verb + " " + c.argument).strip() for c in commands]
        plan.actions.append(ctx.mail.command_rejected(facts, agent.email, problem, shown))
        plan.notes.append(f"rejected commands from {facts.sender}: {problem}")
        if before is None:
            return plan
        ticket = before.log(when, HistoryEvent.COMMAND_REJECTED, f"{agent.name}: {problem}")
    assert ticket is not None
    ticket = plan.put(ticket.with_message(facts.message_id, incoming.ref, thread_id=incoming.thread_id))
    ctx.index_message(plan, ticket, incoming, thread=False)
    if not problem:
        plan.notes.append(f"{ticket.key}: commands from {agent.name}: {', '.join('#' + c.verb for c in commands)}")
        # a new assignee hears of it, unless they gave it to themselves (#take)
        if ticket.assignee and ticket.assignee not in ((before.assignee if before else None), agent.name):
            ctx.notify(plan, MailKind.ASSIGNMENT, ticket, now)
    ctx.sync_labels(plan, ticket, now)
    return plan
