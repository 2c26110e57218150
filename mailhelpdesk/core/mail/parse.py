"""RFC 5322 bytes -> MessageFacts. Pure: bytes in, typed values out; never decodes before parsing.

Hostile mail is normal mail here: every fact is read on its own and what cannot be read is left empty and noted
in `defects`, so one bad header or part never costs the rest of the message, and nothing here ever raises."""

from __future__ import annotations

import email
import email.charset
import email.header
import email.headerregistry
import email.policy
import functools
import hashlib
import itertools
import re
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Callable

import html_text

from mailhelpdesk.model import MessageFacts, Priority
from mailhelpdesk.core.judge.automatic import asks_no_auto_reply, automatic_reason
from mailhelpdesk.core.judge.authentication import parse_header


class _CachingRegistry(email.headerregistry.HeaderRegistry):
    """policy.default parses a header anew on every access (Content-Type some 16 times per message);
    header objects are immutable, so the same (name, value) can share one. A long value (a 64 KB subject) is one
    message's own: caching it would only keep megabytes alive for thousands of messages."""

    def __call__(self, name, value):  # type: ignore[override]
        if len(value) > CACHED_VALUE_LIMIT:
            return super().__call__(name, value)
        return self._shared(name, value)

    @functools.lru_cache(maxsize=4096)
    def _shared(self, name, value):
        return super().__call__(name, value)


POLICY = email.policy.default.clone(header_factory=_CachingRegistry())

BODY_LIMIT = 20_000
HTML_LIMIT = 200_000  # characters of an HTML body converted to text (the result is cut to BODY_LIMIT anyway)
HEADER_LIMIT = 64 * 1024  # characters of one header value given to the structured parser (quadratic on huge values)
CACHED_VALUE_LIMIT = 4096  # characters of a header value whose parsed form is shared between messages
TITLE_LIMIT = 200  # characters of a subject we keep (tickets, the state) and so echo in any mail we send
WORD_BOUNDARY_NEAR = 30  # characters a cut may step back to end at a word's end
EARLIEST, LATEST = 1970, 3000  # a Date outside these years is garbage, not a time
MSGID = re.compile(r"<([^<>]{1,998})>")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=")
ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f-\x9f]+@[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f-\x9f]+")
REPLY_PREFIXES = re.compile(
    r"^(?:\s*(?:re|fw|fwd|aw|wg|sv|vs|antw|odp|ynt|r|rif|tr|res|enc|ref|ответ|отв|пересл|回复|回覆|答复|转发|轉寄|返信|転送)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9]{0,9})-(\d{1,9})\]")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]+")  # what lxml refuses in text
BLOCKS = html_text.NEWLINE_TAGS | html_text.DOUBLE_NEWLINE_TAGS  # each on a line of its own, no blank lines


def parse_message(raw: bytes, ticket_prefix: str = "HD") -> MessageFacts:
    """Facts about one message. Never raises on bad mail: what cannot be read is left empty and noted."""
    msg, defects = _message(raw)
    hints = _charset_hints(msg)
    first: dict[str, str] = {}
    for key, value in _raw_items(msg):
        first.setdefault(key.lower(), value)
    cache: dict[str, str] = {}

    def raw_header(name: str) -> str:
        """The value as sent, unfolded, 8-bit bytes decoded: for ids, which need no structured parse."""
        value = first.get(name.lower())
        return "" if value is None else _decode_8bit(_unfold(value), hints)

    def header(name: str) -> str:
        key = name.lower()
        if key not in cache:
            value = first.get(key)
            cache[key] = "" if value is None else _header(msg, name, value, hints, defects)
        return cache[key]

    def addresses(*names: str) -> list[tuple[str, str]]:
        values = [header(n) for n in names]
        try:
            pairs = getaddresses([v for v in values if v])
        except Exception as exc:
            defects.append(f"{'/'.join(names)}: {type(exc).__name__}")
            return []
        return [(one_line(name), addr.strip().lower()) for name, addr in pairs if ADDRESS.fullmatch(addr.strip())]

    sender_pairs = addresses("From") or addresses("Sender")
    sender_name, sender = sender_pairs[0] if sender_pairs else (header("From"), "")
    reply_to = addresses("Reply-To")
    subject = " ".join(header("Subject").split())
    message_id = _first_id(raw_header("Message-ID")) or _synthetic_id(raw)
    references = tuple(_ids(raw_header("References")))
    in_reply_to = tuple(_ids(raw_header("In-Reply-To")))[:1]
    tag = _ticket_tag(subject, ticket_prefix)  # from the whole subject (up to HEADER_LIMIT), before it is cut
    content_type = _content_type(msg)
    report = _guard(lambda: report_kind(msg), "", "report", defects)
    calendar = _guard(lambda: _calendar_method(msg), "", "calendar", defects)
    recipients = len(addresses("To", "Cc"))
    return MessageFacts(
        message_id=message_id,
        subject=shorten(subject),
        title=clean_title(subject, ticket_prefix),
        sender=sender,
        sender_name=sender_name if sender_name != sender else "",
        reply_to=reply_to[0][1] if len(reply_to) == 1 and reply_to[0][1] != sender else "",
        to=tuple(addr for _, addr in addresses("To")),
        cc=tuple(addr for _, addr in addresses("Cc")),
        in_reply_to=in_reply_to,
        references=references,
        date=_date(header("Date"), defects),
        ticket_tag=tag,
        automatic=_guard(lambda: automatic_reason(header, sender, content_type, report=report, calendar=calendar,
                                                  recipients=recipients), "", "automatic", defects),
        asks_no_auto_reply=_guard(lambda: asks_no_auto_reply(header), False, "automatic", defects),
        # only a failure to deliver is a bounce: read receipts and delay notices flag nothing
        bounce_of=_guard(lambda: _bounced_ids(msg), (), "bounce", defects) if report == "bounce" else (),
        importance=_guard(lambda: _importance(header), None, "importance", defects),
        body=_guard(lambda: _body_text(msg, hints)[:BODY_LIMIT], "", "body", defects),
        ours=header("X-Mailhelpdesk-Ticket"),
        our_kind=header("X-Mailhelpdesk-Kind"),
        auth_headers=_guard(lambda: tuple(parse_header(v) for v in _all(msg, "Authentication-Results", hints)), (),
                            "authentication-results", defects),
        from_addresses=_guard(lambda: _from_addresses(msg, hints), (), "from", defects),
        has_attachments=_guard(lambda: any(True for _ in _attachments(msg)), False, "attachments", defects),
        defects=tuple(defects),
    )


