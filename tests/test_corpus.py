"""The corpus generator's ground truth is consistent with the bytes it produces (and the demo seed is sane)."""

from __future__ import annotations

import email
import email.policy
import email.utils
import functools
import re
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:  # conftest.py normally sees to this
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import AUTOMATIC_KINDS, Corpus, build_corpus  # noqa: E402

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
POLICY = email.policy.default
PERSON_MAIL = {"customer", "customer_reply", "agent_reply", "spam_like", "duplicate"}


@functools.lru_cache(maxsize=None)
def corpus(**kwargs) -> Corpus:
    return build_corpus(**kwargs)


@functools.lru_cache(maxsize=None)
def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=POLICY)


@pytest.fixture(scope="module")
def c() -> Corpus:
    return corpus()


def msgs_with(c: Corpus, tag: str):
    return [m for m in c.messages if tag in m.tags]


def automatic_signals(msg) -> set[str]:
    """A test-side RFC 3834 check (RFC 3834 as the README describes it), independent of the product's own predicate."""
    signs = set()
    auto = msg.get("Auto-Submitted")
    if auto is not None and str(auto).strip().lower() != "no":
        signs.add("auto-submitted")
    if str(msg.get("Return-Path", "")).strip() == "<>":
        signs.add("return-path-null")
    for addr_header in ("From", "Sender"):
        for _name, addr in email.utils.getaddresses([str(v) for v in msg.get_all(addr_header, [])]):
            local = addr.split("@", 1)[0].lower()
            if (local in ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply")
                    or local.startswith(("owner-", "bounce")) or local.endswith("-request")):
                signs.add("sender")
    if any(k.lower().startswith("list-") for k in msg.keys()):
        signs.add("list")
    if str(msg.get("Precedence", "")).strip().lower() in ("bulk", "junk", "list", "auto_reply"):
        signs.add("precedence")
    suppress = str(msg.get("X-Auto-Response-Suppress", "")).lower()
    if any(x in suppress for x in ("all", "oof", "autoreply")):
        signs.add("x-auto-response-suppress")
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        signs.add("x-autoreply")
    if msg.get_content_type() == "multipart/report":
        signs.add("report")
    return signs


def references_of(msg) -> set[str]:
    ids = set()
    for h in ("In-Reply-To", "References"):
        for v in msg.get_all(h, []):
            ids.update(re.findall(r"<[^>]+>", str(v)))
    return ids


# ------------------------------------------------------------------------------------------------ shape and counts


def test_counts_per_kind_are_in_range(c):
    counts = Counter(m.kind for m in c.messages)
    assert 300 <= len(c.messages) <= 450, counts
    assert len(c.conversations) == 120
    assert counts["customer"] + counts["spam_like"] == len(c.conversations)
    assert 2 <= counts["spam_like"] <= 5
    assert 50 <= counts["customer_reply"] <= 140
    assert 50 <= counts["agent_reply"] <= 140
    assert 6 <= counts["autoreply"] <= 12
    assert 4 <= counts["list"] <= 9
    assert 3 <= counts["bounce"] <= 8
    assert 4 <= counts["noreply"] <= 9
    assert 2 <= counts["duplicate"] <= 6
    assert 20 <= sum(counts[k] for k in AUTOMATIC_KINDS) <= 32
    assert set(counts) <= PERSON_MAIL | AUTOMATIC_KINDS


def test_folders(c):
    assert {m.folder for m in c.messages} == {"INBOX", "Sent"}
    for m in c.messages:
        if m.folder == "Sent":
            assert m.kind == "agent_reply"


def test_about_60_percent_of_conversations_are_recent_and_acks_follow_the_definition(c):
    max_age = timedelta(hours=c.max_age_hours)
    recent = 0
    for conv in c.conversations:
        first = min(m.when for m in c.messages if m.conversation is not None
                    and c.conversations[m.conversation] is conv and m.kind in ("customer", "spam_like"))
        assert first == conv.first_when
        is_recent = c.now - first <= max_age
        recent += is_recent
        answered = any(m.kind == "agent_reply" and c.conversations[m.conversation] is conv for m in c.messages)
        assert conv.answered_by_agent == answered
        assert conv.expect_ack == (is_recent and not answered)
    assert 0.5 <= recent / len(c.conversations) <= 0.7
    acks = sum(conv.expect_ack for conv in c.conversations)
    assert 20 <= acks <= 60
    # some recent conversations were already answered, some old ones never were
    assert any(conv.answered_by_agent and c.now - conv.first_when <= max_age for conv in c.conversations)
    assert any(not conv.answered_by_agent and c.now - conv.first_when > max_age for conv in c.conversations)


