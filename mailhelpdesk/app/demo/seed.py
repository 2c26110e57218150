"""The messages of the demo mailbox, dated relative to the moment the demo starts so it always looks fresh.

``demo_messages(now)`` returns ``(folder, raw RFC 5322 bytes)`` pairs in date order: what a small shop's shared
support mailbox holds on an ordinary morning. Among them are everything the demo shows off: a new question with a
threaded follow-up, an urgent outage report, a ticket an agent already answered from the shared address, mail that is
not from a person (an out-of-office reply, a newsletter, a bounce) and a Russian customer writing in KOI8-R sent as
raw 8-bit bytes. Pure standard library; the same ``now`` always gives the same bytes.
"""

from __future__ import annotations

import base64
import email.utils
from datetime import datetime, timedelta, timezone

SUPPORT = "support@demo.example"
SUPPORT_NAME = "Bean & Burr Support"
AGENTS = (("Alice", "alice@demo.example"), ("Bob", "bob@demo.example"))

_CRLF = "\r\n"
_CET = timezone(timedelta(hours=1))


def _date(when: datetime, tz: timezone = _CET) -> str:
    return email.utils.format_datetime(when.astimezone(tz))


def _ew(text: str, charset: str = "utf-8") -> str:
    """One RFC 2047 encoded-word (B) per short chunk, folded."""
    words, chunk = [], ""
    for ch in text:
        if chunk and len(base64.b64encode((chunk + ch).encode(charset))) > 45:
            words.append(chunk)
            chunk = ch
        else:
            chunk += ch
    words.append(chunk)
    return "\r\n ".join(f"=?{charset}?B?{base64.b64encode(w.encode(charset)).decode('ascii')}?=" for w in words)


def _qp(data: bytes) -> bytes:
    out = []
    for line in data.split(b"\r\n"):
        cur = ""
        for i, b in enumerate(line):
            tok = chr(b) if (33 <= b <= 126 and b != 61) or (b in (9, 32) and i != len(line) - 1) else f"={b:02X}"
            if len(cur) + len(tok) > 75:
                out.append(cur + "=")
                cur = ""
            cur += tok
        out.append(cur)
    return _CRLF.join(out).encode("ascii")


def _message(headers: list[str], body: str, *, charset: str = "utf-8", cte: str | None = None,
             content_type: str = "text/plain", trace: tuple[str, datetime] | None = None,
             return_path: str | None = None) -> bytes:
    """Headers are ASCII lines; the body is encoded with charset and sent as cte (7bit, 8bit or quoted-printable)."""
    data = body.replace("\r\n", "\n").replace("\n", "\r\n").encode(charset)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if cte is None:
        cte = "7bit" if data.isascii() else "quoted-printable"
    payload = _qp(data) + b"\r\n" if cte == "quoted-printable" else data
    lines = []
    if trace is not None:
        sender, when = trace
        lines += [f"Return-Path: <{return_path if return_path is not None else sender}>",
                  f"Delivered-To: {SUPPORT}",
                  f"Received: from mail.{sender.rpartition('@')[2] or 'unknown.example'} (203.0.113.25)\r\n\tby "
                  f"mx.demo.example with ESMTPS\r\n\tfor <{SUPPORT}>; {_date(when, timezone.utc)}"]
    lines += headers + ["MIME-Version: 1.0", f'Content-Type: {content_type}; charset="{charset}"',
                        f"Content-Transfer-Encoding: {cte}"]
    return (_CRLF.join(lines) + _CRLF + _CRLF).encode("ascii") + payload


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


