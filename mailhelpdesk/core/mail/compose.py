"""SendMail -> an RFC 5322 message with our headers. Pure; header values never carry customer line breaks.

Every header is ours: values that came from mail (the customer's address, subject, Message-IDs) are put on one
line without anything the email package would decode into a line break, and an address we cannot write correctly
is refused with a SendError rather than written wrongly."""

from __future__ import annotations

import email.policy
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from mailhelpdesk.config import Config
from mailhelpdesk.errors import SendError
from mailhelpdesk.model import SendMail
from mailhelpdesk.core.mail.parse import one_line

ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
MESSAGE_ID = re.compile(rf"<[{ATEXT}]+(?:\.[{ATEXT}]+)*@[{ATEXT}]+(?:\.[{ATEXT}]+)*>")


def compose(mail: SendMail, config: Config, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    local, _, domain = config.support_address.partition("@")
    msg["From"] = Address(header_text(config.helpdesk.name), local, domain)
    msg["To"] = recipient(mail.to)
    msg["Subject"] = header_text(mail.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(mail.message_id)
    in_reply_to = _their_id(mail.in_reply_to)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    references = [r for r in map(_their_id, mail.references) if r]
    if references:
        msg["References"] = " ".join(references)
    msg["Auto-Submitted"] = header_text(mail.auto_submitted)
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Mailhelpdesk-Ticket"] = header_text(mail.ticket)
    msg["X-Mailhelpdesk-Kind"] = header_text(mail.kind)
    msg.set_content(_text(mail.body))
    if mail.html:
        msg.add_alternative(_text(mail.html), subtype="html")
    return msg


def header_text(value: str) -> str:
    """Text as a header value that reads back as itself. One line (no CR, LF or anything else str.splitlines
    breaks at, which the email package refuses), and no literal encoded word: the email package decodes
    `=?utf-8?q?a=0D=0ABcc:_x@evil.example?=` in a value it is given and writes the decoded CR LF as is, so a
    customer's subject that decodes to such a word would otherwise add a Bcc header to our reply."""
    text = _text(one_line(value))
    for _ in range(3):  # what a mail client would show, as long as that still holds encoded words
        if "=?" not in text:
            return text
        try:
            text = _text(one_line(str(email.policy.default.header_factory("subject", text))))
        except Exception:
            break
    return text.replace("=?", "= ?")


def _their_id(value: str) -> str:
    """A Message-ID from someone else's mail for In-Reply-To/References: one line, or left out when it holds an
    encoded word (see header_text; an id that was rewritten would thread nothing anyway)."""
    value = _text(one_line(value))
    return "" if "=?" in value else value


def recipient(to: str) -> Address:
    """The one recipient, as an address the SMTP envelope can carry (an IDN domain in its ASCII form)."""
    text = one_line(to)
    local, at, domain = text.rpartition("@")
    if not (at and local and domain) or any(c in text for c in " ,;<>()[]\\\""):
        raise SendError(f"cannot send to {text!r}: not a single mail address", permanent=True)
    if not local.isascii():
        raise SendError(f"cannot send to {text!r}: a non-ASCII mailbox name needs SMTPUTF8, which we do not use", permanent=True)
    try:
        domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
        return Address(addr_spec=f"{local}@{domain}")
    except Exception as exc:  # the email package's own check of the address
        raise SendError(f"cannot send to {text!r}: {exc}", permanent=True) from None


def message_id(value: str) -> str:
    """Our Message-ID, unchanged when it is a valid msg-id; else made one (the email package would otherwise
    cut it at the first space or fail on a non-ASCII character when the message is written)."""
    value = one_line(value)
    if MESSAGE_ID.fullmatch(value):
        return value
    left, _, right = value.strip("<>").rpartition("@")
    left = ".".join(p for p in re.split(r"\.+", re.sub(rf"[^{ATEXT}.]", "_", left)) if p) or "id"
    right = ".".join(p for p in re.split(r"\.+", re.sub(rf"[^{ATEXT}.]", "_", right)) if p) or "mailhelpdesk"
    return f"<{left}@{right}>"


def _text(value: str) -> str:
    """No lone surrogates (from undecodable input), which no encoder can write."""
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