# ------------------------------------------------------------------------------------------------ bytes


def test_every_message_parses_without_defects(c):
    for m in c.messages:
        msg = parsed(m.raw)
        for part in msg.walk():
            assert not part.defects, (m.kind, m.tags, part.defects)
        for name, value in msg.items():
            assert not value.defects, (m.kind, name, value.defects)
        assert msg["From"] is not None and msg["Date"] is not None and msg["To"] is not None
        assert msg["From"].addresses, (m.kind, str(msg["From"]))
        assert msg["Date"].datetime.tzinfo is not None
        body = msg.get_body(preferencelist=("plain", "html"))
        if msg.get_content_type() != "multipart/report":
            assert body is not None and body.get_content().strip(), m.tags


def test_crlf_line_endings_and_line_length(c):
    for m in c.messages:
        assert m.raw.count(b"\n") == m.raw.count(b"\r\n"), m.tags
        assert b"\r\r" not in m.raw
        assert max(len(line) for line in m.raw.split(b"\r\n")) <= 998
        head = m.raw.split(b"\r\n\r\n", 1)[0]
        assert head.isascii(), (m.kind, m.tags)


def test_message_id_header_matches(c):
    no_id = [m for m in c.messages if not m.message_id]
    assert len(no_id) == 1 and no_id[0].kind == "customer" and "no_message_id" in no_id[0].tags
    for m in c.messages:
        header = parsed(m.raw)["Message-ID"]
        if m.message_id:
            assert str(header).strip() == m.message_id
        else:
            assert header is None


def test_message_ids_unique_except_redeliveries(c):
    ids = Counter(m.message_id for m in c.messages if m.message_id)
    for mid, n in ids.items():
        if n > 1:
            same = [m for m in c.messages if m.message_id == mid]
            assert n == 2 and [m.kind for m in same][1] == "duplicate"
            assert same[0].raw == same[1].raw and same[0].when < same[1].when
    dups = [m for m in c.messages if m.kind == "duplicate"]
    assert dups and all(ids[m.message_id] == 2 for m in dups)


def test_times(c):
    assert c.now == NOW
    for m in c.messages:
        assert m.when.tzinfo is not None and m.when.utcoffset() == timedelta(0)
        assert NOW - timedelta(days=10) <= m.when <= NOW
        date = parsed(m.raw)["Date"].datetime
        assert date <= m.when, (m.kind, date, m.when)
        if m.kind != "duplicate":  # a re-delivery arrives later than the Date it carries
            assert m.when - date <= timedelta(minutes=5), (m.kind, date, m.when)
    whens = [m.when for m in c.messages]
    assert whens == sorted(whens), "messages are in delivery order"
    # INBOX and Sent are interleaved
    folders = "".join(m.folder[0] for m in c.messages)
    assert "ISI" in folders


# ------------------------------------------------------------------------------------------------ ground truth


def test_conversation_ids_exist_and_are_person_mail(c):
    by_id: dict[str, list] = {}
    for m in c.messages:
        by_id.setdefault(m.message_id, []).append(m)
    seen: set[str] = set()
    for i, conv in enumerate(c.conversations):
        assert conv.customer == conv.customer.lower() and "@" in conv.customer
        assert len(conv.message_ids) == len(set(conv.message_ids))
        if "no_message_id" in conv.tags:
            assert conv.message_ids == []
            continue
        assert conv.message_ids
        for mid in conv.message_ids:
            assert mid in by_id, mid
            assert mid not in seen, "a message belongs to one conversation"
            seen.add(mid)
            for m in by_id[mid]:
                assert m.kind in PERSON_MAIL and m.conversation == i
    for i, m in enumerate(c.messages):
        if m.kind in PERSON_MAIL:
            assert m.conversation is not None
            conv = c.conversations[m.conversation]
            assert m.message_id in conv.message_ids or (not m.message_id and "no_message_id" in conv.tags)


