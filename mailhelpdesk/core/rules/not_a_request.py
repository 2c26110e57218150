"""Robots, lists, bounces, and our agents' unrelated outgoing mail: recorded, labelled, never answered."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import IndexMark, Ignored, IgnoreReason, Incoming, Plan, SetLabels, State, ref_key

NAME = "not a request"
DESCRIPTION = "mail from a machine, from ourselves, or an agent's unrelated mail: recorded, never answered"


def decide(ctx: Context, state: State, incoming: Incoming, now: datetime) -> Plan | None:
    facts = incoming.facts
    if ctx.is_agent(incoming):
        reason = IgnoreReason.OUTGOING
    elif facts.automatic:
        reason = facts.automatic
    elif facts.customer in (ctx.support, ""):
        reason = IgnoreReason.FROM_SUPPORT
    else:
        return None
    plan = Plan()
    plan.ignored[facts.message_id] = Ignored(facts.message_id, incoming.ref, reason, facts.sender, facts.subject,
                                             incoming.when or now)
    if reason != IgnoreReason.OUTGOING:  # an agent's own mail is not labelled Ignored in their mailbox
        plan.index[ref_key(incoming.ref)] = IndexMark.IGNORED + facts.message_id
        plan.actions.append(SetLabels((incoming.ref,), frozenset({ctx.labels.ignored}), frozenset()))
    plan.notes.append(f"ignored {facts.message_id} from {facts.sender or '?'}: {reason}")
    return plan
