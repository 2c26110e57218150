"""Outgoing mail by SMTP: TLS by default, never a silent fallback to plaintext, retries for passing faults."""

from __future__ import annotations

import email.policy
import smtplib
import socket
import ssl
import threading
import time
from email.message import EmailMessage
from email.utils import getaddresses

from mailhelpdesk.config import SmtpConfig
from mailhelpdesk.errors import AuthError, MailHelpdeskError, SendError, SmtpSetupError, SmtpUnavailableError
from mailhelpdesk.backends import _internals
from mailhelpdesk.backends.retry import persist
from mailhelpdesk.backends.netfaults import connect_problem, is_outage


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """SMTP AUTH. smtplib sends only ASCII credentials (UnicodeEncodeError otherwise); a non-ASCII user name or
    password goes as UTF-8 (RFC 4616 PLAIN, else LOGIN), as Postfix/Dovecot SASL and aiosmtpd expect it."""
    if (username + password).isascii():
        smtp.login(username, password)
        return
    import base64

    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()

    def b64(data: str) -> str:
        return base64.b64encode(data.encode("utf-8")).decode("ascii")

    if "PLAIN" in offered or "LOGIN" not in offered:
        code, reply = smtp.docmd("AUTH", "PLAIN " + b64(f"\0{username}\0{password}"))
    else:
        code, reply = smtp.docmd("AUTH", "LOGIN " + b64(username))
        if code == 334:
            code, reply = smtp.docmd(b64(password))
    if code not in (235, 503):  # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, reply)


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, TimeoutError))


def _underlying(exc: BaseException) -> BaseException:
    """The socket error behind smtplib's SMTPServerDisconnected ("Connection unexpectedly closed: timed out"):
    a reply that never came is a timeout, not a server that hung up."""
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, OSError):
        return exc.__context__
    return exc


def _worth_retrying(exc: BaseException) -> bool:
    """Retried at once, within the send: a 4xx or a dropped connection. A timeout is not: a server that does
    not answer (a black hole, a firewall dropping packets) will not answer a second later either, and four
    timeouts in a row would hold the pass (and a SIGTERM) for minutes; the outbox tries again later."""
    return _transient(exc) and not isinstance(_underlying(exc), (socket.timeout, TimeoutError))


REUSE_WITHIN = 20.0  # seconds a delivered message's connection is kept for the next one
CONNECT_TIMEOUT = 10.0  # seconds for the TCP connection, TLS (port 465) and the greeting: a server that is not
# there or silent holds a pass this long, not [smtp] timeout (60 s), which bounds every later reply instead


class Stopping(smtplib.SMTPException):
    """The daemon is stopping: no new SMTP connection is opened (the message stays in the outbox)."""


