"""A deterministic, realistic support mailbox with ground truth, for tests and benchmarks.

``build_corpus()`` returns the raw RFC 5322 bytes of a few hundred messages (INBOX and Sent, in delivery order)
together with what a correct helpdesk must make of them: which messages form which customer conversation, which
conversations must be acknowledged, and which messages are automatic (out-of-office, mailing lists, bounces,
no-reply senders) and must never open a ticket or be answered.

Everything is derived from one seeded ``random.Random``: the same arguments always give the same bytes. Only the
standard library is used. Messages are built by hand, byte by byte, wherever the standard library would not produce
what real clients send (raw 8-bit bodies in windows-1251/koi8-r/gbk/iso-8859-1, encoded-words in legacy charsets,
fixed MIME boundaries); ``email.policy.SMTP`` folds the UTF-8 headers of the "Python-style" clients.

Ground-truth notes:
- ``Conversation.message_ids`` holds the ids of the customer's and the agents' messages (a re-delivered message's
  id once). The one customer message that deliberately has no Message-ID is a conversation of its own whose
  ``message_ids`` is empty; it carries the tag ``no_message_id`` and its ``CorpusMessage.message_id`` is "".
- Automatic mail never appears in ``message_ids``. When it refers to a conversation (an out-of-office reply from the
  customer to an agent's reply, a bounce of an agent's reply) its id is listed in ``Conversation.related_automatic``.
- ``CorpusMessage.tags`` and ``Conversation.tags`` name the special features of each message (charset, threading
  variant, ``contact_form``, ``html_only``, ``signal:...`` for the header that makes automatic mail automatic...).
- "spam_like" conversations are cold sales pitches written by people: nothing in their headers says they are
  automatic, so a helpdesk makes tickets of them like any other request (ground truth: ordinary conversations
  tagged ``spam_like``).
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
import random
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

UTC = timezone.utc

__all__ = ["CorpusMessage", "Conversation", "Corpus", "build_corpus", "AUTOMATIC_KINDS", "PERSON_KINDS",
           "FREE_MAIL_DOMAINS"]

AUTOMATIC_KINDS = frozenset({"autoreply", "list", "bounce", "noreply"})
PERSON_KINDS = frozenset({"customer", "customer_reply", "agent_reply", "spam_like"})


# --------------------------------------------------------------------------------------------------- data model


@dataclass
class CorpusMessage:
    folder: str  # "INBOX" or "Sent"
    raw: bytes  # full RFC 5322 bytes, CRLF line endings
    when: datetime  # aware UTC, used as IMAP INTERNALDATE
    message_id: str  # as in the header, "" if the message deliberately has none
    kind: str  # customer | customer_reply | agent_reply | autoreply | list | bounce | noreply | duplicate | spam_like
    conversation: int | None = None  # index into Corpus.conversations (None for automatic mail)
    tags: tuple[str, ...] = ()


@dataclass
class Conversation:
    customer: str  # lowercase address of the customer (the Reply-To of a contact-form mail)
    subject: str  # the first message's decoded subject
    message_ids: list[str]  # ids of the customer's and agents' messages, in order (duplicates once)
    expect_ack: bool  # first customer message within max_age_hours of now, and no agent has answered
    answered_by_agent: bool
    first_when: datetime | None = None  # delivery time of the first customer message
    language: str = "en"
    tags: tuple[str, ...] = ()
    related_automatic: list[str] = field(default_factory=list)  # automatic mail that refers to this conversation


@dataclass
class Corpus:
    messages: list[CorpusMessage]  # in delivery order (INBOX and Sent interleaved)
    conversations: list[Conversation]
    automatic_ids: dict[str, str]  # message_id -> kind, mail that must never open a ticket or get an answer
    support: str
    agents: list[tuple[str, str]]  # (name, email)
    now: datetime | None = None
    max_age_hours: float = 24

    def by_kind(self, kind: str) -> list[CorpusMessage]:
        return [m for m in self.messages if m.kind == kind]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.messages:
            out[m.kind] = out.get(m.kind, 0) + 1
        return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------------------- low-level MIME

CRLF = "\r\n"


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _qp(data: bytes) -> bytes:
    """Quoted-printable body encoding (RFC 2045 6.7), CRLF line breaks, lines <= 76."""
    out: list[str] = []
    for line in data.split(b"\r\n"):
        tokens = []
        for i, b in enumerate(line):
            if (33 <= b <= 126 and b != 61) or (b in (9, 32) and i != len(line) - 1):
                tokens.append(chr(b))
            else:
                tokens.append(f"={b:02X}")
        cur = ""
        for tok in tokens:
            if len(cur) + len(tok) > 75:
                out.append(cur + "=")
                cur = ""
            cur += tok
        out.append(cur)
    return CRLF.join(out).encode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).rstrip(b"\n").replace(b"\n", b"\r\n")


def _ew_one(text: str, codec: str, label: str, mode: str) -> str:
    data = text.encode(codec)
    if mode == "B":
        return f"=?{label}?B?{base64.b64encode(data).decode('ascii')}?="
    out = []
    for b in data:
        ch = chr(b)
        if b < 128 and (ch.isalnum() or ch in "!*+-/"):
            out.append(ch)
        elif b == 32:
            out.append("_")
        else:
            out.append(f"={b:02X}")
    return f"=?{label}?Q?{''.join(out)}?="


def _ew(text: str, codec: str, label: str | None = None, mode: str = "B", limit: int = 75) -> str:
    """RFC 2047 encoded-words for text, split on character boundaries, folded with CRLF SP."""
    label = label or codec
    words: list[str] = []
    chunk = ""
    for ch in text:
        if chunk and len(_ew_one(chunk + ch, codec, label, mode)) > limit:
            words.append(_ew_one(chunk, codec, label, mode))
            chunk = ch
        else:
            chunk += ch
    if chunk:
        words.append(_ew_one(chunk, codec, label, mode))
    return "\r\n ".join(words)


def _ew_mixed(text: str, codec: str, label: str | None = None, mode: str = "Q") -> str:
    """Outlook style: only the runs of words with non-ASCII characters become encoded-words."""
    tokens = text.split(" ")
    out: list[str] = []
    run: list[str] = []
    for tok in tokens + [None]:
        if tok is not None and not tok.isascii():
            run.append(tok)
            continue
        if run:
            out.append(_ew(" ".join(run), codec, label, mode))
            run = []
        if tok is not None:
            out.append(tok)
    return " ".join(out)


_SPECIALS = set('()<>[]:;@\\,."')
_GMAIL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+"


def _phrase(name: str) -> str:
    if any(c in _SPECIALS for c in name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


@dataclass
class _HeaderStyle:
    """How one mail client writes non-ASCII header text."""

    codec: str = "utf-8"
    label: str = "UTF-8"
    mode: str = "B"  # "B", "Q", "mixed" (Outlook-like Q of the non-ASCII words only), "policy" (email.policy.SMTP)

    def text(self, name: str, value: str) -> str:
        if value.isascii():
            return f"{name}: {value}"
        if self.mode == "policy":
            folded = _policy_fold(name, value)
            if _roundtrips(folded, value):
                return folded
            return f"{name}: {_ew(value, self.codec, self.label, 'B')}"
        if self.mode == "mixed":
            return f"{name}: {_ew_mixed(value, self.codec, self.label, 'Q')}"
        return f"{name}: {_ew(value, self.codec, self.label, self.mode)}"

    def addr(self, name: str, display: str, address: str) -> str:
        return f"{name}: {self.mailbox(display, address)}"

    def mailbox(self, display: str, address: str) -> str:
        if not display:
            return address
        if display.isascii():
            return f"{_phrase(display)} <{address}>"
        if self.mode == "policy":
            folded = _policy_fold("To", f"{_phrase(display)} <{address}>")
            if _roundtrips(folded, f"{display} <{address}>"):
                return folded.split(":", 1)[1].lstrip(" \t\r\n")
        mode = "Q" if self.mode in ("mixed", "policy") else self.mode
        return f"{_ew(display, self.codec, self.label, mode)} <{address}>"


def _policy_fold(name: str, value: str) -> str:
    policy = email.policy.SMTP
    return policy.header_factory(name, value).fold(policy=policy).rstrip("\r\n")


def _roundtrips(folded: str, value: str) -> bool:
    """Whether email.policy.default reads back exactly value (Python's folder can add a space before a fold)."""
    name, _, rest = folded.partition(":")
    parsed = email.policy.default.header_fetch_parse(name, rest.lstrip(" ") + "\r\n")
    return str(parsed) == value


@dataclass
class _Part:
    headers: list[str]  # "Name: value" lines (may contain CRLF SP folds)
    body: bytes = b""
    children: list["_Part"] | None = None
    boundary: str = ""

    def render(self) -> bytes:
        head = "".join(h + CRLF for h in self.headers).encode("ascii")
        return head + b"\r\n" + self.render_body()

    def render_body(self) -> bytes:
        if self.children is None:
            return self.body
        b = self.boundary.encode("ascii")
        chunks = [b"This is a multi-part message in MIME format.\r\n"]
        for child in self.children:
            chunks.append(b"\r\n--" + b + b"\r\n" + child.render())
        chunks.append(b"\r\n--" + b + b"--\r\n")
        return b"".join(chunks)


def _text_part(text: str, subtype: str, charset: str, cte: str, label: str | None = None,
               extra: list[str] | None = None) -> _Part:
    data = _crlf(text).encode(charset)
    if cte == "7bit":
        assert max(data, default=0) < 128, (charset, text[:40])
        body = data
    elif cte == "8bit":
        body = data
    elif cte == "quoted-printable":
        body = _qp(data)
    elif cte == "base64":
        body = _b64(data)
    else:  # pragma: no cover - programming error
        raise ValueError(cte)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    headers = [f'Content-Type: text/{subtype}; charset="{label or charset}"', f"Content-Transfer-Encoding: {cte}"]
    return _Part(headers + (extra or []), body)


def _attachment(data: bytes, ctype: str, filename: str) -> _Part:
    if filename.isascii():
        ct = f'Content-Type: {ctype}; name="{filename}"'
        cd = f'Content-Disposition: attachment; filename="{filename}"'
    else:  # RFC 2231
        enc = "".join(c if c.isascii() and (c.isalnum() or c in ".-_") else
                      "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in filename)
        ct = f"Content-Type: {ctype}; name*=utf-8''{enc}"
        cd = f"Content-Disposition: attachment; filename*=utf-8''{enc}"
    return _Part([ct, cd, "Content-Transfer-Encoding: base64"], _b64(data) + b"\r\n")


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _to_html(text: str, charset: str, outlook: bool = False) -> str:
    """A plausible HTML rendering of a plain-text mail: paragraphs, quoted lines in a blockquote."""
    blocks: list[str] = []
    quote: list[str] = []
    para: list[str] = []

    def flush_para() -> None:
        if para:
            cls = ' class="MsoNormal"' if outlook else ""
            blocks.append(f"<p{cls}>" + "<br>\n".join(_html_escape(x) for x in para) + "</p>")
            para.clear()

    def flush_quote() -> None:
        if quote:
            inner = "<br>\n".join(_html_escape(x) for x in quote)
            blocks.append('<blockquote style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">'
                          + inner + "</blockquote>")
            quote.clear()

    for line in text.split("\n"):
        if line.startswith(">"):
            flush_para()
            quote.append(line[1:].lstrip())
        elif not line.strip():
            flush_para()
            flush_quote()
        else:
            flush_quote()
            para.append(line)
    flush_para()
    flush_quote()
    head = f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
    if outlook:
        return ('<html xmlns:o="urn:schemas-microsoft-com:office:office">\n<head>\n' + head +
                '\n<style><!-- p.MsoNormal {margin:0cm;font-size:11.0pt;font-family:"Calibri",sans-serif;} --></style>'
                '\n</head>\n<body lang="EN-GB">\n<div class="WordSection1">\n' + "\n".join(blocks) +
                "\n</div>\n</body>\n</html>\n")
    return ("<html>\n<head>" + head + "</head>\n<body>\n<div dir=\"ltr\">\n" + "\n".join(blocks)
            + "\n</div>\n</body>\n</html>\n")


def _png(rng: random.Random, w: int = 24, h: int = 16) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(w * 3)) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def _pdf(rng: random.Random, size: int, title: str) -> bytes:
    head = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
            b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>\nendobj\n"
            b"4 0 obj\n<< /Length 44 >>\nstream\nBT /F1 18 Tf 72 770 Td (" + title.encode("latin-1", "replace")[:20]
            + b") Tj ET\nendstream\nendobj\n5 0 obj\n<< /Filter /DCTDecode /Length " + str(size).encode()
            + b" >>\nstream\n")
    tail = b"\nendstream\nendobj\nxref\n0 6\ntrailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n0\n%%EOF\n"
    return head + rng.randbytes(max(0, size)) + tail


# --------------------------------------------------------------------------------------------------- content

SHOP = "Bean & Burr"
FORM_FROM = ("Website form", "forms@ourshop.example")

_PRODUCTS = ["Espresso Blend 1 kg", "Ethiopia Yirgacheffe 250 g", "Burr Grinder Pro", "Pour-Over Starter Kit",
             "Decaf Colombia 500 g", "Monthly Filter Subscription", "House Blend 6 x 1 kg", "Cold Brew Pack"]
_COMPANIES = ["Holloway Hotel Ltd", "Brightdesk Ltd", "Northside Dental Practice", "Parker & Sons Joinery",
              "Greenleaf Coworking", "Studio Nine Architects", "Miller Logistics GmbH", "Corner Bakery"]
_STREETS = ["14 Mill Lane, Leeds LS6 2AB", "Hauptstrasse 12, 80331 Muenchen", "27 Harbour Road, Cork T12 X2Y3",
            "Via Roma 8, 20121 Milano", "5 Kings Parade, Cambridge CB2 1SJ", "Bergstrasse 3, 1010 Wien"]
_CODES = ["WELCOME10", "AUTUMN15", "FREESHIP", "BLACKFRIDAY20", "LOYAL5"]

