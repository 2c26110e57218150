"""The test servers themselves work: real Dovecot over IMAP, real aiosmtpd over SMTP."""

from __future__ import annotations

import smtplib
import socket
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from servers import DovecotError, DovecotServer, ImapAccount, SmtpSink

KEYWORD = "Helpdesk/Status/Open"


def make_raw(subject: str = "Printer on fire", body: str = "Please help.\n", msgid: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Customer <customer@example.org>"
    msg["To"] = "helpdesk@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = msgid or make_msgid(domain="example.org")
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


# ---------------------------------------------------------------------------------------------- IMAP


@pytest.mark.dovecot
def test_login_and_capabilities(imap_account):
    c = imap_account.client()
    caps = set(c.capabilities())
    assert {b"IDLE", b"CONDSTORE", b"QRESYNC", b"UIDPLUS", b"MOVE", b"SPECIAL-USE"} <= caps
    assert imap_account.port == imap_account.server.port
    assert imap_account.host == "127.0.0.1"


@pytest.mark.dovecot
def test_wrong_password_is_refused(imap_account):
    c = IMAPClient(imap_account.host, port=imap_account.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            c.login(imap_account.username, imap_account.password + "x")
    finally:
        c.shutdown()


@pytest.mark.dovecot
def test_append_to_inbox_and_sent(imap_account):
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    raw_in, raw_sent = make_raw("in"), make_raw("out")
    uid_in = imap_account.append("INBOX", raw_in, when=when)
    uid_sent = imap_account.append("Sent", raw_sent, flags=[b"\\Seen"])
    assert uid_in == 1 and uid_sent == 1

    c = imap_account.client()
    sent = c.find_special_folder(b"\\Sent")
    assert sent == "Sent"
    folders = {name: flags for flags, _sep, name in c.list_folders()}
    assert b"\\Sent" in folders["Sent"]

    c.select_folder("INBOX", readonly=True)
    got = c.fetch([uid_in], ["BODY.PEEK[]", "INTERNALDATE", "FLAGS"])[uid_in]
    assert got[b"BODY[]"] == raw_in
    assert got[b"INTERNALDATE"].astimezone(timezone.utc) == when
    assert b"\\Seen" not in got[b"FLAGS"]

    c.select_folder("Sent", readonly=True)
    got = c.fetch([uid_sent], ["BODY.PEEK[]", "FLAGS"])[uid_sent]
    assert got[b"BODY[]"] == raw_sent
    assert b"\\Seen" in got[b"FLAGS"]


@pytest.mark.dovecot
def test_keywords_with_slashes_and_permanentflags(imap_account):
    uid = imap_account.append("INBOX", make_raw(), flags=[b"Helpdesk/Agent/alice"])
    c = imap_account.client()
    info = c.select_folder("INBOX")
    assert b"\\*" in info[b"PERMANENTFLAGS"]
    c.add_flags([uid], [KEYWORD])

    other = imap_account.client()  # read back over a second connection
    other.select_folder("INBOX", readonly=True)
    flags = other.get_flags([uid])[uid]
    assert KEYWORD.encode() in flags and b"Helpdesk/Agent/alice" in flags
    assert other.search(["KEYWORD", KEYWORD]) == [uid]
    c.remove_flags([uid], [KEYWORD])
    assert KEYWORD.encode() not in other.get_flags([uid])[uid]


@pytest.mark.dovecot
def test_condstore_changedsince(imap_account):
    uid1 = imap_account.append("INBOX", make_raw("one"))
    uid2 = imap_account.append("INBOX", make_raw("two"))
    c = imap_account.client()
    c.enable("CONDSTORE")
    modseq = c.select_folder("INBOX")[b"HIGHESTMODSEQ"]
    c.add_flags([uid2], [KEYWORD])
    changed = c.fetch([uid1, uid2], ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"])
    assert set(changed) == {uid2}
    assert changed[uid2][b"MODSEQ"][0] > modseq


@pytest.mark.dovecot
def test_idle_sees_new_mail(imap_account):
    c = imap_account.client()
    c.select_folder("INBOX")
    c.idle()
    responses = []
    try:
        imap_account.append("INBOX", make_raw("wake up"))
        deadline = time.monotonic() + 5
        while (1, b"EXISTS") not in responses and time.monotonic() < deadline:
            responses += c.idle_check(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        c.idle_done()
    assert (1, b"EXISTS") in responses


@pytest.mark.dovecot
def test_users_cannot_see_each_other(dovecot, imap_account):
    imap_account.append("INBOX", make_raw("private"), flags=[KEYWORD])
    other = ImapAccount.create(dovecot)
    try:
        c = other.client()
        assert c.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
        assert c.search(["ALL"]) == []
        names = {name for _f, _s, name in c.list_folders()}
        assert names == {"INBOX", "Sent"}
        # and its own mail lands in its own INBOX only
        other.append("INBOX", make_raw("mine"))
        assert imap_account.client().select_folder("INBOX", readonly=True)[b"EXISTS"] == 1
    finally:
        other.close()


@pytest.mark.dovecot
def test_new_users_need_no_restart(dovecot):
    log_before = dovecot.log_text().count("starting up")
    accounts = [ImapAccount.create(dovecot) for _ in range(3)]  # back to back, within one second
    try:
        for account in accounts:
            assert account.client().select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        for account in accounts:
            account.close()
    assert dovecot.running
    assert dovecot.log_text().count("starting up") == log_before


@pytest.mark.dovecot
def test_restart_keeps_mail_and_port(dovecot, tmp_path):
    with DovecotServer(tmp_path / "dc") as server:
        account = ImapAccount.create(server)
        uid = account.append("INBOX", make_raw("survives"), flags=[KEYWORD])
        c = account.client()
        before = c.select_folder("INBOX")
        port = server.port

        server.restart()

        assert server.port == port and server.running
        with pytest.raises((IMAPClient.AbortError, IMAPClient.Error, OSError)):
            c.noop()  # the old connection did not survive the restart
        c2 = account.client()
        after = c2.select_folder("INBOX")
        assert after[b"UIDVALIDITY"] == before[b"UIDVALIDITY"]
        assert after[b"EXISTS"] == 1
        assert KEYWORD.encode() in c2.get_flags([uid])[uid]
        assert server.log_text().count("starting up") == 2
        account.close()
    assert not server.running


@pytest.mark.dovecot
def test_start_failure_is_reported_with_log_tail(dovecot, tmp_path):
    with DovecotServer(tmp_path / "dc") as server:
        server.stop()
        blocker = socket.socket()
        try:
            blocker.bind((server.host, server.port))  # someone else takes the port meanwhile
            blocker.listen()
            with pytest.raises(DovecotError) as info:
                server.start()  # a restart must keep its port, so no retry elsewhere
        finally:
            blocker.close()
        assert "Address already in use" in str(info.value)
        assert str(server.port) in str(info.value)
        server.start()  # the port is free again
        assert server.running


# ---------------------------------------------------------------------------------------------- SMTP


def test_smtp_sink_receives(smtp_sink):
    raw = make_raw("hello sink")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as s:
        s.sendmail("helpdesk@example.com", ["a@example.org", "b@example.org"], raw)
    [got] = smtp_sink.wait_for(1)
    assert got.mail_from == "helpdesk@example.com"
    assert got.rcpt_tos == ["a@example.org", "b@example.org"]
    assert got.data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert got.message["Subject"] == "hello sink"
    assert got.message.get_content().replace("\r\n", "\n") == "Please help.\n"  # data keeps the CRLFs of SMTP
    assert got.login is None
    assert smtp_sink.messages == [got]

    smtp_sink.clear()
    assert smtp_sink.messages == []
    with pytest.raises(TimeoutError):
        smtp_sink.wait_for(1, timeout=0.05)


def test_smtp_sink_auth():
    with SmtpSink(auth=("bot@example.com", "s3cret")) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as s:
            s.ehlo()
            assert "LOGIN" in s.esmtp_features["auth"] and "PLAIN" in s.esmtp_features["auth"]
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                s.sendmail("bot@example.com", ["x@example.org"], make_raw())
            assert refused.value.smtp_code == 530
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as s:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("bot@example.com", "wrong")
        for mechanism in ("PLAIN", "LOGIN"):
            with smtplib.SMTP(sink.host, sink.port, timeout=10) as s:
                s.ehlo()
                s.user, s.password = "bot@example.com", "s3cret"
                s.auth(mechanism, getattr(s, "auth_" + mechanism.lower()))
                s.sendmail("bot@example.com", ["x@example.org"], make_raw(mechanism))
        got = sink.wait_for(2)
        assert [m.message["Subject"] for m in got] == ["PLAIN", "LOGIN"]
        assert all(m.login == "bot@example.com" for m in got)
        assert [ok for _mech, _login, ok in sink.auth_attempts].count(True) == 2
        assert ("PLAIN", "bot@example.com", True) in sink.auth_attempts
        assert ("LOGIN", "bot@example.com", True) in sink.auth_attempts
