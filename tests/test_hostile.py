"""Hostile mail, pure and fast: one bad message never blocks the others, nothing we send carries a header from
customer text, templates cannot run code, and robots cannot start a mail loop.

The corpus is tests/fixtures/hostile/ (small messages committed as .eml, big ones generated here); the same corpus
goes through a real Dovecot in tests/contract/test_hostile_mailbox.py."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import importlib.util
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhelpdesk.core.mail.compose import compose
from mailhelpdesk.core.engine import Engine
from mailhelpdesk.errors import ConfigError, SendError
from mailhelpdesk.model import Incoming, MessageFacts, Priority, SendMail, State, Status, Ticket
from mailhelpdesk.core.mail.parse import BODY_LIMIT, clean_title, html_to_text, parse_message
from mailhelpdesk.core.mail.render import render
from test_engine import EML, NOW, Desk, make_config

HOSTILE_DIR = Path(__file__).parent / "fixtures" / "hostile"


def _load_corpus():
    if "hostile_corpus" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hostile_corpus", HOSTILE_DIR / "corpus.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["hostile_corpus"] = module
        spec.loader.exec_module(module)
    return sys.modules["hostile_corpus"]


corpus = _load_corpus()
SMALL = corpus.small()
BY_NAME = {c.name: c for c in SMALL}
EVIL = corpus.EVIL
SETTINGS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# every header a message of ours may carry, and the only ones its MIME parts may carry
OURS = {"from", "to", "subject", "date", "message-id", "in-reply-to", "references", "auto-submitted",
        "x-auto-response-suppress", "x-mailhelpdesk-ticket", "x-mailhelpdesk-kind", "mime-version", "content-type",
        "content-transfer-encoding"}
PART_HEADERS = {"content-type", "content-transfer-encoding", "mime-version"}
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@pytest.fixture(scope="module")
def big():
    """The generated part of the corpus, parsed once (parsing 25 MB or 5,000 nested parts takes a moment; how long
    is measured by bench/hostile_parse.py, not asserted here)."""
    return [(case, parse_message(case.raw)) for case in corpus.big()]


# --- the corpus --------------------------------------------------------------------------------------------------


def test_the_committed_corpus_is_what_the_generator_writes():
    assert corpus.committed() == {c.name: c.raw for c in SMALL}, "run: python tests/fixtures/hostile/corpus.py"


def check_facts(facts: MessageFacts) -> None:
    """What the engine may rely on, whatever the bytes were."""
    assert isinstance(facts, MessageFacts)
    for name in ("message_id", "subject", "title", "sender", "sender_name", "reply_to", "ticket_tag", "automatic",
                 "ours", "our_kind"):
        value = getattr(facts, name)
        assert isinstance(value, str), name
        assert not CONTROL.search(value), (name, value[:200])  # one line, no NUL, no control characters
    assert facts.subject == " ".join(facts.subject.split())
    assert facts.title and clean_title(facts.title) == facts.title
    for message_id in (facts.message_id, *facts.references, *facts.in_reply_to, *facts.bounce_of):
        assert isinstance(message_id, str) and message_id.startswith("<") and message_id.endswith(">"), message_id
        assert not CONTROL.search(message_id) and len(message_id) > 2
    assert len(facts.in_reply_to) <= 1
    for address in (facts.sender, facts.reply_to, *facts.to, *facts.cc):
        assert address == "" or (address.count("@") >= 1 and not re.search(r"[\s<>,;\"]", address)), address
        assert address == address.lower()
    assert facts.customer in (facts.sender, facts.reply_to)
    assert facts.date is None or (facts.date.tzinfo is not None and facts.date.utcoffset() == timedelta(0)
                                  and 1970 <= facts.date.year < 3000)
    assert isinstance(facts.body, str) and len(facts.body) <= BODY_LIMIT
    assert facts.importance is None or isinstance(facts.importance, Priority)
    assert isinstance(facts.has_attachments, bool)
    assert isinstance(facts.defects, tuple) and all(isinstance(d, str) for d in facts.defects)
    assert all(isinstance(t, tuple) for t in (facts.to, facts.cc, facts.references, facts.in_reply_to, facts.bounce_of))


@pytest.mark.parametrize("case", SMALL, ids=lambda c: c.name)
def test_every_hostile_message_parses_to_sane_facts(case):
    facts = parse_message(case.raw)
    check_facts(facts)
    if case.expect == "ticket":
        assert facts.customer == case.customer
        assert not facts.automatic
    if case.subject:
        assert facts.title == case.subject
    if case.name_seen:
        assert facts.sender_name == case.name_seen


def test_big_hostile_messages_parse_to_sane_facts(big):
    for case, facts in big:
        check_facts(facts)
        assert facts.customer == case.customer, case.name
    facts = {c.name: f for c, f in big}
    assert facts["attachment_25mb"].has_attachments and facts["attachment_25mb"].body.startswith("The log is attached.")
    assert len(facts["references_5000"].references) == 5000
    assert facts["references_5000"].in_reply_to == ("<r4999@elsewhere.example>",)
    assert len(facts["references_1mb"].references) > 30_000
    assert facts["deep_nesting_1500"].subject == "deep nesting 1500"  # the parser gave up on the body, not the headers
    assert any("RecursionError" in d for d in facts["deep_nesting_1500"].defects)
    assert facts["html_script_bomb"].body == "Hi" and facts["html_angle_bomb"].body.startswith("Hi")
    assert facts["many_parts"].body == "part 0"


def test_specific_readings_of_hostile_mail():
    facts = {c.name: parse_message(c.raw) for c in SMALL}
    # an encoded word that hides a line break neither adds a header nor steals the address
    assert facts["crlf_from"].sender == "crlf-from@hostile.example"
    assert facts["crlf_from"].sender_name == "Eve Bcc: x@evil.example"
    assert facts["crlf_subject"].subject == "a Bcc: x@evil.example"
    assert facts["crlf_subject_base64"].subject == "hi Bcc: x@evil.example body"
    assert facts["crlf_reply_to"].customer == "eve.reply@hostile.example"
    assert EVIL not in {f.customer for f in facts.values()}
    # ids: one line, stable, and two different malformed ids stay two ids
    assert facts["message_id_spaces"].message_id == "<id with spaces@hostile.example>"
    assert facts["message_id_folded"].message_id == "<folded @hostile.example>"
    assert facts["message_id_bare"].message_id.endswith("@no-message-id.mailhelpdesk>")
    assert facts["nul_bytes"].message_id == "<nul_bytes@hostile.example>" and facts["nul_bytes"].subject == "nul inside"
    assert facts["crlf_message_id"].references == ("<a@b.example>",)
    assert len({f.message_id for f in facts.values()}) == len(facts)
    # dates that are no time
    for name in ("date_9999", "date_9999_utc", "date_year_1000", "date_garbage"):
        assert facts[name].date is None and any(d.startswith("Date:") for d in facts[name].defects), name
    # charsets: legacy bytes in headers are read, declared or not; unknown charsets still give text
    assert facts["charset_unknown"].body.strip() == "café crème" and facts["charset_unknown"].subject == "hello there"
    assert facts["charset_raw_bytes"].body == "Привет"
    assert facts["header_koi8r_undeclared"].body.strip() == "Оплата не проходит."
    assert facts["unterminated_multipart"].body == "part one"
    assert facts["return_path_spaced"].automatic == "bounce (empty return path)"
    assert facts["from_name_only"].sender == "" and facts["from_name_only"].automatic == "no sender address"


def test_re_delivered_malformed_mail_keeps_its_identity():
    """A message without a usable Message-ID gets a stable synthetic one, so a re-delivery is no second ticket."""
    for name in ("message_id_bare", "empty", "random_bytes"):
        assert parse_message(BY_NAME[name].raw).message_id == parse_message(BY_NAME[name].raw).message_id
    desk = Desk()
    desk.feed(BY_NAME["message_id_bare"].raw, ref="INBOX:1:1")
    desk.feed(BY_NAME["message_id_bare"].raw, ref="INBOX:1:2")
    assert list(desk.state.tickets) == ["HD-1"] and desk.ticket().refs == ("INBOX:1:1", "INBOX:1:2")


def test_html_to_text_survives_pathological_markup():
    """Inputs that make a backtracking converter explode; bench/hostile_parse.py measures that time stays linear."""
    for markup in ("<" * 1_000_000, "<script>" * 200_000, "<style" * 200_000, "<p>" + "a<b" * 300_000):
        assert len(html_to_text(markup)) <= len(markup), markup[:20]
    assert html_to_text("<p>a</p><script>x</script><style>y</style>b<br>c") == "a\nb\nc"
    assert html_to_text("before<script>never closed") == "before"


def test_html_to_text_keeps_only_the_visible_text():
    """No comment (even one holding `>`), no attribute value, entities decoded, one line per block element;
    characters lxml refuses (controls, lone surrogates) are dropped, never raised on."""
    markup = ('<p title="TITLE">Hi <!-- secret > still secret --> there<img alt="ALT" src="cid:x"></p>'
              "<div>#close</div><ul><li>caf&eacute; &amp; cr&#232;me</li><li>&lt;b&gt;</li></ul>"
              "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>")
    assert html_to_text(markup) == "Hi there\n#close\ncafé & crème\n<b>\na b\nc"
    assert html_to_text("<p>a\x01b\ud800c</p><iframe>\x0c</iframe>") == "abc"


# --- through the engine ------------------------------------------------------------------------------------------


def feed_facts(desk: Desk, facts: MessageFacts, ref: str):
    incoming = Incoming(ref, "inbox", facts, received_at=NOW - timedelta(minutes=5))
    plan = desk.engine.on_message(desk.state, incoming, NOW)
    desk.state.merge(plan)
    desk.actions += plan.actions
    return plan


def check_outcome(desk: Desk, case, facts: MessageFacts) -> None:
    if case.expect == "ticket":
        key = desk.state.index.get(facts.message_id)
        assert key in desk.state.tickets, (case.name, desk.state.ignored.get(facts.message_id))
        ticket = desk.state.tickets[key]
        assert ticket.customer == case.customer
        if case.subject:
            assert ticket.subject == case.subject
        if case.name_seen:
            assert ticket.customer_name == case.name_seen
    else:
        ignored = desk.state.ignored.get(facts.message_id)
        assert ignored is not None and case.reason in ignored.reason, (case.name, ignored)
        assert facts.message_id not in desk.state.index


@pytest.mark.parametrize("case", SMALL, ids=lambda c: c.name)
def test_each_hostile_message_becomes_a_ticket_or_is_ignored_with_a_reason(case):
    desk = Desk()
    desk.feed("question.eml")
    desk.feed(case.raw)
    desk.feed("urgent.eml")
    desk.tick()
    check_outcome(desk, case, parse_message(case.raw))
    assert desk.state.index["<q1@customer.example>"] == "HD-1" and desk.state.index["<u1@bigstore.example>"] in desk.state.tickets
    acks = desk.sends("acknowledgement")
    assert {"anna@customer.example", "ben@bigstore.example"} <= {a.to for a in acks}
    assert len(acks) == len(desk.state.tickets)  # every ticket acknowledged once, nothing else
    for mail in desk.sends():
        if mail.to == "josé@hostile.example":  # needs SMTPUTF8: refused with a SendError, which is logged and kept
            with pytest.raises(SendError):
                compose(mail, desk.config, NOW)
        else:
            check_composed(mail, desk.config)


def test_the_whole_corpus_in_one_batch_between_normal_mail(big):
    # every hostile sender writes from @hostile.example: one company domain, which by default gets a handful of
    # acknowledgements a day (README, Every person heard, no loops); here each one's acknowledgement is checked
    desk = Desk(make_config(autoreply={"max_per_domain": 1000}))
    desk.feed("question.eml")
    everything = [(c, parse_message(c.raw)) for c in SMALL] + list(big)
    for n, (case, facts) in enumerate(everything):
        feed_facts(desk, facts, f"INBOX:1:{100 + n}")
    desk.feed("urgent.eml")
    desk.tick()
    for case, facts in everything:
        check_outcome(desk, case, facts)
    customers = {t.customer for t in desk.state.tickets.values()}
    assert {"anna@customer.example", "ben@bigstore.example"} <= customers
    assert len(desk.state.tickets) == 2 + sum(c.expect == "ticket" for c, _ in everything)
    refused = []
    for mail in desk.sends():
        assert mail.to != EVIL
        try:
            check_composed(mail, desk.config)
        except SendError as exc:
            refused.append((mail.to, str(exc)))
    # the one address we cannot write without SMTPUTF8 is refused with a SendError (logged and kept), nothing else
    assert [to for to, _ in refused] == ["josé@hostile.example"]


# --- what we send ------------------------------------------------------------------------------------------------


def check_composed(mail: SendMail, config, now: datetime = NOW) -> email.message.EmailMessage:
    """Compose, write as for SMTP, read back: only our headers, each once, one recipient, nothing from the text."""
    data = compose(mail, config, now).as_bytes(policy=email.policy.SMTP)
    head, sep, _ = data.partition(b"\r\n\r\n")
    assert sep
    assert b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    assert b"\x00" not in head and head.isascii()
    names = [line.split(b":", 1)[0].decode().lower() for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    assert set(names) <= OURS, names
    assert len(names) == len(set(names)), names
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed.defects == []
    assert {k.lower() for k in parsed.keys()} <= OURS
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["Reply-To"] is None
    (recipient,) = parsed["To"].addresses
    assert recipient.addr_spec.isascii()
    assert recipient.addr_spec == mail.to or recipient.addr_spec == _idna(mail.to)
    assert parsed["Auto-Submitted"] in ("auto-replied", "auto-generated")
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(parsed["Message-ID"]).strip()), str(parsed["Message-ID"])
    for part in parsed.walk():
        if part is not parsed:
            assert {k.lower() for k in part.keys()} <= PART_HEADERS
    return parsed


def _idna(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode()}"


NASTY = [
    "a\r\nBcc: x@evil.example",
    "a\nBcc: x@evil.example",
    "a\rBcc: x@evil.example",
    "a\r\n\r\nInjected body",
    "a\r\n Bcc: folded continuation",
    "a\u2028Bcc: x@evil.example",
    "a\u2029Bcc: x@evil.example",
    "a\x85Bcc: x@evil.example",
    "a\x0bBcc: x@evil.example\x0c",
    "a\x00Bcc: x@evil.example",
    "=?utf-8?q?a=0D=0ABcc:_x@evil.example?=",
    "=?utf-8?b?" + "aGkNCkJjYzogeEBldmlsLmV4YW1wbGUNCg==" + "?=",
    "x" * 3000 + "\r\nBcc: x@evil.example",
    "lone \ud800 surrogate\r\nBcc: x@evil.example",
    "{{ cycler.__init__.__globals__ }}\r\nBcc: x@evil.example",
]


def nasty_state(text: str) -> State:
    """Tickets whose subject and customer name are `text`, due for an acknowledgement, a resolution notice
    and a reminder at NOW."""
    state = State()
    state.cursors["last_pass"] = (NOW - timedelta(minutes=1)).isoformat()  # a running helpdesk, not a first run

    def ticket(number, **changes):
        values = dict(key=f"HD-{number}", number=number, customer=f"c{number}@customer.example", subject=text,
                      customer_name=text, created_at=NOW - timedelta(minutes=10), updated_at=NOW - timedelta(minutes=10),
                      waiting_since=NOW - timedelta(minutes=10), due_at=NOW + timedelta(days=1), assignee="Alice",
                      message_ids=(f"<q{number}@customer.example>",), participants=(f"c{number}@customer.example",))
        values.update(changes)
        state.tickets[values["key"]] = Ticket(**values)

    ticket(1, ack_wanted=True)
    ticket(2, status=Status.RESOLVED, resolved_at=NOW - timedelta(minutes=1))
    ticket(3, priority=Priority.URGENT, waiting_since=NOW - timedelta(hours=2), due_at=NOW - timedelta(hours=1))
    state.next_number = 4
    return state


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
@pytest.mark.parametrize("backend", ["local", "gmail"])
def test_customer_text_never_becomes_a_header(text, backend):
    config = make_config(mailbox={"backend": backend}, sla={"escalate_to": ["lead@shop.example"]})
    engine = Engine(config)
    state = nasty_state(text)
    if backend == "gmail":  # there the subject is "Re: " + the customer's subject
        for key, t in state.tickets.items():
            state.tickets[key] = dataclasses.replace(t, thread_ids=("18c0ffee",))
    plan = engine.on_tick(state, NOW)
    mails = [a for a in plan.actions if isinstance(a, SendMail)]
    assert {m.kind for m in mails} >= {"acknowledgement", "resolution", "escalation breach"}
    for mail in mails:
        parsed = check_composed(mail, config)
        assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
        for field in ("From", "To"):
            assert EVIL not in str(parsed[field])


def test_hostile_mail_acknowledged_through_the_whole_path_carries_no_injected_header():
    desk = Desk(make_config(autoreply={"max_per_domain": 100}))  # all at @hostile.example: see above
    names = ["crlf_subject", "lf_subject", "crlf_subject_base64", "crlf_from", "crlf_reply_to", "crlf_message_id",
             "nul_bytes", "template_in_subject", "header_koi8r", "message_id_spaces", "message_id_folded",
             "message_id_encoded_crlf", "subject_double_encoded"]
    for name in names:
        desk.feed(BY_NAME[name].raw)
    desk.tick()
    acks = desk.sends("acknowledgement")
    assert sorted(a.to for a in acks) == sorted(BY_NAME[n].customer for n in names)
    for ack in acks:
        parsed = check_composed(ack, desk.config)
        assert ack.to == "message-id-encoded-crlf@hostile.example" or parsed["In-Reply-To"] == ack.in_reply_to
    encoded = next(a for a in acks if a.to == "message-id-encoded-crlf@hostile.example")
    assert encoded.in_reply_to == "<=?utf-8?q?a=0D=0ABcc:_x@evil.example?=@hostile.example>"
    assert check_composed(encoded, desk.config)["In-Reply-To"] is None  # an id the email package would decode is left out
    double = next(a for a in acks if a.to == "subject-double-encoded@hostile.example")
    assert str(check_composed(double, desk.config)["Subject"]).endswith("Order a Bcc: x@evil.example")
    spaced = next(a for a in acks if a.to == "message-id-spaces@hostile.example")
    assert str(check_composed(spaced, desk.config)["In-Reply-To"]) == "<id with spaces@hostile.example>"
    template = next(a for a in acks if a.to == "template-in-subject@hostile.example")
    assert "{{ cycler.__init__.__globals__ }}" in template.subject  # customer text is data, never template code


INJECTION_TEXT = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(["a", " ", "\r", "\n", "\r\n", "Bcc: x@evil.example", "=?utf-8?q?", "?=", "=0D=0A", "=?",
                              "<", ">", "\u2028", "\x85", "\x00", "\ud800", "\t"]), max_size=30).map("".join),
)


@settings(max_examples=100, deadline=None, database=None)
@given(INJECTION_TEXT, INJECTION_TEXT, st.lists(INJECTION_TEXT, max_size=4))
def test_no_text_in_any_field_of_a_send_adds_a_header(subject, in_reply_to, references):
    config = make_config()
    mail = SendMail(key="k", kind="acknowledgement", to="anna@customer.example", subject=subject, body=subject,
                    message_id="<mhd.k.1@shop.example>", ticket="HD-1", in_reply_to=in_reply_to,
                    references=tuple(references), html=subject)
    check_composed(mail, config)


@settings(max_examples=50, deadline=None, database=None)
@given(INJECTION_TEXT)
def test_no_subject_or_customer_name_adds_a_header_to_anything_the_engine_sends(text):
    config = make_config(sla={"escalate_to": ["lead@shop.example"]})
    plan = Engine(config).on_tick(nasty_state(text), NOW)
    mails = [a for a in plan.actions if isinstance(a, SendMail)]
    assert len(mails) >= 3
    for mail in mails:
        check_composed(mail, config)


def test_addresses_we_cannot_write_are_refused_not_mangled():
    config = make_config()
    mail = SendMail(key="k", kind="acknowledgement", to="anna@exämple.example", subject="s", body="b",
                    message_id="<m@shop.example>")
    assert str(check_composed(mail, config)["To"]) == "anna@xn--exmple-cua.example"
    for bad in ("josé@hostile.example", "a@x.example, v@y.example", "a b@x.example", "no-at-sign", "a@x\r\nBcc: y@z",
                "\"quoted\"@x.example", "<a@x.example>"):
        with pytest.raises(SendError):
            compose(SendMail(key="k", kind="acknowledgement", to=bad, subject="s", body="b", message_id="<m@shop.example>"),
                    config, NOW)


@pytest.mark.parametrize("agent", ["Jörg Müller", "Анна", "Alice Smith", "o'brien <x>"])
def test_our_own_message_ids_are_valid_whatever_the_agents_are_called(agent):
    """Keys such as assigned:HD-1:<agent> and warn:HD-1:<email> go into Message-IDs; the email package would cut
    an id at a space and fail to write a non-ASCII one, and a failed write would stop every later send."""
    config = make_config(agents=[{"name": agent, "email": "jorg@shop.example"}])
    engine = Engine(config)
    desk = Desk(config)
    desk.feed("question.eml")
    desk.tick()  # the pass ends: its one notice goes
    (notice,) = desk.sends("assignment")
    assert notice.message_id == engine.ctx.mail.message_id(f"assigned:HD-1:{agent}")
    parsed = check_composed(notice, config)
    assert str(parsed["Message-ID"]).endswith("@shop.example>")
    reminder = SendMail(key="warn:HD-1:jorg@shop.example", kind="escalation warn", to="jorg@shop.example", subject="s",
                        body="b", message_id=engine.ctx.mail.message_id("warn:HD-1:jorg@shop.example"))
    check_composed(reminder, config)


# --- templates run in the sandbox --------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ joiner.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "{{ lipsum.__globals__['os'].system('touch {marker}') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ticket.__class__.__init__.__globals__ }}",
    "{{ helpdesk.__class__.__dict__ }}",
    "{{ '{0.__class__.__mro__}'.format(ticket) }}",
    "{{ ticket.log.__func__.__globals__ }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ ticket.history.__class__ }}",
    "{{ self.__init__.__globals__ }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_a_template_cannot_escape_the_sandbox(payload, tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "acknowledgement.txt.j2").write_text("Subject: hi\n" + payload.replace("{marker}", str(marker)))
    engine = Engine(make_config())
    state = nasty_state("Invoice")
    context = engine.ctx.mail.context(state.tickets["HD-1"], NOW)
    with pytest.raises(ConfigError):
        render("acknowledgement", context, templates_dir=str(tmp_path))
    assert not marker.exists()


def test_a_hostile_template_override_makes_the_engine_raise_a_config_error(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "acknowledgement.txt.j2").write_text("Subject: hi\n{{ cycler.__init__.__globals__.os }}")
    engine = Engine(make_config(helpdesk={"templates_dir": str(tmp_path)}))
    with pytest.raises(ConfigError):
        engine.on_tick(nasty_state("Invoice"), NOW)


# --- robots on the other side ------------------------------------------------------------------------------------


def robot_reply(to_us: SendMail, robot: str, n: int, *, rfc3834: bool, threads: bool) -> bytes:
    headers = [f"From: Robot <{robot}>", "To: support@shop.example", f"Message-ID: <robot{n}@robot.example>",
               f"Date: {email.utils.format_datetime(NOW)}"]
    if rfc3834:
        headers += ["Auto-Submitted: auto-replied", f"Subject: Automatic reply: {to_us.subject}"]
    else:
        headers.append(f"Subject: Re: {to_us.subject}" if threads else "Subject: Thanks for your mail")
    if threads:
        headers += [f"In-Reply-To: {to_us.message_id}", f"References: {to_us.message_id}"]
    return ("\r\n".join(headers) + "\r\n\r\nThanks for your mail, I will read it when I am back.\r\n").encode()


@pytest.mark.parametrize("rfc3834, threads", [(True, True), (False, True), (False, False)],
                         ids=["out-of-office", "naive-threading", "naive-new-thread"])
def test_a_robot_answering_everything_gets_a_bounded_number_of_mails(rfc3834, threads):
    """Ten rounds against a robot that answers every mail we send it (the effects' sent log emulated)."""
    robot = "robot@robot.example"
    desk = Desk()
    first = (EML / "question.eml").read_bytes().replace(b"anna@customer.example", robot.encode())
    desk.feed(first)
    answered, n = set(), 0
    for round_ in range(10):
        now = NOW + timedelta(minutes=10 * round_)
        desk.tick(now)
        for mail in desk.sends():
            if mail.to != robot or mail.message_id in answered:
                continue
            answered.add(mail.message_id)
            desk.state.sender_log.setdefault(robot, []).append(now)  # what Effects records when it sends
            desk.state.index[mail.message_id] = mail.ticket  # ... and its Message-ID, for threading
            n += 1
            desk.feed(robot_reply(mail, robot, n, rfc3834=rfc3834, threads=threads), now=now)
    to_robot = [m for m in desk.sends() if m.to == robot]
    if threads:  # the replies join the ticket: one acknowledgement in all, the robot opens no ticket
        assert len(to_robot) == 1 and list(desk.state.tickets) == ["HD-1"]
    else:  # every reply is a new request: the first is acknowledged, then the same mail again is a robot's
        assert len(to_robot) == 2  # (core/judge/loops.py), well below the ceilings: the loop is over
        assert len(desk.state.tickets) == 3 and "the same mail as HD-2" in desk.ticket("HD-3").ack_withheld
    if rfc3834:
        assert all(t.status == Status.OPEN and t.first_response_at is None for t in desk.state.tickets.values())


# --- properties of the parser ------------------------------------------------------------------------------------

KNOWN_HEADERS = ["From", "To", "Cc", "Reply-To", "Sender", "Subject", "Date", "Message-ID", "In-Reply-To",
                 "References", "Content-Type", "Content-Transfer-Encoding", "MIME-Version", "Auto-Submitted",
                 "Return-Path", "Precedence", "List-Id", "X-Auto-Response-Suppress", "Importance", "X-Priority",
                 "Priority", "X-Mailhelpdesk-Ticket", "Authentication-Results", "Content-Disposition"]
NAME = st.one_of(st.sampled_from(KNOWN_HEADERS),
                 st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=20))