def clean_title(subject: str, ticket_prefix: str = "HD") -> str:
    """The subject without reply/forward prefixes (any language) and without our ticket tag, cut to TITLE_LIMIT
    (what a ticket keeps and every mail about it shows). Idempotent."""
    tag = re.compile(rf"\s*\[{re.escape(ticket_prefix)}-\d+\]\s*", re.IGNORECASE)
    title = subject
    while True:  # each round strictly shortens the title, so this ends
        stripped = tag.sub(" ", REPLY_PREFIXES.sub("", title, count=1)).strip()
        if stripped == title:
            break
        title = stripped
    return shorten(title) or "(no subject)"


def shorten(text: str, limit: int = TITLE_LIMIT) -> str:
    """``text`` in at most ``limit`` characters: cut with "…", at the end of a word when one ends near the cut
    (a subject of one endless word, or in a script without spaces, is cut where the limit falls)."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    if not text[limit - 1].isspace():  # the cut falls inside a word
        word_end = kept.rfind(" ", max(0, len(kept) - WORD_BOUNDARY_NEAR))
        kept = kept[:word_end] if word_end > 0 else kept
    return kept.rstrip() + "…"


def one_line(text: str) -> str:
    """No line breaks or other control characters: a header value or a name, shown on one line."""
    return " ".join(CONTROL.sub(" ", text).split())


def _message(raw: bytes) -> tuple[EmailMessage, list[str]]:
    """The parsed message; when the body defeats the parser (absurd nesting), at least its header block."""
    try:
        msg = email.message_from_bytes(raw, policy=POLICY)
        return msg, [type(d).__name__ for d in msg.defects]  # type: ignore[return-value]
    except Exception as exc:  # RecursionError on a few thousand nested parts; keep what can be read
        problem = f"body unreadable: {type(exc).__name__}"
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    try:
        msg = email.message_from_bytes(head + b"\r\n\r\n", policy=POLICY)
        return msg, [problem, *(type(d).__name__ for d in msg.defects)]  # type: ignore[return-value]
    except Exception as exc:
        return EmailMessage(), [problem, f"headers unreadable: {type(exc).__name__}"]


def _guard(compute: Callable[[], object], default, what: str, defects: list[str]):
    try:
        return compute()
    except Exception as exc:  # one unreadable fact must not lose the others
        defects.append(f"{what}: {type(exc).__name__}")
        return default


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(str(k), str(v)) for k, v in msg.raw_items()]
    except Exception:
        return []


def _unfold(value: str) -> str:
    return re.sub(r"[\r\n]+", " ", re.sub(r"\r?\n(?=[ \t])", "", value))


def _header(msg: Message, name: str, value: str, hints: list[str], defects: list[str]) -> str:
    """One header: 8-bit bytes decoded, encoded words that hide line breaks defused, then the policy's
    structured parse (addresses, dates). What the parser refuses is kept as text."""
    text = _defuse(_decode_8bit(_unfold(value[:HEADER_LIMIT]), hints))
    try:
        text = str(msg.policy.header_factory(name, text))  # type: ignore[attr-defined]
    except Exception as exc:  # a malformed header must not lose the message
        defects.append(f"{name}: {type(exc).__name__}")
    return one_line(text)


def _decode_8bit(value: str, hints: list[str]) -> str:
    """Raw 8-bit bytes in a header arrive as surrogate escapes: UTF-8 if they are, else the message's own
    charset, else a guess among the legacy charsets that send raw bytes (never U+FFFD for every letter)."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return _decode_bytes(value.encode("utf-8", "surrogateescape"), hints)


