"""Other clients are respected, on a real Dovecot: a label an agent sets while a pass is deciding is never undone
(CONDSTORE's UNCHANGEDSINCE, and the next pass decides again); a folder whose UIDVALIDITY changed keeps its tickets
(found again by Message-ID, however old); a vanished sent folder is a warning, not a stall; and SIGTERM ends a
daemon blocked in IDLE or on an SMTP server that never answers. The clock is injected, never read."""

from __future__ import annotations

import email.utils
import logging
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backends import ImapBackend, base_config
from clocks import child_env, wait_for
from mailhelpdesk.config import config_from_dict
from mailhelpdesk.app.daemon import Helpdesk
from mailhelpdesk.core.relocation import relocate
from mailhelpdesk.backends.imap import ImapMailbox, keyword
from mailhelpdesk.model import Status

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday, 10:00 in Vienna
OPEN, RESOLVED, URGENT = "Helpdesk/Status/Open", "Helpdesk/Status/Resolved", "Helpdesk/Priority/Urgent"


def customer_mail(n: int, when: datetime, answers: str = "", who: str = "anna@customer.example") -> bytes:
    head = (f"From: Anna Berg <{who}>\r\nTo: support@shop.example\r\nSubject: Printer {n} on fire\r\n"
            f"Date: {email.utils.format_datetime(when)}\r\nMessage-ID: <p{n}@customer.example>\r\n")
    if answers:
        head += f"In-Reply-To: {answers}\r\nReferences: {answers}\r\n"
    return (head + f"\r\nPrinter {n} smokes when it prints.\r\n").encode()


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def flags(client, folder: str, uid: int) -> set[str]:
    client.select_folder(folder, readonly=True)
    return {f.decode() for f in client.fetch([uid], ["FLAGS"])[uid][b"FLAGS"]}


def uid_of(ref: str) -> int:
    return int(ref.rsplit(":", 1)[1])


# --- CONDSTORE: a label write never undoes an agent's change -----------------------------------------------------


def test_a_label_write_skips_a_message_another_client_changed_since_it_was_read(imap_account, smtp_sink, tmp_path):
    """Driven through the adapter's own methods, so the agent's change falls exactly between our read and write."""
    for n in (1, 2, 3):
        imap_account.append("INBOX", customer_mail(n, T0), when=T0)
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    mailbox = ImapMailbox(backend.config)
    mailbox.connect()
    mailbox.prepare([OPEN, RESOLVED, URGENT])
    assert mailbox.condstore
    changes = mailbox.changes({}, T0 - timedelta(days=1))
    refs = sorted((m.ref for m in changes.messages), key=uid_of)  # read: the versions we decide on
    agent = imap_account.client()

    agent.select_folder("INBOX")
    agent.add_flags([uid_of(refs[1])], [keyword(RESOLVED)])  # meanwhile, in the agent's mail client
    mailbox.set_labels(refs, frozenset({OPEN}), frozenset({RESOLVED}))

    assert mailbox.conflicts == [refs[1]]
    assert flags(agent, "INBOX", uid_of(refs[1])) == {keyword(RESOLVED)}  # the agent's label stands, ours not added
    for ref in (refs[0], refs[2]):
        assert keyword(OPEN) in flags(agent, "INBOX", uid_of(ref))  # the others are labelled
    # our own writes move the versions on: writing again, with no change by anyone, is no conflict
    mailbox.set_labels([refs[0], refs[2]], frozenset({URGENT}), frozenset())
    assert mailbox.conflicts == []

    # the next pass reads the agent's change (and only then may write over it)
    again = mailbox.changes(changes.cursor, T0 - timedelta(days=1))
    assert list(again.messages) == []
    seen = dict(again.label_changes)
    assert seen[refs[1]] == frozenset({RESOLVED})
    mailbox.set_labels([refs[1]], frozenset({OPEN}), frozenset({RESOLVED}))
    assert mailbox.conflicts == [] and flags(agent, "INBOX", uid_of(refs[1])) == {keyword(OPEN)}
    mailbox.close()