class SmtpSender:
    """The connection and greeting are bounded by CONNECT_TIMEOUT, every later socket operation by [smtp] timeout,
    the retries of one send by [smtp] timeout as a whole, and `stop` (the daemon's stop event) ends retries and
    their waits at once; `interrupt()` cuts the connection in use, from another thread, so a SIGTERM never waits
    for a server that does not answer."""

    ATTEMPTS = 4

    def __init__(self, config: SmtpConfig, stop: threading.Event | None = None):
        self.config = config
        self._ssl: ssl.SSLContext | None = None
        self.stop = stop or threading.Event()
        self._live: smtplib.SMTP | None = None  # the connection in use, for interrupt()
        self._idle: tuple[smtplib.SMTP, float] | None = None  # after a delivered message, kept for the next one
        self.committing = threading.Event()  # set from the final dot until the server's verdict is read
        self.connect_timeout = min(CONNECT_TIMEOUT, config.timeout)
        self._waiting = self.connect_timeout  # the timeout the connection in progress waits out (for the words)

    def _context(self) -> ssl.SSLContext | None:
        if self.config.security == "none":
            return None
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # certificate checks on; built once, it is not cheap
        return self._ssl

    def _connect(self) -> smtplib.SMTP:
        """Connected, TLS as configured, logged in. Network faults are raised as they are (the sender retries
        the passing ones); what no retry can fix is a SmtpSetupError or AuthError that names the key."""
        c = self.config
        where = f"{c.host}:{c.effective_port}"
        context = self._context()
        if self.stop.is_set():
            raise Stopping("not connecting: stopping")
        # made unconnected, then connected: interrupt() can cut it while it waits for the greeting
        smtp = _internals.smtp_unconnected(c.security == "ssl", c.host, self.connect_timeout, context)
        self._live = smtp
        self._waiting = self.connect_timeout
        try:
            code, reply = smtp.connect(c.host, c.effective_port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, reply)
            self._waiting = smtp.timeout = c.timeout  # greeted: from here on the server may take its time
            if smtp.sock is not None:
                smtp.sock.settimeout(c.timeout)
            if c.security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise SmtpSetupError(
                        f"SMTP server {where} does not offer STARTTLS; refusing to send in plaintext "
                        '(check [smtp] security and port; set [smtp] security = "none" only for a trusted local relay)'
                    )
                smtp.starttls(context=context)
            if smtp.sock is not None:  # the final dot is a tiny write: do not let Nagle hold it for a delayed ACK
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if c.username:
                try:
                    _login(smtp, c.username, c.password)
                except smtplib.SMTPNotSupportedError:
                    raise SmtpSetupError(
                        f"SMTP server {where} offers no login (no AUTH) but [smtp] username is set: remove [smtp] username "
                        "and password for a relay that needs none"
                        + ("" if c.security != "none" else ', or check [smtp] security (many servers offer AUTH only over TLS)')
                    ) from None
                except smtplib.SMTPAuthenticationError as exc:
                    raise AuthError(
                        f"SMTP login failed for {c.username} at {where}: {exc.smtp_code} {_text(exc.smtp_error)}: "
                        "check [smtp] username and [smtp] password (an app password where the provider asks for one)"
                    ) from None
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _open(self, message: EmailMessage) -> smtplib.SMTP:
        """_open_once, again after a passing fault: at most ATTEMPTS tries within [smtp] timeout seconds in all,
        none once `stop` is set, and the waits between them end when it is."""
        return persist(lambda: self._open_once(message), passing=_worth_retrying, stop=self.stop,
                       attempts=self.ATTEMPTS, first=0.5, most=8, within=self.config.timeout)

    def keep(self, smtp: smtplib.SMTP) -> None:
        """A connection whose message was delivered: the next send of this pass reuses it (a first run or a
        morning's digests would otherwise pay a TLS handshake and a login per mail)."""
        self.release()
        self._idle = (smtp, time.monotonic())

    def release(self) -> None:
        """Say goodbye on the kept connection (between passes: servers drop idle clients after a few minutes)."""
        idle, self._idle = self._idle, None
        if idle is not None:
            try:
                idle[0].quit()
            except (smtplib.SMTPException, OSError):
                idle[0].close()

    def _reusable(self) -> smtplib.SMTP | None:
        if self._idle is not None and time.monotonic() - self._idle[1] > REUSE_WITHIN:
            self.release()
        idle, self._idle = self._idle, None
        return idle[0] if idle is not None else None

    def _open_once(self, message: EmailMessage) -> smtplib.SMTP:
        """Connect (or take the kept connection) and hand over everything but the final dot, so the commit is
        one tiny write. A kept connection the server has closed meanwhile is replaced by a new one at once:
        nothing of this message reached the server's queue without its final dot."""
        kept = self._reusable()
        if kept is not None:
            try:
                return self._transact(kept, message)
            except (smtplib.SMTPServerDisconnected, OSError, EOFError):
                pass
        return self._transact(self._connect(), message)

    def _transact(self, smtp: smtplib.SMTP, message: EmailMessage) -> smtplib.SMTP:
        self._live = smtp
        try:
            data = message.as_bytes(policy=email.policy.SMTP)
            sender = getaddresses([str(message["From"])])[0][1]
            recipients = [addr for _, addr in getaddresses([str(v) for v in message.get_all("To", []) + message.get_all("Cc", [])])]
            smtp.ehlo_or_helo_if_needed()
            code, reply = smtp.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            refused = {}
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, reply)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
            code, reply = smtp.docmd("data")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            body = _internals.dot_stuffed(data)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            smtp.send(body)
            return smtp
        except BaseException:
            self._live = None
            smtp.close()
            raise

    def interrupt(self) -> None:
        """Cut the connection in use (from another thread): a call blocked on it fails at once instead of
        waiting out the timeout. Safe at any moment; a message whose final dot is out is the caller's to spare."""
        smtp = self._live
        sock = getattr(smtp, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def open(self, message: EmailMessage) -> "Transaction":
        """A transaction that holds the whole message but has not committed it (the final dot)."""
        try:
            return Transaction(self._open(message), message, self.config.host, self)
        except (SendError, AuthError):
            raise
        except Stopping as exc:  # says nothing about the server: no reason
            raise SendError(f"not sending {message['Message-ID']}: {exc}") from exc
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise SendError(f"{self.config.host} refused {message['Message-ID']}: {exc}", permanent=_permanent(exc),
                            only_this=isinstance(exc, smtplib.SMTPRecipientsRefused), reason=self.problem(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"could not send {message['Message-ID']} via {self.config.host}: {exc}",
                            permanent=_permanent(exc), reason=self.problem(exc)) from exc
        except (UnicodeError, ValueError) as exc:  # an address or header that cannot be written at all
            raise SendError(f"cannot write {message['Message-ID']} for SMTP: {exc}", permanent=True) from exc

    def send(self, message: EmailMessage) -> None:
        transaction = self.open(message)
        transaction.commit()
        transaction.finish()

    def problem(self, exc: BaseException) -> str:
        """What is wrong with the server, in one line (for the log and `status`; no Message-ID, no secret)."""
        return connect_problem(_underlying(exc), "SMTP", "smtp", self.config, waited=self._waiting)

    def check(self) -> str:
        """Connect, start TLS and log in as configured (nothing is sent); every failure is one line naming the key:
        a SmtpUnavailableError when the server is not there or busy for now (`run` starts anyway), else a
        SmtpSetupError or AuthError (a setting to fix: `run` stops)."""
        try:
            smtp = self._connect()
        except MailHelpdeskError:
            raise
        except (smtplib.SMTPException, OSError, EOFError) as exc:
            error = SmtpUnavailableError if is_outage(_underlying(exc)) else SmtpSetupError
            raise error(self.problem(exc)) from None
        try:
            return f"SMTP {self.config.host}:{self.config.effective_port} ({self.config.security}) accepts us" + (
                f" as {self.config.username}" if self.config.username else " (no login)"
            )
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Transaction:
    """An SMTP DATA transaction split at its commit point, so the sent copy can be stored right at it."""

    def __init__(self, smtp: smtplib.SMTP, message: EmailMessage, host: str, sender: SmtpSender | None = None):
        self.smtp, self.message, self.host, self.sender = smtp, message, host, sender

    def commit(self) -> None:
        """The final dot: from here on the server owns the message (one small write, no waiting)."""
        if self.sender is not None:
            self.sender.committing.set()  # interrupt() waits a little for the verdict: cutting here risks a duplicate
        try:
            self.smtp.send(b".\r\n")
        except (smtplib.SMTPException, OSError) as exc:
            self.abort()
            raise SendError(f"could not send {self.message['Message-ID']} via {self.host}: {exc}",
                            reason=self._problem(exc)) from exc

    def finish(self) -> None:
        """Read the server's verdict on the committed message, then say goodbye."""
        try:
            code, reply = self.smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self.abort()
            raise SendError(f"no answer from {self.host} for {self.message['Message-ID']}: {exc}",
                            reason=self._problem(exc)) from exc
        finally:
            if self.sender is not None:
                self.sender.committing.clear()
        if code != 250:
            self.abort()
            raise SendError(f"{self.host} refused {self.message['Message-ID']}: {code} {reply!r}", permanent=code >= 500,
                            only_this=True)
        if self.sender is not None:
            self.sender.keep(self.smtp)  # for the next message of the pass
            return
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()

    def _problem(self, exc: BaseException) -> str:
        return self.sender.problem(exc) if self.sender is not None else f"{self.host}: {exc}"

    def abort(self) -> None:
        """Hang up: a server that has not seen the final dot drops the message."""
        if self.sender is not None:
            self.sender.committing.clear()
        self.smtp.close()
