"""SendMail -> an RFC 5322 message with our headers. Pure; header values never carry customer line breaks."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from .config import Config
from .model import SendMail
from .templates import one_line


def compose(mail: SendMail, config: Config, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    local, _, domain = config.support_address.partition("@")
    msg["From"] = Address(one_line(config.helpdesk.name), local, domain)
    msg["To"] = one_line(mail.to)
    msg["Subject"] = one_line(mail.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = mail.message_id
    if mail.in_reply_to:
        msg["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        msg["References"] = " ".join(mail.references)
    msg["Auto-Submitted"] = mail.auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Mailhelpdesk-Ticket"] = mail.ticket
    msg["X-Mailhelpdesk-Kind"] = mail.kind
    msg.set_content(mail.body)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    return msg
