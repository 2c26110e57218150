"""A 10 MB subject is read for its ticket tag and then cut: tickets, the state and every mail we send keep a
title of at most parse.TITLE_LIMIT characters (issue 16, item 7)."""

from __future__ import annotations

import base64
import dataclasses
import email.headerregistry
import email.policy
import functools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailhelpdesk.config import config_from_dict
from mailhelpdesk.app.daemon import Helpdesk
from mailhelpdesk.backends.local import LocalMailbox
from mailhelpdesk.model import SendMail
from mailhelpdesk.core.mail.parse import HEADER_LIMIT, TITLE_LIMIT, clean_title, parse_message, shorten
from test_engine import BASE, NOW, Desk, make_config

TEN_MB = 10 * 1024 * 1024
OPENING = "Re: [HD-42] The printer on floor 3 prints blank pages"
DEEP = "paragraph-500"  # some 7,000 characters in, well inside HEADER_LIMIT: kept and sent nowhere


def long_text(opening: str = OPENING, size: int = TEN_MB) -> str:
    filler = " ".join(f"paragraph-{n}" for n in range(size // 12))
    return f"{opening} {filler}"[:size]


def folded_subject(text: str) -> str:
    """The subject as a client folds it: lines of at most 78 characters, each continuation starting with a space."""
    words, lines, line = text.split(" "), [], "Subject:"
    for word in words:
        if len(line) + 1 + len(word) > 78:
            lines.append(line)
            line = ""
        line += " " + word
    return "\r\n".join([*lines, line])


def encoded_subject(text: str) -> str:
    """The subject as RFC 2047 encoded words (base64 UTF-8), one per folded line of at most 78 characters."""
    pieces = (text[start:start + 15] for start in range(0, len(text), 15))  # 15 characters: at most 45 bytes
    return "Subject: " + "\r\n ".join(f"=?utf-8?b?{base64.b64encode(p.encode()).decode()}?=" for p in pieces)


def message(subject_field: str, sender: str = "anna@customer.example", body: str = "Nothing comes out.") -> bytes:
    return (
        f"From: Anna <{sender}>\r\nTo: support@shop.example\r\n{subject_field}\r\n"
        "Date: Fri, 20 Nov 2026 10:00:00 +0000\r\nMessage-ID: <long1@customer.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


OPENINGS = {"folded": OPENING, "encoded": "Re: [HD-42] Принтер на третьем этаже печатает пустые страницы"}


@functools.cache  # built when a test asks (10 MB each), once
def ten_megabytes(form: str) -> bytes:
    fold = folded_subject if form == "folded" else encoded_subject
    return message(fold(long_text(OPENINGS[form])))


@pytest.mark.parametrize("form", ["folded", "encoded"])
def test_the_messages_are_what_the_tests_say(form):
    raw = ten_megabytes(form)
    assert len(raw) > TEN_MB and max(len(line) for line in raw.split(b"\r\n")) <= 78


@pytest.mark.parametrize(
    "form, title",
    [
        ("folded", "The printer on floor 3 prints blank pages paragraph-0 paragraph-1 paragraph-2"),
        ("encoded", "Принтер на третьем этаже печатает пустые страницы paragraph-0 paragraph-1 paragraph-2"),
    ],
)
def test_a_ten_megabyte_subject_gives_a_short_title_and_keeps_its_tag(form, title):
    facts = parse_message(ten_megabytes(form))
    assert facts.ticket_tag == "HD-42"  # read before the cut
    assert facts.title.startswith(title) and facts.title.endswith("…") and len(facts.title) <= TITLE_LIMIT
    assert facts.subject.startswith("Re: [HD-42] ") and facts.subject.endswith("…")
    assert len(facts.subject) <= TITLE_LIMIT
    written = long_text(OPENINGS[form]).removeprefix("Re: [HD-42] ")
    assert written.startswith(facts.title.removesuffix("…") + " ")  # cut at a word's end, not inside one
    assert (facts.sender, facts.message_id, facts.body.strip()) == (
        "anna@customer.example", "<long1@customer.example>", "Nothing comes out.")


@pytest.mark.parametrize("form", ["folded", "encoded"])
def test_the_structured_parser_reads_the_subject_once_and_at_most_header_limit(form, monkeypatch):
    """What keeps a 10 MB subject fast: the header parser (quadratic on huge values) gets one bounded value."""
    seen: list[int] = []
    original = email.headerregistry.HeaderRegistry.__call__

    def counting(self, name, value):
        if name.lower() == "subject":
            seen.append(len(value))
        return original(self, name, value)

    raw = ten_megabytes(form)
    monkeypatch.setattr(email.headerregistry.HeaderRegistry, "__call__", counting)
    parse_message(raw)
    assert len(seen) == 1 and seen[0] <= HEADER_LIMIT


def test_a_tag_beyond_the_cut_still_threads():
    subject = "Subject: " + " ".join(["lorem"] * 100) + " [HD-7] printer"
    facts = parse_message(message(subject))
    assert facts.ticket_tag == "HD-7"
    assert "[HD-7]" not in facts.title and len(facts.title) <= TITLE_LIMIT


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("short subject", 20, "short subject"),
        ("exactly twenty chars", 20, "exactly twenty chars"),
        ("the printer prints blank pages", 20, "the printer prints…"),  # the cut falls after a whole word
        ("the printer prints blank pages", 16, "the printer…"),  # inside "prints": back to the word's end
        ("Supercalifragilisticexpialidocious", 10, "Supercali…"),  # one long word: cut where the limit falls
        ("打印机打印出空白页打印机打印出空白页", 8, "打印机打印出空…"),  # no spaces at all
        ("a " + "x" * 60, 40, "a " + "x" * 37 + "…"),  # the only word end is too far back
    ],
)
def test_shorten(text, limit, expected):
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= limit


def test_clean_title_of_a_long_subject_is_cut_and_stays_idempotent():
    subject = "Fwd: Re: [HD-3] " + " ".join(["word"] * 500)
    title = clean_title(subject)
    assert title == " ".join(["word"] * 40) + "…" and len(title) == TITLE_LIMIT
    assert clean_title(title) == title


def sends(desk) -> list[SendMail]:
    return [a for a in desk.actions if isinstance(a, SendMail)]


def assert_short(mails: list[SendMail]) -> None:
    for mail in mails:
        assert len(mail.subject) < 1024, (mail.kind, len(mail.subject))
        assert DEEP not in mail.subject and DEEP not in mail.body and DEEP not in (mail.html or ""), mail.kind
        assert len(mail.body) < 20_000, (mail.kind, len(mail.body))


@pytest.mark.parametrize("backend", ["local", "gmail"])  # on Gmail our subject is "Re: " + the ticket's title
def test_acknowledgement_notice_and_digest_echo_a_short_title(backend):
    desk = Desk(make_config(mailbox={"backend": backend}, sla={"escalate_to": ["lead@shop.example"]},
                            digest={"schedule": "0 9 * * mon-fri"}))
    desk.feed(message(folded_subject(long_text("A printer on floor 3 prints blank pages"))))
    ticket = desk.ticket()
    if backend == "gmail":
        desk.state.tickets[ticket.key] = dataclasses.replace(ticket, thread_ids=("18c0ffee",))
    monday = datetime(2026, 11, 23, 9, tzinfo=ZoneInfo("Europe/Vienna"))
    for now in (NOW, NOW + timedelta(minutes=5), monday - timedelta(minutes=5), monday + timedelta(minutes=5)):
        desk.tick(now)  # the acknowledgement and the notice; on Monday the digests and the reminders
    title = desk.ticket().subject
    assert title.startswith("A printer on floor 3 prints blank pages") and len(title) <= TITLE_LIMIT
    mails = sends(desk)
    (ack,) = [m for m in mails if m.kind == "acknowledgement"]
    assert "A printer on floor 3 prints blank pages" in ack.subject
    assert any(m.to == "alice@shop.example" and title[:60] in m.body for m in mails)  # the notice to the assignee
    assert any("digest" in m.kind for m in mails)
    assert_short(mails)


def test_command_rejection_echoes_a_short_subject():
    desk = Desk()
    desk.feed(message(folded_subject(long_text("About the printer")), sender="alice@shop.example",
                      body="#resolve"))  # no trusted authentication: refused, with a reply that says why
    (rejection,) = [m for m in sends(desk) if m.kind == "command rejected"]
    assert rejection.to == "alice@shop.example" and rejection.subject.startswith("Commands not carried out: ")
    assert_short([rejection])


def test_the_daemon_sends_and_keeps_only_the_short_title(tmp_path):
    """Through the whole path: a local mailbox, a pass, the sent copies as they would leave, the state file."""
    config = config_from_dict({**BASE, "helpdesk": {**BASE["helpdesk"], "state_file": "state.json"}},
                              path=tmp_path / "c.toml")
    box = LocalMailbox(tmp_path / "mailbox")
    box.connect()
    box.deliver("INBOX", message(folded_subject(long_text("A printer on floor 3 prints blank pages"))), NOW)
    desk = Helpdesk(config, mailbox=box, clock=lambda: NOW + timedelta(minutes=1))
    desk.run_pass()
    desk.run_pass()
    sent = [copy.read_bytes() for copy in sorted((tmp_path / "mailbox" / "Sent").glob("*.eml"))]
    subjects = [str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"]) for raw in sent]
    assert any(s.startswith("[HD-1] A printer on floor 3 prints blank pages") for s in subjects)  # the acknowledgement
    for raw, subject in zip(sent, subjects):
        assert DEEP.encode() not in raw and len(raw) < 50_000 and len(subject) < 1024
    kept = b"".join(p.read_bytes() for p in tmp_path.glob("state.json*") if p.is_file())
    assert kept and DEEP.encode() not in kept
