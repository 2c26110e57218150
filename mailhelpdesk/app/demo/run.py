"""`mailhelpdesk demo`: the real engine, store and templates on a local sample mailbox."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Callable

from mailhelpdesk.app.commands import fit, table
from mailhelpdesk.config import load_config
from mailhelpdesk.app.daemon import Helpdesk
from mailhelpdesk.backends.local import LocalMailbox
from mailhelpdesk.model import HistoryEvent, MailKind
from mailhelpdesk.app.demo.seed import demo_messages

DEMO_CONFIG = """\
# The demo's config: a local directory mailbox, two agents, the default rules.
[helpdesk]
name = "Demo Shop Support"
address = "support@demo.example"
timezone = "Europe/Berlin"
state_file = "state.json"

[mailbox]
backend = "local"

[local]
path = "mailbox"

[[agents]]
name = "Alice"
email = "alice@demo.example"

[[agents]]
name = "Bob"
email = "bob@demo.example"
"""


def run_demo(directory: Path | None, echo: Callable[[str], None], now: datetime | None = None) -> Path:
    now = now or datetime.now(UTC)
    directory = Path(directory or tempfile.mkdtemp(prefix="mailhelpdesk-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "mailhelpdesk.toml"
    if not config_path.exists():
        config_path.write_text(DEMO_CONFIG, encoding="utf-8")
    config = load_config(config_path)
    mailbox = LocalMailbox(config.resolve(config.local.path), config)
    mailbox.connect()
    fresh = not any((mailbox.path / "INBOX").glob("*.eml"))
    if fresh:
        for folder, raw, when in demo_messages_with_dates(now):
            mailbox.deliver(folder, raw, when)
    echo(f"Demo mailbox: {mailbox.path}  (config: {config_path})")
    helpdesk = Helpdesk(config, mailbox, clock=lambda: now)
    report = helpdesk.run_pass()
    state = helpdesk.state
    echo(f"\nOne pass over {report.messages} message(s):\n")
    echo(table(sorted(state.tickets.values(), key=lambda t: (t.priority.rank, t.created_at)), config.helpdesk.tz))
    sent = [r for r in state.sent.values() if r.done]
    echo(f"\nSent ({len(sent)}):")
    for ref in sorted((mailbox.path / "Sent").glob("*.eml")):
        msg = message_from_bytes(ref.read_bytes(), policy=default_policy)
        if msg.get("X-Mailhelpdesk-Kind"):
            echo(f"  {msg['X-Mailhelpdesk-Kind']:15} to {msg['To']}: {' '.join(str(msg['Subject']).split())}")
    acked = [state.tickets[r.ticket] for r in sent if r.kind == MailKind.ACKNOWLEDGEMENT]
    first = min(acked, key=lambda t: (t.priority.rank, t.number), default=None)
    ack = next((r for r in sent if r.kind == MailKind.ACKNOWLEDGEMENT and first and r.ticket == first.key), None)
    if ack:
        for ref in sorted((mailbox.path / "Sent").glob("*.eml")):
            msg = message_from_bytes(ref.read_bytes(), policy=default_policy)
            if msg["Message-ID"] == ack.message_id:
                echo(f"\nOne acknowledgement, as the customer sees it ({ref.name}):\n")
                echo("\n".join("    " + line for line in msg.get_content().splitlines()))
                break
    unanswered = [f"  {fit(item.sender or '?', 36)} {fit(item.subject, 40)} -> {item.reason}"
                  for item in sorted(state.ignored.values(), key=lambda i: i.at)]
    unanswered += [f"  {'(attached to ' + ticket.key + ')':36} {'robot reply in the conversation':40} -> {entry.detail}"
                   for ticket in sorted(state.tickets.values(), key=lambda t: t.number) for entry in ticket.history
                   if entry.what == HistoryEvent.AUTOMATIC_MAIL_ATTACHED]
    echo(f"\nLeft unanswered on purpose ({len(unanswered)}):")
    for line in unanswered:
        echo(line)
    second = helpdesk.run_pass()
    sent_again = sum(1 for line in second.done if line.startswith("send"))
    if second.messages or sent_again:
        echo(f"\nA second pass finds {second.messages} new message(s) and sends {sent_again}.")
    else:
        echo("\nA second pass finds nothing new and sends nothing: every mail goes out once.")
    echo(
        "\nLabels per message are in labels.json; try `mailhelpdesk tickets --config "
        f"{config_path}` or `mailhelpdesk tickets HD-1 --config {config_path}`."
    )
    return directory


def demo_messages_with_dates(now: datetime):
    for folder, raw in demo_messages(now):
        msg = message_from_bytes(raw, policy=default_policy)
        try:
            when = msg["Date"].datetime
        except (AttributeError, TypeError):
            when = now
        yield folder, raw, when