# Each English topic: subjects, first-message bodies, a customer follow-up before anyone answered, the agent's
# answer (after "Hi {first},"), and the customer's "still a problem" reply.
_EN: dict[str, dict[str, list[str]]] = {
    "invoice_vat": dict(
        subjects=["Invoice for order {order} needs our VAT number", "VAT ID missing on invoice for {order}"],
        body=["Hello,\n\nwe ordered coffee for the office last week (order {order}). The invoice only shows my name, "
              "but our accounts team needs the company name and VAT ID on it, otherwise they can't book it.\n\n"
              "Company: {company}\nVAT ID: {vat}\nAddress: {street}\n\nCould you please send a corrected invoice?\n\n"
              "Thanks,\n{name}"],
        followup=["Sorry, one more thing: please send the corrected invoice to accounts@{cdomain} as well, they "
                  "process all supplier invoices.\n\n{first}"],
        agent=["thanks for letting us know. I've re-issued the invoice for order {order} with {company} and your VAT "
               "ID on it. The corrected PDF is attached to a separate email and it's also in your account under "
               "My account > Orders.\n\nThe invoice number stays the same, so nothing needs to be paid twice."],
        again=["Thanks, but the new invoice still shows my home address. Our registered address is {street}. Could "
               "you fix that as well?\n\n{first}"],
    ),
    "double_charge": dict(
        subjects=["Charged twice for order {order}", "Double payment on my card"],
        body=["Hi,\n\nI placed order {order} yesterday and my bank statement shows two payments of {amount} from "
              "{shop}. I only got one confirmation email. Can you refund the second one please?\n\nRegards,\n{name}"],
        followup=["I just checked again, both payments are now booked, not just pending. Card ends in 4417.\n\n"
                  "{first}"],
        agent=["sorry about that. I can see that the payment provider captured the amount twice after a timeout at "
               "checkout. I've refunded the duplicate payment of {amount} just now; depending on your bank it "
               "takes 3-5 working days to show up on your statement."],
        again=["It's been a week and the refund still isn't there. My bank says they have not received anything. "
               "Can you send me a reference number for the refund?\n\n{name}"],
    ),
    "where_order": dict(
        subjects=["Where is my order {order}?", "Order {order} not delivered yet", "Tracking not updating"],
        body=["Hello,\n\nI ordered the {product} on {odate} (order {order}) and the tracking page has said "
              "\"label created\" for five days now. Has it actually been shipped? I need it before the weekend.\n\n"
              "Thanks,\n{first}"],
        followup=["Any news on this? Still nothing on the tracking page.\n\n{first}"],
        agent=["thanks for your patience. Your parcel left our warehouse on Friday, but the carrier did not scan it "
               "at pick-up, which is why the tracking didn't update. It's now in their system as {tracking} and "
               "should be with you tomorrow."],
        again=["Tracking now says \"delivery failed, address not found\". The address on the order is correct, the "
               "driver just didn't ring. What can we do?\n\n{first}"],
    ),
    "damaged": dict(
        subjects=["Grinder arrived damaged", "Broken jar in my delivery", "Damaged parcel - order {order}"],
        body=["Hi there,\n\nmy order {order} arrived today and the box was crushed on one side. The {product} inside "
              "is damaged, the hopper has a crack and there are beans all over the box. I've attached a photo.\n\n"
              "Can you send a replacement? I'd rather not wait for a return.\n\n{name}"],
        followup=["Here's another photo of the packaging, in case you need it for the courier claim.\n\n{first}"],
        agent=["I'm sorry your order arrived like that. No need to send anything back: I've created a replacement "
               "order for the {product}, it ships today with express delivery. I've also filed a claim with the "
               "courier using your photos."],
        again=["The replacement arrived, but the lid is missing from it. Could you send just the lid?\n\n{first}"],
    ),
    "pause_sub": dict(
        subjects=["Pause my subscription while I'm away", "Skip next delivery?"],
        body=["Hello,\n\nI'm travelling from {odate} for three weeks. Is it possible to pause my coffee subscription "
              "for December, so the bag doesn't sit at my door? I don't want to cancel, I love the beans.\n\n"
              "Cheers,\n{first}"],
        followup=["Just to be clear, I'd like the deliveries to start again in January as usual.\n\n{first}"],
        agent=["of course. I've paused your subscription for the December delivery; it will resume automatically "
               "with the January shipment. You can also pause or skip deliveries yourself under My account > "
               "Subscription."],
        again=["I got a shipping notification for December today anyway. Did the pause not work?\n\n{first}"],
    ),
    "cancel_sub": dict(
        subjects=["Cancel subscription", "Please cancel my monthly plan"],
        body=["Hi,\n\nplease cancel my {product} at the end of the current period. We're moving to a bean-to-cup "
              "machine at the office, nothing wrong with your coffee.\n\nCustomer number {custno}.\n\nThanks,\n{name}"],
        followup=["Could you also confirm that no further payment will be taken? The next charge would be on the "
                  "1st.\n\n{first}"],
        agent=["I've cancelled your subscription as of the end of this billing period; you will not be charged "
               "again. You'll receive the last delivery as planned. Thank you for being a customer for so long!"],
        again=["I was charged again on the 1st. Please refund it, I cancelled before the renewal date.\n\n{name}"],
    ),
    "discount": dict(
        subjects=["Discount code {code} not working", "Voucher not accepted at checkout"],
        body=["Hello,\n\nI got the code {code} in your newsletter, but at checkout it says \"This code is not valid "
              "for the items in your cart\". I'm ordering the {product}. Is it excluded?\n\n{first}"],
        followup=["I tried again on my phone, same error.\n\n{first}"],
        agent=["the code {code} doesn't apply to items that are already reduced, which is why checkout rejected it. "
               "I've applied the discount manually to your order now, so you'll get {amount} back on your card."],
        again=["Thanks, but I can't see the refund, and the order confirmation shows the full price.\n\n{first}"],
    ),
    "login": dict(
        subjects=["Can't log in to my account", "Password reset email never arrives"],
        body=["Hi,\n\nI've tried to reset my password three times, but the email never arrives (I checked spam). "
              "My account email is {addr}. Could you help? I want to change my delivery address before the next "
              "shipment.\n\n{name}"],
        followup=["Update: I also tried from another browser, same thing.\n\n{first}"],
        agent=["thanks for the details. Our mail provider had blocked your address after an earlier bounce. I've "
               "removed the block and sent you a fresh password reset link; it is valid for 60 minutes."],
        again=["The link says it has expired although I clicked it within 5 minutes.\n\n{first}"],
    ),
    "address_change": dict(
        subjects=["Change delivery address for order {order}", "Wrong address on my order"],
        body=["Hello,\n\nI just noticed that order {order} still has my old address. Could you change it to\n\n"
              "{name}\n{street}\n\nbefore it ships? Thank you!\n\n{first}"],
        followup=["It's a flat, number 4B, please add that to the address.\n\n{first}"],
        agent=["done: I've updated the delivery address for order {order} before it was packed. You'll receive the "
               "tracking link with the new address when it ships."],
        again=["The tracking email still shows the old address?\n\n{first}"],
    ),
    "wholesale": dict(
        subjects=["Wholesale pricing for our cafe", "Trade account enquiry"],
        body=["Hi,\n\nwe're opening a small cafe in January and we'd like to use your House Blend. We'd need about "
              "15 kg a week. Do you offer wholesale prices and can you deliver weekly?\n\nBest regards,\n{name}\n"
              "{company}"],
        followup=["Forgot to mention: we'd also be interested in a grinder on loan if you offer that.\n\n{first}"],
        agent=["thank you for thinking of us! For 15 kg a week our trade price is 18.40 EUR/kg plus VAT with free "
               "weekly delivery. I've attached our trade price list. If you like, we can send a 2 kg sample of the "
               "House Blend and the Espresso Blend for you to try."],
        again=["The samples arrived, thanks. Could you check whether 10 kg a week still gets free delivery?\n\n"
               "{first}"],
    ),
    "wrong_item": dict(
        subjects=["Received the wrong beans", "Wrong item in order {order}"],
        body=["Hi,\n\nI ordered whole beans but received ground coffee (filter grind) in order {order}. I use an "
              "espresso machine so this doesn't work for me. How do we sort this out?\n\n{first}"],
        followup=["The bag is unopened, I can send it back if needed.\n\n{first}"],
        agent=["apologies for the mix-up. I've sent you the whole beans today, and you can keep the ground coffee, "
               "no need to return it."],
        again=["I received ground coffee again. Is there something wrong with how my order is saved?\n\n{first}"],
    ),
    "gdpr": dict(
        subjects=["Please delete my account and data", "GDPR request - delete my data"],
        body=["Hello,\n\nunder Art. 17 GDPR I'm asking you to delete my customer account and all personal data you "
              "hold about me. My account email is {addr}. Please confirm when it's done.\n\n{name}"],
        followup=["Please also remove me from your newsletter.\n\n{name}"],
        agent=["I've deleted your customer account and your personal data today. We must keep invoices for 10 "
               "years for tax reasons; they're stored separately and not used for anything else. You've also been "
               "removed from the newsletter."],
        again=["I just got another newsletter from you. How is that possible if my data was deleted?\n\n{name}"],
    ),
    "gift_card": dict(
        subjects=["Gift card code says invalid", "Problem redeeming a gift card"],
        body=["Hi,\n\nI received a {shop} gift card for my birthday, but the code is rejected at checkout "
              "(\"gift card not found\"). The card number is {giftcard}. Can you check it?\n\nThanks,\n{first}"],
        followup=["The card was bought on your website by my sister in October, if that helps.\n\n{first}"],
        agent=["the gift card had not been activated because the purchase was still marked as pending. I've "
               "activated it now and it has the full balance of {amount}."],
        again=["It works now but it only shows half of the balance.\n\n{first}"],
    ),
    "payment_declined": dict(
        subjects=["Error at checkout: payment declined", "Can't pay with PayPal"],
        body=["Hello,\n\nevery time I try to pay I get \"Payment declined (code 05)\". My card works everywhere "
              "else. I've tried three times now, I hope I haven't been charged three times.\n\n{name}"],
        followup=["I also tried PayPal and got \"Something went wrong\".\n\n{first}"],
        agent=["there were no charges from your attempts, the bank declined them before any money was taken. Code "
               "05 comes from your card issuer; it's often the 3-D Secure check. Could you try again with the "
               "banking app open so you can approve the payment?"],
        again=["Still declined, and my bank says they don't see any attempt from you.\n\n{first}"],
    ),
    "warranty": dict(
        subjects=["Burr grinder makes a grinding noise - warranty?", "Grinder stopped working"],
        body=["Hi,\n\nmy Burr Grinder Pro (bought in March, order {order}) has started making a loud grinding noise "
              "and the grind is uneven now. It's still under warranty I think. What do I need to do?\n\n{name}"],
        followup=["I've cleaned the burrs as described in the manual, no change.\n\n{first}"],
        agent=["that sounds like the lower burr carrier has come loose. It's covered by the warranty. I've sent "
               "you a prepaid return label; once the grinder arrives we'll repair or replace it within five "
               "working days."],
        again=["I sent it back two weeks ago and haven't heard anything.\n\n{first}"],
    ),
    "refund_status": dict(
        subjects=["Refund not received yet", "Where is my refund for {order}?"],
        body=["Hi,\n\nI returned order {order} on {odate} and your return confirmation said the refund would take "
              "5 days. It's been two weeks. Could you check?\n\n{name}"],
        followup=["The return tracking number was {tracking}, it was delivered to you on the 3rd.\n\n{first}"],
        agent=["your return arrived, but it was not matched to your order because the return form was missing. "
               "I've matched it now and the refund of {amount} has been issued today."],
        again=["I only got part of the refund. Was the shipping not included?\n\n{first}"],
    ),
    "invoices_download": dict(
        subjects=["How do I download all my invoices?", "Invoice export for our accountant"],
        body=["Hello,\n\nour accountant needs all invoices for this year as PDFs. Is there a way to download them "
              "all at once instead of clicking through 40 orders?\n\n{name}\n{company}"],
        followup=["A CSV with all orders would work too.\n\n{first}"],
        agent=["under My account > Orders there's an \"Export\" button at the top right that downloads a ZIP with "
               "all invoice PDFs for a date range, and a CSV summary."],
        again=["The ZIP only contains invoices from October onwards. Where are the older ones?\n\n{first}"],
    ),
    "confirm_email": dict(
        subjects=["Confirmation email never arrived", "Can't confirm my account"],
        body=["Hi,\n\nI signed up yesterday but the confirmation email never came (not in spam either). My address is "
              "{addr}. I can't place an order until the account is confirmed.\n\n{name}"],
        followup=["I clicked \"resend confirmation\" twice more, still nothing.\n\n{first}"],
        agent=["thanks for letting us know. Your mail provider rejected our confirmation emails for a few hours "
               "yesterday. I've confirmed your account manually, so you can log in and order right away."],
        again=["I can log in now, but every page still shows \"please confirm your email address\".\n\n{first}"],
    ),
    "urgent_missing": dict(
        subjects=["URGENT: order {order} missing, we open tomorrow at 7", "URGENT - no coffee delivered to the cafe"],
        body=["Hello,\n\nour weekly order {order} (15 kg House Blend) should have arrived today and nothing came. "
              "We open tomorrow morning at 7 and we have maybe two days of coffee left. Please call me on "
              "+44 7700 900412 as soon as you can.\n\n{name}\n{company}"],
        followup=["Still nothing. Can anyone confirm this has been seen?\n\n{first}"],
        agent=["I'm sorry. The order was stuck because the payment of last week's invoice hadn't been matched. I've "
               "released it and booked a same-day courier, it will be with you by 5 pm today."],
        again=["The courier came but only with 10 kg. Where are the other 5?\n\n{first}"],
    ),
}

_EN_THANKS = [
    "Perfect, that's exactly what I needed. Thank you for the quick help!\n\n{first}",
    "Great, thanks {agent}! All sorted.\n\nBest,\n{first}",
    "Thank you, that worked.\n\n{name}",
    "Brilliant, much appreciated.\n\n{first}",
]
_EN_AGENT2 = [
    "sorry about that! I've corrected it now and double-checked everything on our side. Please let me know if "
    "anything else looks wrong.",
    "thanks for the extra details, that helped. I've escalated this to our warehouse lead and we'll get back to you "
    "by tomorrow noon at the latest.",
    "understood. I've made the change and you should see it in your account within the hour.",
]

