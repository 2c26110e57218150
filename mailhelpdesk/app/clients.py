"""Set-up text for agents outside Gmail: Thunderbird tag definitions (user.js) for every IMAP keyword the label
scheme can set, and honest notes for Apple Mail and Outlook. Pure: config in, text out; no I/O.

How Thunderbird maps keywords to tags (comm-central): it lower-cases every IMAP keyword it reads
(nsImapMailFolder::HandleCustomFlags) and looks a tag up by that key in the prefs
`mailnews.tags.<key>.tag|color|ordinal` (nsMsgTagService, which lower-cases the key too). A keyword without such
prefs is kept on the message but shown nowhere. When an agent sets a tag, Thunderbird stores the lower-case key;
Dovecot matches keywords without regard to case and keeps the spelling the mailbox first saw (ours).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mailhelpdesk.core.labels import LabelScheme, scheme_for
from mailhelpdesk.capabilities import LabelStore, capabilities
from mailhelpdesk.backends.gmail import COLOURS
from mailhelpdesk.backends.imap import keyword
from mailhelpdesk.model import Priority, Status


# agents' tags get distinct, readable colours (Gmail palette backgrounds, so both clients look alike)
AGENT_COLOURS = ("#4a86e8", "#8e63ce", "#2a9c68", "#e07798", "#3c78d8", "#b99aff", "#0b804b", "#b65775",
                 "#285bac", "#653e9b")
DEFAULT_COLOUR = "#999999"


@dataclass(frozen=True)
class Tag:
    label: str  # the readable name, as on Gmail: Helpdesk/Assignee/Alice Smith
    keyword: str  # what the daemon stores on IMAP (an atom): Helpdesk/Assignee/Alice_Smith
    colour: str
    ordinal: str  # Thunderbird sorts tags by it; the first tag on a message colours its row

    @property
    def key(self) -> str:
        """Thunderbird's tag key: the keyword, lower-cased."""
        return self.keyword.lower()


def tags(scheme: LabelScheme) -> list[Tag]:
    """Every label the daemon may set or create, most important first: Overdue and Quarantine colour a row before
    status or priority does; agents come after the fixed labels, Ignored last."""
    fixed = [scheme.overdue, scheme.quarantine]
    fixed += [scheme.priority(p) for p in (Priority.URGENT, Priority.HIGH)]
    fixed += [scheme.status(s) for s in Status]
    fixed += [scheme.priority(p) for p in (Priority.NORMAL, Priority.LOW)]
    agents = [scheme.assignee(a) for a in scheme.agents]
    rest = sorted(scheme.to_create() - set(fixed) - set(agents) - {scheme.ignored})
    order = fixed + agents + rest + [scheme.ignored]
    result = []
    for n, label in enumerate(order):
        short = label[len(scheme.root) + 1 :]
        if label in agents:
            colour = AGENT_COLOURS[agents.index(label) % len(AGENT_COLOURS)]
        else:
            colour = COLOURS[short][1] if short in COLOURS else DEFAULT_COLOUR
        result.append(Tag(label, keyword(label), colour, f"helpdesk{n:02d}"))
    return result


def clashes(scheme: LabelScheme) -> list[str]:
    """Labels that become the same keyword (names that differ only in characters an IMAP atom cannot hold, such as
    non-Latin letters): the daemon and Thunderbird cannot tell them apart."""
    by_key: dict[str, list[str]] = {}
    for label in sorted(scheme.to_create()):
        by_key.setdefault(keyword(label).lower(), []).append(label)
    return [
        f"{' and '.join(repr(x) for x in labels)} are the same IMAP keyword {keyword(labels[0])!r}: "
        "give these agents names that differ in Latin letters or digits ([[agents]] name)"
        for labels in by_key.values()
        if len(labels) > 1
    ]


def _js(text: str) -> str:
    """A JavaScript string literal for prefs files (UTF-8; quotes and backslashes escaped)."""
    return json.dumps(text, ensure_ascii=False)


