"""Issue 8, items 1 and 5, through a real Dovecot, a real SMTP sink and the public CLI (`run --once`) on a fixed
clock: forged commands are refused and leave the ticket as it was, an authenticated one is carried out, and 200
senders whose domain fails SPF per the trusted Authentication-Results hear nothing from us."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocks import frozen_at
from mailhelpdesk.app.cli import main
from mailhelpdesk.store.state import Store

pytestmark = pytest.mark.dovecot

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday in the past: Dovecot keeps no future arrival times
MX = "mx.shop.example"
PASSWORD_ENV = "COMMAND_AUTH_PASSWORD"


def write_config(tmp_path: Path, account, sink) -> Path:
    path = tmp_path / "mailhelpdesk.toml"
    path.write_text(f"""
[helpdesk]
address = "support@shop.example"
name = "Shop Support"
timezone = "Europe/Vienna"
state_file = "state.json"
[mailbox]
backend = "imap"
[imap]
host = "{account.host}"
port = {account.port}
security = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
sent_folder = "Sent"
[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
[[agents]]
name = "Alice"
email = "alice@shop.example"
[[agents]]
name = "Bob"
email = "bob@shop.example"
[commands]
trusted_authserv_id = "{MX}"
""")
    return path


def run_once(config: Path, account, now: datetime) -> None:
    with frozen_at(now):
        result = CliRunner().invoke(main, ["run", "--once", "--config", str(config)], env={PASSWORD_ENV: account.password})
    assert result.exit_code == 0, result.output + (result.stderr or "") + repr(result.exception)


def mail(headers: str, from_: str, subject: str, message_id: str, when: datetime, body: str, reply_to: str = "") -> bytes:
    lines = [h for h in headers.split("\n") if h] + [f"From: {f}" for f in from_.split("\n") if f]
    lines += ["To: support@shop.example", f"Subject: {subject}", f"Date: {when:%a, %d %b %Y %H:%M:%S +0000}",
              f"Message-ID: {message_id}"] + ([f"In-Reply-To: {reply_to}"] if reply_to else [])
    return ("\r\n".join(lines) + f"\r\n\r\n{body}\r\n").encode()


def ticket(config: Path, key: str = "HD-1"):
    return Store(config.parent / "state.json").load().tickets[key]


def sent(sink, kind: str) -> list:
    return [m for m in sink.messages if str(m.message["X-Mailhelpdesk-Kind"]) == kind]


FORGED = [
    ("", "alice@shop.example"),  # no Authentication-Results at all
    ("Authentication-Results: mx.attacker.example; dkim=pass header.d=shop.example", "alice@shop.example"),
    (f"Authentication-Results: {MX}; dkim=fail header.d=shop.example\n"
     f"Authentication-Results: {MX}; dkim=pass header.d=shop.example", "alice@shop.example"),
    (f"Authentication-Results: {MX}; dkim=pass header.d=shop.example.attacker.net; "
     "spf=pass smtp.mailfrom=alice@shop.example.attacker.net", "alice@shop.example"),
    (f"Authentication-Results: {MX}; dkim=pass header.d=attacker.net", "alice@shop.example, mallory@attacker.net"),
    (f"Authentication-Results: {MX}; dkim=pass header.d=shop.example\nSender: alice@shop.example",
     "undisclosed-recipients:;"),
]


def test_forged_commands_are_refused_and_an_authenticated_one_is_carried_out(imap_account, smtp_sink, tmp_path):
    config = write_config(tmp_path, imap_account, smtp_sink)
    imap_account.append("INBOX", mail("", "Anna <anna@customer.example>", "Export fails", "<q1@customer.example>", T0,
                                      "The CSV export fails."), when=T0)
    run_once(config, imap_account, T0 + timedelta(minutes=1))
    before = ticket(config)
    assert (before.status.value, before.assignee) == ("open", "Alice")
    for i, (headers, from_) in enumerate(FORGED):
        when = T0 + timedelta(minutes=10 + i)
        raw = mail(headers, from_, "Re: [HD-1] Export fails", f"<forged{i}@attacker.net>", when, "#close\n#assign bob",
                   reply_to="<q1@customer.example>")
        imap_account.append("INBOX", raw, when=when)
        run_once(config, imap_account, when + timedelta(minutes=1))
        after = ticket(config)
        assert (after.status, after.assignee, after.priority, after.first_response_at) == (
            before.status, before.assignee, before.priority, before.first_response_at), (i, after.history[-3:])
    rejected = sent(smtp_sink, "command rejected")
    assert len(rejected) == len(FORGED) and all(m.rcpt_tos == ["alice@shop.example"] for m in rejected)
    assert "receiving server" in rejected[0].message.get_body(("plain",)).get_content()
    assert not [m for m in sent(smtp_sink, "assignment") if m.rcpt_tos == ["bob@shop.example"]]  # nor an #assign

    when = T0 + timedelta(minutes=30)
    good = mail(f"Authentication-Results: {MX}; dkim=pass header.i=@shop.example header.s=s1; "
                "spf=pass smtp.mailfrom=alice@shop.example; dmarc=pass header.from=shop.example",
                "Alice <alice@shop.example>", "Re: [HD-1] Export fails", "<good@shop.example>", when,
                "#assign bob\n#close", reply_to="<q1@customer.example>")
    imap_account.append("INBOX", good, when=when)
    run_once(config, imap_account, when + timedelta(minutes=1))
    done = ticket(config)
    assert (done.status.value, done.assignee) == ("closed", "Bob")
    assert len(sent(smtp_sink, "command rejected")) == len(FORGED)
    assert not [m for m in smtp_sink.messages if m.rcpt_tos == ["anna@customer.example"]
                and str(m.message["X-Mailhelpdesk-Kind"]) != "acknowledgement"]  # commands never reach the customer


def test_two_hundred_senders_failing_spf_get_no_acknowledgement(imap_account, smtp_sink, tmp_path):
    config = write_config(tmp_path, imap_account, smtp_sink)
    run_once(config, imap_account, T0)  # the first pass, over an empty mailbox
    for i in range(200):
        when = T0 + timedelta(seconds=i)
        headers = (f"Authentication-Results: {MX}; spf=fail (domain does not designate 192.0.2.7) "
                   f"smtp.mailfrom=victim{i}@domain{i}.example; dkim=none; dmarc=none")
        imap_account.append("INBOX", mail(headers, f"victim{i}@domain{i}.example", f"CHEAP WATCHES {i} " + "!" * 300,
                                          f"<spam{i}@domain{i}.example>", when, "Buy now."), when=when)
    run_once(config, imap_account, T0 + timedelta(minutes=5))
    state = Store(config.parent / "state.json").load()
    assert len(state.tickets) == 200
    assert sent(smtp_sink, "acknowledgement") == []
    assert all(any(h.what == "acknowledgement withheld" for h in t.history) for t in state.tickets.values())
    # a real customer in the same pass is still acknowledged, with the subject we echo cut short
    when = T0 + timedelta(minutes=10)
    imap_account.append("INBOX", mail(f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=anna@customer.example",
                                      "anna@customer.example", "Export fails " + "x" * 300, "<q2@customer.example>",
                                      when, "Hello"), when=when)
    run_once(config, imap_account, when + timedelta(minutes=1))
    (ack,) = sent(smtp_sink, "acknowledgement")
    assert ack.rcpt_tos == ["anna@customer.example"] and len(str(ack.message["Subject"])) <= 140