def test_first_message_subject_and_customer(c):
    for i, conv in enumerate(c.conversations):
        first = next(m for m in c.messages if m.conversation == i and m.kind in ("customer", "spam_like"))
        msg = parsed(first.raw)
        assert str(msg["Subject"] or "") == conv.subject
        if "contact_form" in conv.tags:
            assert msg["From"].addresses[0].addr_spec == "forms@ourshop.example"
            assert msg["Reply-To"].addresses[0].addr_spec.lower() == conv.customer
        else:
            assert msg["From"].addresses[0].addr_spec.lower() == conv.customer


def test_automatic_ids_are_exactly_the_automatic_messages(c):
    auto = {m.message_id: m.kind for m in c.messages if m.kind in AUTOMATIC_KINDS}
    assert auto == c.automatic_ids
    in_convs = {mid for conv in c.conversations for mid in conv.message_ids}
    assert not in_convs & set(c.automatic_ids)
    for m in c.messages:
        if m.kind in AUTOMATIC_KINDS:
            assert m.conversation is None


def test_automatic_mail_is_recognisable_and_person_mail_is_not(c):
    subject_only = 0
    for m in c.messages:
        msg = parsed(m.raw)
        signs = automatic_signals(msg)
        if m.kind in AUTOMATIC_KINDS:
            if "signal:subject_only" in m.tags:
                subject_only += 1
                assert not signs and str(msg["Subject"]).startswith("Automatic reply:")
            else:
                assert signs, (m.kind, m.tags)
        else:
            assert not signs, (m.kind, m.tags, signs)
    assert subject_only == 1


def test_automatic_flavours(c):
    auto = [parsed(m.raw) for m in c.messages if m.kind == "autoreply"]
    headers = Counter(k.lower() for msg in auto for k in msg.keys())
    assert headers["auto-submitted"] >= 3 and headers["x-autoreply"] >= 1 and headers["x-autorespond"] >= 1
    assert headers["x-auto-response-suppress"] >= 1 and headers["precedence"] >= 1
    subjects = [str(msg["Subject"]) for msg in auto]
    assert any(s.startswith("Automatic reply:") for s in subjects)
    assert any(s.startswith("Abwesenheitsnotiz") for s in subjects)
    lists = [parsed(m.raw) for m in c.messages if m.kind == "list"]
    assert any(msg["List-Id"] for msg in lists) and any(msg["List-Unsubscribe"] for msg in lists)
    assert any(str(msg.get("Precedence", "")) == "bulk" for msg in lists)
    noreply_locals = {parsed(m.raw)["From"].addresses[0].username.lower() for m in c.messages if m.kind == "noreply"}
    assert {"noreply", "no-reply", "donotreply"} <= noreply_locals


def test_bounces_are_delivery_reports(c):
    bounces = [m for m in c.messages if m.kind == "bounce"]
    for m in bounces:
        msg = parsed(m.raw)
        assert str(msg["Return-Path"]) == "<>"
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "delivery-status"
        types = [p.get_content_type() for p in msg.iter_parts()]
        assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
        local = msg["From"].addresses[0].username.lower()
        assert local in ("mailer-daemon", "postmaster")
    assert any(parsed(m.raw)["From"].addresses[0].username == "MAILER-DAEMON" for m in bounces)


def test_related_automatic_mail_points_into_its_conversation(c):
    related = 0
    for conv in c.conversations:
        ids = set(conv.message_ids)
        for mid in conv.related_automatic:
            related += 1
            m = next(x for x in c.messages if x.message_id == mid)
            msg = parsed(m.raw)
            if m.kind == "autoreply":
                assert references_of(msg) & ids
                assert msg["From"].addresses[0].addr_spec.lower() == conv.customer
            else:
                assert m.kind == "bounce"
                headers_part = list(msg.iter_parts())[2].get_content()
                assert any(i in headers_part for i in ids)
    assert related >= 3


# ------------------------------------------------------------------------------------------------ threading


