"""The policy on one screen: which rules decide about a message, and which duties run at the end of a pass, in order.

Each entry is a module with a NAME, a one-line DESCRIPTION and `decide(ctx, state, event, now) -> Plan | None`
(the shape of GNU Mailman's rules and chains). A message goes down MESSAGE_RULES until one answers with a plan;
every duty of TIMED_DUTIES runs, each seeing what the ones before it decided. Pure: `now` is always passed in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from mailhelpdesk.core.duties import digests as digest
from mailhelpdesk.core.context import Context
from mailhelpdesk.core.duties import ack_limits
from mailhelpdesk.core.duties import acknowledgements
from mailhelpdesk.core.duties import auto_close
from mailhelpdesk.core.duties import escalations
from mailhelpdesk.core.duties import notices
from mailhelpdesk.core.duties import quiet_customers
from mailhelpdesk.core.duties import resolutions
from mailhelpdesk.core.duties import snoozes
from mailhelpdesk.model import Incoming, Plan, State, Tick
from mailhelpdesk.core.rules import agent_labels
from mailhelpdesk.core.rules import command_mail
from mailhelpdesk.core.rules import in_ticket
from mailhelpdesk.core.rules import known
from mailhelpdesk.core.rules import new_ticket
from mailhelpdesk.core.rules import not_a_request
from mailhelpdesk.core.rules import ours

MESSAGE_RULES = (
    known,  # a message we already know: re-delivered or found again, only indexed and labelled
    ours,  # our own sent copy: joins its ticket, answers nothing
    command_mail,  # commands by mail from a proven agent: carried out, or refused with a reply
    in_ticket,  # a reply in a known conversation: an agent's answer, the customer's word, a robot's note
    not_a_request,  # mail from a machine, from ourselves, or an agent's unrelated mail: recorded, never answered
    new_ticket,  # anything else is a customer's new request (always answers)
)

LABEL_RULES = (
    agent_labels,  # an agent's label changes set status, priority, assignee; a status label promotes ignored mail
)

TIMED_DUTIES = (
    snoozes,  # snoozed tickets come back when their time comes (before anything counts their wait)
    ack_limits,  # ceilings no person reaches: per address, per company domain, all together per hour
    acknowledgements,  # acknowledge each new request nobody answered yet (loops were told apart at the ticket)
    escalations,  # the escalation ladder: warn, breach, lead; recorded once, held as notices when recent
    quiet_customers,  # a pending ticket's quiet customer reminded once, then resolved (opt-in: [pending])
    resolutions,  # a resolution notice with rating links, once per resolution
    auto_close,  # close resolved tickets that stayed quiet for close_after
    notices,  # the held notices to agents and leads: one mail per address per batch, listing every ticket
    digest,  # the scheduled digests, or the first run's backlog summaries
)


def on_message(ctx: Context, state: State, incoming: Incoming, now: datetime) -> Plan:
    incoming = known.distinct(ctx, state, incoming)  # a reused Message-ID first gets an id of its own
    for rule in MESSAGE_RULES:
        plan = rule.decide(ctx, state, incoming, now)
        if plan is not None:
            return plan
    raise AssertionError("the last message rule always answers")


def on_labels(ctx: Context, state: State, changes: Iterable[tuple[str, frozenset[str]]], now: datetime) -> Plan:
    plan = Plan()
    changes = tuple(changes)
    for rule in LABEL_RULES:
        plan.extend(rule.decide(ctx, state.previewed(plan), changes, now) or Plan())
    return plan


def on_tick(ctx: Context, state: State, now: datetime) -> Plan:
    plan, tick = Plan(), Tick(first_run=state.first_run)
    for duty in TIMED_DUTIES:
        plan.extend(duty.decide(ctx, state.previewed(plan), tick, now) or Plan())
    return plan
