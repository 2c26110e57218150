"""Our Message-IDs nobody can guess (issue 8): an HMAC of the send's key with the installation's secret, the same
for every retry; the secret is kept in the state and in every record (store/records.py), so `rebuild` gets it back; a
state from before secrets keeps its ids and sends nothing twice. Pure: a fixed `now`, no mailbox."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import hmac
from datetime import timedelta

from mailhelpdesk.store import records

from mailhelpdesk.core import transitions
from mailhelpdesk.app.daemon import keep_secret
from mailhelpdesk.core.mail.factory import ID_SECRET, OUR_ID_PREFIX, UPGRADE_WINDOW
from mailhelpdesk.model import SendMail, SentRecord, State, Status
from test_engine import NOW, Desk, make_config
from test_workflow import question

SECRET = "5eb63bbbe01eeed093cb22bb8f5acdc3"
OTHER = "0123456789abcdef0123456789abcdef"
SUPPORT = "support@shop.example"


def factory():
    return Desk().engine.ctx.mail


def mark_sent(desk: Desk, now=NOW) -> list[SendMail]:
    """What the effects module does once a send went out: the sent log and the index know its Message-ID."""
    mails = [a for a in desk.actions if isinstance(a, SendMail) and a.message_id not in desk.state.sent]
    for mail in mails:
        desk.state.sent[mail.message_id] = SentRecord(mail.key, mail.message_id, mail.to, mail.kind, mail.ticket, now,
                                                      done=True)
        if mail.ticket:
            desk.state.index[mail.message_id] = mail.ticket
    return mails


def test_a_message_id_is_an_hmac_of_the_key_with_the_installations_secret():
    mail = factory().keyed(SECRET)
    key = "ack:HD-1"
    digest = hmac.new(SECRET.encode(), f"{key}|{SUPPORT}".encode(), hashlib.sha256).hexdigest()[:16]
    assert mail.message_id(key) == f"{OUR_ID_PREFIX}ack.HD-1.{digest}@shop.example>"
    assert mail.message_id(key) == mail.message_id(key), "the same for every retry: exactly-once compares ids"
    assert mail.message_id(key) != factory().keyed(OTHER).message_id(key)
    guessed = hashlib.sha256(f"{key}|{SUPPORT}".encode()).hexdigest()[:16]  # what anyone could compute before
    assert mail.message_id(key) != mail.legacy_message_id(key) == f"{OUR_ID_PREFIX}ack.HD-1.{guessed}@shop.example>"
    long_key = "escalation lead:HD-123456:20261120T1030:a.very.long.address.of.a.lead@subsidiary.example"
    assert len(f"Message-ID: {mail.message_id(long_key)}") <= 78  # one unfolded header line
    assert SECRET not in repr(mail), "the secret is never logged with the factory"


def test_the_secret_is_made_once_and_kept():
    mail, state = factory(), State()
    secret = keep_secret(mail, state, NOW)
    assert state.cursors[ID_SECRET] == secret and len(secret) == 32 and int(secret, 16) >= 0
    assert keep_secret(mail, state, NOW + timedelta(days=1)) == secret
    assert keep_secret(factory(), State(), NOW) != secret, "random: one per installation"


def test_the_engine_makes_the_ids_of_the_secret_its_state_holds():
    desk = Desk()
    desk.state.cursors[ID_SECRET] = SECRET
    desk.feed(question(NOW - timedelta(minutes=5)), now=NOW)
    desk.tick()
    [ack] = desk.sends("acknowledgement")
    assert ack.message_id == factory().keyed(SECRET).message_id("ack:HD-1") == desk.engine.context(desk.state).mail.message_id("ack:HD-1")
    assert ack.message_id != factory().legacy_message_id("ack:HD-1")


def test_a_state_from_before_secrets_keeps_its_ids_and_sends_nothing_twice():
    """The upgrade: mail sent under the old ids stays ours (looked up, not recomputed), and a resolution notice sent
    just before the upgrade is not sent again under its new id."""
    desk = Desk()  # a state saved before secrets: no id_secret cursor
    desk.feed(question(NOW - timedelta(minutes=5)), now=NOW)
    desk.tick()
    [old_ack] = [m for m in mark_sent(desk) if m.kind == "acknowledgement"]
    assert old_ack.message_id == factory().legacy_message_id("ack:HD-1")
    resolved = transitions.set_status(desk.ticket(), Status.RESOLVED, NOW + timedelta(minutes=10), "label", lambda t, s: s)
    desk.state.tickets["HD-1"] = resolved
    desk.tick(NOW + timedelta(minutes=10))
    [old_notice] = mark_sent(desk, NOW + timedelta(minutes=10))
    assert old_notice.kind == "resolution"

    later = NOW + timedelta(minutes=20)
    secret = keep_secret(desk.engine.ctx.mail, desk.state, later)  # the daemon's first pass after the upgrade
    desk.tick(later)
    assert desk.sends("resolution") == [old_notice], "not sent again under its new id"
    # the customer answers our old acknowledgement: still the ticket's conversation
    reply = (b"From: Anna <anna@customer.example>\r\nTo: support@shop.example\r\nSubject: Re: thanks\r\n"
             b"Date: Fri, 20 Nov 2026 10:55:00 +0000\r\nMessage-ID: <wf2@customer.example>\r\n"
             b"In-Reply-To: " + old_ack.message_id.encode() + b"\r\n\r\nIt works again.\r\n")
    desk.feed(reply, now=later)
    assert desk.ticket().message_ids[-1] == "<wf2@customer.example>" and len(desk.state.tickets) == 1
    # new mail gets ids nobody can compute
    desk.feed(question(later, "<wf3@other.example>", "otto@other.example", "Another thing"), now=later)
    desk.tick(later)
    new_ack = desk.sends("acknowledgement")[-1]
    assert new_ack.ticket == "HD-2" and new_ack.message_id == factory().keyed(secret).message_id("ack:HD-2")
    assert new_ack.message_id != factory().legacy_message_id("ack:HD-2")


def test_only_recent_sends_of_an_old_state_are_entered_under_their_new_ids():
    mail = factory()
    state = State()
    for key, at in (("digest:alice@shop.example:2026-11-20", NOW), ("ack:HD-1", NOW - UPGRADE_WINDOW - timedelta(hours=1))):
        old = mail.legacy_message_id(key)
        state.sent[old] = SentRecord(key, old, "x@example.com", "digest", "", at, done=True)
    secret = keep_secret(mail, state, NOW)
    keyed = mail.keyed(secret)
    assert keyed.message_id("digest:alice@shop.example:2026-11-20") in state.sent  # "already sent today" holds
    assert keyed.message_id("ack:HD-1") not in state.sent  # old enough to matter no more: the log stays small
    assert len(state.sent) == 3


def test_records_carry_the_secret_and_the_time_of_a_resolution():
    desk = Desk()
    desk.feed(question(NOW - timedelta(minutes=5)), now=NOW)
    ticket = transitions.set_status(desk.ticket(), Status.RESOLVED, NOW, "label", lambda t, s: s)
    open_one = dataclasses.replace(ticket, key="HD-2", number=2, status=Status.OPEN, resolved_at=None,
                                   message_ids=("<other@customer.example>",))
    [message] = records.compose_records([ticket, open_one], SUPPORT, "Shop Support", NOW, 7, secret=SECRET)
    assert message[records.SECRET_HEADER] == SECRET
    found = records.read_records([message.as_bytes()], SUPPORT, "HD")
    assert found.secret == SECRET
    assert found.entries["HD-1"].resolved == NOW.isoformat() and found.entries["HD-2"].resolved == ""
    assert records.entry_fingerprint(found.entries["HD-1"]) == records.fingerprint(ticket)
    assert records.entry_fingerprint(found.entries["HD-2"]) == records.fingerprint(open_one) == "-"


def test_the_newest_record_with_a_well_formed_secret_from_us_wins():
    desk = Desk()
    desk.feed(question(NOW - timedelta(minutes=5)), now=NOW)
    ticket = desk.ticket()

    def raw(seq, secret, sender=SUPPORT):
        [message] = records.compose_records([ticket], sender, "Shop Support", NOW, seq, secret=secret)
        return message.as_bytes()

    assert records.read_records([raw(3, OTHER), raw(2, SECRET)], SUPPORT, "HD").secret == OTHER
    assert records.read_records([raw(2, SECRET), raw(2, OTHER)], SUPPORT, "HD").secret == OTHER  # same number: later
    assert records.read_records([raw(2, SECRET), raw(3, "")], SUPPORT, "HD").secret == SECRET  # an older daemon's
    assert records.read_records([raw(2, SECRET), raw(5, OTHER, "mallory@evil.example")], SUPPORT, "HD").secret == SECRET
    forged = email.message_from_bytes(raw(9, SECRET), policy=email.policy.default)
    del forged[records.SECRET_HEADER]
    forged[records.SECRET_HEADER] = "not-hex; <script>"
    assert records.read_records([raw(2, SECRET), forged.as_bytes()], SUPPORT, "HD").secret == SECRET


def test_fingerprints_of_tickets_that_are_not_resolved_did_not_change():
    """States recorded before resolutions were recorded: no ticket needs a new record for it, except resolved ones."""
    desk = Desk(make_config(sla={"escalate_to": ["lead@shop.example"]}))
    desk.feed(question(NOW - timedelta(minutes=5)), now=NOW)
    ticket = dataclasses.replace(desk.ticket(), escalations=("warn",))
    assert records.fingerprint(ticket) == "warn@" + ticket.due_at.isoformat()
    assert records.fingerprint(dataclasses.replace(ticket, escalations=())) == "-"


def test_our_header_on_delivered_mail_does_not_make_it_our_copy():
    """Only the sent log (or a copy in the sent folder) says a mail is ours: a delivered mail that claims to be our
    acknowledgement of HD-1 (our headers, From: the support address) joins nothing."""
    desk = Desk()
    desk.state.cursors[ID_SECRET] = SECRET
    desk.feed(question(NOW - timedelta(minutes=5)), now=NOW)
    desk.tick()
    before = desk.ticket()
    forged = (b"From: Shop Support <support@shop.example>\r\nTo: anna@customer.example\r\nSubject: Your refund\r\n"
              b"Date: Fri, 20 Nov 2026 10:40:00 +0000\r\nMessage-ID: <mhd.ack.HD-1.0123456789abcdef@shop.example>\r\n"
              b"X-Mailhelpdesk-Ticket: HD-1\r\nX-Mailhelpdesk-Kind: acknowledgement\r\n\r\nPay here: http://evil.example\r\n")
    desk.feed(forged, now=NOW + timedelta(minutes=10))
    assert desk.ticket() == before
    assert desk.state.index.get("<mhd.ack.HD-1.0123456789abcdef@shop.example>") != "HD-1"

