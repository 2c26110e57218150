"""The last line of defence before acknowledgements: ceilings no person reaches. Loops are stopped by what they
are (core/judge/loops.py, when the ticket is made); these only cap what slips through: acknowledgements to one address
(`[autoreply] max_per_sender`) and to one company domain (`max_per_domain`) per `per_sender_hours`, and to
everyone together per hour (`max_per_hour`: a flood, which leaves a warning for `status`). A request they hold
back is never silent: its history says why, and so do the assignee's notice and digest."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from mailhelpdesk.core.context import Context
from mailhelpdesk.model import HistoryEvent, Plan, State, Status, Tick
from mailhelpdesk.core.judge.senders import domain_key, sender_key
from mailhelpdesk.core.duties import isolated

NAME = "acknowledgement limits"
DESCRIPTION = "ceilings no person reaches: per address, per company domain, all together per hour"
RATE_LIMITED = "ack_rate_limited"  # the state cursor `status` reads: the hourly cap was reached


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    wanted = [t for t in state.tickets.values()
              if t.ack_wanted and t.first_response_at is None and t.status == Status.OPEN]
    if not wanted:
        return plan
    limits = ctx.config.autoreply
    hour, window = now - timedelta(hours=1), now - timedelta(hours=limits.per_sender_hours)
    senders: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    in_hour = 0
    for sender, times in state.sender_log.items():  # acknowledgements sent, by sender (outbox.recorded)
        recent = sum(1 for t in times if t > window)
        senders[sender] += recent
        domains[sender.rpartition("@")[2]] += recent
        in_hour += sum(1 for t in times if t > hour)
    budget, skipped = limits.max_per_hour - in_hour, 0
    for ticket in sorted(wanted, key=lambda t: (t.created_at, t.number)):  # first come, first acknowledged
        with isolated(plan, ticket, NAME, now):
            sender, domain = sender_key(ticket.customer), domain_key(ticket.customer, ctx.free_mail)
            why = ""
            if senders[sender] >= limits.max_per_sender:
                why = (f"{limits.max_per_sender} acknowledgements to {sender} within {limits.per_sender_hours} h "
                       f"([autoreply] max_per_sender): a loop or a flood")
            elif domain and domains[domain] >= limits.max_per_domain:
                why = (f"{limits.max_per_domain} acknowledgements to {domain} within {limits.per_sender_hours} h "
                       f"([autoreply] max_per_domain): a loop or a flood")
            elif budget <= 0:
                skipped += 1
                why = f"{limits.max_per_hour} acknowledgements in the last hour ([autoreply] max_per_hour): a flood"
            if why:
                plan.put(ticket.log(now, HistoryEvent.ACK_WITHHELD, why, ack_wanted=False))
                plan.notes.append(f"{ticket.key}: no acknowledgement: {why}")
                continue
            budget -= 1
            senders[sender] += 1
            if domain:
                domains[domain] += 1
    if skipped:
        plan.notes.append(f"warning: {skipped} requests not acknowledged, the limit of {limits.max_per_hour} "
                          f"acknowledgements per hour ([autoreply] max_per_hour) was reached")
        earlier = state.cursors.get(RATE_LIMITED) or {}
        same_hour = earlier.get("at", "") > hour.isoformat()
        plan.cursors[RATE_LIMITED] = {"at": now.isoformat(), "limit": limits.max_per_hour,
                                      "skipped": skipped + (earlier.get("skipped", 0) if same_hour else 0)}
    return plan
