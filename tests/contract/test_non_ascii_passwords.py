"""Non-ASCII passwords work (issue 9, item 9): IMAP logs in with AUTHENTICATE PLAIN (UTF-8) where LOGIN cannot carry
the password, and SMTP AUTH sends UTF-8 where smtplib would give up with a UnicodeEncodeError. Against the real
Dovecot and aiosmtpd."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from imapclient import IMAPClient

from backends import base_config
from mailhelpdesk.config import SmtpConfig, config_from_dict
from mailhelpdesk.app.daemon import Helpdesk
from mailhelpdesk.errors import AuthError
from mailhelpdesk.backends.imap import ImapMailbox
from mailhelpdesk.backends.smtp import SmtpSender
from servers import SmtpSink

PASSWORD = "pässwörd-€"
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


@pytest.fixture
def umlaut_user(dovecot):
    name = "nonascii" + secrets.token_hex(4)
    dovecot.add_user(name, PASSWORD)
    return name


@pytest.fixture
def auth_sink():
    sink = SmtpSink(auth=("bot", PASSWORD))
    try:
        yield sink
    finally:
        sink.stop()


def config_for(tmp_path, dovecot, user, sink, smtp_password=PASSWORD):
    data = base_config(tmp_path)
    data["mailbox"] = {"backend": "imap"}
    data["imap"] = {"host": dovecot.host, "port": dovecot.port, "security": "none", "username": user,
                    "password": PASSWORD, "sent_folder": "Sent"}
    data["smtp"] = {"host": sink.host, "port": sink.port, "security": "none", "username": "bot",
                    "password": smtp_password}
    return config_from_dict(data, tmp_path / "mailhelpdesk.toml")


def test_imap_login_with_a_non_ascii_password(dovecot, umlaut_user, auth_sink, tmp_path):
    mailbox = ImapMailbox(config_for(tmp_path, dovecot, umlaut_user, auth_sink))
    try:
        mailbox.connect()
        assert mailbox.client is not None and mailbox.client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        mailbox.close()


def test_a_wrong_non_ascii_imap_password_is_still_a_clear_login_error(dovecot, umlaut_user, auth_sink, tmp_path):
    config = config_for(tmp_path, dovecot, umlaut_user, auth_sink)
    import dataclasses
    config = dataclasses.replace(config, imap=dataclasses.replace(config.imap, password="wrööng"))
    with pytest.raises(AuthError, match="IMAP login failed"):
        ImapMailbox(config).connect()


def test_smtp_auth_with_a_non_ascii_password(auth_sink):
    config = SmtpConfig(host=auth_sink.host, port=auth_sink.port, security="none", username="bot", password=PASSWORD)
    assert "accepts us as bot" in SmtpSender(config).check()
    assert auth_sink.auth_attempts and auth_sink.auth_attempts[-1][1:] == ("bot", True)
    wrong = SmtpConfig(host=auth_sink.host, port=auth_sink.port, security="none", username="bot", password="pässwort")
    with pytest.raises(AuthError, match="SMTP login failed"):
        SmtpSender(wrong).check()


def test_a_pass_with_non_ascii_passwords_acknowledges_the_customer(dovecot, umlaut_user, auth_sink, tmp_path):
    raw = (b"From: Anna <anna@customer.example>\r\nTo: support@shop.example\r\nSubject: Invoice wrong\r\n"
           b"Date: Fri, 20 Nov 2026 10:00:00 +0000\r\nMessage-ID: <na1@customer.example>\r\n\r\nPlease help.\r\n")
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=30) as client:
        client.plain_login(umlaut_user, PASSWORD)
        client.append("INBOX", raw, msg_time=NOW - timedelta(minutes=30))
    desk = Helpdesk(config_for(tmp_path, dovecot, umlaut_user, auth_sink), clock=lambda: NOW)
    try:
        desk.run_pass()
    finally:
        desk.close()
    kinds = [(str(m.message["X-Mailhelpdesk-Kind"]), str(m.message["To"])) for m in auth_sink.messages]
    assert ("acknowledgement", "anna@customer.example") in kinds