def demo_messages(now: datetime) -> list[tuple[str, bytes]]:
    """The demo mailbox as (folder, raw bytes) pairs, oldest first, all dated before ``now``."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    now = now.astimezone(timezone.utc).replace(microsecond=0)
    out: list[tuple[datetime, str, bytes]] = []

    # (4) An older ticket: Priya's question two days ago, answered by Alice from the shared address (Sent).
    t_priya = now - timedelta(days=2, hours=1, minutes=12)
    priya_id = "<CAF3kq9Zp2v1demoPriyaNair0001@mail.gmail.com>"
    priya_text = ("Hi,\n\nis it possible to move my coffee subscription delivery from Monday to Thursday? On "
                  "Mondays nobody is at the studio to take the parcel.\n\nThanks!\nPriya Nair\nNair Design Studio")
    out.append((t_priya, "INBOX", _message([
        "From: Priya Nair <priya@nairdesign.example>", f"To: {SUPPORT_NAME} <{SUPPORT}>",
        "Subject: Change delivery day for my subscription", f"Date: {_date(t_priya, timezone.utc)}",
        f"Message-ID: {priya_id}"], priya_text, trace=("priya@nairdesign.example", t_priya))))

    t_reply = t_priya + timedelta(hours=2, minutes=41)
    reply_id = "<CAB7demoAliceReplyPriya0002@mail.gmail.com>"
    reply_text = ("Hi Priya,\n\nof course. I've moved your subscription to Thursday deliveries, starting with the "
                  "next one. You can change the day yourself any time under My account > Subscription.\n\n"
                  "Best regards,\nAlice\nBean & Burr Support")
    out.append((t_reply, "Sent", _message([
        f"From: Alice from Bean & Burr <{SUPPORT}>", "To: Priya Nair <priya@nairdesign.example>",
        "Subject: Re: Change delivery day for my subscription", f"Date: {_date(t_reply)}",
        f"Message-ID: {reply_id}", f"In-Reply-To: {priya_id}", f"References: {priya_id}"],
        reply_text + "\n\nOn " + _date(t_priya, timezone.utc) + ", Priya Nair <priya@nairdesign.example> wrote:\n"
        + _quote(priya_text))))

    # (5) Priya's out-of-office answers Alice's reply: information on the ticket, never a reason to reopen it.
    t_ooo = t_reply + timedelta(minutes=1, seconds=12)
    out.append((t_ooo, "INBOX", _message([
        "From: Priya Nair <priya@nairdesign.example>", f"To: {SUPPORT}",
        "Subject: Automatic reply: Re: Change delivery day for my subscription", f"Date: {_date(t_ooo)}",
        "Message-ID: <ooo.demo0003@nairdesign.example>", f"In-Reply-To: {reply_id}",
        f"References: {priya_id}\r\n {reply_id}", "Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All"],
        "I'm at a design fair until Friday with limited access to email. I'll reply when I'm back.\n\nPriya",
        trace=("priya@nairdesign.example", t_ooo))))

    # (6) A supplier's newsletter.
    t_news = now - timedelta(hours=5, minutes=3)
    out.append((t_news, "INBOX", _message([
        "From: Green Bean Importers <newsletter@greenbean-imports.example>", f"To: {SUPPORT}",
        "Subject: Harvest update: first Ethiopian lots arriving", f"Date: {_date(t_news)}",
        "Message-ID: <nl.demo0004@mailer.greenbean-imports.example>",
        "List-Id: Green Bean Importers News <news.greenbean-imports.example>",
        "List-Unsubscribe: <mailto:unsubscribe@mailer.greenbean-imports.example?subject=unsubscribe>,\r\n "
        "<https://mailer.greenbean-imports.example/u/demo>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click", "Precedence: bulk"],
        "This week's market report\n\nThe first containers of washed Yirgacheffe have cleared customs; samples "
        "can be requested from your account manager.\n\nUnsubscribe: https://mailer.greenbean-imports.example/u/demo",
        trace=("bounce-demo@mailer.greenbean-imports.example", t_news))))

    # (7) A bounce of an earlier acknowledgement sent to a mistyped address.
    t_bounce = now - timedelta(hours=3, minutes=18)
    boundary = "demo-report-7f3a9c"
    bad = "m.kowalski@gmial.example"
    report = _CRLF.join([
        "This is a multi-part message in MIME format.", "", f"--{boundary}",
        "Content-Description: Notification", "Content-Type: text/plain; charset=us-ascii", "",
        "This is the mail system at host mx.demo.example.", "",
        "I'm sorry to have to inform you that your message could not be delivered to one or more recipients.", "",
        f"<{bad}>: host gmial.example said: 550 5.1.1 <{bad}>: Recipient address rejected: User unknown", "",
        f"--{boundary}", "Content-Description: Delivery report", "Content-Type: message/delivery-status", "",
        "Reporting-MTA: dns; mx.demo.example", f"Arrival-Date: {_date(t_bounce - timedelta(seconds=4))}", "",
        f"Final-Recipient: rfc822; {bad}", "Action: failed", "Status: 5.1.1",
        f"Diagnostic-Code: smtp; 550 5.1.1 <{bad}>: Recipient address rejected: User unknown", "",
        f"--{boundary}", "Content-Description: Undelivered Message Headers", "Content-Type: text/rfc822-headers", "",
        f"From: {SUPPORT_NAME} <{SUPPORT}>", f"To: {bad}", "Subject: [HD-7] We have received your request",
        f"Date: {_date(t_bounce - timedelta(seconds=4))}", "Message-ID: <ack.hd7.demo0005@demo.example>",
        "Auto-Submitted: auto-replied", "", f"--{boundary}--", ""])
    headers = ["Return-Path: <>", f"Delivered-To: {SUPPORT}",
               f"Received: by mx.demo.example (Postfix); {_date(t_bounce, timezone.utc)}",
               "From: MAILER-DAEMON@mx.demo.example (Mail Delivery System)", f"To: {SUPPORT}",
               "Subject: Undelivered Mail Returned to Sender", f"Date: {_date(t_bounce)}",
               "Message-ID: <bounce.demo0006@mx.demo.example>", "Auto-Submitted: auto-replied",
               "MIME-Version: 1.0",
               f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"']
    out.append((t_bounce, "INBOX", (_CRLF.join(headers) + _CRLF + _CRLF + report).encode("ascii")))

    # (8) A Russian customer, KOI8-R sent as raw 8-bit bytes (the mail that breaks other helpdesks).
    t_ru = now - timedelta(hours=1, minutes=34)
    ru_name = "Ольга Кузнецова"
    out.append((t_ru, "INBOX", _message([
        f"From: {_ew(ru_name, 'koi8-r')} <olga.k@pochta.example>", f"To: {SUPPORT}",
        f"Subject: {_ew('Не приходит письмо с подтверждением', 'koi8-r')}",
        f"Date: {_date(t_ru, timezone(timedelta(hours=3)))}",
        "Message-ID: <demo0007@pochta.example>", "User-Agent: Mutt/2.2.12"],
        "Здравствуйте!\n\nЯ зарегистрировалась на вашем сайте вчера вечером, но письмо с подтверждением так и не "
        "пришло (папку \"Спам\" проверила). Без подтверждения не могу оформить заказ.\n\nАдрес: "
        "olga.k@pochta.example\n\nС уважением,\nОльга Кузнецова",
        charset="koi8-r", cte="8bit", trace=("olga.k@pochta.example", t_ru))))

    # (1) + (2) Anna Müller asks about an invoice, then follows up 20 minutes later in the same thread.
    t_anna = now - timedelta(minutes=52)
    anna_id = "<5f0c2a1e-demo-4b7e-9a51-anna00000008@posteo.example>"
    anna_from = f"From: Anna {_ew('Müller')} <anna.mueller@posteo.example>"
    anna_text = ("Hello,\n\nI received invoice INV-2026-1184 for my last order, but it shows 19% VAT on the shipping "
                 "twice. The total should be 46.80 EUR, not 49.65 EUR. Could you check and send a corrected invoice? "
                 "I need it for my tax return.\n\nBest regards,\nAnna Müller")
    out.append((t_anna, "INBOX", _message([
        anna_from, f"To: {SUPPORT_NAME} <{SUPPORT}>", "Subject: Question about invoice INV-2026-1184",
        f"Date: {_date(t_anna)}", f"Message-ID: {anna_id}", "User-Agent: Mozilla Thunderbird"],
        anna_text, trace=("anna.mueller@posteo.example", t_anna))))
    t_anna2 = t_anna + timedelta(minutes=20)
    out.append((t_anna2, "INBOX", _message([
        anna_from, f"To: {SUPPORT_NAME} <{SUPPORT}>", "Subject: Re: Question about invoice INV-2026-1184",
        f"Date: {_date(t_anna2)}", "Message-ID: <9d41b7c3-demo-4f02-8c6e-anna00000009@posteo.example>",
        f"In-Reply-To: {anna_id}", f"References: {anna_id}", "User-Agent: Mozilla Thunderbird"],
        "Sorry, I forgot: the invoice should be addressed to my company, Müller Grafikdesign, VAT ID DE298765431."
        "\n\nAnna\n\nAm " + t_anna.astimezone(_CET).strftime("%d.%m.%Y um %H:%M") + " schrieb Anna Müller:\n"
        + _quote(anna_text), trace=("anna.mueller@posteo.example", t_anna2))))

    # (3) An urgent outage report.
    t_urgent = now - timedelta(minutes=17)
    out.append((t_urgent, "INBOX", _message([
        "From: Tom Becker <tom@becker-bakery.example>", f"To: {SUPPORT}",
        "Subject: URGENT: checkout is down, we are losing orders", f"Date: {_date(t_urgent)}",
        "Message-ID: <CAE9demoTomBeckerUrgent0010@mail.gmail.com>", "Importance: high", "X-Priority: 1 (Highest)"],
        "Hi,\n\nsince about 30 minutes every customer who tries to pay in our shop gets \"Payment provider not "
        "available\". We've had four complaints already and we're losing orders by the minute. Please call me on "
        "+49 30 901820 as soon as you see this.\n\nTom Becker\nBecker's Bakery",
        trace=("tom@becker-bakery.example", t_urgent))))

    out.sort(key=lambda t: t[0])
    return [(folder, raw) for _when, folder, raw in out]
