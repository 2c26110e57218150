"""Agents act by mail: leading lines such as `#assign bob` in a message to the support address.

The registry below is the command set: each command declares its name, its argument, its help (per language) and
its effect once. Parsing, the rejection mail's list (templates/*/command_rejected.txt.j2) and the README's list
come from it. A new command is one `@command(...)` function here and a line in the README (a test compares them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from mailhelpdesk.config import AgentConfig, Config, CommandsConfig
from mailhelpdesk.model import HistoryEvent, MessageFacts, Priority, Status, Ticket
from mailhelpdesk.core import transitions
from mailhelpdesk.core.judge.authentication import proves, verdict


class CommandProblem(Exception):
    """A command that cannot be carried out; its message goes into the rejection mail."""


@dataclass(frozen=True)
class Run:
    """Who runs a command, when, and what it may look at."""

    config: Config
    who: str
    when: datetime
    due: transitions.Due
    calendar: Any = None  # core/sla.BusinessCalendar: the working days and hours a duration counts in


Effect = Callable[[Ticket, str, Run], Ticket]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    effect: Effect
    help: dict[str, str]  # by language ("en" always)
    argument: dict[str, str]  # its placeholder by language ({} when the command takes none)

    def usage(self, language: str = "en") -> str:
        argument = self.argument.get(language) or self.argument.get("en", "")
        return f"#{self.name} {argument}".strip()

    def describe(self, language: str = "en") -> str:
        return self.help.get(language) or self.help["en"]


COMMANDS: dict[str, CommandSpec] = {}  # in the order they are listed


def command(name: str, help: dict[str, str], argument: dict[str, str] | None = None) -> Callable[[Effect], Effect]:
    """Register `#name` with its effect: `effect(ticket, argument, run) -> ticket`, raising CommandProblem."""

    def register(effect: Effect) -> Effect:
        COMMANDS[name] = CommandSpec(name, effect, help, argument or {})
        return effect

    return register


def known_commands(language: str = "en") -> list[dict[str, str]]:
    """The command list as mail shows it: usage and help, in the helpdesk's language."""
    return [{"usage": c.usage(language), "help": c.describe(language)} for c in COMMANDS.values()]


def readme_list() -> str:
    """The README's list of commands (between its `<!-- commands -->` markers)."""
    return "\n".join(f"- `{c.usage()}`: {c.describe()}" for c in COMMANDS.values())


@dataclass(frozen=True)
class Command:
    verb: str
    argument: str = ""


def parse_commands(body: str) -> list[Command]:
    """The commands on the first lines of a body; they stop at the first line that is not one."""
    names = "|".join(re.escape(name) for name in sorted(COMMANDS, key=len, reverse=True))
    pattern = re.compile(rf"^#({names})\b[ \t]*(.*)$", re.IGNORECASE)
    commands = []
    for line in body.splitlines():
        line = line.strip()
        if not line and not commands:
            continue
        found = pattern.match(line)
        if not found:
            break
        commands.append(Command(found.group(1).lower(), found.group(2).strip()))
    return commands


def run_commands(ticket: Ticket, commands: list[Command], run: Run) -> Ticket:
    """Carry out `commands` in order; CommandProblem (none of them then counts) names the one that failed."""
    for found in commands:
        ticket = COMMANDS[found.verb].effect(ticket, found.argument, run)
    return ticket


def _status(name: str, status: Status, help: dict[str, str]) -> None:
    def effect(ticket: Ticket, argument: str, run: Run) -> Ticket:
        return transitions.set_status(ticket, status, run.when, f"#{name} by {run.who}", run.due)

    command(name, help)(effect)


_status("close", Status.CLOSED, {"en": "close the ticket", "ru": "закрыть обращение"})
_status("resolve", Status.RESOLVED, {"en": "mark it solved (the customer is told)", "ru": "отметить как решённое"})
_status("reopen", Status.OPEN, {"en": "open it again", "ru": "открыть снова"})
_status("pending", Status.PENDING, {"en": "wait for the customer", "ru": "перевести в «ждёт клиента»"})


@command("assign", {"en": "give the ticket to an agent", "ru": "назначить исполнителя"}, {"en": "NAME", "ru": "ИМЯ"})
def _assign(ticket: Ticket, argument: str, run: Run) -> Ticket:
    target = run.config.agent_by_name(argument)
    if target is None:
        names = ", ".join(a.name for a in run.config.agents) or "none configured"
        raise CommandProblem(f"#assign {argument!r}: no such agent (agents: {names})")
    return transitions.assign(ticket, target.name, run.when, f"#assign by {run.who}")


@command("take", {"en": "take the ticket yourself (a claim before you answer: the assignee label shows it to all)",
                  "ru": "взять обращение себе"})
def _take(ticket: Ticket, argument: str, run: Run) -> Ticket:
    agent = run.config.agent_by_name(run.who)
    if agent is None:
        raise CommandProblem("#take: only an agent can take a ticket (write from your own address, or use #assign)")
    if ticket.assignee == agent.name:
        return ticket
    return transitions.assign(ticket, agent.name, run.when, f"#take by {run.who}")