def test_an_agent_resolving_a_ticket_during_a_pass_is_not_undone_and_the_next_pass_follows_it(
        imap_account, smtp_sink, tmp_path):
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    clock = Clock(T0)
    desk = backend.helpdesk(clock)
    desk.run_pass()  # an empty mailbox: what follows is live mail
    first = backend.deliver(customer_mail(1, T0), T0)
    clock.now = T0 + timedelta(minutes=5)
    desk.run_pass()
    (ticket,) = desk.state.tickets.values()
    assert desk.state.tickets[ticket.key].status == Status.OPEN

    later = T0 + timedelta(minutes=10)
    reply = backend.deliver(customer_mail(2, later, answers="<p1@customer.example>"), later)
    agent = imap_account.client()
    set_labels = desk.mailbox.set_labels
    raced = []

    def racing(refs, add, remove):  # the agent resolves the ticket on the new mail while the pass decides
        if not raced:
            agent.select_folder("INBOX")
            agent.add_flags([uid_of(reply)], [keyword(RESOLVED)])
            raced.append(True)
        set_labels(refs, add, remove)
        if reply in refs:
            conflicts.extend(desk.mailbox.conflicts)

    conflicts: list[str] = []

    desk.mailbox.set_labels = racing
    clock.now = later + timedelta(minutes=1)
    desk.run_pass()
    assert raced and conflicts == [reply]
    assert keyword(RESOLVED) in flags(agent, "INBOX", uid_of(reply))  # not undone

    clock.now += timedelta(minutes=1)
    desk.run_pass()  # reads the agent's change and decides again
    assert desk.state.tickets[ticket.key].status == Status.RESOLVED
    for ref in (first, reply):
        names = flags(agent, "INBOX", uid_of(ref))
        assert keyword(RESOLVED) in names and keyword(OPEN) not in names
    desk.close()


# --- UIDVALIDITY: tickets of any age are found again by Message-ID ------------------------------------------------


def support_folder_config(account, sink, tmp_path: Path):
    data = base_config(tmp_path)
    data["mailbox"] = {"backend": "imap"}
    data["imap"] = {"host": account.host, "port": account.port, "security": "none", "username": account.username,
                    "password": account.password, "folder": "Support", "sent_folder": "Sent", "import_days": 14}
    data["smtp"] = {"host": sink.host, "port": sink.port, "security": "none"}
    return config_from_dict(data, tmp_path / "mailhelpdesk.toml")