def _decode_bytes(data: bytes, hints: list[str]) -> str:
    for charset in ("utf-8", *hints):
        try:
            return data.decode(charset)
        except Exception:  # unknown charset, not a text codec, or not this charset
            continue
    return data.decode(_guess_legacy(data), "replace")


def _guess_legacy(data: bytes) -> str:
    """Cyrillic words are mostly bytes >= 0xC0 (Latin ones with accents mostly ASCII letters); koi8-r puts its
    small letters where cp1251 has its capitals, and most letters of a text are small."""
    words = [w for w in re.split(rb"[\x00-\x40\x5b-\x60\x7b-\x7f]+", data) if max(w, default=0) >= 0x80]
    high = [b for w in words for b in w if b >= 0xC0]
    latin = sum(1 for w in words for b in w if b < 0x80)
    if len(high) > latin:
        small_koi8 = sum(1 for b in high if b < 0xE0)
        return "koi8-r" if small_koi8 > len(high) / 2 else "cp1251"
    return "cp1252"


def _charset_hints(msg: Message) -> list[str]:
    """The charsets the message declares for its text: clients that put raw bytes in headers use the same."""
    found: list[str] = []
    try:
        for part in itertools.islice(msg.walk(), 50):
            charset = part.get_content_charset()
            if charset and charset not in ("us-ascii", "utf-8", "utf8") and charset not in found:
                found.append(charset)
    except Exception:
        pass
    return found


def _defuse(text: str) -> str:
    """Encoded words whose text holds line breaks or control characters are re-encoded without them, so a
    header built from the decoded text can never gain a line (and an address parse does not fail on it)."""
    if "=?" not in text:
        return text

    def check(match: re.Match) -> str:
        word = match.group(0)
        decoded = _decode_words(word)
        if decoded is None or not CONTROL.search(decoded):
            return word
        return email.charset.Charset("utf-8").header_encode(one_line(decoded))

    return ENCODED_WORD.sub(check, text)


def _decode_words(text: str) -> str | None:
    try:
        parts = email.header.decode_header(text)
    except Exception:
        return None
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii"))
        except Exception:
            out.append(chunk.decode("utf-8", "replace"))
    return "".join(out)


def _ticket_tag(subject: str, prefix: str) -> str:
    for found_prefix, number in TAG.findall(subject):
        if found_prefix.lower() == prefix.lower():
            return f"{prefix}-{int(number)}"
    return ""


def _ids(value: str) -> list[str]:
    """Message-IDs in a Message-ID, In-Reply-To or References value: one line each, no control characters."""
    found = []
    for inner in MSGID.findall(value):
        inner = " ".join(CONTROL.sub("", inner).split())
        if inner:
            found.append(f"<{inner}>")
    return list(dict.fromkeys(found))


def _first_id(value: str) -> str:
    found = _ids(value)
    if found:
        return found[0]
    value = one_line(value)
    return f"<{value}>" if value and " " not in value and "<" not in value and ">" not in value else ""


def _synthetic_id(raw: bytes) -> str:
    """A stable id for mail that has none, so a re-delivery is still recognised."""
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@no-message-id.mailhelpdesk>"


