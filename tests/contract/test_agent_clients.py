"""Agents outside Gmail: the search our notices suggest finds the ticket's mail on a real Dovecot, and the
Thunderbird tags printed by `mailhelpdesk client-setup thunderbird` cover every keyword the daemon sets.

Thunderbird's quick filter looks for its text in Sender, Recipients and Subject (body off by default); on the
server that is IMAP SEARCH FROM/TO/CC/SUBJECT, which is what these tests run. The clock is injected, never read."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from backends import ImapBackend, base_config
from mailhelpdesk.app.cli import main
from mailhelpdesk.config import config_from_dict
from mailhelpdesk.core.labels import scheme_for
from mailhelpdesk.backends.imap import keyword

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday, 10:00 in Vienna
CUSTOMER = "anna@customer.example"
AGENTS = [{"name": "Alice Smith", "email": "alice@shop.example"}, {"name": "Bob", "email": "bob@shop.example"}]
USER_PREF = re.compile(r'^user_pref\("mailnews\.tags\.(?P<key>.+)\.(?P<field>tag|color|ordinal)", "(?P<value>.*)"\);$')


def customer_mail(subject: str, message_id: str, when: datetime, references: str = "") -> bytes:
    head = (f"From: Anna Berg <{CUSTOMER}>\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.format_datetime(when)}\r\nMessage-ID: {message_id}\r\n")
    if references:
        head += f"In-Reply-To: {references}\r\nReferences: {references}\r\n"
    return (head + "\r\nThe printer in room 4 smokes when it prints.\r\n").encode()


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def harness(imap_account, smtp_sink, tmp_path):
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    data = base_config(tmp_path)
    data["agents"] = AGENTS
    data["mailbox"] = {"backend": "imap"}
    data["imap"] = {"host": imap_account.host, "port": imap_account.port, "security": "none",
                    "username": imap_account.username, "password": imap_account.password, "sent_folder": "Sent"}
    data["smtp"] = {"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"}
    backend.config = config_from_dict(data, tmp_path / "mailhelpdesk.toml")
    clock = Clock(T0)
    desk = backend.helpdesk(clock)
    desk.run_pass()  # the first pass over an empty mailbox: what comes next is live mail, not a backlog
    backend.deliver(customer_mail("Printer on fire", "<p1@customer.example>", T0), T0)
    clock.now = T0 + timedelta(minutes=5)
    desk.run_pass()
    (ticket,) = desk.state.tickets.values()
    yield backend, desk, clock, ticket
    desk.close()


def quick_filter(client, folder: str, text: str) -> list[int]:
    """Thunderbird's quick filter with its default criteria (Sender, Recipients, Subject), done by the server."""
    client.select_folder(folder, readonly=True)
    return client.search(["OR", "FROM", text, "OR", "TO", text, "OR", "CC", text, "SUBJECT", text])


def notice(backend, kind: str):
    (mail,) = [m for m in backend.outgoing() if m["X-Mailhelpdesk-Kind"] == kind]
    return mail


def find_it(text: str) -> tuple[str, str]:
    """What the notice tells the agent to search for: the address, and the subject tag of our mails."""
    hint = re.search(r"Find it: +search the inbox for (\S+?)[;( ].*?have (\[\S+\]) in the subject", text, re.S)
    assert hint, text
    return hint.group(1), hint.group(2)


def flags_of(client, folder: str, uids: list[int]) -> dict[int, set[str]]:
    client.select_folder(folder, readonly=True)
    return {uid: {f.decode() for f in data[b"FLAGS"]} for uid, data in client.fetch(uids, ["FLAGS"]).items()}


def test_the_assignment_notice_suggests_a_search_that_finds_the_customers_mail(harness):
    backend, desk, clock, ticket = harness
    assert ticket.assignee == "Alice Smith"
    text = notice(backend, "assignment").get_content()
    address, tag = find_it(text)
    assert (address, tag) == (CUSTOMER, f"[{ticket.key}]")
    assert "label Helpdesk/Assignee/Alice Smith" in text  # the readable name, as Thunderbird and Gmail show it
    client = backend.client

    found = quick_filter(client, "INBOX", address)
    assert len(found) == 1
    customer_flags = flags_of(client, "INBOX", found)[found[0]]
    assert "Helpdesk/Assignee/Alice_Smith" in customer_flags  # the keyword, an atom; Thunderbird's key lower-cased
    assert client.search(["TEXT", address]) == found

    # the key alone does not find the customer's first mail in the inbox: it carries no key (why the hint names
    # the customer) ...
    assert quick_filter(client, "INBOX", ticket.key) == []
    # ... but it finds our acknowledgement, kept in Sent with the ticket's labels, by subject and by our header
    acks = quick_filter(client, "Sent", tag)
    assert acks and client.search(["HEADER", "X-Mailhelpdesk-Ticket", ticket.key]) == acks
    assert all("Helpdesk/Assignee/Alice_Smith" in f for f in flags_of(client, "Sent", acks).values())

    # and the customer's reply to it, in the inbox
    ack_id = str(notice(backend, "acknowledgement")["Message-ID"])
    backend.deliver(customer_mail(f"Re: {tag} Printer on fire", "<p2@customer.example>", clock.now, ack_id), clock.now)
    clock.now += timedelta(minutes=5)
    desk.run_pass()
    replies = quick_filter(client, "INBOX", tag)
    assert len(replies) == 1 and quick_filter(client, "INBOX", address) == sorted(found + replies)
    assert desk.state.tickets[ticket.key].refs[-1].startswith("INBOX:")  # it joined the same ticket