# Other languages: topic key -> subject, body, follow-up; plus the language's thanks/again replies.
_L10N: dict[str, dict] = {
    "de": dict(
        topics={
            "invoice_vat": ("Rechnung mit USt-IdNr. für Bestellung {order}",
                            "Guten Tag,\n\nfür unsere Bestellung {order} benötigen wir eine Rechnung auf die Firma "
                            "{company} mit unserer Umsatzsteuer-ID {vat}. Auf der aktuellen Rechnung steht nur mein "
                            "Name, so kann unsere Buchhaltung sie nicht verbuchen.\n\nKönnten Sie uns bitte eine "
                            "korrigierte Rechnung schicken?\n\nMit freundlichen Grüßen\n{name}",
                            "Nachtrag: Bitte die Rechnung auch an buchhaltung@{cdomain} senden.\n\nGrüße\n{first}"),
            "where_order": ("Lieferung noch nicht angekommen - Bestellung {order}",
                            "Hallo,\n\nich habe am {odate} die {product} bestellt (Bestellung {order}). Laut "
                            "Sendungsverfolgung ist das Paket seit fünf Tagen \"in Zustellung\", angekommen ist "
                            "aber nichts. Können Sie bitte nachsehen, wo es hängt?\n\nViele Grüße\n{name}",
                            "Gibt es schon Neuigkeiten? Das Paket ist immer noch nicht da.\n\n{first}"),
            "damaged": ("Mühle beschädigt angekommen",
                        "Hallo zusammen,\n\nheute kam meine Bestellung {order} an, leider ist der Karton "
                        "eingedrückt und der Bohnenbehälter der Mühle hat einen Sprung. Ein Foto hänge ich an.\n\n"
                        "Können Sie mir Ersatz schicken?\n\nGruß\n{name}",
                        "Hier noch ein Foto von der Verpackung, falls Sie es für die Reklamation beim "
                        "Paketdienst brauchen.\n\n{first}"),
            "pause_sub": ("Abo während des Urlaubs pausieren",
                          "Hallo,\n\nich bin ab dem {odate} für drei Wochen verreist. Kann ich mein Kaffee-Abo "
                          "für Dezember pausieren? Kündigen möchte ich nicht, der Kaffee ist großartig.\n\n"
                          "Schöne Grüße\n{first}",
                          "Ab Januar soll die Lieferung dann bitte wieder normal weiterlaufen.\n\n{first}"),
            "warranty": ("Garantiefall: Mahlwerk macht Geräusche",
                         "Sehr geehrte Damen und Herren,\n\nmeine Burr Grinder Pro (gekauft im März, Bestellung "
                         "{order}) macht seit einigen Tagen ein lautes Schleifgeräusch und mahlt ungleichmäßig. "
                         "Das Gerät sollte noch Garantie haben. Wie gehe ich vor?\n\nMit freundlichen Grüßen\n{name}",
                         "Ich habe das Mahlwerk wie in der Anleitung beschrieben gereinigt, leider ohne "
                         "Erfolg.\n\n{first}"),
        },
        agent={
            "invoice_vat": "vielen Dank für den Hinweis. Ich habe die Rechnung für die Bestellung {order} auf "
                           "{company} mit Ihrer USt-IdNr. neu ausgestellt. Sie finden sie in Ihrem Kundenkonto "
                           "unter Bestellungen.",
            "where_order": "danke für Ihre Geduld. Das Paket wurde beim Paketdienst falsch sortiert; es ist jetzt "
                           "unter der Sendungsnummer {tracking} wieder unterwegs und sollte morgen bei Ihnen sein.",
            "damaged": "das tut mir leid. Sie müssen nichts zurückschicken: Ich habe eine Ersatzlieferung "
                       "angelegt, die heute per Express rausgeht.",
            "pause_sub": "gern. Ich habe Ihr Abo für die Dezember-Lieferung pausiert; ab Januar läuft es "
                         "automatisch weiter.",
            "warranty": "das klingt nach einem gelösten Mahlwerkträger, das ist ein Garantiefall. Ich habe Ihnen "
                        "ein kostenloses Rücksendeetikett geschickt; wir reparieren oder tauschen das Gerät innerhalb "
                        "von fünf Werktagen.",
        },
        greeting="Hallo {first},", sign="Viele Grüße\n{agent}\n{shop} Kundenservice",
        thanks=["Vielen Dank, das hat geklappt!\n\n{first}", "Super, danke für die schnelle Hilfe.\n\nGruß\n{name}"],
        again=["Leider ist das Problem immer noch nicht gelöst. Können Sie bitte noch einmal nachsehen?\n\n{first}"],
    ),
    "fr": dict(
        topics={
            "invoice_vat": ("Facture avec numéro de TVA intracommunautaire",
                            "Bonjour,\n\npour la commande {order}, notre comptabilité a besoin d'une facture au nom "
                            "de la société {company} avec notre numéro de TVA {vat}. Pourriez-vous nous envoyer une "
                            "facture corrigée ?\n\nCordialement,\n{name}",
                            "Merci d'envoyer également la facture à compta@{cdomain}.\n\n{first}"),
            "where_order": ("Colis non reçu - commande n° {order}",
                            "Bonjour,\n\nj'ai commandé le {product} le {odate} (commande {order}) et le suivi "
                            "indique \"en cours de livraison\" depuis cinq jours. Pouvez-vous vérifier ?\n\nMerci "
                            "d'avance,\n{name}",
                            "Toujours rien reçu aujourd'hui.\n\n{first}"),
            "damaged": ("Moulin à café arrivé cassé",
                        "Bonjour,\n\nma commande {order} est arrivée aujourd'hui avec le carton écrasé, et le "
                        "réservoir du moulin est fêlé. Je joins une photo.\n\nPouvez-vous m'envoyer un "
                        "remplacement ?\n\nBien à vous,\n{name}",
                        "Voici une autre photo de l'emballage.\n\n{first}"),
        },
        agent={}, greeting="", sign="",
        thanks=["Merci beaucoup, c'est parfait !\n\n{first}"],
        again=["Désolé, mais le problème n'est toujours pas résolu.\n\n{first}"],
    ),
    "sv": dict(
        topics={
            "invoice_vat": ("Faktura för beställning {order}",
                            "Hej,\n\nvi behöver en faktura för beställning {order} ställd till {company} med vårt "
                            "momsregistreringsnummer {vat}. Kan ni skicka en ny?\n\nMed vänliga hälsningar\n{name}",
                            "Skicka gärna fakturan till ekonomi@{cdomain} också.\n\n{first}"),
            "wrong_item": ("Fel kaffebönor levererade",
                           "Hej!\n\nJag beställde hela bönor men fick malet kaffe i beställning {order}. Jag har "
                           "en espressomaskin så det fungerar inte för mig. Hur löser vi det?\n\n{name}",
                           "Påsen är oöppnad, jag kan skicka tillbaka den.\n\n{first}"),
        },
        agent={}, greeting="", sign="",
        thanks=["Tack så mycket, nu fungerar allt!\n\n{first}"],
        again=["Tyvärr är det fortfarande fel. Kan ni kolla igen?\n\n{first}"],
    ),
    "es": dict(
        topics={
            "invoice_vat": ("Factura a nombre de la empresa",
                            "Hola,\n\nnecesitamos la factura del pedido {order} a nombre de {company} con nuestro "
                            "NIF {vat}. ¿Podrían enviarnos una factura corregida?\n\nUn saludo,\n{name}",
                            "Perdón, olvidé indicar la dirección fiscal: {street}.\n\n{first}"),
            "where_order": ("El pedido {order} no ha llegado",
                            "Hola,\n\nhice el pedido {order} el {odate} y todavía no ha llegado. El seguimiento no "
                            "se actualiza desde hace cinco días. ¿Me pueden ayudar?\n\nGracias,\n{name}",
                            "¿Alguna novedad?\n\n{first}"),
        },
        agent={}, greeting="", sign="",
        thanks=["¡Muchas gracias, todo resuelto!\n\n{first}"],
        again=["Lo siento, pero sigue sin funcionar.\n\n{first}"],
    ),
    "ru": dict(
        topics={
            "confirm_email": ("Не приходит письмо с подтверждением",
                              "Здравствуйте!\n\nЯ зарегистрировался на вашем сайте вчера, но письмо с "
                              "подтверждением так и не пришло (папку \"Спам\" проверил). Адрес {addr}. Без "
                              "подтверждения не могу оформить заказ.\n\nС уважением,\n{name}",
                              "Попробовал ещё раз отправить письмо повторно - снова ничего.\n\n{first}"),
            "double_charge": ("Деньги списали дважды за заказ {order}",
                              "Добрый день!\n\nЗа заказ {order} с моей карты дважды списали {amount}. "
                              "Подтверждение заказа пришло одно. Прошу вернуть лишнее списание.\n\nСпасибо,\n{name}",
                              "Оба списания уже проведены банком, не просто заблокированы.\n\n{first}"),
            "damaged": ("Посылка пришла повреждённой",
                        "Здравствуйте,\n\nсегодня получил заказ {order}: коробка помята, у кофемолки треснул "
                        "контейнер для зёрен. Фото прилагаю.\n\nМожно ли прислать замену?\n\n{name}",
                        "Вот ещё одно фото упаковки, если нужно для претензии курьерской службе.\n\n{first}"),
            "cancel_sub": ("Как отменить подписку?",
                           "Добрый день,\n\nподскажите, пожалуйста, как отменить подписку на кофе? В личном "
                           "кабинете не нашёл такой кнопки. Номер клиента {custno}.\n\nСпасибо,\n{name}",
                           "И подтвердите, пожалуйста, что больше списаний не будет.\n\n{first}"),
        },
        agent={}, greeting="", sign="",
        thanks=["Спасибо большое, всё заработало!\n\n{first}", "Благодарю за быструю помощь.\n\n{name}"],
        again=["К сожалению, проблема осталась. Посмотрите, пожалуйста, ещё раз.\n\n{first}"],
    ),
    "zh": dict(
        topics={
            "invoice_vat": ("发票抬头需要修改",
                            "您好：\n\n我们的订单{order}的发票抬头写错了，需要开成公司名称\"{company}\"，税号{vat}。"
                            "麻烦重新开一张发票，谢谢！\n\n{name}",
                            "另外，请把发票也发送到 finance@{cdomain}。\n\n{name}"),
            "where_order": ("订单{order}还没有发货",
                            "您好，\n\n我在{odate}下的订单{order}到现在还显示\"待发货\"，请问什么时候能发出？"
                            "我周末之前需要用。\n\n谢谢，\n{name}",
                            "请问有进展吗？物流信息还是没有更新。\n\n{name}"),
            "discount": ("优惠码无法使用",
                         "你好，\n\n我在结账时输入优惠码{code}，系统提示\"该优惠码不适用于购物车中的商品\"。"
                         "我买的是{product}，请问是不是不能用？\n\n{name}",
                         "我用手机又试了一次，还是同样的错误。\n\n{name}"),
        },
        agent={}, greeting="", sign="",
        thanks=["非常感谢，问题已经解决了！\n\n{name}"],
        again=["不好意思，问题还是没有解决，麻烦再帮忙看一下。\n\n{name}"],
    ),
    "ja": dict(
        topics={
            "where_order": ("注文{order}の配送状況について",
                            "お世話になっております。\n\n{odate}に注文した{product}（注文番号{order}）が"
                            "まだ届いておりません。配送状況をご確認いただけますでしょうか。\n\nよろしくお願いいたします。\n"
                            "{name}",
                            "追伸：追跡番号のページも更新されていません。\n\n{name}"),
            "invoice_vat": ("領収書の発行をお願いします",
                            "お世話になっております。\n\n注文番号{order}について、会社名「{company}」宛ての"
                            "領収書を発行していただけますでしょうか。\n\nよろしくお願いいたします。\n{name}",
                            "宛名は正式名称でお願いいたします。\n\n{name}"),
            "login": ("パスワードを再設定できません",
                      "お世話になっております。\n\nパスワード再設定のメールが届きません。迷惑メールフォルダも"
                      "確認しました。登録メールアドレスは{addr}です。\n\nご対応をお願いいたします。\n{name}",
                      "別のブラウザでも試しましたが、同じでした。\n\n{name}"),
        },
        agent={}, greeting="", sign="",
        thanks=["ご対応ありがとうございました。無事に解決しました。\n\n{name}"],
        again=["申し訳ありませんが、まだ解決していません。もう一度ご確認いただけますでしょうか。\n\n{name}"],
    ),
}

# (display name, local part) per language; the address domain comes from _DOMAINS.
_NAMES = {
    "en": [("Emily Carter", "emily.carter"), ("James O'Brien", "jobrien"), ("Priya Nair", "priya.nair"),
           ("Tom Whitfield", "tom.whitfield"), ("Rachel Hughes", "rachel.h"), ("Daniel Patel", "dpatel"),
           ("Olivia Murphy", "olivia.murphy"), ("Marcus Reid", "marcus"), ("Hannah Brooks", "hannah.brooks"),
           ("Kevin Bennett", "kbennett"), ("Laura Foster", "laura.foster"), ("Sam Kim", "samkim"),
           ("Grace Nguyen", "grace.nguyen"), ("Ben Walsh", "ben.walsh"), ("Chloe Coleman", "chloe"),
           ("Nathan Hart", "nathan.hart"), ("Mia Thompson", "mia.t"), ("Oscar Lewis", "oscar.lewis"),
           ("Zoe Harper", "zoe.harper"), ("Aaron Singh", "aaron.singh"), ("Megan Doyle", "megdoyle"),
           ("Lucas Grant", "lucas.grant")],
    "de": [("Anna Müller", "anna.mueller"), ("Jürgen Weiß", "j.weiss"), ("Sören Groß", "soeren.gross"),
           ("Käthe Schröder", "kaethe.schroeder"), ("Lukas Becker", "lukas.becker"), ("Jörg Hoffmann", "jhoffmann"),
           ("Sabine Krämer", "sabine.kraemer"), ("Björn Köhler", "bjoern.koehler")],
    "fr": [("Émilie Dubois", "emilie.dubois"), ("François Lefèvre", "f.lefevre"), ("Hélène Moreau", "helene.moreau"),
           ("Jérôme Girard", "jerome.girard")],
    "sv": [("Åsa Lindqvist", "asa.lindqvist"), ("Björn Öberg", "bjorn.oberg"), ("Märta Sjöström", "marta.sjostrom")],
    "es": [("José García", "jose.garcia"), ("Lucía Fernández", "lucia.fernandez"), ("Íñigo Martínez", "inigo.m")],
    "ru": [("Дмитрий Смирнов", "d.smirnov"), ("Ольга Кузнецова", "olga.kuznetsova"), ("Сергей Иванов", "s.ivanov"),
           ("Наталья Попова", "natalia.popova"), ("Алексей Соколов", "alexey.sokolov"),
           ("Екатерина Лебедева", "e.lebedeva")],
    "zh": [("王伟", "wangwei"), ("李娜", "lina"), ("张敏", "zhangmin"), ("刘洋", "liuyang"), ("陈静", "chenjing")],
    "ja": [("山田太郎", "yamada.taro"), ("佐藤花子", "sato.hanako"), ("鈴木一郎", "suzuki.ichiro"),
           ("高橋美咲", "takahashi.misaki")],
}
_DOMAINS = {
    "en": ["mail.example", "inbox.example", "fastmail.example", "brightdesk.example", "hollowayhotel.example",
           "studionine.example"],
    "de": ["gmx.example", "web.example", "t-online.example", "posteo.example"],
    "fr": ["orange.example", "free.example", "laposte.example"],
    "sv": ["telia.example", "bahnhof.example"],
    "es": ["telefonica.example", "correo.example"],
    "ru": ["yandex.example", "mail-ru.example", "rambler.example"],
    "zh": ["qq.example", "163.example"],
    "ja": ["docomo.example", "yahoo-jp.example"],
}
# Unrelated customers draw their addresses from these few domains: in the corpus's world they are free-mail
# providers (like gmail.com), so a helpdesk under test must be told so ([helpdesk] free_mail_domains); else six
# strangers at brightdesk.example look like one company to the per-domain acknowledgement limit.
FREE_MAIL_DOMAINS = tuple(sorted({d for domains in _DOMAINS.values() for d in domains}))
_TZ = {"en": [-300, -480, 0, 0, 60], "de": [60], "fr": [60], "sv": [60], "es": [60], "ru": [180], "zh": [480],
       "ja": [540]}

