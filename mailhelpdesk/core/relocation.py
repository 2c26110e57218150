"""A folder whose UIDVALIDITY changed holds the same mail under new refs: the state follows it. Pure."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

from mailhelpdesk.model import IndexMark, Plan, State, ref_key


@dataclass(frozen=True)
class Relocation:
    """A folder whose UIDVALIDITY changed (recreated, restored, migrated): every ref `folder:old_validity:*` is void,
    and `refs` says where each message is now, by Message-ID (IMAP refs are `folder:uidvalidity:uid`)."""

    folder: str
    old_validity: int
    new_validity: int
    refs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # Message-ID -> its new ref(s)



def relocate(state: State, relocations: Iterable[Relocation]) -> Plan:
    """Tickets and ignored mail moved to their messages' new refs after a UIDVALIDITY change, matched by Message-ID,
    so agents' labels on tickets of any age keep working and nothing is imported again. Pure: the daemon merges
    the plan right after `changes()`, before any message is decided (`state.merge(relocate(state, ...))`)."""
    plan = Plan()
    for moved in relocations:
        stale = f"{moved.folder}:{moved.old_validity}:"
        for key in state.tickets:
            ticket = plan.tickets.get(key) or state.tickets[key]
            if not any(ref.startswith(stale) for ref in ticket.refs):
                continue
            found = [ref for message_id in ticket.message_ids for ref in moved.refs.get(message_id, ())]
            refs = tuple(dict.fromkeys([r for r in ticket.refs if not r.startswith(stale)] + found))
            unlabelled = tuple(r for r in ticket.unlabelled if not r.startswith(stale))
            plan.put(dataclasses.replace(ticket, refs=refs, unlabelled=unlabelled))
            plan.index.update((ref_key(ref), key) for ref in found)
        for message_id, record in state.ignored.items():
            record = plan.ignored.get(message_id, record)
            found = moved.refs.get(message_id, ())
            if record.ref.startswith(stale) and found:
                plan.ignored[message_id] = dataclasses.replace(record, ref=found[0])
                if not record.reason.startswith("outgoing"):  # as State.rebuild_index
                    plan.index[ref_key(found[0])] = IndexMark.IGNORED + message_id
    return plan
