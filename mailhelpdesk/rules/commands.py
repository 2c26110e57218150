"""Agents act by mail: leading lines such as `#assign bob` in a message to the support address."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import AgentConfig
from ..model import MessageFacts

COMMAND = re.compile(r"^#(close|resolve|reopen|pending|assign|unassign|priority|note)\b[ \t]*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    verb: str
    argument: str = ""


def parse_commands(body: str) -> list[Command]:
    """The commands on the first lines of a body; they stop at the first line that is not one."""
    commands = []
    for line in body.splitlines():
        line = line.strip()
        if not line and not commands:
            continue
        found = COMMAND.match(line)
        if not found:
            break
        commands.append(Command(found.group(1).lower(), found.group(2).strip()))
    return commands


def trusted_sender(facts: MessageFacts, agent: AgentConfig | None) -> tuple[bool, str]:
    """Commands count only from an agent's address and, where the receiving server vouches for mail
    (Authentication-Results), only with a DKIM or SPF pass for the agent's domain."""
    if agent is None:
        return False, f"{facts.sender} is not a configured agent"
    if not facts.auth_results:
        return True, "agent address"
    domain = re.escape(agent.email.rsplit("@", 1)[1].lower())
    results = facts.auth_results.lower()
    if re.search(rf"\bdkim=pass\b[^;]*\bheader\.(d|i)=@?([\w.-]+\.)?{domain}\b", results):
        return True, "DKIM pass"
    if re.search(rf"\bspf=pass\b[^;]*\bsmtp\.mailfrom=[^;\s]*@?([\w.-]+\.)?{domain}\b", results):
        return True, "SPF pass"
    return False, f"the receiving server did not confirm the sender (no DKIM or SPF pass for {agent.email})"
