"""Outgoing mail by SMTP: TLS by default, never a silent fallback to plaintext, retries for passing faults."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from .config import SmtpConfig
from .errors import AuthError, SendError


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, TimeoutError))


class SmtpSender:
    def __init__(self, config: SmtpConfig):
        self.config = config

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        context = ssl.create_default_context()
        if c.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(c.host, c.effective_port, timeout=c.timeout, context=context)
        else:
            smtp = smtplib.SMTP(c.host, c.effective_port, timeout=c.timeout)
            if c.security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    smtp.quit()
                    raise SendError(
                        f"SMTP server {c.host}:{c.effective_port} does not offer STARTTLS; refusing to send in plaintext "
                        '(set [smtp] security = "none" only for a trusted local relay)'
                    )
                smtp.starttls(context=context)
        if c.username:
            try:
                smtp.login(c.username, c.password)
            except smtplib.SMTPAuthenticationError as exc:
                smtp.close()
                raise AuthError(f"SMTP login failed for {c.username} at {c.host}: {exc.smtp_code} {exc.smtp_error!r}") from None
        return smtp

    @retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(4), wait=wait_exponential(0.5, max=8), reraise=True)
    def _send_once(self, message: EmailMessage) -> None:
        smtp = self._connect()
        try:
            smtp.send_message(message)
        finally:
            try:
                smtp.quit()
            except smtplib.SMTPException:
                smtp.close()

    def send(self, message: EmailMessage) -> None:
        try:
            self._send_once(message)
        except (SendError, AuthError):
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"could not send {message['Message-ID']} via {self.config.host}: {exc}") from exc

    def check(self) -> str:
        smtp = self._connect()
        try:
            return f"SMTP {self.config.host}:{self.config.effective_port} ({self.config.security}) accepts us" + (
                f" as {self.config.username}" if self.config.username else " (no login)"
            )
        finally:
            smtp.quit()