ENCODED_WORD = st.builds(
    lambda charset, enc, text: f"=?{charset}?{enc}?{text}?=".encode("utf-8", "surrogatepass"),
    st.sampled_from(["utf-8", "x-unknown", "koi8-r", "base64", "utf-16", "", "utf-8*en"]),
    st.sampled_from(["q", "Q", "b", "B", "x"]),
    st.text(max_size=40),
)
VALUE = st.one_of(
    st.text(max_size=120).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=120),
    ENCODED_WORD,
    st.lists(st.one_of(ENCODED_WORD, st.sampled_from([b"<a@b.example>", b" ", b"\r\n ", b"\r\n", b"\r", b"\n", b",",
                                                      b"\"", b"<", b">", b"@", b"\x00", b"(", b")", b":", b";"])),
             max_size=12).map(b"".join),
)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw):
    check_facts(parse_message(raw))


@SETTINGS
@given(st.lists(st.tuples(NAME, VALUE), max_size=15), st.binary(max_size=300))
def test_arbitrary_headers_never_raise(headers, body):
    raw = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body
    check_facts(parse_message(raw))


CONTENT_TYPES = ["text/plain", "text/html", "application/octet-stream", "message/rfc822", "message/delivery-status",
                 "text/rfc822-headers", "multipart/mixed", "garbage", "", "text/"]
