"""Agents act by mail: leading lines such as `#assign bob` in a message to the support address."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import AgentConfig, CommandsConfig
from ..model import MessageFacts
from .authentication import proves, verdict

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