def thunderbird(config) -> str:  # config: Config
    scheme = scheme_for(config)
    lines = [
        f"// mailhelpdesk: Thunderbird tags for the labels of {config.helpdesk.address}",
        "// Put these lines in user.js in each agent's Thunderbird profile folder (Help > Troubleshooting Information",
        "// > Profile Folder) and restart Thunderbird. user.js is applied at every start: rename tags here, not in",
        "// Thunderbird's settings. Run `mailhelpdesk client-setup thunderbird` again after adding an agent.",
    ]
    if capabilities(config).labels is LabelStore.LABELS:
        lines += [
            "// This helpdesk runs on Gmail: its labels are Gmail labels, which Thunderbird shows as folders, not as",
            "// tags. The lines below only matter for an IMAP mailbox that is not Gmail.",
        ]
    for tag in tags(scheme):
        prefix = f"mailnews.tags.{tag.key}"
        lines.append(f"user_pref({_js(prefix + '.tag')}, {_js(tag.label)});")
        lines.append(f"user_pref({_js(prefix + '.color')}, {_js(tag.colour)});")
        lines.append(f"user_pref({_js(prefix + '.ordinal')}, {_js(tag.ordinal)});")
    return "\n".join(lines) + "\n"


def apple_mail(config) -> str:  # config: Config
    scheme = scheme_for(config)
    return f"""Apple Mail and the helpdesk ({config.helpdesk.address})

What Apple Mail shows: no IMAP keywords at all, so no status, priority or assignee labels. (It stores its own
flag colours as keywords $MailFlagBit0-2; the daemon neither sets nor reads them.) Labels set by the daemon or
by colleagues in Thunderbird stay on the server; Apple Mail simply does not display them.

What works:
- Your tickets come to you by mail: the assignment notice (customer, subject, due time), reminders before and at
  the deadline, and the daily digest of your open tickets, overdue first.
- Find a ticket's mail: in the support inbox search for the customer's address (the notice names it); the
  customer's replies to us and every mail we send carry [{config.helpdesk.ticket_prefix}-N] in the subject.
- A smart mailbox with "Subject contains [{config.helpdesk.ticket_prefix}-" collects every mail that carries a
  ticket key (ours and the customers' replies to them); one with "From contains <address>" follows one customer.
- Reply as usual (from {config.helpdesk.address} or with it in Cc): the ticket moves to pending.
- Change a ticket by mail instead of by label: a message to {config.helpdesk.address} from your agent address, in
  the ticket's conversation, whose first lines are commands: #close, #resolve, #reopen, #pending, #assign NAME,
  #unassign, #priority urgent|high|normal|low, #note TEXT.

Labels the daemon uses (for colleagues in Gmail or Thunderbird): {', '.join(sorted(scheme.to_create()))}.
"""


def outlook(config) -> str:  # config: Config
    return f"""Outlook and the helpdesk ({config.helpdesk.address})

What Outlook shows: no IMAP keywords, so no status, priority or assignee labels. Outlook's categories are a
different thing: on an IMAP account they are kept on your computer and are not written to the server as
keywords, so a category you set is seen neither by the daemon nor by your colleagues, and the daemon's labels
never become categories. (A Gmail mailbox is different: there Outlook shows the helpdesk's labels as folders.)

What works:
- Your tickets come to you by mail: the assignment notice, reminders before and at the deadline, and the daily
  digest of your open tickets, overdue first.
- Find a ticket's mail: in the support inbox search for the customer's address (the notice names it); the
  customer's replies to us and every mail we send carry [{config.helpdesk.ticket_prefix}-N] in the subject.
- Reply as usual (from {config.helpdesk.address} or with it in Cc): the ticket moves to pending.
- Change a ticket by mail: a message to {config.helpdesk.address} from your agent address, in the ticket's
  conversation, whose first lines are commands: #close, #resolve, #reopen, #pending, #assign NAME, #unassign,
  #priority urgent|high|normal|low, #note TEXT.
"""


def setup_text(config, client: str) -> tuple[str, list[str]]:  # config: Config
    """The set-up text for one mail client, and warnings (keyword clashes) to show on stderr."""
    render = {"thunderbird": thunderbird, "apple-mail": apple_mail, "outlook": outlook}[client]
    return render(config), clashes(scheme_for(config))