LEAF = st.fixed_dictionaries({
    "type": st.sampled_from(CONTENT_TYPES),
    "charset": st.sampled_from([None, "utf-8", "x-unknown", 'utf-8\\"broken', "koi8-r", "rot13", "utf-16", "utf-7", ""]),
    "cte": st.sampled_from([None, "base64", "quoted-printable", "8bit", "7bit", "x-gibberish", "binary", ""]),
    "disposition": st.sampled_from([None, "attachment", "inline", "attachment; filename=\"\r\n\""]),
    "payload": st.binary(max_size=200),
})
TREE = st.recursive(
    LEAF,
    lambda children: st.fixed_dictionaries({
        "type": st.sampled_from(["multipart/mixed", "multipart/alternative", "multipart/related", "multipart/report",
                                 "multipart/signed", "multipart/digest", "text/plain"]),
        "boundary": st.sampled_from(["b", "", None, "b b", "x" * 80, "--", "same"]),
        "children": st.lists(children, max_size=4),
        "close": st.booleans(),
        "preamble": st.binary(max_size=30),
    }),
    max_leaves=12,
)


def render_tree(node: dict, depth: int = 0) -> bytes:
    if "children" not in node:
        headers = b"Content-Type: " + node["type"].encode()
        if node["charset"] is not None:
            headers += b"; charset=\"" + node["charset"].encode() + b"\""
        if node["cte"] is not None:
            headers += b"\r\nContent-Transfer-Encoding: " + node["cte"].encode()
        if node["disposition"] is not None:
            headers += b"\r\nContent-Disposition: " + node["disposition"].encode()
        return headers + b"\r\n\r\n" + node["payload"]
    boundary = node["boundary"]
    marker = (boundary if boundary not in (None, "same") else "same").encode() + (b"%d" % depth if boundary else b"")
    headers = b"Content-Type: " + node["type"].encode()
    if boundary is not None:
        headers += b"; boundary=\"" + (boundary.encode() + (b"%d" % depth if boundary else b"")) + b"\""
    body = node["preamble"] + b"".join(b"\r\n--" + marker + b"\r\n" + render_tree(child, depth + 1)
                                        for child in node["children"])
    if node["close"]:
        body += b"\r\n--" + marker + b"--\r\n"
    return headers + b"\r\n\r\n" + body