def _date(value: str, defects: list[str] | None = None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except Exception:  # garbage, or a time zone that pushes it past year 9999
        if defects is not None:
            defects.append("Date: unreadable")
        return None
    if not EARLIEST <= parsed.year < LATEST:
        if defects is not None:
            defects.append(f"Date: implausible year {parsed.year}")
        return None
    return parsed


def _all(msg: Message, name: str, hints: list[str]) -> list[str]:
    try:
        return [one_line(_decode_8bit(_unfold(v[:HEADER_LIMIT]), hints)) for k, v in _raw_items(msg)
                if k.lower() == name.lower()][:20]
    except Exception:
        return []


def _from_addresses(msg: Message, hints: list[str]) -> tuple[str, ...]:
    """Every mailbox of every From: header, as written (an encoded display name is no address): commands need
    exactly one. A group or a part that is no address counts too, as "" (so it is never "exactly one")."""
    values = [_decode_8bit(_unfold(v[:HEADER_LIMIT]), hints) for k, v in _raw_items(msg) if k.lower() == "from"]
    pairs = getaddresses(values) if values else []
    return tuple(addr.strip().lower() if ADDRESS.fullmatch(addr.strip()) else "" for _, addr in pairs)


def _content_type(msg: Message) -> str:
    try:
        return msg.get_content_type()
    except Exception:
        return "text/plain"


def report_kind(msg: Message) -> str:
    """What a machine-readable report says: "bounce" (delivery failed), "delay", "delivered", "read receipt"
    (RFC 8098 disposition notification), "report" (another kind), or "" when the mail is no report."""
    ctype = _content_type(msg)
    parts = list(itertools.islice(msg.walk(), 50))
    types = {p.get_content_type() for p in parts}
    if ctype != "multipart/report" and not (
        ctype.startswith("multipart/") and types & {"message/delivery-status", "message/disposition-notification"}
    ):
        return ""
    report_type = str(msg.get_param("report-type") or "").lower() if ctype == "multipart/report" else ""
    if report_type == "disposition-notification" or "message/disposition-notification" in types:
        return "read receipt"
    status = next((p for p in parts if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")), None)
    if status is None:
        return "bounce" if report_type in ("", "delivery-status") else "report"
    actions = set(_dsn_actions(status))
    if not actions or "failed" in actions:
        return "bounce"  # unreadable counts as the failure it most often is
    if "delayed" in actions:
        return "delay"
    return "delivered"  # delivered, relayed, expanded (RFC 3464)


def _dsn_actions(part: Message) -> list[str]:
    """The Action: fields of a delivery-status part (one per recipient)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n".join(str(block) for block in payload if isinstance(block, Message))
    else:
        data = part.get_payload(decode=True)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload or "")
    return [a.lower() for a in re.findall(r"^Action:\s*([A-Za-z]+)", text, re.IGNORECASE | re.MULTILINE)]


def _calendar_method(msg: Message) -> str:
    """The METHOD of the first text/calendar part ("REPLY" for "Accepted: ..."), or ""."""
    for part in itertools.islice(msg.walk(), 50):
        if part.get_content_type() != "text/calendar":
            continue
        method = str(part.get_param("method") or "")
        if not method:
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", "replace")[:20_000] if isinstance(data, bytes) else ""
            found = re.search(r"^METHOD:\s*([A-Za-z-]+)", text, re.MULTILINE)
            method = found.group(1) if found else ""
        return method.upper()
    return ""


def _bounced_ids(msg: Message) -> tuple[str, ...]:
    """Message-IDs of the mail a delivery report is about (from its returned headers)."""
    found: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("text/rfc822-headers", "message/rfc822", "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list):
                for inner in payload:
                    found += _ids(str(inner.get("Message-ID", "")))[:1]
            else:
                text = payload if isinstance(payload, str) else ""
                raw = part.get_payload(decode=True)
                if isinstance(raw, bytes):
                    text = raw.decode("utf-8", "replace")
                match = re.search(r"^Message-ID:\s*(<[^<>\r\n]+>)", text, re.I | re.M)
                if match:
                    found += _ids(match.group(1))
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


def _body_text(msg: EmailMessage, hints: list[str]) -> str:
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        part = None
    if part is None:
        return ""
    text = _part_text(part, hints)
    if part.get_content_type() == "text/html":
        text = html_to_text(text[:HTML_LIMIT])
    return text


def _part_text(part: Message, hints: list[str]) -> str:
    declared = part.get_param("charset")
    if declared is None:  # no charset: clients that send raw 8-bit text then mean UTF-8 or their legacy one
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            return _decode_bytes(data, hints)
    try:
        return part.get_content()
    except Exception:
        data = part.get_payload(decode=True) or b""
        if not isinstance(data, bytes):
            return ""
        for charset in (part.get_content_charset() or "", "utf-8", "cp1252"):
            try:
                return data.decode(charset) if charset else data.decode("utf-8")
            except Exception:
                continue
        return data.decode("latin-1")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body: html-text (lxml underneath) drops comments, attributes, scripts and styles,
    decodes entities, and puts each block element on a line of its own. Linear in the input, so a crafted body
    cannot stall the daemon; characters lxml refuses (controls, lone surrogates) are dropped first."""
    return html_text.extract_text(NOT_XML.sub("", markup), newline_tags=BLOCKS, double_newline_tags=())


def _attachments(msg: EmailMessage):
    try:
        yield from msg.iter_attachments()
    except Exception:
        return
