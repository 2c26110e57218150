"""Commands by mail only from a proven agent, and no acknowledgement to a forged sender (pure: a fixed `now`)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailhelpdesk.model import AuthHeader, AuthResult, Status
from mailhelpdesk.core.judge.authentication import (aligned, organisational_domain, parse_header, proves, sender_failed,
                                               verdict)
from mailhelpdesk.core.mail.render import clip
from test_engine import NOW, Desk, make_config

MX = "mx.shop.example"  # the receiving server's authserv-id in these tests
PASS = f"Authentication-Results: {MX}; dkim=pass header.d=shop.example header.s=s1; spf=pass smtp.mailfrom=alice@shop.example"


def question(sender="anna@customer.example", n=1, headers="", when=NOW) -> bytes:
    return (f"{headers}From: Anna <{sender}>\r\nTo: support@shop.example\r\nSubject: Export fails {n}\r\n"
            f"Date: {when:%a, %d %b %Y %H:%M:%S +0000}\r\nMessage-ID: <q{n}-{sender}>\r\n\r\nThe CSV export fails.\r\n").encode()


def command(headers: str, from_="alice@shop.example", body="#close\n#priority urgent", n=1) -> bytes:
    lines = [h for h in f"{headers}\nFrom: {from_}".split("\n") if h and h != "From: None"]
    return ("\r\n".join(lines) + f"\r\nTo: support@shop.example\r\nSubject: Re: [HD-1] Export fails 1\r\n"
            f"Date: Fri, 20 Nov 2026 10:35:00 +0000\r\nMessage-ID: <cmd{n}@shop.example>\r\n"
            f"In-Reply-To: <q1-anna@customer.example>\r\n\r\n{body}\r\n").encode()


def desk(**commands) -> Desk:
    d = Desk(make_config(commands={"trusted_authserv_id": MX, **commands}))
    d.feed(question())
    return d


def unchanged(d: Desk) -> bool:
    t = d.ticket()
    return (t.status, t.priority.value, t.assignee, t.first_response_at) == (Status.OPEN, "normal", "Alice", None)


# --- the forged variants of issue 8: each refused, the ticket as it was, the agent told why ----------------------

FORGED = {
    "no Authentication-Results at all": (command(""), "no Authentication-Results from the receiving server"),
    "only a header someone else added": (
        command("Authentication-Results: mx.attacker.example; dkim=pass header.d=shop.example"),
        "no Authentication-Results from the receiving server"),
    "the server says fail, a forged pass below": (
        command(f"Authentication-Results: {MX}; dkim=fail header.d=shop.example; spf=fail smtp.mailfrom=shop.example\n"
                f"Authentication-Results: {MX}; dkim=pass header.d=shop.example; spf=pass smtp.mailfrom=shop.example"),
        "dkim=fail (shop.example)"),
    "a genuine pass for a look-alike suffix": (
        command(f"Authentication-Results: {MX}; dkim=pass header.d=shop.example.attacker.net; "
                "spf=pass smtp.mailfrom=alice@shop.example.attacker.net"),
        "no DKIM, SPF or DMARC pass for shop.example"),
    "two From: addresses, the agent's first": (
        command(PASS, from_="alice@shop.example, mallory@attacker.net"), "exactly one From: address"),
    "no From: address, the agent in Sender:": (
        command(PASS + "\nFrom: undisclosed-recipients:;\nSender: alice@shop.example", from_=None),
        "Sender: does not count"),
    "two From: headers, the agent's first": (command(PASS, from_="alice@shop.example\nFrom: mallory@attacker.net"),
                                             "exactly one From: address"),
}


@pytest.mark.parametrize("raw, why", FORGED.values(), ids=FORGED.keys())
def test_a_forged_command_is_refused_and_the_agent_is_told_why(raw, why):
    d = desk()
    d.feed(raw, now=NOW + timedelta(minutes=5))
    assert unchanged(d)
    (rejected,) = d.sends("command rejected")
    assert rejected.to == "alice@shop.example" and why in rejected.body, rejected.body
    assert "#close" in rejected.body and rejected.in_reply_to == "<cmd1@shop.example>"
    assert any(h.what == "command rejected" for h in d.ticket().history)


def test_without_a_configured_authserv_id_commands_are_refused_with_how_to_set_it_up():
    d = Desk(make_config())
    d.feed(question())
    d.feed(command(PASS), now=NOW + timedelta(minutes=5))
    assert unchanged(d)
    (rejected,) = d.sends("command rejected")
    assert "[commands] trusted_authserv_id" in rejected.body and "mailhelpdesk check" in rejected.body


@pytest.mark.parametrize("auth", [
    f"Authentication-Results: {MX}; dkim=pass header.d=shop.example",
    f"Authentication-Results: {MX}; dkim=pass header.i=@shop.example header.s=20230601 header.b=AbC+/=",
    f"Authentication-Results: {MX}; spf=pass (sender designated) smtp.mailfrom=alice@shop.example",
    f"Authentication-Results: {MX}; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=shop.example",
    f"Authentication-Results: {MX.upper()}; DKIM=Pass header.d=mail.shop.example",  # org-domain alignment
    f"Authentication-Results: filter.shop.example; spam=no\nAuthentication-Results: {MX}; dkim=pass header.d=shop.example",
    f"Authentication-Results: {MX}; dkim=pass header.d=shop.example\nAuthentication-Results: {MX}; dkim=fail header.d=x",
], ids=["dkim-d", "dkim-i", "spf", "dmarc", "subdomain", "a-later-header-above", "a-forged-fail-below"])
def test_a_properly_authenticated_command_is_carried_out(auth):
    d = desk()
    d.feed(command(auth), now=NOW + timedelta(minutes=5))
    t = d.ticket()
    assert (t.status, t.priority.value) == (Status.CLOSED, "urgent")
    assert not d.sends("command rejected") and t.first_response_at is None


def test_require_authentication_false_trusts_the_agent_address_but_never_a_refusal():
    d = desk(require_authentication=False)
    d.feed(command(""), now=NOW + timedelta(minutes=5))
    assert d.ticket().status == Status.CLOSED and not d.sends("command rejected")
    d = desk(require_authentication=False)
    d.feed(command(f"Authentication-Results: {MX}; dkim=fail header.d=shop.example"), now=NOW + timedelta(minutes=5))
    assert unchanged(d) and d.sends("command rejected")  # the server said no: that is never overridden
    d = desk(require_authentication=False)
    d.feed(command("", from_="alice@shop.example, mallory@attacker.net"), now=NOW + timedelta(minutes=5))
    assert unchanged(d)  # nor is the one-From rule


def test_a_command_written_from_the_shared_account_is_trusted():
    d = desk()
    raw = command("", from_="support@shop.example").replace(b"Message-ID: <cmd1@", b"Message-ID: <own1@")
    d.feed(raw, folder_role="sent", now=NOW + timedelta(minutes=5))
    assert d.ticket().status == Status.CLOSED and not d.sends("command rejected")
    assert any("shared account" in h.detail for h in d.ticket().history)


def test_a_strangers_commands_are_only_text_and_an_answer_from_the_shared_account_is_no_command():
    d = desk()
    d.feed(command(PASS.replace("shop.example", "attacker.net"), from_="mallory@attacker.net"), now=NOW + timedelta(minutes=5))
    assert unchanged(d) and not d.sends("command rejected")
    to_customer = command("", from_="support@shop.example").replace(b"To: support@shop.example", b"To: anna@customer.example")
    d.feed(to_customer.replace(b"<cmd1@", b"<own2@"), folder_role="sent", now=NOW + timedelta(minutes=6))
    assert d.ticket().status != Status.CLOSED


# --- floods and backscatter ------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth, acknowledged", [
    (f"Authentication-Results: {MX}; spf=fail smtp.mailfrom=bot@spam{{i}}.example", False),
    (f"Authentication-Results: {MX}; dmarc=fail header.from=spam{{i}}.example; spf=pass smtp.mailfrom=x.example", False),
    (f"Authentication-Results: {MX}; spf=fail smtp.mailfrom=spam{{i}}.example; dkim=pass header.d=spam{{i}}.example", True),
    (f"Authentication-Results: {MX}; spf=softfail smtp.mailfrom=spam{{i}}.example", True),
    (f"Authentication-Results: mx.forged.example; spf=fail smtp.mailfrom=spam{{i}}.example", True),
], ids=["spf-fail", "dmarc-fail", "forwarded-spf-fail-with-dkim", "softfail", "untrusted-header"])
def test_no_acknowledgement_when_the_trusted_server_says_the_sender_is_forged(auth, acknowledged):
    d = Desk(make_config(commands={"trusted_authserv_id": MX}))
    for i in range(20):
        d.feed(question(f"bot@spam{i}.example", i, auth.format(i=i) + "\r\n"))
    d.tick()
    assert len(d.state.tickets) == 20  # still tickets, labelled as usual
    assert len(d.sends("acknowledgement")) == (20 if acknowledged else 0)
    if not acknowledged:
        assert all(any(h.what == "acknowledgement withheld" and "fail for spam" in h.detail for h in t.history)
                   for t in d.state.tickets.values())


def test_the_same_mail_again_from_one_sender_is_acknowledged_once_a_day():
    """Five copies of one mail (digits aside): a robot, or a person sending it again; a new request is not."""
    d = Desk()
    assert d.config.autoreply.same_shape_hours == 24
    for i in range(5):
        d.feed(question("anna@customer.example", i))
    d.tick()
    assert len(d.sends("acknowledgement")) == 1 and len(d.state.tickets) == 5
    assert all("the same mail as HD-" in t.ack_withheld for t in list(d.state.tickets.values())[1:])
    d.feed(question("anna@customer.example", 9, when=NOW + timedelta(hours=23)), now=NOW + timedelta(hours=23))
    d.tick(NOW + timedelta(hours=23))
    assert len(d.sends("acknowledgement")) == 1 and len(d.state.tickets) == 6
    d.feed(question("anna@customer.example", 10, when=NOW + timedelta(hours=48)), now=NOW + timedelta(hours=48))
    d.tick(NOW + timedelta(hours=48))
    assert len(d.sends("acknowledgement")) == 2  # a day after the last copy, it is a request again

def test_echoed_subjects_are_clipped():
    d = Desk()
    d.feed(question().replace(b"Subject: Export fails 1", b"Subject: " + b"BUY NOW " * 60))
    d.tick()
    (ack,) = d.sends("acknowledgement")
    assert len(ack.subject) <= len("[HD-1] ") + 120 and ack.subject.endswith("…")
    assert clip("short") == "short" and clip("x" * 200, 10) == "x" * 9 + "…"


# --- the parser and the alignment, as tables -------------------------------------------------------------------

PARSED = [
    ("mx.google.com; dkim=pass header.i=@example.com header.s=20230601 header.b=AbCd; spf=pass (google.com: domain "
     "of a@example.com designates 1.2.3.4 as permitted sender) smtp.mailfrom=a@example.com; dmarc=pass (p=NONE "
     "sp=NONE dis=NONE) header.from=example.com",
     AuthHeader("mx.google.com", (AuthResult("dkim", "pass", "example.com"), AuthResult("spf", "pass", "example.com"),
                                  AuthResult("dmarc", "pass", "example.com")))),
    ("mx.microsoft.com 1; spf=fail smtp.mailfrom=x.example; compauth=fail reason=001",
     AuthHeader("mx.microsoft.com", (AuthResult("spf", "fail", "x.example"), AuthResult("compauth", "fail")))),
    ('mx.example; spf=fail smtp.mailfrom="x;dkim=pass header.d=shop.example"@evil.example',
     AuthHeader("mx.example", (AuthResult("spf", "fail", "evil.example"),))),
    ("mx.example; spf=fail (a comment; dkim=pass header.d=shop.example) smtp.mailfrom=evil.example",
     AuthHeader("mx.example", (AuthResult("spf", "fail", "evil.example"),))),
    ("mx.example; none", AuthHeader("mx.example", ())),
    ("mx.example", AuthHeader("mx.example", readable=False)),
    ("mx.example; dkim=pass header.d=shop.example; garbage", AuthHeader("mx.example", readable=False)),
    ("", AuthHeader("", readable=False)),
    ("mx.example; dkim=pass header.d=shop.example " + "x" * 5000, AuthHeader("mx.example", readable=False)),
]


@pytest.mark.parametrize("value, expected", PARSED)
def test_parse_header(value, expected):
    assert parse_header(value) == expected


def test_only_the_topmost_header_of_the_trusted_server_counts():
    fail = AuthHeader("mx.example", (AuthResult("dkim", "fail", "shop.example"),))
    forged = AuthHeader("mx.example", (AuthResult("dkim", "pass", "shop.example"),))
    later = AuthHeader("filter.example", (AuthResult("dkim", "pass", "shop.example"),))
    assert verdict([later, fail, forged], "MX.example").results == fail.results
    assert not proves(verdict([later, fail, forged], "mx.example"), "alice@shop.example")[0]
    assert not verdict([later], "mx.example").trusted and not verdict([forged], "").trusted
    assert not verdict([AuthHeader("mx.example", readable=False), forged], "mx.example").trusted


@pytest.mark.parametrize("a, b, same", [
    ("shop.example", "shop.example", True),
    ("mail.shop.example", "shop.example", True),
    ("shop.example.attacker.net", "shop.example", False),
    ("attacker-shop.example", "shop.example", False),
    ("eu.mail.example.co.uk", "example.co.uk", True),
    ("evil.co.uk", "example.co.uk", False),
    ("alice.github.io", "mallory.github.io", False),  # the private part of the list: different organisations
    ("SHOP.example.", "shop.example", True),
    ("", "shop.example", False),
])
def test_alignment_is_by_organisational_domain_never_by_suffix(a, b, same):
    assert aligned(a, b) is same
    assert organisational_domain("a.b.example.co.uk") == "example.co.uk"


def test_sender_failed_table():
    def v(*results):
        return verdict([AuthHeader("mx", tuple(AuthResult(*r) for r in results))], "mx")
    assert sender_failed(v(("spf", "fail", "spam.example")), "bot@spam.example").startswith("SPF fail")
    assert sender_failed(v(("dmarc", "fail", "spam.example")), "bot@mail.spam.example").startswith("DMARC fail")
    assert sender_failed(v(("spf", "fail", "other.example")), "bot@spam.example") == ""  # not the sender's domain
    assert sender_failed(v(("spf", "fail", "spam.example"), ("dkim", "pass", "spam.example")), "bot@spam.example") == ""
    assert sender_failed(verdict([], "mx"), "bot@spam.example") == ""


def test_a_proven_agent_commands_a_ticket_by_its_key_in_the_subject_of_a_new_mail():
    """Not a reply: a new mail with [HD-1] in the subject (the README's second way) works for every agent, the
    assignee or not; a stranger's mail with the same subject is no command."""
    d = desk()
    new_mail = command(PASS, from_="bob@shop.example", body="#priority urgent\n#note called the customer").replace(
        b"In-Reply-To: <q1-anna@customer.example>\r\n", b"").replace(b"Subject: Re: [HD-1] Export fails 1",
                                                                    b"Subject: [HD-1] call notes")
    d.feed(new_mail)
    t = d.ticket()
    assert t.priority.value == "urgent" and any(h.what == "note" and "called the customer" in h.detail
                                                for h in t.history)
    assert d.sends("command rejected") == []


def test_take_assigns_the_ticket_to_the_agent_who_writes_it_and_tells_nobody_else():
    d = desk()
    d.tick()
    assert d.ticket().assignee == "Alice"
    d.feed(command(PASS, from_="bob@shop.example", body="#take"))
    d.tick(NOW + timedelta(minutes=1))
    t = d.ticket()
    assert t.assignee == "Bob" and any(h.what == "assigned" and "#take by Bob" in h.detail for h in t.history)
    assert "Helpdesk/Assignee/Bob" in t.labels_applied and d.sends("command rejected") == []
    assert not [m for m in d.sends() if m.to == "bob@shop.example"], "no notice of what Bob did himself"
    d.feed(command(PASS, from_="bob@shop.example", body="#take", n=2))  # taken already: nothing changes
    assert d.ticket().assignee == "Bob" and d.sends("command rejected") == []
