"""Digests on a cron schedule: each agent's open tickets (overdue first); for the leads, the unassigned and
overdue tickets and yesterday's figures. Pure: the schedule is read with APScheduler's CronTrigger from `now`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mailhelpdesk.core.mail.factory import hours_text
from mailhelpdesk.model import HistoryEvent, MailKind, Plan, SendMail, State, Status, Tick, Ticket
from mailhelpdesk.core.sla_state import sla_state, work_order

if TYPE_CHECKING:
    from mailhelpdesk.core.context import Context

NAME = "digests"
DESCRIPTION = "the scheduled digests; on the first run over a backlog, one summary to each agent and lead instead"


def decide(ctx: "Context", state: State, tick: Tick, now: datetime) -> Plan:
    """The timed duty: digests when their time has come, or the first run's backlog summaries."""
    return backlog_summaries(ctx, state, now) if tick.first_run else digests_due(ctx, state, now)


def next_fire(schedule: str, tz, after: datetime) -> datetime:
    return cron_trigger(schedule, tz).get_next_fire_time(None, after)


DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(schedule: str, tz):
    """APScheduler's trigger for a crontab line, read as cron reads it. APScheduler 3 counts the weekday from
    0 = Monday (its own convention, also in `from_crontab`), so "0 9 * * 1-5" would fire Tuesday to Saturday:
    the weekday field is turned into day names first (0 and 7 are Sunday, as in cron)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = schedule.split()
    if len(fields) == 5:
        fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=tz)


def _weekday_names(field: str) -> str:
    """`1-5` -> `mon,tue,wed,thu,fri`, `*/2` -> `sun,tue,thu,sat`; names and `*` stay as they are."""
    if field == "*" or any(c.isalpha() for c in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first, last = (int(x) for x in span.split("-", 1))
        else:
            first = last = int(span)
            if step:
                last = 6
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"weekday {part!r} is not between 0 and 7 (0 and 7 are Sunday)")
        days.update(d % 7 for d in range(first, last + 1, int(step or 1)))
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def digests_due(ctx: "Context", state: State, now: datetime) -> Plan:
    """The digests whose scheduled time has come since the last one (at most one round per pass)."""
    plan = Plan()
    config = ctx.config
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
    plan.actions += build_digests(ctx, state, now)
    return plan


def overdue(ticket: Ticket, now: datetime) -> bool:
    return sla_state(ticket, now).overdue


def backlog_summaries(ctx: "Context", state: State, now: datetime) -> Plan:
    """The first run over a backlog: one mail to each agent and lead instead of a notice per ticket."""
    plan = Plan()
    config = ctx.config
    tickets = list(state.tickets.values())
    if not tickets:
        return plan
    active = sorted((t for t in tickets if t.status in (Status.OPEN, Status.PENDING)), key=lambda t: work_order(t, now))
    late = [t for t in active if overdue(t, now)]
    per_agent = {a.name: [t for t in active if t.assignee == a.name] for a in config.agents}
    common = {"imported": len(tickets), "active": active, "overdue": late, "per_agent": per_agent,
              "unassigned": [t for t in active if not t.assignee],
              "acknowledged": sum(1 for t in tickets if t.logged(HistoryEvent.ACKNOWLEDGED))}
    for agent in config.agents:
        mine = per_agent[agent.name]
        plan.actions.append(ctx.mail.digest(MailKind.BACKLOG_SUMMARY, agent.email, None, now, dict(
            common, agent=agent, tickets=mine, mine_overdue=[t for t in mine if overdue(t, now)])))
    for lead in config.sla.escalate_to:
        if config.agent_by_email(lead) is None:
            plan.actions.append(ctx.mail.digest(MailKind.BACKLOG_SUMMARY, lead, None, now, dict(
                common, agent=None, tickets=late, mine_overdue=late)))
    return plan


def build_digests(ctx: "Context", state: State, now: datetime, asked: bool = False) -> list[SendMail]:
    config = ctx.config
    tz = config.helpdesk.tz
    day = now.astimezone(tz).date()
    active = [t for t in state.tickets.values() if t.status in (Status.OPEN, Status.PENDING)
              and not (t.snoozed_until and t.snoozed_until > now)]  # a snoozed ticket is out of sight until then
    mails = []
    for agent in config.agents:
        mine = sorted((t for t in active if t.assignee == agent.name), key=lambda t: work_order(t, now))
        if not mine:
            continue
        mails.append(ctx.mail.digest(MailKind.DIGEST, agent.email, day, now, {
            "agent": agent, "tickets": mine, "overdue": [t for t in mine if overdue(t, now)],
        }, asked=asked))
    if config.sla.escalate_to:
        figures = yesterday(state, tz, now)
        unassigned = sorted((t for t in active if not t.assignee), key=lambda t: work_order(t, now))
        late = sorted((t for t in active if overdue(t, now)), key=lambda t: work_order(t, now))
        for lead in config.sla.escalate_to:
            mails.append(ctx.mail.digest(MailKind.LEAD_DIGEST, lead, day, now, {
                "unassigned": unassigned, "overdue": late, "figures": figures,
            }, asked=asked))
    return mails


def yesterday(state: State, tz, now: datetime) -> dict:
    """Yesterday's figures in the helpdesk's time zone: the `report` command's figures for that day (one
    computation: report.compute_report), in the words the lead's digest shows."""
    from mailhelpdesk.core.report import compute_report

    end = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tz)
    start = end - timedelta(days=1)
    total = compute_report(state.tickets.values(), tz, start, end, now).total
    return {
        "date": start.date(),
        "opened": total.opened,
        "first_responses": total.responded,  # of the tickets opened that day, as in `report`
        "median_first_response": "-" if total.median_first_response_h is None
        else hours_text(timedelta(hours=total.median_first_response_h)),
        "resolved": total.resolved,
        "breaches": total.breaches,
        "ratings": [rating for rating, count in total.ratings.items() for _ in range(count)],
    }