# Mail-client "styles": charset and transfer encoding of the body, how headers are encoded, client headers.
_STYLES = {
    "ascii": dict(charset="us-ascii", cte="7bit", hdr=_HeaderStyle("utf-8", "UTF-8", "B")),
    "utf8_qp": dict(charset="utf-8", cte="quoted-printable", hdr=_HeaderStyle("utf-8", "utf-8", "policy")),
    "utf8_b64": dict(charset="utf-8", cte="base64", hdr=_HeaderStyle("utf-8", "UTF-8", "B")),
    "utf8_8bit": dict(charset="utf-8", cte="8bit", hdr=_HeaderStyle("utf-8", "UTF-8", "Q")),
    "latin1_qp": dict(charset="iso-8859-1", cte="quoted-printable",
                      hdr=_HeaderStyle("iso-8859-1", "iso-8859-1", "mixed")),
    "latin1_8bit": dict(charset="iso-8859-1", cte="8bit", hdr=_HeaderStyle("iso-8859-1", "ISO-8859-1", "Q")),
    "cp1251_8bit": dict(charset="windows-1251", cte="8bit", hdr=_HeaderStyle("windows-1251", "windows-1251", "B")),
    "koi8r_8bit": dict(charset="koi8-r", cte="8bit", hdr=_HeaderStyle("koi8-r", "koi8-r", "B")),
    "gbk_8bit": dict(charset="gbk", cte="8bit", hdr=_HeaderStyle("gbk", "gbk", "B")),
    "gbk_b64": dict(charset="gbk", cte="base64", hdr=_HeaderStyle("gbk", "GBK", "B")),
    "jis_7bit": dict(charset="iso-2022-jp", cte="7bit", hdr=_HeaderStyle("iso-2022-jp", "ISO-2022-JP", "B")),
}
_LANG_STYLES = {
    "en": [("ascii", 5), ("utf8_qp", 3), ("utf8_8bit", 2), ("utf8_b64", 1)],
    "de": [("utf8_qp", 3), ("latin1_qp", 3), ("latin1_8bit", 1), ("utf8_8bit", 1)],
    "fr": [("utf8_qp", 2), ("latin1_qp", 1), ("latin1_8bit", 1)],
    "sv": [("utf8_qp", 2), ("latin1_qp", 1)],
    "es": [("utf8_qp", 2), ("latin1_qp", 1)],
    "ru": [("cp1251_8bit", 3), ("koi8r_8bit", 2), ("utf8_b64", 2), ("utf8_qp", 1)],
    "zh": [("gbk_8bit", 2), ("gbk_b64", 2), ("utf8_b64", 2)],
    "ja": [("jis_7bit", 3), ("utf8_b64", 2)],
}
_CLIENTS = {  # style -> plausible clients
    "ascii": ["gmail", "apple", "thunderbird", "outlook"],
    "utf8_qp": ["thunderbird", "outlook", "python"],
    "utf8_b64": ["gmail", "apple"],
    "utf8_8bit": ["gmail", "thunderbird"],
    "latin1_qp": ["outlook"],
    "latin1_8bit": ["thunderbird"],
    "cp1251_8bit": ["thebat"],
    "koi8r_8bit": ["mutt"],
    "gbk_8bit": ["foxmail"],
    "gbk_b64": ["foxmail"],
    "jis_7bit": ["becky"],
}
_MAILER = {
    "outlook": ("X-Mailer", "Microsoft Outlook 16.0"),
    "thunderbird": ("User-Agent", "Mozilla Thunderbird"),
    "apple": ("X-Mailer", "Apple Mail (2.3774.600.62)"),
    "thebat": ("X-Mailer", "The Bat! (v10.4.0.3) Professional"),
    "mutt": ("User-Agent", "Mutt/2.2.12 (2023-09-09)"),
    "foxmail": ("X-Mailer", "Foxmail 7.2.25.254[cn]"),
    "becky": ("X-Mailer", "Becky! ver. 2.81.04 [ja]"),
    "python": ("X-Mailer", "ShopNotes 2.3 (Python)"),
}
_OUTLOOK_PREFIX = {"de": "AW: ", "ru": "Ответ: ", "zh": "回复：", "sv": "SV: ", "fr": "RE : ", "es": "RE: ",
                   "ja": "RE: ", "en": "RE: "}
_EN_BROKEN_PREFIXES = ["Re: Re: ", "Fwd: ", "RE: "]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _quote_header(lang: str, when: datetime, name: str, addr: str) -> str:
    d = when
    if lang == "de":
        return f"Am {d:%d.%m.%Y} um {d:%H:%M} schrieb {name} <{addr}>:"
    if lang == "ru":
        return f"{d:%d.%m.%Y} {d:%H:%M}, {name} <{addr}> пишет:"
    if lang == "zh":
        return f"在 {d.year}年{d.month}月{d.day}日 {d:%H:%M}，{name} <{addr}> 写道："
    if lang == "ja":
        return f"{d.year}年{d.month}月{d.day}日 {d:%H:%M} {name} <{addr}>:"
    if lang == "fr":
        return f"Le {d:%d/%m/%Y} à {d:%H:%M}, {name} <{addr}> a écrit :"
    if lang == "sv":
        return f"Den {d:%Y-%m-%d} kl. {d:%H:%M} skrev {name} <{addr}>:"
    if lang == "es":
        return f"El {d:%d/%m/%Y} a las {d:%H:%M}, {name} <{addr}> escribió:"
    return f"On {_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year} at {d:%H:%M}, {name} <{addr}> wrote:"


def _outlook_block(lang: str, when: datetime, frm: str, to: str, subject: str) -> str:
    labels = {
        "de": ("-----Ursprüngliche Nachricht-----", "Von", "Gesendet", "An", "Betreff"),
        "ru": ("-----Исходное сообщение-----", "От", "Отправлено", "Кому", "Тема"),
        "zh": ("-----原始邮件-----", "发件人", "发送时间", "收件人", "主题"),
        "sv": ("-----Ursprungligt meddelande-----", "Från", "Skickat", "Till", "Ämne"),
        "fr": ("-----Message d'origine-----", "De", "Envoyé", "À", "Objet"),
        "es": ("-----Mensaje original-----", "De", "Enviado el", "Para", "Asunto"),
        "ja": ("-----Original Message-----", "From", "Sent", "To", "Subject"),
    }.get(lang, ("-----Original Message-----", "From", "Sent", "To", "Subject"))
    return (f"{labels[0]}\n{labels[1]}: {frm}\n{labels[2]}: {when:%d.%m.%Y %H:%M}\n{labels[3]}: {to}\n"
            f"{labels[4]}: {subject}")


def _quote(text: str) -> str:
    return "\n".join(("> " + line) if line else ">" for line in text.split("\n"))


def _fmt(template: str, ctx: dict) -> str:
    return template.format(**ctx)


# --------------------------------------------------------------------------------------------------- planning

# Which shapes (sequences of roles) conversations take. C = the customer's first message, c = a customer follow-up,
# A = an agent's reply.
_SHAPES = {
    "single": [["C"]],
    "followup": [["C", "c"], ["C", "c"], ["C", "c", "c"]],
    "answered": [["C", "A"]],
    "answered_thanks": [["C", "A", "c"]],
    "back_and_forth": [["C", "A", "c", "A"], ["C", "A", "c", "A"], ["C", "c", "A", "c", "A"],
                       ["C", "A", "c", "A", "c"]],
}
_SHAPE_W_RECENT = [("single", 32), ("followup", 19), ("answered", 16), ("answered_thanks", 16), ("back_and_forth", 17)]
_SHAPE_W_OLD = [("single", 12), ("followup", 8), ("answered", 25), ("answered_thanks", 28), ("back_and_forth", 27)]
_LANG_W = [("en", 62), ("de", 10), ("ru", 7), ("zh", 5), ("ja", 4), ("fr", 5), ("sv", 3), ("es", 4)]
_THREAD_W = [("full", 55), ("irt_only", 15), ("refs_only", 12), ("outlook", 18)]

# Conversations whose features are forced, so that every feature appears for any seed (when n is large enough).
_FORCED: list[dict] = [
    dict(lang="de", style="utf8_qp", person=0, topic="invoice_vat", roles=["C", "A", "c"], threads=["outlook"],
         recent=True, tags=("anna_mueller",)),
    dict(lang="de", style="latin1_qp", roles=["C", "c"], threads=["full"]),
    dict(lang="fr", style="latin1_8bit", roles=["C"], recent=True),
    dict(lang="ru", style="cp1251_8bit", roles=["C", "A", "c", "A"], threads=["outlook"]),
    dict(lang="ru", style="koi8r_8bit", topic="confirm_email", roles=["C", "A", "c"], threads=["full"], recent=True,
         agent_channel="sent", tags=("koi8_thread",)),
    dict(lang="ru", style="utf8_b64", roles=["C"], recent=True),
    dict(lang="zh", style="gbk_8bit", roles=["C", "A", "c"], threads=["outlook"]),
    dict(lang="zh", style="gbk_b64", roles=["C", "c"], threads=["irt_only"], recent=True),
    dict(lang="zh", style="utf8_b64", roles=["C"]),
    dict(lang="ja", style="jis_7bit", roles=["C", "A", "c"], threads=["full"]),
    dict(lang="ja", style="utf8_b64", roles=["C"], recent=True),
    dict(lang="sv", style="utf8_qp", roles=["C", "A", "c"], threads=["outlook"]),
    dict(lang="es", style="latin1_qp", roles=["C", "c"], threads=["full"], recent=True),
    dict(lang="en", roles=["C", "A", "c"], threads=["outlook"], prefix="Re: Re: "),
    dict(lang="en", roles=["C", "A", "c"], threads=["outlook"], prefix="Fwd: ", agent_channel="own"),
    dict(lang="en", roles=["C", "A", "c"], threads=["refs_only"]),
    dict(lang="en", roles=["C", "c"], threads=["irt_only"], recent=True),
    dict(lang="en", style="utf8_qp", fmt="html", roles=["C"], recent=True, tags=("html_only",)),
    dict(lang="en", topic="damaged", fmt="alt", attach=["png"], roles=["C", "A"], tags=("attachment",)),
    dict(lang="de", style="utf8_qp", topic="invoice_vat", attach=["pdf_umlaut"], roles=["C"], recent=True,
         tags=("attachment",)),
    dict(lang="en", topic="invoices_download", attach=["pdf_big"], roles=["C", "A"], tags=("attachment", "big")),
    dict(lang="en", topic="windows_path", fmt="plain", roles=["C", "A", "c"], threads=["full"],
         tags=("windows_path",)),
    dict(lang="en", long=True, roles=["C", "A", "c", "A", "c", "c", "A", "c", "A", "c", "A", "c"],
         threads=["full", "irt_only", "refs_only", "full", "outlook", "full", "full"], recent=False,
         tags=("long_thread",)),
    dict(lang="en", roles=["C"], recent=True, no_id=True, tags=("no_message_id",)),
    dict(lang="en", form=True, roles=["C", "A", "c"], threads=["full"], agent_channel="sent", tags=("contact_form",)),
    dict(lang="en", form=True, roles=["C"], recent=True, tags=("contact_form",)),
    dict(lang="de", style="utf8_qp", form=True, roles=["C", "A"], tags=("contact_form",)),
    dict(lang="en", spam=0, roles=["C"], recent=True, tags=("spam_like",)),
    dict(lang="en", spam=1, roles=["C"], tags=("spam_like",)),
    dict(lang="en", spam=2, roles=["C"], recent=True, tags=("spam_like",)),
    dict(lang="en", roles=["C"], recent=True, empty_subject=True, tags=("empty_subject",)),
    dict(lang="en", topic="urgent_missing", roles=["C", "c"], threads=["full"], recent=True, importance=True,
         tags=("urgent",)),
    dict(lang="en", roles=["C", "A", "c"], threads=["full"], mixed_case=True, tags=("mixed_case_address",)),
    dict(lang="en", roles=["C"], recent=True, repeat_of=0, tags=("repeat_customer",)),
]

_WINDOWS_PATH_BODY = (
    r"Hello,"
    "\n\n"
    r"the invoice export in your desktop app fails every time with"
    "\n\n"
    r"    Error: cannot write C:\Users\new\report.txt (access denied)"
    "\n\n"
    r"The log file is C:\ProgramData\BeanBurr\logs\x64\today.log and it also mentions "
    r"\\fileserver\share\t-2026\u00e9.csv and D:\temp\new folder\nightly\0x1f.bak. I'm on Windows 11, the app is "
    r"version 3.2.1. Running it as administrator doesn't help."
    "\n\n"
    r"{name}"
)
_WINDOWS_PATH_REPLY = (r"I changed the export folder to C:\Users\new\Documents\exports\ as you suggested and now it "
                       r"works. The old folder C:\Users\new\ was read-only for some reason." "\n\nThanks!\n{first}")
