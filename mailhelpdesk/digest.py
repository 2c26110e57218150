"""Digests on a cron schedule: each agent's open tickets (overdue first); for the leads, the unassigned and
overdue tickets and yesterday's figures. Pure: the schedule is read with APScheduler's CronTrigger from `now`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .model import Plan, SendMail, State, Status, Ticket
from .sla_state import sla_state, work_order

if TYPE_CHECKING:
    from .engine import Engine


def next_fire(schedule: str, tz, after: datetime) -> datetime:
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(schedule, timezone=tz)
    return trigger.get_next_fire_time(None, after)


def digests_due(engine: "Engine", state: State, now: datetime) -> Plan:
    """The digests whose scheduled time has come since the last one (at most one round per pass)."""
    plan = Plan()
    config = engine.config
    if not config.digest.enabled:
        return plan
    last = state.cursors.get("digest_at")
    if last is None:
        plan.cursors["digest_at"] = now.isoformat()  # start counting from the first pass
        return plan
    fire = next_fire(config.digest.schedule, config.helpdesk.tz, datetime.fromisoformat(last))
    if fire > now:
        return plan
    plan.cursors["digest_at"] = now.isoformat()
    if now - fire > timedelta(hours=12):
        plan.notes.append(f"digest of {fire:%Y-%m-%d %H:%M} skipped: the daemon was not running then")
        return plan
    plan.actions += build_digests(engine, state, now)
    return plan


def overdue(ticket: Ticket, now: datetime) -> bool:
    return sla_state(ticket, now).overdue


def backlog_summaries(engine: "Engine", state: State, now: datetime) -> Plan:
    """The first run over a backlog: one mail to each agent and lead instead of a notice per ticket."""
    plan = Plan()
    config = engine.config
    tickets = list(state.tickets.values())
    if not tickets:
        return plan
    active = sorted((t for t in tickets if t.status in (Status.OPEN, Status.PENDING)), key=lambda t: work_order(t, now))
    late = [t for t in active if overdue(t, now)]
    per_agent = {a.name: [t for t in active if t.assignee == a.name] for a in config.agents}
    common = {"imported": len(tickets), "active": active, "overdue": late, "per_agent": per_agent,
              "unassigned": [t for t in active if not t.assignee],
              "acknowledged": sum(1 for t in tickets if any(h.what == "acknowledged" for h in t.history))}
    for agent in config.agents:
        mine = per_agent[agent.name]
        plan.actions.append(_digest(engine, "backlog_summary", agent.email, None, now, dict(
            common, agent=agent, tickets=mine, mine_overdue=[t for t in mine if overdue(t, now)])))
    for lead in config.sla.escalate_to:
        if config.agent_by_email(lead) is None:
            plan.actions.append(_digest(engine, "backlog_summary", lead, None, now, dict(
                common, agent=None, tickets=late, mine_overdue=late)))
    return plan


def build_digests(engine: "Engine", state: State, now: datetime) -> list[SendMail]:
    config = engine.config
    tz = config.helpdesk.tz
    day = now.astimezone(tz).date()
    active = [t for t in state.tickets.values() if t.status in (Status.OPEN, Status.PENDING)]
    mails = []
    for agent in config.agents:
        mine = sorted((t for t in active if t.assignee == agent.name), key=lambda t: work_order(t, now))
        if not mine:
            continue
        mails.append(_digest(engine, "digest", agent.email, day, now, {
            "agent": agent, "tickets": mine, "overdue": [t for t in mine if overdue(t, now)],
        }))
    if config.sla.escalate_to:
        figures = yesterday(state, tz, now)
        unassigned = sorted((t for t in active if not t.assignee), key=lambda t: work_order(t, now))
        late = sorted((t for t in active if overdue(t, now)), key=lambda t: work_order(t, now))
        for lead in config.sla.escalate_to:
            mails.append(_digest(engine, "lead_digest", lead, day, now, {
                "unassigned": unassigned, "overdue": late, "figures": figures,
            }))
    return mails


def _digest(engine: "Engine", template: str, to: str, day, now: datetime, extra: dict) -> SendMail:
    key = f"{template}:{to}:{day.isoformat()}" if day else f"{template}:{to}"
    context = dict(engine.context_base(now), day=day, now=now, link=engine.link, **extra)
    rendered = engine._render(template, context)
    return SendMail(key=key, kind=template.replace("_", " "), to=to, subject=rendered.subject, body=rendered.text,
                    html=rendered.html, message_id=engine.message_id(key), auto_submitted="auto-generated")


def yesterday(state: State, tz, now: datetime) -> dict:
    """Yesterday's figures in the helpdesk's time zone."""
    end = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tz)
    start = end - timedelta(days=1)

    def within(value: datetime | None) -> bool:
        return value is not None and start <= value < end

    tickets = list(state.tickets.values())
    responses = [t.first_response_at - t.created_at for t in tickets if within(t.first_response_at)]
    return {
        "date": start.date(),
        "opened": sum(within(t.created_at) for t in tickets),
        "first_responses": len(responses),
        "median_first_response": _median_text(responses),
        "resolved": sum(within(t.resolved_at) for t in tickets),
        "breaches": sum(1 for t in tickets for h in t.history if h.what == "escalation: breach" and within(h.at)),
        "ratings": [t.rating for t in tickets if t.rating and any(h.what == "rated" and within(h.at) for h in t.history)],
    }


def _median_text(values: list[timedelta]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    middle = ordered[len(ordered) // 2]
    minutes = int(middle.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"
