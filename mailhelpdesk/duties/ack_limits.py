"""Before the per-sender limit (acknowledgements): a company domain gets a handful of acknowledgements (a robot
that varies its address), and all of them together a cap per hour (a flood from many senders: spam, backscatter),
which leaves a warning for `status`."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..context import Context
from ..model import HistoryEvent, Plan, State, Status, Tick
from ..rules.senders import domain_key, sender_key
from . import isolated

NAME = "acknowledgement limits"
DESCRIPTION = "no acknowledgement past the per-domain limit or the hourly cap"


def decide(ctx: Context, state: State, tick: Tick, now: datetime) -> Plan:
    plan = Plan()
    limits = ctx.config.autoreply
    hour, window = now - timedelta(hours=1), now - timedelta(hours=limits.per_sender_hours)
    budget = limits.max_per_hour - sum(1 for log in state.sender_log.values() for t in log if t > hour)
    senders: dict[str, int] = {}
    domains: dict[str, int] = {}
    skipped = 0
    for ticket in state.tickets.values():
        if not ticket.ack_wanted or ticket.first_response_at is not None or ticket.status != Status.OPEN:
            continue
        with isolated(plan, ticket, NAME, now):
            sender, domain = sender_key(ticket.customer), domain_key(ticket.customer, ctx.free_mail)
            if sender not in senders:
                senders[sender] = sum(1 for t in state.sender_log.get(sender, ()) if t > window)
            if senders[sender] >= limits.max_per_sender:
                continue  # acknowledgements holds this one back
            if domain and domain not in domains:
                domains[domain] = sum(1 for key, log in state.sender_log.items() if key.endswith("@" + domain)
                                      for t in log if t > window)
            if domain and domains[domain] >= limits.max_per_domain:
                plan.put(ticket.log(now, HistoryEvent.ACK_SKIPPED, f"limit of {limits.max_per_domain} per "
                                    f"{limits.per_sender_hours} h to {domain} reached", ack_wanted=False))
                plan.notes.append(f"{ticket.key}: no acknowledgement, {domain} reached the per-domain limit")
                continue
            if budget <= 0:
                skipped += 1
                plan.put(ticket.log(now, HistoryEvent.ACK_SKIPPED,
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
