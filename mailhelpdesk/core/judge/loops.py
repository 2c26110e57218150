"""Mail loops, told by what they are, not by counting people (issue 16). Pure predicates: facts in, a reason out.

A person who writes three requests in an hour, and eight colleagues at one company, are each acknowledged. What
is not acknowledged is what a loop looks like:

- **an answer to our automatic mail from outside its conversation**: it carries one of our Message-IDs in
  `In-Reply-To`/`References`, our subject tag, or quotes our acknowledgement, yet its sender takes no part in that
  ticket (a robot answering from `support+4711@vendor`, a ticket system that opens a ticket of its own). It opens a
  ticket linked to ours, so nothing is lost, and gets no acknowledgement;
- **the same mail again**: the same subject and opening words (digits and tags aside) from one company domain, or
  on a free-mail domain from one address (a `+tag` or the digits of its local part aside), within `[autoreply]
  same_shape_hours`: a robot answering every mail from `support+4711@vendor`, `ticket-4712@vendor` or any fresh
  address, or a person sending the same mail twice, who had their acknowledgement the first time.

RFC 3834 and the weighed robot signs (core/judge/automatic.py) come before all this: such mail opens no ticket at all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from mailhelpdesk.model import OUR_ID_PREFIX, MessageFacts, State
from mailhelpdesk.core.judge.senders import FREE_MAIL, organisation, sender_key

_DIGITS = re.compile(r"\d+")
_WORDS = re.compile(r"\W+", re.UNICODE)
_QUOTE_HEADER = re.compile(r"^(on .{0,200} wrote:|-----original message-----|from: )", re.IGNORECASE)
OPENING = 300  # how much of the body counts for the shape: a form letter's opening words are its own


def shape(facts: MessageFacts, free: frozenset[str] = FREE_MAIL) -> str:
    """A short fingerprint of who wrote (their company's domain; on free mail the address without case, +tag or
    digits) and what (the subject and the opening words of the body, without digits, tags, quotes or case): the
    same for a robot's every answer."""
    local, _, domain = sender_key(facts.sender).rpartition("@")
    who = organisation(facts.sender, free) or f"{_DIGITS.sub('', local)}@{domain}"
    subject = _WORDS.sub(" ", _DIGITS.sub("", facts.title)).strip().lower()  # the title: no Re:, no tags
    lines = []
    for line in facts.body.splitlines():
        if _QUOTE_HEADER.match(line.strip()):
            break  # what follows is the message it answers, not its own words
        if not line.startswith(">"):
            lines.append(line)
    opening = _WORDS.sub(" ", _DIGITS.sub("", " ".join(lines))).strip().lower()[:OPENING]
    return hashlib.sha256(f"{who}\n{subject}\n{opening}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Loop:
    """Why a message answers our automatic mail, and the ticket that mail was about ("" when it names none)."""

    reason: str
    ticket: str = ""


def answers_our_mail(state: State, facts: MessageFacts, related: str, prefix: str) -> Loop | None:
    """Whether this message (which takes no part in ticket `related`, or in none) answers our automatic mail.
    `related` is the ticket its references, thread or subject tag point into (core/judge/threading.py); `prefix`
    the helpdesk's ticket prefix (`[helpdesk] ticket_prefix`)."""
    ours = next((m for m in facts.thread_keys if state.is_ours(m) or m.startswith(OUR_ID_PREFIX)), "")
    if ours:
        return Loop(f"it answers our mail {ours}" + (f" about {related}" if related else ""), related)
    if facts.ticket_tag and related == facts.ticket_tag:
        return Loop(f"it answers our mail about {related} (subject tag [{related}])", related)
    quoted = _quoted_key(state, facts, prefix)
    if quoted:
        return Loop(f"it quotes our mail about {quoted}", quoted)
    return None


def _quoted_key(state: State, facts: MessageFacts, prefix: str) -> str:
    """A known ticket key in the quoted part of the body ("> ... opened ticket HD-42 ..."): our mail, quoted back."""
    if ">" not in facts.body:
        return ""
    key = re.compile(rf"\b({re.escape(prefix)}-\d+)\b")
    for line in facts.body.splitlines()[:400]:
        if line.startswith(">"):
            for found in key.findall(line):
                if found in state.tickets or state.archived(found):
                    return found
    return ""