def test_the_overdue_reminder_suggests_the_same_search(harness):
    backend, desk, clock, ticket = harness
    clock.now = T0 + timedelta(days=4)  # Tuesday: well past a working day
    desk.run_pass()
    reminder = next(m for m in backend.outgoing() if str(m["X-Mailhelpdesk-Kind"]).startswith("escalation")
                    and str(m["To"]) == "alice@shop.example")
    address, tag = find_it(reminder.get_content())
    assert quick_filter(backend.client, "INBOX", address) and quick_filter(backend.client, "Sent", tag)


def user_js(config_file: Path) -> dict[str, dict[str, str]]:
    result = CliRunner().invoke(main, ["client-setup", "--config", str(config_file), "thunderbird"])
    assert result.exit_code == 0, result.output
    prefs: dict[str, dict[str, str]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("//") or not line:
            continue
        match = USER_PREF.match(line)
        assert match, line
        prefs.setdefault(match["key"], {})[match["field"]] = match["value"]
    return prefs


def write_config(tmp_path: Path, agents: list[dict]) -> Path:
    path = tmp_path / "mailhelpdesk.toml"
    lines = ['[helpdesk]', 'address = "support@shop.example"', 'timezone = "Europe/Vienna"',
             '[imap]', 'host = "imap.shop.example"', 'username = "support@shop.example"',
             '[smtp]', 'host = "smtp.shop.example"']
    for agent in agents:
        lines += ["[[agents]]", f'name = "{agent["name"]}"', f'email = "{agent["email"]}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_thunderbird_tags_cover_every_keyword_the_scheme_can_set(tmp_path):
    path = write_config(tmp_path, AGENTS)
    prefs = user_js(path)
    from mailhelpdesk.config import load_config

    scheme = scheme_for(load_config(path))
    assert set(prefs) == {keyword(label).lower() for label in scheme.to_create()}
    names = {fields["tag"] for fields in prefs.values()}
    assert names == set(scheme.to_create())  # readable names: 'Helpdesk/Assignee/Alice Smith', with its space
    assert prefs["helpdesk/assignee/alice_smith"]["tag"] == "Helpdesk/Assignee/Alice Smith"
    for key, fields in prefs.items():
        assert set(fields) == {"tag", "color", "ordinal"}, key
        assert re.fullmatch(r"#[0-9a-f]{6}", fields["color"]), key
        assert key == key.lower() and not re.search(r"[\s()<>{}%*\"\\\]]", key), key  # a valid IMAP atom
    ordinals = [fields["ordinal"] for fields in prefs.values()]
    assert len(set(ordinals)) == len(ordinals)
    assert min(prefs, key=lambda k: prefs[k]["ordinal"]) == "helpdesk/overdue"  # an overdue row is coloured so


def test_every_keyword_on_the_live_mailbox_has_a_thunderbird_tag(harness, tmp_path):
    backend, desk, clock, ticket = harness
    clock.now = T0 + timedelta(days=4)  # the breach adds Overdue
    desk.run_pass()
    (tmp_path / "tb").mkdir()
    keys = set(user_js(write_config(tmp_path / "tb", AGENTS)))
    seen = set().union(*backend.all_labels().values())
    assert "Helpdesk/Overdue" in seen and "Helpdesk/Assignee/Alice_Smith" in seen
    assert {k.lower() for k in seen} <= keys


def test_names_that_become_the_same_keyword_are_reported(tmp_path):
    agents = [{"name": "Алиса", "email": "alisa@shop.example"}, {"name": "Борис", "email": "boris@shop.example"}]
    config = str(write_config(tmp_path, agents))
    result = CliRunner().invoke(main, ["client-setup", "--config", config, "thunderbird"])
    assert result.exit_code == 0
    assert "'Helpdesk/Assignee/Алиса' and 'Helpdesk/Assignee/Борис' are the same IMAP keyword" in result.stderr


@pytest.mark.parametrize("client", ["apple-mail", "outlook"])
def test_apple_mail_and_outlook_are_told_what_they_cannot_show(tmp_path, client):
    result = CliRunner().invoke(main, ["client-setup", "--config", str(write_config(tmp_path, AGENTS)), client])
    assert result.exit_code == 0
    assert "no IMAP keywords" in result.stdout and "#assign NAME" in result.stdout
    assert "search for the customer's address" in result.stdout and "[HD-N]" in result.stdout


def test_a_tag_set_in_thunderbird_before_the_daemon_ever_used_that_keyword_is_read(harness):
    backend, desk, clock, ticket = harness
    inbox = next(ref for ref in ticket.refs if ref.startswith("INBOX:"))
    # Thunderbird sends the lower-cased key; Resolved was never set in this mailbox before
    backend.agent_relabels(inbox, add={"helpdesk/status/resolved"}, remove={"Helpdesk/Status/Open"})
    clock.now += timedelta(minutes=5)
    desk.run_pass()
    assert desk.state.tickets[ticket.key].status.value == "resolved"


def test_a_tag_set_in_thunderbird_on_a_keyword_the_mailbox_knows_is_read(harness):
    backend, desk, clock, ticket = harness
    inbox = next(ref for ref in ticket.refs if ref.startswith("INBOX:"))
    # Bob's keyword exists in the inbox once any message carried it; Dovecot then answers in our spelling
    backend.client.select_folder("INBOX")
    backend.client.add_flags([int(inbox.rsplit(":", 1)[1])], [b"Helpdesk/Assignee/Bob"])
    backend.client.remove_flags([int(inbox.rsplit(":", 1)[1])], [b"Helpdesk/Assignee/Bob"])
    backend.agent_relabels(inbox, add={"helpdesk/assignee/bob"}, remove={"helpdesk/assignee/alice_smith"})
    clock.now += timedelta(minutes=5)
    desk.run_pass()
    assert desk.state.tickets[ticket.key].assignee == "Bob"