def test_every_follow_up_refers_to_an_earlier_message_of_its_conversation(c):
    for i in range(len(c.conversations)):
        earlier: set[str] = set()
        for m in c.messages:
            if m.conversation != i or m.kind == "duplicate":
                continue
            msg = parsed(m.raw)
            if m.kind in ("customer", "spam_like"):
                assert not references_of(msg), m.tags
            else:
                assert references_of(msg) & earlier, (m.kind, m.tags)
            earlier.add(m.message_id)


def test_threading_variants(c):
    replies = [m for m in c.messages if m.kind == "customer_reply"]
    variants = Counter(t for m in replies for t in m.tags if t.startswith("thread:"))
    assert set(variants) == {"thread:full", "thread:irt_only", "thread:refs_only", "thread:outlook"}
    for m in replies:
        msg = parsed(m.raw)
        irt, refs = msg["In-Reply-To"], msg["References"]
        if "thread:full" in m.tags:
            assert irt and refs
        elif "thread:refs_only" in m.tags:
            assert refs and not irt
        else:  # irt_only and broken Outlook threading keep only In-Reply-To
            assert irt and not refs
    subjects = {str(parsed(m.raw)["Subject"]) for m in replies if "thread:outlook" in m.tags}
    for prefix in ("AW: ", "Ответ: ", "回复：", "SV: ", "Re: Re: ", "Fwd: "):
        assert any(s.startswith(prefix) for s in subjects), prefix


def test_long_thread(c):
    longest = max(c.conversations, key=lambda conv: len(conv.message_ids))
    assert len(longest.message_ids) >= 10 and "long_thread" in longest.tags


def test_agent_replies(c):
    agents = {addr for _name, addr in c.agents}
    channels = Counter()
    for m in c.messages:
        if m.kind != "agent_reply":
            continue
        msg = parsed(m.raw)
        sender = msg["From"].addresses[0].addr_spec
        if m.folder == "Sent":
            assert sender == c.support
            channels["sent"] += 1
        else:
            assert sender in agents
            assert c.support in [a.addr_spec for a in msg["Cc"].addresses]
            channels["own"] += 1
        conv = c.conversations[m.conversation]
        assert msg["To"].addresses[0].addr_spec.lower() == conv.customer
    assert channels["sent"] >= 20 and channels["own"] >= 10


# ------------------------------------------------------------------------------------------------ content


def _text_parts(c):
    for m in c.messages:
        for part in parsed(m.raw).walk():
            if part.get_content_maintype() == "text" and not part.is_multipart():
                yield m, part


def test_charsets_and_transfer_encodings(c):
    seen = Counter((part.get_content_charset(), part.get("Content-Transfer-Encoding", "").lower())
                   for _m, part in _text_parts(c))
    charsets = {cs for cs, _cte in seen}
    assert {"utf-8", "iso-8859-1", "windows-1251", "koi8-r", "gbk", "iso-2022-jp", "us-ascii"} <= charsets
    for pair in [("utf-8", "quoted-printable"), ("utf-8", "base64"), ("windows-1251", "8bit"), ("koi8-r", "8bit"),
                 ("gbk", "8bit"), ("iso-8859-1", "8bit"), ("iso-8859-1", "quoted-printable"), ("iso-2022-jp", "7bit")]:
        assert seen[pair], pair
    encoded_words = Counter()
    for m in c.messages:
        head = m.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        encoded_words.update(cs.lower() for cs in re.findall(r"=\?([^?]+)\?[BbQq]\?", head))
    assert {"utf-8", "iso-8859-1", "windows-1251", "koi8-r", "gbk", "iso-2022-jp"} <= set(encoded_words)


@pytest.mark.parametrize("charset,sample", [("windows-1251", "Здравствуйте"), ("koi8-r", "Здравствуйте"),
                                            ("gbk", "订单")])