@SETTINGS
@given(TREE)
def test_arbitrary_mime_trees_never_raise(tree):
    raw = (b"From: Anna <anna@customer.example>\r\nSubject: tree\r\nMessage-ID: <t@customer.example>\r\n"
           b"MIME-Version: 1.0\r\n" + render_tree(tree))
    facts = parse_message(raw)
    check_facts(facts)
    assert facts.sender == "anna@customer.example" and facts.subject == "tree"


PREFIX_PIECES = ["Re:", "RE: ", "Fwd: ", "AW: ", "Ответ: ", "回复：", "Re[2]: ", "Re(3):", "[HD-1]", " [HD-42] ", "[T-7]",
                 " ", "\t", "\u3000", ":", "Re", "Rechnung: ", "(no subject)", "\x00"]


@SETTINGS
@given(st.one_of(st.text(max_size=80),
                 st.tuples(st.lists(st.sampled_from(PREFIX_PIECES), max_size=40), st.text(max_size=20)).map(
                     lambda t: "".join(t[0]) + t[1])),
       st.sampled_from(["HD", "T", "Sup"]))
def test_clean_title_is_idempotent_and_never_empty(subject, prefix):
    title = clean_title(subject, prefix)
    assert title and title.strip() == title
    assert clean_title(title, prefix) == title