@command("unassign", {"en": "take the agent off the ticket", "ru": "снять исполнителя"})
def _unassign(ticket: Ticket, argument: str, run: Run) -> Ticket:
    return transitions.unassign(ticket, run.when, f"#unassign by {run.who}")


@command("priority", {"en": "change the priority", "ru": "сменить приоритет"},
         {"en": "|".join(Priority), "ru": "|".join(Priority)})
def _priority(ticket: Ticket, argument: str, run: Run) -> Ticket:
    try:
        priority = Priority(argument.lower())
    except ValueError:
        raise CommandProblem(f"#priority {argument!r}: use urgent, high, normal or low") from None
    return transitions.set_priority(ticket, priority, run.when, f"#priority by {run.who}", run.due)


@command("note", {"en": "add an internal note (never sent to the customer)", "ru": "добавить внутреннюю заметку"},
         {"en": "TEXT", "ru": "ТЕКСТ"})
def _note(ticket: Ticket, argument: str, run: Run) -> Ticket:
    return ticket.log(run.when, HistoryEvent.NOTE, f"{run.who}: {argument}")


WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
            "понедельник": 0, "вторник": 1, "среда": 2, "среду": 2, "четверг": 3, "пятница": 4, "пятницу": 4,
            "суббота": 5, "субботу": 5, "воскресенье": 6}


@command("snooze", {"en": "put the ticket away until then: no reminders, out of the digests; back at that time or "
                          "when the customer writes", "ru": "отложить обращение до указанного времени"},
         {"en": "3d|4h|monday|2027-01-08", "ru": "3d|4h|понедельник|2027-01-08"})
def _snooze(ticket: Ticket, argument: str, run: Run) -> Ticket:
    return transitions.snoozed(ticket, snooze_until(argument, run), run.when, f"#snooze {argument} by {run.who}")


@command("unsnooze", {"en": "bring a snoozed ticket back now", "ru": "вернуть отложенное обращение"})
def _unsnooze(ticket: Ticket, argument: str, run: Run) -> Ticket:
    if ticket.snoozed_until is None:
        raise CommandProblem(f"#unsnooze: {ticket.key} is not snoozed")
    return transitions.woken(ticket, run.when, f"#unsnooze by {run.who}", run.due)


def snooze_until(argument: str, run: Run) -> datetime:
    """`3d` / `4h`: working days and business hours from now (as due times count); `monday`: the next Monday's
    opening; `2027-01-08`: that day's opening, in the helpdesk's time zone."""
    from datetime import date, time, timedelta

    from mailhelpdesk.core.sla import parse_target

    text = argument.strip().lower()
    tz, calendar = run.config.helpdesk.tz, run.calendar
    try:
        return calendar.add_target(run.when, parse_target(text))
    except ValueError:
        pass
    today = run.when.astimezone(tz).date()
    if text in WEEKDAYS:
        day = today + timedelta(days=(WEEKDAYS[text] - today.weekday() - 1) % 7 + 1)  # the next one, never today
    else:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise CommandProblem(f"#snooze {argument!r}: give a duration (3d, 4h), a weekday (monday) or a date "
                                 f"(2027-01-08)") from None
    until = calendar.next_open(datetime.combine(day, time(0), tz))
    if until <= run.when:
        raise CommandProblem(f"#snooze {argument!r}: that time has passed")
    return until


def trusted_sender(facts: MessageFacts, agent: AgentConfig | None, commands: CommandsConfig) -> tuple[bool, str]:
    """Commands count only from exactly one From: address, a configured agent's (no Sender: fallback), and only
    when the receiving server's Authentication-Results (its authserv-id, RFC 8601 §5) show an aligned DKIM, SPF
    or DMARC pass for it. Without such a header that is a refusal, unless `require_authentication = false`;
    a trusted header that does not vouch is a refusal either way."""
    if agent is None:
        return False, f"{facts.sender or 'the sender'} is not a configured agent"
    if facts.from_addresses != (agent.email.lower(),):
        shown = ", ".join(a or "(not an address)" for a in facts.from_addresses) or "no address"
        return False, (f"commands need exactly one From: address, an agent's; this mail's From: has {shown}"
                       + (" (Sender: does not count)" if facts.sender not in facts.from_addresses else ""))
    found = verdict(facts.auth_headers, commands.trusted_authserv_id)
    ok, why = proves(found, agent.email)
    if ok:
        return True, why
    if not commands.require_authentication and not found.trusted:
        return True, "agent address ([commands] require_authentication = false)"
    if not commands.trusted_authserv_id:
        why = ("commands by mail need proof that an agent sent them, and this helpdesk does not know yet whose "
               "Authentication-Results to believe: whoever runs it should set [commands] trusted_authserv_id "
               "(`mailhelpdesk check` suggests one; see the README, 'Setting up commands safely')")
    elif not found.trusted:
        why = (f"{why}; commands are believed only when that server vouches for the agent's address (DKIM, SPF or "
               f"DMARC pass): send them from your own mailbox at {agent.email.rsplit('@', 1)[1]}, or write them from "
               f"the shared account itself")
    return False, why
