"""RFC 5322 bytes -> MessageFacts. Pure: bytes in, typed values out; never decodes before parsing."""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import re
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime

from .model import MessageFacts, Priority
from .rules.automatic import automatic_reason

BODY_LIMIT = 20_000
MSGID = re.compile(r"<[^<>\s]+>")
REPLY_PREFIX = re.compile(
    r"^\s*(?:re|fw|fwd|aw|wg|sv|vs|antw|odp|ynt|r|rif|tr|res|enc|ref|ответ|отв|пересл|回复|回覆|答复|转发|轉寄|返信|転送)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9]{0,9})-(\d{1,9})\]")


def parse_message(raw: bytes, ticket_prefix: str = "HD") -> MessageFacts:
    """Facts about one message. Never raises on bad mail: what cannot be read is left empty and noted."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    defects = [type(d).__name__ for d in msg.defects]

    def header(name: str) -> str:
        try:
            value = msg.get(name)
        except Exception as exc:  # a malformed header must not lose the message
            defects.append(f"{name}: {type(exc).__name__}")
            value = _raw_header(msg, name)
        return _clean(str(value)) if value is not None else ""

    def addresses(*names: str) -> list[tuple[str, str]]:
        values = [header(n) for n in names]
        pairs = getaddresses([v for v in values if v])
        return [(_clean(name), addr.strip().lower()) for name, addr in pairs if "@" in addr]

    sender_pairs = addresses("From") or addresses("Sender")
    sender_name, sender = sender_pairs[0] if sender_pairs else (header("From"), "")
    reply_to = addresses("Reply-To")
    subject = " ".join(header("Subject").split())
    message_id = _first_id(header("Message-ID")) or _synthetic_id(raw)
    references = tuple(MSGID.findall(header("References")))
    in_reply_to = tuple(MSGID.findall(header("In-Reply-To")))[:1]
    tag = _ticket_tag(subject, ticket_prefix)
    return MessageFacts(
        message_id=message_id,
        subject=subject,
        title=clean_title(subject, ticket_prefix),
        sender=sender,
        sender_name=sender_name if sender_name != sender else "",
        reply_to=reply_to[0][1] if len(reply_to) == 1 and reply_to[0][1] != sender else "",
        to=tuple(addr for _, addr in addresses("To")),
        cc=tuple(addr for _, addr in addresses("Cc")),
        in_reply_to=in_reply_to,
        references=references,
        date=_date(header("Date")),
        ticket_tag=tag,
        automatic=automatic_reason(header, sender, _content_type(msg)),
        bounce_of=_bounced_ids(msg) if _is_report(msg) else (),
        importance=_importance(header),
        body=_body_text(msg)[:BODY_LIMIT],
        ours=header("X-Mailhelpdesk-Ticket"),
        our_kind=header("X-Mailhelpdesk-Kind"),
        auth_results=" ; ".join(_all(msg, "Authentication-Results")),
        has_attachments=any(True for _ in _attachments(msg)),
        defects=tuple(defects),
    )


def clean_title(subject: str, ticket_prefix: str = "HD") -> str:
    """The subject without reply/forward prefixes (any language) and without our ticket tag."""
    title = subject
    for _ in range(20):
        stripped = REPLY_PREFIX.sub("", title, count=1)
        stripped = re.sub(rf"\s*\[{re.escape(ticket_prefix)}-\d+\]\s*", " ", stripped, flags=re.I).strip()
        if stripped == title:
            break
        title = stripped
    return title or "(no subject)"


def _ticket_tag(subject: str, prefix: str) -> str:
    for found_prefix, number in TAG.findall(subject):
        if found_prefix.lower() == prefix.lower():
            return f"{prefix}-{int(number)}"
    return ""


def _first_id(value: str) -> str:
    found = MSGID.search(value)
    if found:
        return found.group(0)
    value = value.strip()
    return f"<{value}>" if value and " " not in value else ""


def _synthetic_id(raw: bytes) -> str:
    """A stable id for mail that has none, so a re-delivery is still recognised."""
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@no-message-id.mailhelpdesk>"


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _clean(text: str) -> str:
    """Headers with raw 8-bit bytes arrive as surrogate escapes: decode them as UTF-8, else as Latin-1."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _all(msg: Message, name: str) -> list[str]:
    try:
        return [_clean(str(v)) for v in msg.get_all(name) or []]
    except Exception:
        return []


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return re.sub(r"\r?\n[ \t]", " ", str(value))
    return None


def _content_type(msg: Message) -> str:
    try:
        return msg.get_content_type()
    except Exception:
        return "text/plain"


def _is_report(msg: Message) -> bool:
    ctype = _content_type(msg)
    return ctype == "multipart/report" or (
        ctype.startswith("multipart/") and any(p.get_content_type() == "message/delivery-status" for p in msg.walk())
    )


def _bounced_ids(msg: Message) -> tuple[str, ...]:
    """Message-IDs of the mail a delivery report is about (from its returned headers)."""
    found: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("text/rfc822-headers", "message/rfc822", "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list):
                for inner in payload:
                    found += MSGID.findall(str(inner.get("Message-ID", "")))
            else:
                text = payload if isinstance(payload, str) else ""
                raw = part.get_payload(decode=True)
                if isinstance(raw, bytes):
                    text = raw.decode("utf-8", "replace")
                match = re.search(r"^Message-ID:\s*(<[^>]+>)", text, re.I | re.M)
                if match:
                    found.append(match.group(1))
    return tuple(dict.fromkeys(found))


def _importance(header) -> Priority | None:
    priority = header("Priority").lower()
    if "urgent" in priority:
        return Priority.URGENT
    importance = header("Importance").lower()
    xprio = header("X-Priority").strip()[:1]
    if importance == "high" or xprio in ("1", "2"):
        return Priority.HIGH
    if importance == "low" or xprio in ("4", "5"):
        return Priority.LOW
    return None


def _body_text(msg: EmailMessage) -> str:
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        part = None
    if part is None:
        return ""
    text = _part_text(part)
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text


def _part_text(part: Message) -> str:
    try:
        return part.get_content()
    except (LookupError, UnicodeError, AssertionError, ValueError, TypeError):
        data = part.get_payload(decode=True) or b""
        for charset in (part.get_content_charset() or "", "utf-8", "cp1252"):
            try:
                return data.decode(charset) if charset else data.decode("utf-8")
            except (LookupError, UnicodeDecodeError):
                continue
        return data.decode("latin-1")


def html_to_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>", "\n", markup)
    text = html.unescape(re.sub(r"<[^>]+>", "", markup))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _attachments(msg: EmailMessage):
    try:
        yield from msg.iter_attachments()
    except Exception:
        return