def test_legacy_8bit_bodies_are_raw_bytes(c, charset, sample):
    found = False
    for m, part in _text_parts(c):
        if part.get_content_charset() == charset and part["Content-Transfer-Encoding"] == "8bit":
            text = part.get_content()
            encoded = text.replace("\r\n", "\n").replace("\n", "\r\n").encode(charset)
            assert encoded.strip() in m.raw, "the body is the charset's own bytes, not UTF-8"
            assert any(b >= 0x80 for b in encoded)
            found = found or sample in text or any(("\u4e00" <= ch <= "\u9fff") if charset == "gbk" else
                                                   ("\u0400" <= ch <= "\u04ff") for ch in text)
    assert found


def test_russian_koi8_conversation(c):
    i, conv = next((i, cv) for i, cv in enumerate(c.conversations) if "koi8_thread" in cv.tags)
    assert "charset:koi8-r" in conv.tags and conv.answered_by_agent
    assert conv.subject == "Не приходит письмо с подтверждением"
    first = next(m for m in c.messages if m.conversation == i and m.kind == "customer")
    assert b"\r\n\xfa\xc4\xd2\xc1\xd7\xd3\xd4\xd7\xd5\xca\xd4\xc5!\r\n" in b"\r\n" + first.raw.split(b"\r\n\r\n", 1)[1]
    reply = next(m for m in c.messages if m.conversation == i and m.kind == "customer_reply")
    text = parsed(reply.raw).get_body(("plain",)).get_content()
    assert any(w in text for w in ("Спасибо", "Благодарю", "К сожалению"))
    assert "> " in text  # it quotes the agent's answer


def test_windows_paths_survive(c):
    m = next(m for m in c.messages if "windows_path" in m.tags and m.kind == "customer")
    text = parsed(m.raw).get_body(("plain",)).get_content()
    for s in (r"C:\Users\new\report.txt", r"\x64\today.log", r"\t-2026\u00e9.csv", r"\\fileserver\share"):
        assert s in text


def test_html_alternative_and_attachments(c):
    html_only = [m for m in c.messages if parsed(m.raw).get_content_type() == "text/html"]
    assert html_only and all("html_only" in m.tags for m in html_only)
    assert any(parsed(m.raw).get_content_type() == "multipart/alternative" for m in c.messages)
    attachments = [(m, a) for m in c.messages for a in parsed(m.raw).iter_attachments()]
    types = {a.get_content_type() for _m, a in attachments}
    assert {"image/png", "application/pdf"} <= types
    sizes = {a.get_filename(): len(a.get_content()) for _m, a in attachments}
    assert max(sizes.values()) >= 1_000_000
    assert "Rechnung März 2026.pdf" in sizes
    png = next(a for _m, a in attachments if a.get_content_type() == "image/png").get_content()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_special_conversations(c):
    tags = Counter(t for conv in c.conversations for t in conv.tags)
    assert tags["contact_form"] == 3 and tags["spam_like"] == 3 and tags["no_message_id"] == 1
    assert tags["repeat_customer"] == 1 and tags["urgent"] == 1 and tags["empty_subject"] == 1
    no_id = next(conv for conv in c.conversations if "no_message_id" in conv.tags)
    assert no_id.expect_ack
    repeat = next(conv for conv in c.conversations if "repeat_customer" in conv.tags)
    assert sum(conv.customer == repeat.customer for conv in c.conversations) >= 2
    urgent = next(m for m in c.messages if "urgent" in m.tags and m.kind == "customer")
    assert str(parsed(urgent.raw)["Importance"]) == "high"
    mixed = next(m for m in c.messages if "mixed_case_address" in m.tags and m.kind == "customer")
    addr = parsed(mixed.raw)["From"].addresses[0].addr_spec
    assert addr != addr.lower() and addr.lower() == c.conversations[mixed.conversation].customer
    assert any(conv.language == lang for conv in c.conversations for lang in ("de", "ru", "zh", "ja", "fr", "sv", "es"))


# ------------------------------------------------------------------------------------------------ determinism, params


def test_deterministic():
    a, b = build_corpus(seed=1), build_corpus(seed=1)
    assert [m.raw for m in a.messages] == [m.raw for m in b.messages]
    assert [(m.when, m.kind, m.folder) for m in a.messages] == [(m.when, m.kind, m.folder) for m in b.messages]
    assert a.conversations == b.conversations and a.automatic_ids == b.automatic_ids
    other = build_corpus(seed=2)
    assert [m.raw for m in other.messages] != [m.raw for m in a.messages]


