"""Faults: the server restarts mid-run, a second instance, a wrong password, secrets in logs, stale status."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from clocks import frozen_at, wait_for

from backends import ImapBackend
from mailhelpdesk.app.cli import main
from mailhelpdesk.app.daemon import Helpdesk, InstanceLock, serve
from mailhelpdesk.errors import AuthError, LockError

EML = Path(__file__).parent.parent / "fixtures" / "eml"
MARKER = "S3CRET-marker-7f3a9c"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # the questions' Date and arrival time
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)  # the helpdesks' clock: injected, never the machine's


def fresh_question(n: int) -> bytes:
    """question.eml (written at T0) as a new conversation."""
    raw = (EML / "question.eml").read_bytes().replace(b"<q1@customer.example>", f"<fault{n}@customer.example>".encode())
    raw = raw.replace(b"anna@customer.example", f"customer{n}@customer.example".encode())
    topic = ["the VAT rate", "a missing parcel", "the login page", "a refund"][n % 4]  # people's own words
    raw = raw.replace(b"shows 19% VAT but we are in Austria (20%)", f"is about {topic}".encode())
    return raw.replace(b"Invoice 1042 shows the wrong VAT", f"Question about {topic}".encode())


def acknowledgements(smtp_sink) -> list:
    return [m for m in smtp_sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement"]


def test_the_daemon_survives_a_server_restart_and_reconnects(dovecot, imap_account, smtp_sink, tmp_path, caplog):
    import dataclasses

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    config = dataclasses.replace(backend.config, mailbox=dataclasses.replace(backend.config.mailbox, poll_interval=1))
    imap_account.append("INBOX", fresh_question(1), when=T0)
    helpdesk = Helpdesk(config, clock=lambda: NOW)
    stop = threading.Event()
    reports = []
    thread = threading.Thread(target=serve, args=(helpdesk, reports.append, stop), daemon=True)
    caplog.set_level(logging.INFO, logger="mailhelpdesk")
    thread.start()
    try:
        assert wait_for(lambda: len(helpdesk.state.tickets) == 1, 30)
        dovecot.restart()  # every open connection drops
        imap_account.append("INBOX", fresh_question(2), when=T0)
        assert wait_for(lambda: len(helpdesk.state.tickets) == 2, 30), caplog.text
        assert wait_for(lambda: len(acknowledgements(smtp_sink)) == 2, 30), caplog.text  # a stop would cut sends short
        assert any("retrying" in r.message or "reconnecting" in r.message for r in caplog.records)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the loop stops when asked"
    acks = acknowledgements(smtp_sink)
    assert sorted(str(m.message["To"]) for m in acks) == ["customer1@customer.example", "customer2@customer.example"]


def test_one_instance_per_state_file(tmp_path):
    state = tmp_path / "state.json"
    with InstanceLock(state):
        with pytest.raises(LockError, match="already running"):
            with InstanceLock(state):
                pass
    with InstanceLock(state):  # released when the first one ends
        pass


def test_a_wrong_password_is_a_clear_error_and_never_logged(imap_account, smtp_sink, tmp_path):
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text(f"""
[helpdesk]
address = "support@shop.example"
state_file = "state.json"
[imap]
host = "{imap_account.host}"
port = {imap_account.port}
security = "none"
username = "{imap_account.username}"
password_env = "FAULT_TEST_PASSWORD"
[smtp]
host = "{smtp_sink.host}"
port = {smtp_sink.port}
security = "none"
""")
    result = CliRunner().invoke(main, ["run", "--once", "-vv", "--config", str(config)],
                                env={"FAULT_TEST_PASSWORD": MARKER})
    assert result.exit_code == 2  # a login to fix: exit code 2, like every setup mistake
    assert "IMAP login failed" in result.stderr and imap_account.username in result.stderr
    assert MARKER not in result.output + result.stderr
    result = CliRunner().invoke(main, ["check", "--config", str(config)], env={"FAULT_TEST_PASSWORD": MARKER})
    assert result.exit_code == 2 and MARKER not in result.output + result.stderr


def test_secrets_never_reach_the_logs_of_a_working_daemon(imap_account, smtp_sink, tmp_path, caplog):
    import dataclasses

    imap_account.append("INBOX", fresh_question(3), when=T0)
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    caplog.set_level(logging.DEBUG)  # every logger, the libraries' too
    Helpdesk(backend.config, clock=lambda: NOW).run_pass()
    assert imap_account.password not in caplog.text
    config = dataclasses.replace(backend.config)
    assert imap_account.password not in repr(config)


def test_starttls_is_required_when_asked_for_and_never_falls_back(imap_account, smtp_sink, tmp_path):
    import dataclasses

    from mailhelpdesk.backends.imap import ImapMailbox
    from mailhelpdesk.backends.smtp import SmtpSender
    from mailhelpdesk.errors import CapabilityError, SendError

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    imap = dataclasses.replace(backend.config.imap, security="starttls")
    with pytest.raises(CapabilityError, match="refusing to log in in plaintext"):
        ImapMailbox(dataclasses.replace(backend.config, imap=imap)).connect()
    smtp = dataclasses.replace(backend.config.smtp, security="starttls")
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Message-ID"] = "support@shop.example", "x@example.com", "<t@x>"
    with pytest.raises(SendError, match="refusing to send in plaintext"):
        SmtpSender(smtp).send(message)
    assert smtp_sink.messages == []


def test_status_is_non_zero_when_no_pass_succeeded_lately(tmp_path):
    import json

    config = tmp_path / "c.toml"
    config.write_text('[helpdesk]\naddress = "s@shop.example"\nstate_file = "state.json"\n[mailbox]\nbackend = "local"\nstale_after = 600\n')
    runner = CliRunner()
    assert runner.invoke(main, ["status", "--config", str(config)]).exit_code == 1
    health = tmp_path / "state.json.health"
    health.write_text(json.dumps({"last_success": NOW.isoformat()}))
    with frozen_at(NOW + timedelta(seconds=5)):
        ok = runner.invoke(main, ["status", "--config", str(config)])
    assert ok.exit_code == 0 and "last successful pass" in ok.output
    old = (NOW - timedelta(hours=1)).isoformat()
    health.write_text(json.dumps({"last_success": old, "last_error": "cannot reach IMAP server x:993", "last_error_at": old}))
    with frozen_at(NOW):
        stale = runner.invoke(main, ["status", "--config", str(config)])
    assert stale.exit_code == 1 and "STALE" in stale.output and "cannot reach IMAP server" in stale.output


def test_an_auth_error_in_the_daemon_is_reported_not_hidden(imap_account, smtp_sink, tmp_path):
    import dataclasses

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    imap = dataclasses.replace(backend.config.imap, password="wrong")
    helpdesk = Helpdesk(dataclasses.replace(backend.config, imap=imap))
    with pytest.raises(AuthError):
        helpdesk.run_pass()


def test_check_finds_the_sent_folder_and_says_how_labels_are_stored(imap_account, smtp_sink, tmp_path):
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text(f"""
[helpdesk]
address = "support@shop.example"
[imap]
host = "{imap_account.host}"
port = {imap_account.port}
security = "none"
username = "{imap_account.username}"
password_env = "CHECK_TEST_PASSWORD"
[smtp]
host = "{smtp_sink.host}"
port = {smtp_sink.port}
security = "none"
""")
    result = CliRunner().invoke(main, ["check", "--config", str(config)], env={"CHECK_TEST_PASSWORD": imap_account.password})
    assert result.exit_code == 0, result.output + result.stderr
    for expected in ("sent folder 'Sent'", "IDLE", "CONDSTORE", "IMAP keywords", "accepts us", "all good"):
        assert expected in result.output


def test_a_kill_between_the_first_save_and_the_labels_leaves_no_message_unlabelled(imap_account, smtp_sink, tmp_path):
    """The first pass saves the state before it labels anything (so a restart is not taken for lost state); a
    kill right then must not leave mail the state knows but no label shows: the next pass labels it."""
    import os
    import signal

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    for n in range(1, 4):
        imap_account.append("INBOX", fresh_question(n), when=T0)
    imap_account.append("INBOX", (EML / "newsletter.eml").read_bytes(), when=T0)
    pid = os.fork()
    if pid == 0:  # the daemon, killed at its first label write
        try:
            desk = Helpdesk(backend.config, clock=lambda: NOW)
            desk.mailbox.set_labels = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
            desk.run_pass()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "killed at its first label write"
    assert backend.config.resolve(backend.config.helpdesk.state_file).exists(), "the state was saved first"
    assert not any(backend.all_labels().values()), "nothing labelled yet"
    desk = Helpdesk(backend.config, clock=lambda: NOW + timedelta(minutes=1))
    desk.run_pass()
    desk.close()
    labels = backend.all_labels()
    inbox = [ref for ref in labels if ref.startswith("INBOX")]
    assert len(inbox) == 4
    assert all(any(l.startswith("Helpdesk/Status/") for l in labels[ref]) or "Helpdesk/Ignored" in labels[ref]
               for ref in inbox), labels


def test_the_sends_of_a_pass_share_one_smtp_connection_and_a_dropped_one_is_replaced(smtp_sink):
    """A first run or a morning's digests: one connection for the burst, not a TLS handshake and a login per mail.
    A kept connection the server closed meanwhile is replaced without losing the message."""
    from email.message import EmailMessage

    from mailhelpdesk.config import SmtpConfig
    from mailhelpdesk.backends.smtp import SmtpSender

    def mail(n: int) -> EmailMessage:
        message = EmailMessage()
        message["From"], message["To"], message["Message-ID"] = "support@shop.example", f"c{n}@example.com", f"<m{n}@x>"
        message.set_content(f"hello {n}")
        return message

    sender = SmtpSender(SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, security="none"))
    for n in range(3):
        sender.send(mail(n))
    assert len({m.peer for m in smtp_sink.messages}) == 1, "one connection for the three"
    import socket

    sender._idle[0].sock.shutdown(socket.SHUT_RDWR)  # the server (or a NAT) dropped the kept connection
    sender.send(mail(3))
    assert [str(m.message["Message-ID"]) for m in smtp_sink.messages] == ["<m0@x>", "<m1@x>", "<m2@x>", "<m3@x>"]
    assert len({m.peer for m in smtp_sink.messages}) == 2
    sender.release()
    assert sender._idle is None