def acknowledgements(sink) -> list[str]:
    return sorted(str(m.message["To"]) for m in sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement")


def recreate(client, folder: str) -> None:
    """What a restore or a migration does: the folder is made anew and the mail put back, in another order
    (so other UIDs), keywords kept."""
    client.create_folder("Restore")
    client.select_folder(folder)
    client.copy(client.search("ALL"), "Restore")
    client.unselect_folder()
    client.delete_folder(folder)
    client.create_folder(folder)
    client.select_folder("Restore")
    for uid in sorted(client.search("ALL"), reverse=True):
        client.copy([uid], folder)
    client.unselect_folder()
    client.delete_folder("Restore")


def test_after_a_uidvalidity_change_old_tickets_are_found_again_by_message_id(imap_account, smtp_sink, tmp_path, caplog):
    client = imap_account.client()
    client.create_folder("Support")
    config = support_folder_config(imap_account, smtp_sink, tmp_path)
    clock = Clock(T0)
    desk = Helpdesk(config, clock=clock)  # the daemon re-maps refs after a UIDVALIDITY change (run_pass)
    desk.run_pass()
    for n in (1, 2, 3):
        imap_account.append("Support", customer_mail(n, T0, who=f"c{n}@customer{n}.example"), when=T0)
    clock.now = T0 + timedelta(minutes=5)
    desk.run_pass()
    assert len(desk.state.tickets) == 3
    before = client.select_folder("Support", readonly=True)[b"UIDVALIDITY"]

    clock.now = T0 + timedelta(days=40)  # far older than import_days
    desk.run_pass()
    acks = acknowledgements(smtp_sink)
    desk.close()  # (the daemon would reconnect after its folder vanished under it; the test spares it that)
    recreate(client, "Support")
    assert client.select_folder("Support")[b"UIDVALIDITY"] != before  # (selected to write, as the agent does)
    # an agent resolves the first request in the new folder before the daemon has seen it
    (uid,) = client.search(["HEADER", "Message-ID", "<p1@customer.example>"])
    client.remove_flags([uid], [keyword(OPEN)])
    client.add_flags([uid], [keyword(RESOLVED)])
    caplog.set_level(logging.WARNING, logger="mailhelpdesk")
    clock.now += timedelta(minutes=5)
    report = desk.run_pass()

    assert "UIDVALIDITY" in caplog.text
    assert report.messages == 0 and len(desk.state.tickets) == 3  # nothing imported again
    assert acknowledgements(smtp_sink) == acks  # nobody acknowledged again
    validity = client.select_folder("Support", readonly=True)[b"UIDVALIDITY"]
    for ticket in desk.state.tickets.values():
        inbox = [ref for ref in ticket.refs if ref.startswith("Support:")]
        assert inbox and all(ref.startswith(f"Support:{validity}:") for ref in inbox)
    by_customer = {t.customer: t for t in desk.state.tickets.values()}
    assert by_customer["c1@customer1.example"].status == Status.RESOLVED  # the change made meanwhile was read

    # and from now on an agent's label on a 40-day-old ticket works as on any other
    client.select_folder("Support")
    (uid,) = client.search(["HEADER", "Message-ID", "<p2@customer.example>"])
    client.remove_flags([uid], [keyword(OPEN)])
    client.add_flags([uid], [keyword(RESOLVED)])
    clock.now += timedelta(minutes=5)
    desk.run_pass()
    assert by_customer["c2@customer2.example"].key in desk.state.tickets
    assert desk.state.tickets[by_customer["c2@customer2.example"].key].status == Status.RESOLVED
    desk.close()


def test_relocate_is_idempotent_and_leaves_other_folders_alone():
    from mailhelpdesk.core.relocation import Relocation
    from mailhelpdesk.model import State, Ticket, ref_key

    ticket = Ticket("HD-1", 1, "a@x.example", "s", T0, message_ids=("<a@x>", "<b@x>"),
                    refs=("INBOX:7:1", "INBOX:7:2", "Sent:3:9"), unlabelled=("INBOX:7:2",))
    state = State(tickets={"HD-1": ticket})
    moved = Relocation("INBOX", 7, 8, {"<a@x>": ("INBOX:8:5",), "<b@x>": ("INBOX:8:4",), "<c@x>": ("INBOX:8:1",)})
    plan = relocate(state, [moved])
    assert plan.tickets["HD-1"].refs == ("Sent:3:9", "INBOX:8:5", "INBOX:8:4")
    assert plan.tickets["HD-1"].unlabelled == ()
    assert plan.index == {ref_key("INBOX:8:5"): "HD-1", ref_key("INBOX:8:4"): "HD-1"}
    state.merge(plan)
    assert relocate(state, [moved]).tickets == {}


# --- a vanished sent folder ---------------------------------------------------------------------------------------


def test_a_vanished_sent_folder_is_a_warning_and_mail_still_goes_out(imap_account, smtp_sink, tmp_path, caplog):
    import dataclasses

    agent = imap_account.client()
    agent.create_folder("Sent Items")
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    config = dataclasses.replace(backend.config, imap=dataclasses.replace(backend.config.imap, sent_folder="Sent Items"))
    clock = Clock(T0)
    desk = Helpdesk(config, clock=clock)
    desk.run_pass()
    agent.delete_folder("Sent Items")

    caplog.set_level(logging.WARNING, logger="mailhelpdesk")
    imap_account.append("INBOX", customer_mail(1, T0), when=T0)
    clock.now = T0 + timedelta(minutes=5)
    desk.run_pass()  # no exception: the pass goes on without the folder
    assert "'Sent Items' no longer exists" in caplog.text
    acks = [m for m in smtp_sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement"]
    assert len(acks) == 1 and len(desk.state.tickets) == 1

    desk.reset()  # a reconnect does not stall on it either
    imap_account.append("INBOX", customer_mail(2, T0, who="ben@bigstore.example"), when=T0)
    clock.now += timedelta(minutes=5)
    desk.run_pass()
    assert len(desk.state.tickets) == 2
    assert caplog.text.count("no longer exists") == 1  # said once, not every pass

    agent.create_folder("Sent Items")  # back: copies are kept there again
    imap_account.append("INBOX", customer_mail(3, T0, who="cleo@thirdshop.example"), when=T0)
    clock.now += timedelta(minutes=5)
    desk.run_pass()
    assert len(desk.state.tickets) == 3
    agent.select_folder("Sent Items", readonly=True)
    copies = agent.search(["HEADER", "X-Mailhelpdesk-Kind", "acknowledgement"])
    assert len(copies) == 1  # only the acknowledgement sent after it came back
    desk.close()


def test_a_sent_folder_made_anew_under_the_daemon_is_followed(imap_account, smtp_sink, tmp_path, caplog):
    """The folder marked \\Sent, found by itself: deleted, Dovecot makes it anew at once (auto = subscribe), with a
    new UIDVALIDITY; the daemon goes on and keeps its copies in the new one."""
    import dataclasses

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    config = dataclasses.replace(backend.config, imap=dataclasses.replace(backend.config.imap, sent_folder=""))
    clock = Clock(T0)
    desk = Helpdesk(config, clock=clock)
    desk.run_pass()
    assert desk.mailbox.sent_folder == "Sent"
    imap_account.append("INBOX", customer_mail(1, T0), when=T0)
    clock.now = T0 + timedelta(minutes=5)
    desk.run_pass()
    agent = imap_account.client()
    agent.delete_folder("Sent")

    caplog.set_level(logging.WARNING, logger="mailhelpdesk")
    imap_account.append("INBOX", customer_mail(2, T0, who="ben@bigstore.example"), when=T0)
    clock.now += timedelta(minutes=5)
    desk.run_pass()
    assert len(desk.state.tickets) == 2
    acks = [m for m in smtp_sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement"]
    assert len(acks) == 2
    agent.select_folder("Sent", readonly=True)
    copies = agent.search(["HEADER", "X-Mailhelpdesk-Kind", "acknowledgement"])
    assert len(copies) == 1  # the new acknowledgement's copy, in the new folder
    desk.close()


# --- SIGTERM ends the daemon within seconds --------------------------------------------------------------------


def daemon_config(path: Path, account, smtp_host: str, smtp_port: int) -> None:
    path.write_text(f"""
[helpdesk]
address = "support@shop.example"
state_file = "state.json"
[[agents]]
name = "Alice"
email = "alice@shop.example"
[mailbox]
backend = "imap"
poll_interval = 600
[imap]
host = "{account.host}"
port = {account.port}
security = "none"
username = "{account.username}"
password = "{account.password}"
sent_folder = "Sent"
idle = true
[smtp]
host = "{smtp_host}"
port = {smtp_port}
security = "none"
timeout = 120
""")


def start_daemon(config: Path, now: datetime) -> subprocess.Popen:
    log = open(config.parent / "daemon.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "mailhelpdesk.app.cli", "run", "-v", "--config", str(config)],
                            cwd=config.parent, stdout=subprocess.DEVNULL, stderr=log, env=child_env(now))


def first_pass_done(config: Path) -> bool:
    return (config.parent / "state.json.health").exists()


def stop_within_10_s(proc: subprocess.Popen, config: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the daemon did not end within 10 s of SIGTERM:\n" + (config.parent / "daemon.log").read_text()[-3000:])


def test_sigterm_ends_a_daemon_waiting_in_idle(imap_account, smtp_sink, tmp_path):
    config = tmp_path / "mailhelpdesk.toml"
    daemon_config(config, imap_account, smtp_sink.host, smtp_sink.port)
    proc = start_daemon(config, T0)
    try:
        assert wait_for(lambda: first_pass_done(config), 60), (config.parent / "daemon.log").read_text()
        stop_within_10_s(proc, config)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None


def test_sigterm_ends_a_daemon_held_by_an_smtp_server_that_never_answers(imap_account, smtp_sink, tmp_path):
    """The SMTP server stops answering in the middle of a session (MAIL FROM is never answered), with
    [smtp] timeout = 120 s: SIGTERM still ends the daemon within 10 s."""
    config = tmp_path / "mailhelpdesk.toml"
    daemon_config(config, imap_account, smtp_sink.host, smtp_sink.port)
    proc = start_daemon(config, T0 + timedelta(minutes=5))
    try:
        assert wait_for(lambda: first_pass_done(config), 60), (config.parent / "daemon.log").read_text()
        smtp_sink.limit(len(smtp_sink.messages))  # from now on, silence
        imap_account.append("INBOX", customer_mail(1, T0), when=T0)  # IDLE wakes it: an acknowledgement to send
        assert smtp_sink.wait_held(), (config.parent / "daemon.log").read_text()  # it waits for an answer
        stop_within_10_s(proc, config)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        smtp_sink.limit(None)
    assert proc.returncode is not None
    assert not [m for m in smtp_sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement"]