@pytest.mark.parametrize("kwargs", [dict(seed=7), dict(n_conversations=12, seed=3),
                                    dict(n_conversations=40, days=3, max_age_hours=6, seed=5,
                                         now=datetime(2027, 1, 4, 8, 30, tzinfo=UTC)),
                                    dict(n_conversations=30, days=1, max_age_hours=48, seed=9),
                                    dict(n_conversations=200, seed=11, support="help@shop.example",
                                         agents=(("Carol", "carol@shop.example"),))])
def test_invariants_hold_for_other_parameters(kwargs):
    c = build_corpus(**kwargs)
    n = kwargs.get("n_conversations", 120)
    now = kwargs.get("now", NOW)
    days = kwargs.get("days", 10)
    max_age = timedelta(hours=kwargs.get("max_age_hours", 24))
    assert len(c.conversations) == n
    ids = Counter(m.message_id for m in c.messages if m.message_id and m.kind != "duplicate")
    assert max(ids.values()) == 1
    for m in c.messages:
        assert now - timedelta(days=days) <= m.when <= now
        msg = parsed(m.raw)
        assert all(not p.defects for p in msg.walk())
    for conv in c.conversations:
        assert conv.expect_ack == ((now - conv.first_when <= max_age) and not conv.answered_by_agent)
        for mid in conv.message_ids:
            assert mid not in c.automatic_ids
    assert {m.message_id for m in c.messages if m.kind in AUTOMATIC_KINDS} == set(c.automatic_ids)


# ------------------------------------------------------------------------------------------------ the demo seed


def test_demo_seed():
    from mailhelpdesk.app.demo.seed import AGENTS, SUPPORT, demo_messages

    now = datetime(2027, 3, 2, 9, 15, tzinfo=UTC)
    out = demo_messages(now)
    assert out == demo_messages(now)
    assert SUPPORT == "support@demo.example" and ("Alice", "alice@demo.example") in AGENTS
    folders = Counter(f for f, _raw in out)
    assert folders["Sent"] == 1 and folders["INBOX"] >= 8
    by_subject = {}
    dates = []
    for folder, raw in out:
        assert raw.count(b"\n") == raw.count(b"\r\n")
        msg = email.message_from_bytes(raw, policy=POLICY)
        assert all(not p.defects for p in msg.walk())
        assert all(not v.defects for _k, v in msg.items())
        date = msg["Date"].datetime
        assert now - timedelta(days=3) <= date <= now
        dates.append(date)
        by_subject[str(msg["Subject"])] = (folder, msg)
    assert dates == sorted(dates)
    subjects = list(by_subject)
    anna = [s for s in subjects if "invoice" in s.lower()]
    assert len(anna) == 2
    first, follow = (by_subject[s][1] for s in sorted(anna, key=len))
    assert str(first["From"]).startswith("Anna Müller")
    assert follow["In-Reply-To"] == first["Message-ID"] and first["Message-ID"] in str(follow["References"])
    assert follow["Date"].datetime - first["Date"].datetime == timedelta(minutes=20)
    assert "URGENT: checkout is down, we are losing orders" in subjects
    sent = [msg for folder, msg in by_subject.values() if folder == "Sent"][0]
    assert sent["From"].addresses[0].addr_spec == SUPPORT
    original = [msg for _f, msg in by_subject.values() if msg["Message-ID"] == sent["In-Reply-To"]][0]
    assert now - original["Date"].datetime >= timedelta(days=2)
    kinds = {s: automatic_signals(m) for s, (_f, m) in by_subject.items()}
    assert sum(bool(v) for v in kinds.values()) == 3  # out-of-office, newsletter, bounce
    assert any("list" in v for v in kinds.values()) and any("report" in v for v in kinds.values())
    assert any("auto-submitted" in v and "report" not in v for v in kinds.values())
    russian = by_subject["Не приходит письмо с подтверждением"][1]
    body = russian.get_body(("plain",))
    assert body.get_content_charset() in ("koi8-r", "windows-1251") and body["Content-Transfer-Encoding"] == "8bit"
    assert "подтверждением" in body.get_content()