_WINDOWS_PATH_AGENT = (r"the app can't write to C:\Users\new\ directly on some Windows 11 setups. Please set the "
                       r"export folder to C:\Users\new\Documents\exports\ under Settings > Export and try again.")

_LONG_THREAD = [
    "Hello,\n\nwe're opening a second cafe in Leeds in January and want to move both sites to your House Blend "
    "and Espresso Blend. Together we use about 30 kg a week. Could you send trade prices and tell us how weekly "
    "delivery works?\n\nBest,\n{name}\n{company}",
    "thanks for getting in touch! For 30 kg a week our trade price is 17.20 EUR/kg plus VAT, delivery is free and "
    "weekly on Tuesdays. I've attached the trade price list. Shall I send samples to both sites?",
    "Yes please, samples to both addresses would be great:\n\n1) 14 Mill Lane, Leeds LS6 2AB\n2) 3 Park Row, Leeds "
    "LS1 5HD\n\n{first}",
    "the samples are on their way to both sites, 2 kg each. Tracking numbers follow by email.",
    "The samples arrived, our baristas love the Espresso Blend. Can we get a grinder on loan for the new site?\n\n"
    "{first}",
    "Also, could the invoices go to accounts@{cdomain} instead of me?\n\n{first}",
    "grinders on loan are available for 25 kg a week or more, so that works. I've noted accounts@{cdomain} as the "
    "invoice address. I'll prepare the trade agreement.",
    "Great. One question about the agreement: is there a minimum term?\n\n{first}",
    "there's no minimum term, the agreement can be cancelled with four weeks' notice. The agreement is attached, "
    "please sign and send it back.",
    "Signed agreement attached. When could the first delivery be?\n\n{first}",
    "thank you! The first delivery is scheduled for Tuesday the 1st, the grinder comes with it and our technician "
    "will set it up the same day.",
    "Perfect, see you on the 1st. Thanks for all the help!\n\n{name}",
]

_SPAM = [
    ("Rahul Sharma", "rahul@growthseo.example", "Quick question about your website",
     "Hi there,\n\nI was checking your website and noticed it isn't ranking on Google's first page for \"specialty "
     "coffee beans\". We have helped 200+ ecommerce stores get 3x more organic traffic in 90 days.\n\nCan I send "
     "you a free audit? Just reply \"yes\".\n\nRegards,\nRahul Sharma\nSenior SEO Consultant"),
    ("Jessica Miller", "jessica.m@leadgenpros.example", "Re: Partnership",
     "Hi,\n\nFollowing up on my previous email - are you the right person to talk to about growing {shop}'s "
     "wholesale revenue? We generate qualified B2B leads for coffee roasters on a pay-per-meeting basis.\n\nWould "
     "you have 15 minutes this week?\n\nJessica"),
    ("Linda Chen", "sales@packaging-factory.example", "Coffee bags with valve at factory prices",
     "Dear Purchasing Manager,\n\nWe are a factory of flat-bottom coffee bags with one-way degassing valve. MOQ "
     "5000 pcs, custom printing, delivery in 20 days. Free samples available.\n\nBest regards,\nLinda Chen\n"
     "Sales Manager"),
]


# --------------------------------------------------------------------------------------------------- the builder


@dataclass
class _Msg:
    """What later messages of a conversation need to know about an earlier one."""

    mid: str
    when: datetime
    date_local: datetime
    from_name: str
    from_addr: str
    to: str
    subject: str
    text: str  # own text, without quotes
    refs: list[str]
    role: str
    channel: str = ""  # for agent replies: "sent" (from the support address) or "own" (from the agent's address)
    agent: tuple[str, str] | None = None


