"""How urgent is a new request? Configured rules first, then the mail's own Importance headers."""

from __future__ import annotations

import re

from mailhelpdesk.config import Config
from mailhelpdesk.model import MessageFacts, Priority


def priority_for(facts: MessageFacts, config: Config) -> tuple[Priority, str]:
    """The priority and the reason, e.g. (URGENT, "rule 1: subject")."""
    domain = facts.customer.rsplit("@", 1)[-1]
    for number, rule in enumerate(config.priority.effective_rules, start=1):
        reasons = []
        if rule.subject:
            if not re.search(rule.subject, facts.subject):
                continue
            reasons.append("subject")
        if rule.body:
            if not re.search(rule.body, facts.body):
                continue
            reasons.append("body")
        if rule.sender_domains:
            if domain not in {d.lower() for d in rule.sender_domains}:
                continue
            reasons.append("sender domain")
        if rule.senders:
            if facts.customer not in {s.lower() for s in rule.senders}:
                continue
            reasons.append("sender")
        if reasons:
            return rule.priority, f"rule {number}: {', '.join(reasons)}"
    if config.priority.use_headers and facts.importance is not None:
        return facts.importance, "message importance header"
    return config.priority.default, "default"
