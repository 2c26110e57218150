"""Who takes a new ticket? Round-robin or least-open among the agents on shift."""

from __future__ import annotations

from datetime import datetime

from mailhelpdesk.config import AgentConfig, Config
from mailhelpdesk.model import State, Status


def on_shift(agent: AgentConfig, now: datetime, config: Config) -> bool:
    if not agent.hours:
        return True
    from mailhelpdesk.core.sla import BusinessCalendar

    calendar = BusinessCalendar.from_settings(config.helpdesk.timezone, agent.hours)
    return calendar.is_open(now)


def choose_assignee(state: State, config: Config, now: datetime) -> tuple[str | None, int | None]:
    """(agent name or None, the new round-robin position or None when it did not move)."""
    agents = config.agents
    if config.assignment.strategy == "manual" or not agents:
        return None, None
    available = [a for a in agents if on_shift(a, now, config)] or list(agents)
    if config.assignment.strategy == "least_open":
        load = {a.name: 0 for a in available}
        for ticket in state.tickets.values():
            if ticket.assignee in load and ticket.status in (Status.OPEN, Status.PENDING):
                load[ticket.assignee] += 1
        return min(available, key=lambda a: (load[a.name], agents.index(a))).name, None
    # round robin: the next agent after the last one chosen, skipping those off shift
    for step in range(len(agents)):
        position = (state.rr_index + step) % len(agents)
        if agents[position] in available:
            return agents[position].name, position + 1
    return available[0].name, None