class _Builder:
    def __init__(self, rng: random.Random, now: datetime, support: str, agents, days: float, max_age_hours: float):
        self.rng = rng
        self.now = now
        self.support = support
        self.domain = support.split("@", 1)[1]
        self.agents = [tuple(a) for a in agents]
        self.days = days
        self.max_age = timedelta(hours=max_age_hours)
        self.window = timedelta(days=days)
        self.messages: list[tuple[datetime, int, CorpusMessage]] = []
        self.conversations: list[Conversation] = []
        self.automatic: dict[str, str] = {}
        self.threads: list[list[_Msg]] = []
        self._ids: set[str] = set()
        self._seq = 0
        self._people: set[str] = set()
        self.shop_url = f"https://www.{self.domain}"

    # -- small helpers ------------------------------------------------------------------------------------------

    def pick(self, weighted):
        total = sum(w for _, w in weighted)
        x = self.rng.uniform(0, total)
        for item, w in weighted:
            x -= w
            if x <= 0:
                return item
        return weighted[-1][0]

    def token(self, n: int, alphabet: str = "0123456789abcdef") -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def new_id(self, client: str, domain: str) -> str:
        while True:
            if client == "gmail":
                mid = f"<CA{self.token(38, _GMAIL_ALPHABET)}@mail.gmail.com>"
            elif client == "outlook":
                mid = (f"<{self.token(4, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')}{self.rng.randint(1, 9)}PR0"
                       f"{self.rng.randint(1, 9)}"
                       f"MB{self.rng.randint(1000, 9999)}{self.token(16, '0123456789ABCDEF')}@"
                       f"{self.token(4, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')}PR0{self.rng.randint(1, 9)}MB"
                       f"{self.rng.randint(1000, 9999)}.eurprd0{self.rng.randint(1, 9)}.prod.outlook.com>")
            elif client == "apple":
                t = self.token(32, "0123456789ABCDEF")
                mid = f"<{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}@{domain}>"
            elif client in ("thunderbird", "becky", "thebat"):
                t = self.token(32)
                mid = f"<{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}@{domain}>"
            elif client == "foxmail":
                mid = f"<tencent_{self.token(32, '0123456789ABCDEF')}@qq.com>"
            else:
                mid = f"<{self.rng.randint(10**11, 10**12 - 1)}.{self.token(12)}@{domain}>"
            if mid not in self._ids:
                self._ids.add(mid)
                return mid

    def local_date(self, when: datetime, offset_min: int) -> datetime:
        return when.astimezone(timezone(timedelta(minutes=offset_min)))

    def emit(self, folder: str, raw: bytes, when: datetime, mid: str, kind: str, conv: int | None,
             tags: tuple[str, ...] = ()) -> CorpusMessage:
        assert when.tzinfo is not None and when <= self.now, when
        msg = CorpusMessage(folder, raw, when, mid, kind, conv, tags)
        self.messages.append((when, self._seq, msg))
        self._seq += 1
        return msg

    def trace_headers(self, when: datetime, sender: str, envelope_from: str) -> list[str]:
        """What the receiving server prepends at delivery."""
        host = sender.split("@", 1)[1] if "@" in sender else "unknown.example"
        ip = f"203.0.113.{self.rng.randint(2, 250)}"
        mx_date = email.utils.format_datetime(when)
        return [
            f"Return-Path: <{envelope_from}>",
            f"Delivered-To: {self.support}",
            f"Received: from mail-out.{host} (mail-out.{host} [{ip}])\r\n\tby mx1.{self.domain} (Postfix) with "
            f"ESMTPS id {self.token(10, '0123456789ABCDEF')}\r\n\tfor <{self.support}>; {mx_date}",
        ]

    def boundary(self, client: str) -> str:
        if client == "outlook":
            return f"_000_{self.token(40, '0123456789ABCDEF')}_"
        if client == "gmail":
            return f"000000000000{self.token(16)}"
        if client == "apple":
            return f"Apple-Mail={self.token(8, '0123456789ABCDEF')}-{self.token(4, '0123456789ABCDEF')}"
        return f"------------{self.token(24, '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ')}"

    # -- times ---------------------------------------------------------------------------------------------------

    def start_time(self, recent: bool, span_hint: timedelta) -> datetime:
        margin = min(timedelta(minutes=30), self.max_age / 4)
        limit = self.window - min(timedelta(hours=1), self.window / 10)
        if recent or limit <= self.max_age + 2 * margin:
            lo, hi = margin, min(self.max_age - margin, limit)
        else:
            lo = self.max_age + margin
            hi = limit
            if span_hint and hi - lo > span_hint:
                lo = max(lo, min(hi - timedelta(hours=1), span_hint))
        hi = max(lo, hi)
        secs = self.rng.uniform(lo.total_seconds(), hi.total_seconds())
        return (self.now - timedelta(seconds=secs)).replace(microsecond=0)

    def gap(self, prev_role: str, role: str) -> timedelta:
        r = self.rng
        if role == "A":
            return timedelta(minutes=r.uniform(15, 6 * 60))
        if prev_role == "A":
            return timedelta(minutes=r.uniform(20, 20 * 60))
        return timedelta(minutes=r.uniform(10, 5 * 60))

    def schedule(self, start: datetime, roles: list[str]) -> list[datetime]:
        gaps = [self.gap(a, b) for a, b in zip(roles, roles[1:])]
        available = self.now - start - timedelta(minutes=2)
        total = sum(gaps, timedelta())
        min_gap = min(timedelta(minutes=4), available / (len(roles) + 1))
        if total > available:
            f = available / total
            gaps = [max(min_gap, g * f) for g in gaps]
            total = sum(gaps, timedelta())
            if total > available:
                gaps = [available / (len(gaps) + 1)] * len(gaps)
        out = [start]
        for g in gaps:
            out.append((out[-1] + g).replace(microsecond=0))
        return out

    # -- conversations --------------------------------------------------------------------------------------------

    def person(self, lang: str, index: int | None = None, mixed_case: bool = False) -> tuple[str, str]:
        names = _NAMES[lang]
        for _ in range(200):
            display, local = names[index] if index is not None else self.rng.choice(names)
            domain = self.rng.choice(_DOMAINS[lang])
            if index is None and self.rng.random() < 0.3:
                local = f"{local}{self.rng.randint(1, 99)}"
            addr = f"{local}@{domain}"
            if addr not in self._people or index is not None:
                break
            index = None
        self._people.add(addr)
        if mixed_case:
            addr = ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()
        return display, addr

    def context(self, lang: str, display: str, addr: str, charset: str) -> dict:
        r = self.rng
        first = display.split()[0] if lang not in ("zh", "ja") else display
        sep = "." if lang == "en" else ","
        amount_value = f"{r.randint(12, 180)}{sep}{r.randint(0, 99):02d}"
        try:
            "€".encode(charset)
            amount = f"€{amount_value}" if lang == "en" else f"{amount_value} €"
        except UnicodeEncodeError:
            amount = f"EUR {amount_value}"
        odate_dt = self.now - timedelta(days=r.randint(4, 12))
        company = r.choice(_COMPANIES)
        return dict(
            name=display, first=first, addr=addr.lower(), order=f"BB-{r.randint(10000, 19999)}", amount=amount,
            company=company, vat=r.choice(["GB", "DE", "IE", "FR"]) + str(r.randint(100000000, 999999999)),
            street=r.choice(_STREETS), cdomain=addr.split("@", 1)[1].lower(), code=r.choice(_CODES),
            tracking=f"JD{r.randint(10**15, 10**16 - 1)}", product=r.choice(_PRODUCTS), shop=SHOP,
            odate=f"{odate_dt.day}.{odate_dt.month}." if lang in ("de", "ru") else
            (f"{odate_dt.month}月{odate_dt.day}日" if lang in ("zh", "ja") else
             f"{odate_dt.day} {_MONTHS[odate_dt.month - 1]}"),
            custno=str(r.randint(200000, 299999)), giftcard=f"GC-{self.token(4, '0123456789ABCDEFGHJKLMNPQRSTUVWXYZ')}-"
            f"{self.token(4, '0123456789ABCDEFGHJKLMNPQRSTUVWXYZ')}",
            agent="", shop_url=self.shop_url,
        )

    def conversation(self, idx: int, spec: dict, recent: bool) -> None:
        r = self.rng
        lang = spec.get("lang", "en")
        style_name = spec.get("style") or self.pick(_LANG_STYLES[lang])
        style = _STYLES[style_name]
        charset, cte, hdr = style["charset"], style["cte"], style["hdr"]
        client = r.choice(_CLIENTS[style_name])
        roles = list(spec["roles"])
        tags = list(spec.get("tags", ()))
        tags.append(f"charset:{charset}")
        tags.append(f"cte:{cte}")

        # who writes
        spam = spec.get("spam")
        if spam is not None:
            display, addr, subject_t, body_t = _SPAM[spam]
        elif spec.get("repeat_of") is not None and self.conversations:
            first_conv = self.conversations[0]
            display, addr = self.threads[0][0].from_name, first_conv.customer
            lang0 = first_conv.language
            if lang0 != lang:
                lang = lang0
                style_name = "utf8_qp" if lang != "en" else "ascii"
                style = _STYLES[style_name]
                charset, cte, hdr = style["charset"], style["cte"], style["hdr"]
                tags = [t for t in tags if not t.startswith(("charset:", "cte:"))] + [f"charset:{charset}",
                                                                                      f"cte:{cte}"]
        else:
            display, addr = self.person(lang, spec.get("person"), spec.get("mixed_case", False))

        ctx = self.context(lang, display, addr, charset)
        if spam is not None:
            topic_key = "spam"
        elif spec.get("long"):
            topic_key = "long"
        elif spec.get("topic"):
            topic_key = spec["topic"]
        elif lang == "en":
            urgent = ["urgent_missing"] if r.random() < 0.2 else []
            topic_key = r.choice(sorted(k for k in _EN if k != "urgent_missing") + urgent)
        else:
            topic_key = r.choice(sorted(_L10N[lang]["topics"]))

        # the texts of this conversation
        if spam is not None:
            subject = subject_t
            first_text = _fmt(body_t, ctx)
        elif topic_key == "long":
            subject = "Trade account for our two cafes"
            first_text = _fmt(_LONG_THREAD[0], ctx)
        elif topic_key == "windows_path":
            subject = "Invoice export fails with \"access denied\""
            first_text = _fmt(_WINDOWS_PATH_BODY, ctx)
        elif lang == "en":
            t = _EN[topic_key]
            subject = _fmt(r.choice(t["subjects"]), ctx)
            first_text = _fmt(r.choice(t["body"]), ctx)
        else:
            s, b, _f = _L10N[lang]["topics"][topic_key]
            subject, first_text = _fmt(s, ctx), _fmt(b, ctx)
        if spec.get("empty_subject"):
            subject = ""
            first_text = ("Hi,\n\nhow long does shipping to Ireland usually take? I'd like to order the Pour-Over "
                          "Starter Kit as a Christmas present.\n\nThanks\n" + ctx["first"])

        form = bool(spec.get("form"))
        customer_addr = addr.lower()
        conv_tags = tuple(t for t in tags if not t.startswith("cte:"))
        conv = Conversation(customer=customer_addr, subject=("New contact form submission: " + subject) if form
                            else subject, message_ids=[], expect_ack=False, answered_by_agent=False,
                            language=lang, tags=conv_tags)
        self.conversations.append(conv)
        thread: list[_Msg] = []
        self.threads.append(thread)

        span_hint = timedelta(days=3) if spec.get("long") else timedelta()
        start = self.start_time(recent, span_hint)
        times = self.schedule(start, roles)
        tz = r.choice(_TZ[lang])
        threads = list(spec.get("threads", []))
        fmt = spec.get("fmt") or ("alt" if client in ("gmail", "apple") and r.random() < 0.6 else
                                  ("html" if client == "outlook" and r.random() < 0.15 else "plain"))
        if fmt == "html" and "html_only" not in tags:
            tags.append("html_only")
        attach = list(spec.get("attach", []))
        if not attach and topic_key == "damaged" and r.random() < 0.6:
            attach = ["png"]
        agent_turn = 0
        c_turn = 0
        for i, (role, when) in enumerate(zip(roles, times)):
            if role == "C":
                kind = "spam_like" if spam is not None else "customer"
                text = first_text
                if form:
                    text = (f"You have a new message from the contact form on ourshop.example\n\nName: {display}\n"
                            f"Email: {customer_addr}\nOrder number: {ctx['order']}\nTopic: {subject}\n\nMessage:\n"
                            f"{first_text}\n\n--\nSent by Website form")
                m = self.customer_message(
                    conv_idx=idx, thread=thread, lang=lang, charset=charset, cte=cte, hdr=hdr, client=client,
                    display=display, addr=addr, when=when, tz=tz, subject=conv.subject, text=text, own_text=first_text,
                    variant="first", fmt=fmt, attach=attach, kind=kind, no_id=spec.get("no_id", False),
                    importance=spec.get("importance", False), form=form, tags=tuple(tags), ctx=ctx)
                conv.first_when = when
            elif role == "A":
                agent = self.agents[(idx + agent_turn) % len(self.agents)] if self.agents else ("Support", self.support)
                channel = spec.get("agent_channel") or ("sent" if r.random() < 0.6 else "own")
                if topic_key == "long":
                    body = _LONG_THREAD[i]
                elif topic_key == "windows_path":
                    body = _WINDOWS_PATH_AGENT
                elif agent_turn == 0:
                    if topic_key == "spam":  # pragma: no cover - spam is never answered
                        body = "thanks, not interested."
                    elif lang == "de" and topic_key in _L10N["de"]["agent"]:
                        body = _L10N["de"]["agent"][topic_key]
                    elif topic_key in _EN:
                        body = r.choice(_EN[topic_key]["agent"])
                    else:
                        body = r.choice(_EN_AGENT2)
                else:
                    body = r.choice(_EN_AGENT2)
                m = self.agent_message(conv_idx=idx, thread=thread, agent=agent, channel=channel, when=when,
                                       lang=lang if lang == "de" and topic_key in _L10N["de"]["agent"] else "en",
                                       text=_fmt(body, dict(ctx, agent=agent[0])), ctx=ctx, form=form)
                conv.answered_by_agent = True
                agent_turn += 1
            else:  # customer follow-up
                variant = threads[c_turn] if c_turn < len(threads) else self.pick(_THREAD_W)
                c_turn += 1
                after_agent = thread[-1].role == "A"
                last_agent = next((x for x in reversed(thread) if x.role == "A"), None)
                more_agents = "A" in roles[i + 1:]
                if topic_key == "long":
                    body = _LONG_THREAD[i]
                elif topic_key == "windows_path":
                    body = _WINDOWS_PATH_REPLY
                elif after_agent:
                    if lang == "en":
                        pool = _EN[topic_key]["again"] if more_agents or r.random() < 0.3 else _EN_THANKS
                    else:
                        pool = _L10N[lang]["again"] if more_agents else _L10N[lang]["thanks"]
                    body = r.choice(pool)
                else:
                    if lang == "en":
                        body = r.choice(_EN[topic_key]["followup"])
                    else:
                        body = _L10N[lang]["topics"][topic_key][2]
                ctx2 = dict(ctx, agent=last_agent.agent[0] if last_agent and last_agent.agent else "")
                prefix = spec.get("prefix") if variant == "outlook" else None
                if variant == "outlook" and prefix is None:
                    prefix = _OUTLOOK_PREFIX[lang] if lang != "en" else r.choice(_EN_BROKEN_PREFIXES)
                m = self.customer_message(
                    conv_idx=idx, thread=thread, lang=lang, charset=charset, cte=cte, hdr=hdr, client=client,
                    display=display, addr=customer_addr if form else addr, when=when, tz=tz, subject=conv.subject,
                    text=_fmt(body, ctx2), own_text=_fmt(body, ctx2), variant=variant, fmt=fmt,
                    attach=["png"] if (topic_key == "damaged" and not after_agent) else [], kind="customer_reply",
                    prefix=prefix, form=False, tags=tuple(t for t in tags if t not in ("attachment", "big")),
                    ctx=ctx)
            thread.append(m)
            if m.mid and m.mid not in conv.message_ids:
                conv.message_ids.append(m.mid)

        conv.expect_ack = (self.now - conv.first_when <= self.max_age) and not conv.answered_by_agent

    def customer_message(self, *, conv_idx, thread, lang, charset, cte, hdr, client, display, addr, when, tz,
                         subject, text, own_text, variant, fmt, attach, kind, prefix=None, no_id=False,
                         importance=False, form=False, tags=(), ctx=None) -> _Msg:
        r = self.rng
        sender_domain = (FORM_FROM[1] if form else addr).split("@", 1)[1].lower()
        local_dt = self.local_date(when - timedelta(seconds=r.randint(3, 90)), tz)
        mid = "" if no_id else self.new_id(client, sender_domain)
        headers: list[str] = []
        msg_tags = [f"thread:{variant}"] + list(tags)
        in_reply_to = ""
        refs: list[str] = []
        to_line = f"To: {_phrase(SHOP + ' Support')} <{self.support}>" if r.random() < 0.5 else f"To: {self.support}"
        cc_line = ""
        if variant == "first":
            subj = subject
            if ctx and r.random() < 0.1 and not form:
                cc_line = f"Cc: accounts@{sender_domain}"
        else:
            parent = thread[-1]
            base = thread[0].subject
            if parent.role == "A" and parent.channel == "own":
                to_line = hdr.addr("To", parent.agent[0], parent.agent[1])
                cc_line = f"Cc: {self.support}"
            chain = [x for x in parent.refs if x] + ([parent.mid] if parent.mid else [])
            if variant == "full":
                in_reply_to, refs = parent.mid, chain
            elif variant == "irt_only":
                in_reply_to = parent.mid
            elif variant == "refs_only":
                refs = chain
            elif variant == "outlook":
                in_reply_to = parent.mid
            if variant == "outlook":
                subj = prefix + base
                msg_tags.append("prefix:" + prefix.strip())
                parent_from = f"{parent.from_name} <{parent.from_addr}>" if parent.from_name else parent.from_addr
                quoted = (_outlook_block(lang, self.local_date(parent.when, tz), parent_from, parent.to,
                                         parent.subject) + "\n\n" + parent.text)
                text = text + "\n\n" + quoted
            else:
                subj = ("RE: " if client == "outlook" else "Re: ") + base
                if parent.subject.lower().startswith("re:") and parent.role == "A" and lang == "en":
                    subj = parent.subject
                qh = _quote_header(lang, self.local_date(parent.when, tz), parent.from_name or parent.from_addr,
                                   parent.from_addr)
                text = text + "\n\n" + qh + "\n" + _quote(parent.text)

        if form:
            headers.append(hdr.addr("From", *FORM_FROM))
            headers.append(hdr.addr("Reply-To", display, addr))
            envelope = FORM_FROM[1]
        else:
            headers.append(hdr.addr("From", display, addr))
            envelope = addr.lower()
        headers.append(to_line)
        if cc_line:
            headers.append(cc_line)
        headers.append(hdr.text("Subject", subj) if subj else "Subject:")
        headers.append(f"Date: {email.utils.format_datetime(local_dt)}")
        if mid:
            headers.append(f"Message-ID: {mid}")
        if in_reply_to:
            headers.append(f"In-Reply-To: {in_reply_to}")
        if refs:
            headers.append("References: " + "\r\n ".join(refs))
        if importance:
            headers += ["Importance: high", "X-Priority: 1 (Highest)"]
        if client in _MAILER:
            headers.append(f"{_MAILER[client][0]}: {_MAILER[client][1]}")
        if client == "outlook" and variant == "first":
            headers.append(hdr.text("Thread-Topic", subj) if subj else "Thread-Topic:")
        headers.append(f"Content-Language: {dict(zh='zh-CN', ja='ja-JP').get(lang, lang)}")
        body_part = self.body(text, fmt, charset, cte, client, attach, ctx, msg_tags)
        if fmt == "html":
            msg_tags.append("html_only")
        raw = self.assemble(self.trace_headers(when, envelope, envelope) + headers, body_part)
        self.emit("INBOX", raw, when, mid, kind, conv_idx, tuple(dict.fromkeys(msg_tags)))
        return _Msg(mid, when, local_dt, FORM_FROM[0] if form else display, FORM_FROM[1] if form else addr.lower(),
                    self.support, subj, own_text, refs if refs else ([in_reply_to] if in_reply_to else []),
                    "C" if variant == "first" else "c")

    def body(self, text: str, fmt: str, charset: str, cte: str, client: str, attach: list[str], ctx, tags) -> _Part:
        if fmt == "html":
            main = _text_part(_to_html(text, charset, outlook=client == "outlook"), "html", charset, cte)
        elif fmt == "alt":
            alt = _Part([f'Content-Type: multipart/alternative; boundary="{(b := self.boundary(client))}"'],
                        children=[_text_part(text, "plain", charset, cte),
                                  _text_part(_to_html(text, charset, outlook=client == "outlook"), "html", charset,
                                             "quoted-printable" if cte in ("8bit", "7bit") and charset != "iso-2022-jp"
                                             else cte)], boundary=b)
            main = alt
            tags.append("alternative")
        else:
            main = _text_part(text, "plain", charset, cte)
        if not attach:
            return main
        parts = [main]
        for a in attach:
            if a == "png":
                parts.append(_attachment(_png(self.rng), "image/png", f"IMG_{self.rng.randint(1000, 9999)}.png"))
                tags.append("attachment:png")
            elif a == "pdf":
                parts.append(_attachment(_pdf(self.rng, 6000, "Invoice"), "application/pdf", "invoice.pdf"))
                tags.append("attachment:pdf")
            elif a == "pdf_umlaut":
                parts.append(_attachment(_pdf(self.rng, 9000, "Rechnung"), "application/pdf",
                                         "Rechnung März 2026.pdf"))
                tags.append("attachment:pdf")
                tags.append("attachment:rfc2231")
            elif a == "pdf_big":
                parts.append(_attachment(_pdf(self.rng, 1_000_000, "Scan"), "application/pdf",
                                         "scan_invoices_2026.pdf"))
                tags.append("attachment:pdf")
                tags.append("attachment:big")
        b = self.boundary(client)
        return _Part([f'Content-Type: multipart/mixed; boundary="{b}"'], children=parts, boundary=b)

    @staticmethod
    def assemble(headers: list[str], part: _Part) -> bytes:
        head = "".join(h + CRLF for h in headers + ["MIME-Version: 1.0"] + part.headers)
        return head.encode("ascii") + b"\r\n" + part.render_body()

    def agent_message(self, *, conv_idx, thread, agent, channel, when, lang, text, ctx, form) -> _Msg:
        r = self.rng
        parent = thread[-1]
        first = thread[0]
        name, agent_addr = agent
        customer_name = ctx["name"]
        customer_addr = ctx["addr"]
        base = first.subject
        subj = base if base.lower().startswith("re:") else "Re: " + base
        if lang == "de":
            greeting = _L10N["de"]["greeting"].format(**ctx)
            sign = _L10N["de"]["sign"].format(agent=name, shop=SHOP)
        else:
            greeting = f"Hi {ctx['first']},"
            sign = f"Best regards,\n{name}\n{SHOP} Support\n{self.shop_url}/help"
        own = f"{greeting}\n\n{text}\n\n{sign}"
        qh = _quote_header("de" if lang == "de" else "en", self.local_date(parent.when, 60),
                           parent.from_name or parent.from_addr, parent.from_addr)
        full = own + "\n\n" + qh + "\n" + _quote(parent.text)
        hdr = _HeaderStyle("utf-8", "UTF-8", "B")
        chain = [x for x in parent.refs if x] + ([parent.mid] if parent.mid else [])
        if channel == "sent":
            client = "gmail"
            mid = self.new_id(client, self.domain)
            from_line = hdr.addr("From", f"{name} from {SHOP}", self.support)
            folder = "Sent"
            local = self.local_date(when, 60)
        else:
            client = "gmail"
            mid = self.new_id(client, agent_addr.split("@", 1)[1])
            from_line = hdr.addr("From", name, agent_addr)
            folder = "INBOX"
            local = self.local_date(when - timedelta(seconds=r.randint(2, 20)), 60)
        headers = [from_line, hdr.addr("To", customer_name, customer_addr)]
        if channel == "own":
            headers.append(f"Cc: {_phrase(SHOP + ' Support')} <{self.support}>")
        headers += [hdr.text("Subject", subj), f"Date: {email.utils.format_datetime(local)}", f"Message-ID: {mid}"]
        if parent.mid:
            headers.append(f"In-Reply-To: {parent.mid}")
        if chain:
            headers.append("References: " + "\r\n ".join(chain))
        if channel == "sent":
            part = _text_part(full, "plain", "utf-8", "quoted-printable" if not full.isascii() else "7bit")
            all_headers = headers
        else:
            b = self.boundary("gmail")
            part = _Part([f'Content-Type: multipart/alternative; boundary="{b}"'],
                         children=[_text_part(full, "plain", "UTF-8", "quoted-printable"),
                                   _text_part(_to_html(full, "UTF-8"), "html", "UTF-8", "quoted-printable")],
                         boundary=b)
            all_headers = self.trace_headers(when, agent_addr, agent_addr) + headers
        raw = self.assemble(all_headers, part)
        self.emit(folder, raw, when, mid, "agent_reply", conv_idx, (f"channel:{channel}",))
        return _Msg(mid, when, local, f"{name} from {SHOP}" if channel == "sent" else name,
                    self.support if channel == "sent" else agent_addr, customer_addr, subj, own, chain, "A",
                    channel, agent)

    # -- automatic mail -------------------------------------------------------------------------------------------

    def random_time(self, not_before: datetime | None = None) -> datetime:
        lo = (not_before or (self.now - self.window + timedelta(minutes=5)))
        hi = self.now - timedelta(minutes=1)
        secs = self.rng.uniform(0, max(1.0, (hi - lo).total_seconds()))
        return min(hi, lo + timedelta(seconds=secs)).replace(microsecond=0)

    def sent_agent_replies(self, min_age: timedelta) -> list[tuple[int, _Msg]]:
        out = []
        for ci, thread in enumerate(self.threads):
            for m in thread:
                if m.role == "A" and m.channel == "sent" and self.now - m.when >= min_age:
                    out.append((ci, m))
        return out

    def auto_emit(self, kind: str, raw: bytes, when: datetime, mid: str, tags, related: int | None) -> None:
        self.emit("INBOX", raw, when, mid, kind, None, tuple(tags))
        self.automatic[mid] = kind
        if related is not None:
            self.conversations[related].related_automatic.append(mid)

    def autoreplies(self, n: int) -> None:
        r = self.rng
        flavours = ["auto_submitted", "x_autoreply", "exchange", "precedence", "abwesenheit", "subject_only",
                    "gmail_vacation", "x_autorespond", "reponse_auto"]
        targets = self.sent_agent_replies(timedelta(hours=1))
        r.shuffle(targets)
        used: set[int] = set()
        for k in range(n):
            flavour = flavours[k % len(flavours)]
            target = None
            if flavour in ("auto_submitted", "exchange", "abwesenheit", "gmail_vacation") and targets:
                while targets and target is None:
                    ci, m = targets.pop()
                    if ci not in used:
                        target = (ci, m)
                        used.add(ci)
            if target:
                ci, parent = target
                conv = self.conversations[ci]
                frm_name, frm_addr = self.threads[ci][0].from_name, conv.customer
                if "contact_form" in conv.tags:
                    frm_name = ""
                subj_base = parent.subject
                irt = parent.mid
                refs = [x for x in parent.refs if x] + [parent.mid]
                when = min(self.now - timedelta(seconds=30), parent.when + timedelta(seconds=r.randint(20, 240)))
                to = self.support
            else:
                ci = None
                lang = {"x_autoreply": "ru", "abwesenheit": "de", "reponse_auto": "fr"}.get(flavour, "en")
                frm_name, frm_addr = self.person(lang)
                frm_addr = frm_addr.lower()
                subj_base = "Re: " + r.choice(["Your request has been received", "Your order BB-" +
                                                  str(r.randint(10000, 19999)) + " has shipped",
                                                  "Question about your wholesale order"])
                irt = f"<{self.token(16)}.{r.randint(100, 999)}@{self.domain}>"
                refs = [irt]
                when = self.random_time()
                to = self.support
            domain = frm_addr.split("@", 1)[1]
            client = {"exchange": "outlook", "gmail_vacation": "gmail"}.get(flavour, "thunderbird")
            mid = self.new_id(client, domain)
            hdr = _HeaderStyle("utf-8", "UTF-8", "B")
            extra: list[str] = []
            tags = [f"flavour:{flavour}"]
            back = (self.now + timedelta(days=r.randint(3, 12))).strftime("%d %B %Y")
            if flavour == "auto_submitted":
                subj = "Out of Office: " + subj_base
                extra = ["Auto-Submitted: auto-replied"]
                tags.append("signal:auto-submitted")
                body = (f"Thank you for your email. I am out of the office until {back} with limited access to "
                        "email. For urgent matters please contact our office on +44 113 496 0000.\n\nKind regards")
            elif flavour == "x_autoreply":
                subj = "Автоответ: " + subj_base
                extra = ["X-Autoreply: yes"]
                tags.append("signal:x-autoreply")
                body = "Здравствуйте!\n\nЯ в отпуске до 7 декабря. Ваше письмо получено и будет прочитано после " \
                       "моего возвращения.\n\nЭто автоматический ответ."
            elif flavour == "exchange":
                subj = "Automatic reply: " + subj_base
                extra = ["Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: All",
                         hdr.text("Thread-Topic", subj_base), "X-MS-Exchange-Inbox-Rules-Loop: " + frm_addr,
                         "X-MS-Has-Attach:", "X-MS-TNEF-Correlator:"]
                tags += ["signal:auto-submitted", "signal:x-auto-response-suppress"]
                body = (f"I'm currently out of the office and will be back on {back}. I won't be checking email "
                        "regularly. Your message will not be forwarded.")
            elif flavour == "precedence":
                subj = "Away: " + subj_base
                extra = ["Precedence: auto_reply"]
                tags.append("signal:precedence")
                body = "I'm away at a trade fair this week and will reply when I'm back on Monday."
            elif flavour == "abwesenheit":
                subj = "Abwesenheitsnotiz: " + subj_base
                extra = ["Auto-Submitted: auto-replied"]
                tags.append("signal:auto-submitted")
                body = (f"Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich {back} nicht im Büro und habe "
                        "keinen Zugriff auf meine E-Mails. In dringenden Fällen wenden Sie sich bitte an "
                        "info@" + domain + ".\n\nMit freundlichen Grüßen")
            elif flavour == "subject_only":
                subj = "Automatic reply: " + subj_base
                tags.append("signal:subject_only")
                body = "I am on annual leave and will respond to your email on my return."
            elif flavour == "gmail_vacation":
                subj = "Re: " + subj_base if not subj_base.lower().startswith("re:") else subj_base
                extra = ["Auto-Submitted: auto-replied"]
                tags.append("signal:auto-submitted")
                body = f"Hi! I'm travelling without reliable internet until {back}. I'll get back to you then."
            elif flavour == "x_autorespond":
                subj = "Autoreply: " + subj_base
                extra = ["X-Autorespond: Thank you for your message"]
                tags.append("signal:x-autorespond")
                body = "Thank you for contacting us. We have received your message and will reply within 2 " \
                       "business days."
            else:  # reponse_auto
                subj = "Réponse automatique : " + subj_base
                extra = ["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: OOF"]
                tags += ["signal:auto-submitted", "signal:x-auto-response-suppress"]
                body = f"Bonjour,\n\nje suis absente jusqu'au {back}. Je répondrai à votre message dès mon retour."
                hdr = _HeaderStyle("iso-8859-1", "iso-8859-1", "Q")
            charset = "iso-8859-1" if flavour == "reponse_auto" else "utf-8"
            headers = [hdr.addr("From", frm_name, frm_addr), f"To: {to}", hdr.text("Subject", subj),
                       f"Date: {email.utils.format_datetime(self.local_date(when - timedelta(seconds=5), 60))}",
                       f"Message-ID: {mid}", f"In-Reply-To: {irt}", "References: " + "\r\n ".join(refs)] + extra
            part = _text_part(body, "plain", charset, "quoted-printable" if not body.isascii() else "7bit")
            raw = self.assemble(self.trace_headers(when, frm_addr, frm_addr) + headers, part)
            self.auto_emit("autoreply", raw, when, mid, tags + (["related"] if ci is not None else []), ci)

    def lists(self, n: int) -> None:
        r = self.rng
        for k in range(n):
            flavour = k % 6
            when = self.random_time()
            tags = [f"flavour:{flavour}"]
            hdr = _HeaderStyle("utf-8", "UTF-8", "policy")
            fmt_alt = False
            if flavour == 0:
                domain = "greenbean-imports.example"
                frm = hdr.addr("From", "Green Bean Importers", f"newsletter@{domain}")
                envelope = f"bounce-{self.token(12)}@mailer.{domain}"
                subj = r.choice(["Harvest update: first Ethiopian lots arriving",
                                 "Green coffee market report - week 47"])
                extra = [f"List-Id: Green Bean Importers News <news.{domain}>",
                         f"List-Unsubscribe: <mailto:unsubscribe@mailer.{domain}?subject=unsubscribe>,\r\n "
                         f"<https://mailer.{domain}/u/{self.token(24)}>",
                         "List-Unsubscribe-Post: List-Unsubscribe=One-Click", "Precedence: bulk"]
                tags += ["signal:list-id", "signal:list-unsubscribe", "signal:precedence"]
                body = ("This week's market report\n\nC-market arabica closed at 3.12 USD/lb, up 4% on the week. "
                        "First containers of washed Yirgacheffe have cleared customs in Antwerp; samples can be "
                        "requested from your account manager.\n\nYou receive this email because you are a "
                        "customer of Green Bean Importers. Unsubscribe: https://mailer." + domain + "/u")
                fmt_alt = True
            elif flavour == 1:
                domain = "googlegroups.example"
                frm = hdr.addr("From", "Marta Kowalska", "marta@roastery-krakow.example")
                envelope = f"specialty-roasters+bnc{self.token(20)}@{domain}"
                subj = "[specialty-roasters] Anyone else seeing green coffee prices jump?"
                extra = [f"To: specialty-roasters@{domain}", f"List-Id: <specialty-roasters.{domain}>",
                         f"List-Post: <mailto:specialty-roasters@{domain}>",
                         f"List-Help: <https://support.{domain}/>",
                         f"List-Archive: <https://groups.{domain}/group/specialty-roasters/>",
                         f"List-Unsubscribe: <mailto:specialty-roasters+unsubscribe@{domain}>",
                         "Precedence: list",
                         f"Mailing-list: list specialty-roasters@{domain}; contact specialty-roasters+owners@{domain}"]
                tags += ["signal:list-id", "signal:precedence", "from_person"]
                body = ("Hi all,\n\nour importer just raised prices for Brazilian naturals by almost 15% from "
                        "January. Is anyone else seeing this, and are you passing it on to wholesale customers?\n\n"
                        "Marta\nRoastery Krakow")
            elif flavour == 2:
                domain = "mail.shoptools.example"
                frm = hdr.addr("From", "ShopTools Tips", f"hello@{domain}")
                envelope = f"bounces+{r.randint(100000, 999999)}@{domain}"
                subj = "5 ways to cut abandoned carts before Black Friday"
                extra = [f"List-Unsubscribe: <https://{domain}/unsubscribe?u={self.token(20)}>",
                         "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
                tags += ["signal:list-unsubscribe"]
                body = ("Black Friday is coming. Here are five changes you can make today: 1) show shipping costs "
                        "early, 2) offer guest checkout, 3) add express payment buttons, 4) send a reminder after "
                        "one hour, 5) keep the checkout to one page.\n\nManage your email preferences or "
                        "unsubscribe at any time.")
                fmt_alt = True
            elif flavour == 3:
                domain = "lists.kaffee.example"
                frm = hdr.addr("From", "Jürgen Weber", "j.weber@roesterei-weber.example")
                envelope = f"roesterforum-bounces@{domain}"
                subj = "[Röster-Forum] Erfahrungen mit Trommelröstern bis 5 kg?"
                extra = [f"To: roesterforum@{domain}",
                         f"List-Id: {_ew('Forum für Kleinröstereien', 'utf-8', 'utf-8', 'Q')} <roesterforum.{domain}>",
                         f"List-Unsubscribe: <https://{domain}/mailman/options/roesterforum>,\r\n "
                         f"<mailto:roesterforum-request@{domain}?subject=unsubscribe>",
                         f"List-Archive: <https://{domain}/pipermail/roesterforum/>", "Precedence: list",
                         f"Sender: \"Röster-Forum\" <roesterforum-bounces@{domain}>".replace(
                             '"Röster-Forum"', _ew("Röster-Forum", "utf-8", "utf-8", "Q")),
                         f"Errors-To: roesterforum-bounces@{domain}"]
                tags += ["signal:list-id", "signal:precedence", "from_person"]
                body = ("Hallo zusammen,\n\nwir überlegen, von unserem 1-kg-Röster auf einen 5-kg-Trommelröster "
                        "umzusteigen. Hat jemand Erfahrungen mit gebrauchten Geräten?\n\nViele Grüße\nJürgen")
            elif flavour == 4:
                domain = "hostingco.example"
                frm = hdr.addr("From", "HostingCo Status", f"status@{domain}")
                envelope = f"status@{domain}"
                subj = "Scheduled maintenance on 28 November, 02:00-04:00 UTC"
                extra = ["Precedence: bulk"]
                tags += ["signal:precedence"]
                body = ("Dear customer,\n\nwe will perform scheduled maintenance on our shared hosting platform on "
                        "28 November between 02:00 and 04:00 UTC. Websites may be unavailable for up to 10 minutes "
                        "during this window.\n\nHostingCo Operations")
            else:
                domain = "kaffeewelt.example"
                frm = hdr.addr("From", "Kaffeewelt Magazin", f"newsletter@{domain}")
                envelope = f"bounce@{domain}"
                subj = "Kaffee-Newsletter: Neue Ernte aus Äthiopien & Röstprofile im Test"
                extra = [f"List-Id: <newsletter.{domain}>",
                         f"List-Unsubscribe: <https://{domain}/abmelden/{self.token(16)}>",
                         "Precedence: bulk"]
                tags += ["signal:list-id", "signal:list-unsubscribe", "signal:precedence"]
                body = ("Liebe Kaffeefreunde,\n\ndie neue Ernte aus Äthiopien ist da! In dieser Ausgabe: drei "
                        "Röstprofile im Vergleich, ein Interview mit einer Kooperative aus Sidamo und unsere "
                        "Tipps für die perfekte Filtermethode.\n\nNewsletter abbestellen: https://" + domain +
                        "/abmelden")
                fmt_alt = True
            mid = self.new_id("other", domain)
            headers = [frm] + ([] if any(e.startswith("To:") for e in extra) else [f"To: {self.support}"])
            date = email.utils.format_datetime(self.local_date(when - timedelta(seconds=40), 60))
            headers += [hdr.text("Subject", subj), f"Date: {date}", f"Message-ID: {mid}"] + extra
            if fmt_alt:
                b = self.boundary("other")
                part = _Part([f'Content-Type: multipart/alternative; boundary="{b}"'],
                             children=[_text_part(body, "plain", "utf-8", "quoted-printable"),
                                       _text_part(_to_html(body, "utf-8"), "html", "utf-8", "quoted-printable")],
                             boundary=b)
            else:
                part = _text_part(body, "plain", "utf-8", "quoted-printable" if not body.isascii() else "7bit")
            raw = self.assemble(self.trace_headers(when, envelope, envelope) + headers, part)
            self.auto_emit("list", raw, when, mid, tags, None)

    def bounces(self, n: int) -> None:
        r = self.rng
        targets = self.sent_agent_replies(timedelta(minutes=30))
        r.shuffle(targets)
        used: set[int] = set()
        for k in range(n):
            flavour = k % 5
            related = None
            target = None
            if flavour in (0, 2) and targets:
                while targets and target is None:
                    ci, m = targets.pop()
                    if ci not in used:
                        target = (ci, m)
                        used.add(ci)
            if target:
                related, orig = target
                orig_to = self.conversations[related].customer
                orig_subject, orig_mid, orig_when = orig.subject, orig.mid, orig.when
                when = min(self.now - timedelta(seconds=20), orig_when + timedelta(seconds=r.randint(5, 120)))
                status, diag, action = ("5.2.2", "552 5.2.2 <{rcpt}>: Mailbox full, quota exceeded", "failed")
            else:
                _n, orig_to = self.person(r.choice(["en", "de"]))
                orig_to = orig_to.lower().replace("@", "@x" if r.random() < 0.5 else "@typo-")
                orig_subject = f"[Ticket received] Re: Order BB-{r.randint(10000, 19999)}"
                orig_mid = f"<{self.token(16)}.{r.randint(100, 999)}@{self.domain}>"
                when = self.random_time()
                orig_when = when - timedelta(seconds=r.randint(3, 200))
                status, diag, action = ("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
                                        "failed")
                if flavour == 3:
                    status, diag, action = ("4.4.1", "connect to mx.{rdomain}[198.51.100.7]:25: Connection timed out",
                                            "delayed")
            rdomain = orig_to.split("@", 1)[1]
            diag = diag.format(rcpt=orig_to, rdomain=rdomain)
            tags = [f"flavour:{flavour}", "signal:return-path-null", "signal:multipart-report"]
            extra: list[str] = []
            if flavour in (0, 3, 4):  # Postfix
                mta = f"mx{r.randint(1, 3)}.{rdomain}" if flavour != 3 else f"mail.{self.domain}"
                frm = f"From: MAILER-DAEMON@{mta} (Mail Delivery System)"
                subj = ("Delayed Mail (still being retried)" if flavour == 3 else "Undelivered Mail Returned to Sender")
                extra = ["Auto-Submitted: auto-replied"]
                tags += ["signal:mailer-daemon", "signal:auto-submitted"]
                human = (f"This is the mail system at host {mta}.\n\nI'm sorry to have to inform you that your "
                         "message could not be delivered to one or more recipients. It's attached below.\n\n"
                         "For further assistance, please send mail to postmaster.\n\n"
                         f"                   The mail system\n\n<{orig_to}>: {diag}")
                if flavour == 3:
                    human = (f"This is the mail system at host {mta}.\n\n####################################\n"
                             "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                             "####################################\n\nYour message could not be delivered for "
                             "more than 4 hour(s). It will be retried until it is 5 day(s) old.\n\n"
                             f"<{orig_to}>: {diag}")
                client = "other"
            elif flavour == 1:
                mta = "mx.googlemail.example"
                frm = "From: Mail Delivery Subsystem <mailer-daemon@googlemail.example>"
                subj = "Delivery Status Notification (Failure)"
                extra = ["Auto-Submitted: auto-replied", f"In-Reply-To: {orig_mid}", f"References: {orig_mid}"]
                tags += ["signal:mailer-daemon", "signal:auto-submitted"]
                human = (f"** Address not found **\n\nYour message wasn't delivered to {orig_to} because the "
                         "address couldn't be found, or is unable to receive mail.\n\nThe response from the remote "
                         f"server was:\n{diag}")
                client = "other"
            else:  # Exchange NDR: only postmaster, null return path and the report say it is automatic
                mta = f"outbound.protection.{rdomain}"
                frm = f"From: postmaster@{rdomain}"
                subj = "Undeliverable: " + orig_subject
                tags += ["signal:postmaster"]
                human = (f"Delivery has failed to these recipients or groups:\n\n{orig_to}\nThe recipient's "
                         "mailbox is full and can't accept messages now. Please try resending this message later, "
                         "or contact the recipient directly.\n\nDiagnostic information for administrators:\n\n"
                         f"Remote Server returned '{diag}'")
                client = "outlook"
            mid = self.new_id(client if client != "outlook" else "other", mta)
            arrival = email.utils.format_datetime(self.local_date(orig_when, 60))
            dsn = (f"Reporting-MTA: dns; {mta}\nX-Postfix-Queue-ID: {self.token(10, '0123456789ABCDEF')}\n"
                   f"Arrival-Date: {arrival}\n\nFinal-Recipient: rfc822; {orig_to}\nOriginal-Recipient: rfc822;"
                   f"{orig_to}\nAction: {action}\nStatus: {status}\nRemote-MTA: dns; mx.{rdomain}\n"
                   f"Diagnostic-Code: smtp; {diag}\n")
            if action == "delayed":
                retry_until = self.local_date(orig_when + timedelta(days=5), 60)
                dsn += "Will-Retry-Until: " + email.utils.format_datetime(retry_until) + "\n"
            orig_headers = (f"Return-Path: <{self.support}>\nFrom: {SHOP} Support <{self.support}>\nTo: {orig_to}\n"
                            f"{_HeaderStyle('utf-8', 'UTF-8', 'B').text('Subject', orig_subject)}\n"
                            f"Date: {arrival}\nMessage-ID: {orig_mid}\n"
                            f"{'In-Reply-To: <' + self.token(16) + '@mail.example>' + chr(10) if not target else ''}"
                            "Auto-Submitted: auto-replied\nMIME-Version: 1.0\nContent-Type: text/plain; "
                            "charset=\"utf-8\"\n")
            if target:
                orig_headers = orig_headers.replace("Auto-Submitted: auto-replied\n", "")
            b = self.boundary(client)
            part = _Part([f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{b}"'],
                         children=[
                             _Part(["Content-Description: Notification", 'Content-Type: text/plain; charset=us-ascii'],
                                   _crlf(human).encode("ascii") + b"\r\n"),
                             _Part(["Content-Description: Delivery report", "Content-Type: message/delivery-status"],
                                   _crlf(dsn).encode("ascii")),
                             _Part(["Content-Description: Undelivered Message Headers",
                                    "Content-Type: text/rfc822-headers"], _crlf(orig_headers).encode("ascii")),
                         ], boundary=b)
            headers = [frm, f"To: {self.support}", _HeaderStyle("utf-8", "UTF-8", "B").text("Subject", subj),
                       f"Date: {email.utils.format_datetime(self.local_date(when - timedelta(seconds=2), 60))}",
                       f"Message-ID: {mid}"] + extra
            trace = self.trace_headers(when, f"postmaster@{mta}", "")
            raw = self.assemble(trace + headers, part)
            self.auto_emit("bounce", raw, when, mid, tags + (["related"] if target else []), related)

    def noreplies(self, n: int) -> None:
        r = self.rng
        senders = [
            ("Stripe", "noreply@stripe.example", "Your payout of €1,240.50 is on its way",
             "Hi {shop},\n\nA payout of €1,240.50 to your bank account ending in 2211 is on its way and should "
             "arrive by {day}.\n\nView payout details in your Dashboard.\n\nThe Stripe team", [], ["signal:noreply"]),
            ("DHL Paket", "donotreply@dhl.example", "Your parcel JD{track} has been delivered",
             "Hello,\n\nyour parcel JD{track} was delivered today at 10:42 and handed to a neighbour.\n\nThis is an "
             "automatically generated email, please do not reply.", [], ["signal:noreply"]),
            ("Google", "no-reply@accounts.google.example", "Security alert: new sign-in on Windows",
             "A new sign-in on Windows\n\n{support}\n\nWe noticed a new sign-in to your Google Account on a Windows "
             "device. If this was you, you don't need to do anything.", [], ["signal:noreply"]),
            ("Trustpilot", "noreply@trustpilot.example", "You've got a new 2-star review",
             "A customer left a new review for {shop}:\n\n\"Coffee is great, but delivery took 9 days.\"\n\n"
             "Reply to the review in your Trustpilot Business account.", ["Auto-Submitted: auto-generated"],
             ["signal:noreply", "signal:auto-submitted"]),
            ("Shop system", "no-reply@ourshop.example", "New order BB-{order} placed",
             "New order BB-{order}\n\nCustomer: Emma Lawson\nItems: 2 x Espresso Blend 1 kg\nTotal: €41.80\n\n"
             "Open in the shop admin to fulfil it.", [], ["signal:noreply"]),
            ("QuickBooks", "DoNotReply@intuit.example", "Payment received for invoice INV-{order}",
             "Good news! Holloway Hotel Ltd paid invoice INV-{order} (€612.00).\n\nThis mailbox is not monitored.",
             [], ["signal:noreply"]),
        ]
        for k in range(n):
            name, addr, subj, body, extra, tags = senders[k % len(senders)]
            when = self.random_time()
            ctx = dict(shop=SHOP, day=(when + timedelta(days=2)).strftime("%d %b"), track=r.randint(10**15, 10**16 - 1),
                       support=self.support, order=r.randint(10000, 19999))
            subj, body = subj.format(**ctx), body.format(**ctx)
            domain = addr.split("@", 1)[1]
            mid = self.new_id("other", domain)
            hdr = _HeaderStyle("utf-8", "UTF-8", "policy")
            headers = [hdr.addr("From", name, addr), f"To: {self.support}", hdr.text("Subject", subj),
                       f"Date: {email.utils.format_datetime(self.local_date(when - timedelta(seconds=8), 0))}",
                       f"Message-ID: {mid}"] + extra
            part = _text_part(body, "plain", "utf-8", "quoted-printable" if not body.isascii() else "7bit")
            raw = self.assemble(self.trace_headers(when, addr.lower(), f"bounces+{self.token(8)}@{domain}") +
                                headers, part)
            self.auto_emit("noreply", raw, when, mid, [f"sender:{addr.split('@')[0].lower()}"] + tags, None)

    def duplicates(self, n: int) -> None:
        r = self.rng
        candidates = [m for _, _, m in self.messages
                      if m.kind in ("customer", "customer_reply") and m.message_id
                      and self.now - m.when > timedelta(minutes=10)]
        candidates.sort(key=lambda m: m.message_id)
        r.shuffle(candidates)
        for m in candidates[:n]:
            delay = timedelta(seconds=r.randint(30, 6 * 3600))
            when = min(self.now - timedelta(seconds=5), m.when + delay)
            self.emit("INBOX", m.raw, when, m.message_id, "duplicate", m.conversation, m.tags + ("redelivery",))


# --------------------------------------------------------------------------------------------------- public API


def _scaled(base: int, n: int, minimum: int = 1) -> int:
    return max(minimum, round(base * n / 120))


def build_corpus(n_conversations: int = 120, seed: int = 1, now: datetime = datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
                 support: str = "support@example.com",
                 agents=(("Alice", "alice@example.com"), ("Bob", "bob@example.com")), days: float = 10,
                 max_age_hours: float = 24) -> Corpus:
    """Build the mailbox. Same arguments, same bytes."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    rng = random.Random(f"mailhelpdesk-corpus:{seed}")
    b = _Builder(rng, now, support, agents, days, max_age_hours)

    n = max(0, int(n_conversations))
    specs: list[dict] = [dict(s) for s in _FORCED[:n]]
    n_recent = round(0.6 * n)
    forced_recent = sum(1 for s in specs if s.get("recent") is True)
    forced_old = sum(1 for s in specs if s.get("recent") is False)
    free = n - forced_recent - forced_old
    pool = [True] * max(0, n_recent - forced_recent) + [False] * max(0, n - n_recent - forced_old)
    pool = (pool + [True] * free)[:free]
    rng.shuffle(pool)
    for s in specs:
        if "recent" not in s:
            s["recent"] = pool.pop()
    while len(specs) < n:
        recent = pool.pop()
        shape = b.pick(_SHAPE_W_RECENT if recent else _SHAPE_W_OLD)
        specs.append(dict(lang=b.pick(_LANG_W), roles=list(rng.choice(_SHAPES[shape])), recent=recent))
    # Forced conversations are spread over the whole list rather than all coming first.
    order = list(range(len(specs)))
    rng.shuffle(order)
    # the repeat customer needs its original conversation (index 0) to exist first
    specs_sorted = [specs[i] for i in order]
    for s in specs_sorted:
        if s.get("repeat_of") is not None:
            s["repeat_of"] = 0
    first_spec = next((i for i, s in enumerate(specs_sorted) if s.get("repeat_of") is None
                       and s.get("spam") is None and not s.get("form") and not s.get("no_id")), None)
    if first_spec not in (None, 0):
        specs_sorted.insert(0, specs_sorted.pop(first_spec))
    for idx, spec in enumerate(specs_sorted):
        b.conversation(idx, spec, spec["recent"])

    b.autoreplies(_scaled(9, n))
    b.lists(_scaled(6, n))
    b.bounces(_scaled(5, n))
    b.noreplies(_scaled(6, n))
    b.duplicates(_scaled(4, n))

    b.messages.sort(key=lambda t: (t[0], t[1]))
    return Corpus(messages=[m for _, _, m in b.messages], conversations=b.conversations,
                  automatic_ids=dict(b.automatic), support=support, agents=[tuple(a) for a in agents], now=now,
                  max_age_hours=max_age_hours)


if __name__ == "__main__":  # pragma: no cover - a quick look at the numbers
    c = build_corpus()
    print(len(c.messages), "messages;", len(c.conversations), "conversations;",
          sum(x.expect_ack for x in c.conversations), "expected acks")
    print(c.counts())
