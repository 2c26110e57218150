"""Message-IDs nobody can guess (issue 8, item 2), against a real Dovecot + aiosmtpd and the Gmail API fake: our ids
are an HMAC of the send's key with the installation's secret, so a stranger who knows a ticket's key and our address
cannot name our acknowledgement in `In-Reply-To` or in a forged bounce and reach the ticket; the customer's real
reply does. The secret survives the loss of the state: `rebuild` reads it back from the daemon's records, with the
time each resolved ticket was resolved, so resolved tickets still close and nothing is sent twice (issue 9).
The clock is injected; nothing here reads the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailhelpdesk.core.mail.factory import ID_SECRET, OUR_ID_PREFIX
from mailhelpdesk.model import State
from mailhelpdesk.store.rebuild import rebuild_from
from mailhelpdesk.core.labels import records_label
from mailhelpdesk.store.records import SECRET_HEADER, read_records
from mailhelpdesk.store.state import Store
from test_behaviour import OPEN, RESOLVED, backend  # noqa: F401  (fixture)
from test_robots_and_strangers import mail

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday, in business hours (Vienna)
EML_DATE = "%a, %d %b %Y %H:%M:%S +0000"


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def dsn(message_id: str, when: datetime, n: int) -> bytes:
    """A delivery status notification about `message_id`, as any mail server could write one."""
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.attacker.example>\r\nTo: support@shop.example\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nDate: {when.strftime(EML_DATE)}\r\n"
            f"Message-ID: <bounce{n}@mx.attacker.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
            "--BB\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
            "--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.attacker.example\r\n\r\n"
            "Final-Recipient: rfc822; anna@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
            "--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@shop.example\r\n"
            f"To: anna@customer.example\r\nSubject: [HD-1] Invoice 1042\r\nMessage-ID: {message_id}\r\n\r\n--BB--\r\n"
            ).encode()


def running(backend, clock):
    """A helpdesk that has been running (its first, quiet pass over an empty mailbox behind it), and Anna's request
    acknowledged: the helpdesk and our acknowledgement's Message-ID."""
    desk = backend.helpdesk(clock)
    desk.run_pass()
    clock.now += timedelta(minutes=1)
    backend.deliver(mail(date=clock.now.strftime(EML_DATE)), clock.now)
    clock.now += timedelta(minutes=1)
    desk.run_pass()
    [ack] = [m for m in backend.outgoing() if m["X-Mailhelpdesk-Kind"] == "acknowledgement"]
    return desk, str(ack["Message-ID"])


def test_a_guessed_message_id_of_ours_reaches_no_ticket_and_the_real_reply_does(backend):
    clock = Clock(T0)
    desk, real = running(backend, clock)
    secret = desk.state.cursors[ID_SECRET]
    assert real == desk.engine.ctx.mail.keyed(secret).message_id("ack:HD-1")
    guessed = desk.engine.ctx.mail.legacy_message_id("ack:HD-1")  # sha256 of the key and our address: anyone can
    assert real != guessed and real.startswith(f"{OUR_ID_PREFIX}ack.HD-1.") and guessed.startswith(f"{OUR_ID_PREFIX}ack.HD-1.")
    made_up = f"{OUR_ID_PREFIX}ack.HD-1.0123456789abcdef@shop.example>"  # our form, any digest
    before = desk.state.tickets["HD-1"]

    def deliver(raw: bytes) -> str:
        clock.now += timedelta(minutes=1)
        return backend.deliver(raw, clock.now)

    when = lambda: clock.now.strftime(EML_DATE)  # noqa: E731
    deliver(mail(sender="mallory@attacker.example", subject="Re: Invoice 1042 shows the wrong VAT",
                 mid="<m1@attacker.example>", in_reply_to=guessed, references=f"{made_up} {guessed}", date=when(),
                 body="Cancel this order and send the refund to me."))
    deliver(mail(sender="mallory@attacker.example", subject="Automatic reply: Invoice 1042", mid="<m2@attacker.example>",
                 in_reply_to=guessed, references=guessed, headers=("Auto-Submitted: auto-replied",), date=when(),
                 body="Out of office."))
    deliver(dsn(guessed, clock.now, 1))  # a forged bounce would flag the customer's address as failing
    deliver(dsn(made_up, clock.now, 2))
    clock.now += timedelta(minutes=1)
    desk.run_pass()
    state = desk.state
    assert state.tickets["HD-1"] == before, "untouched: nothing attached, not flagged, not re-opened"
    assert state.tickets["HD-2"].customer == "mallory@attacker.example"
    assert state.tickets["HD-2"].related == (), "our id was not recognised: nothing links it to HD-1"
    assert len(state.tickets) == 2  # the out-of-office and the bounces are robots' mail: recorded, never answered

    # the customer's real reply, by Message-ID alone (no ticket tag in the subject), joins the conversation
    deliver(mail(subject="Re: thank you", mid="<q2@customer.example>", in_reply_to=real, references=real, date=when(),
                 body="One more detail: the order number is 77."))
    # and a bounce naming our real acknowledgement is about it: whoever's server reports it, it is attached
    deliver(dsn(real, clock.now, 3))
    clock.now += timedelta(minutes=1)
    desk.run_pass()
    ticket = desk.state.tickets["HD-1"]
    assert "<q2@customer.example>" in ticket.message_ids and "<bounce3@mx.attacker.example>" in ticket.message_ids
    assert ticket.bounced and len(desk.state.tickets) == 2
    desk.close()


def lose_and_rebuild(backend, desk, clock) -> State:
    """The state file is lost; `rebuild` writes a new one; a helpdesk started on it."""
    desk.close()
    desk.store.path.unlink()
    clock.now += timedelta(minutes=5)
    state = rebuild_from(backend.config, backend.helpdesk(clock).mailbox, clock.now)
    Store(desk.store.path).save(state)
    return state


def test_the_secret_survives_a_lost_state_so_our_ids_stay_the_same(backend):
    clock = Clock(T0)
    desk, real = running(backend, clock)
    secret = desk.state.cursors[ID_SECRET]
    raws = list(desk.mailbox.records(records_label(desk.config.helpdesk.label_root)))
    assert raws and all(f"{SECRET_HEADER}: {secret}" in raw.decode() for raw in raws)
    assert read_records(raws, desk.config.support_address, "HD").secret == secret
    desk.close()
    assert backend.helpdesk(clock).state.cursors[ID_SECRET] == secret  # saved with the state

    state = lose_and_rebuild(backend, desk, clock)
    assert state.cursors[ID_SECRET] == secret
    again = backend.helpdesk(clock)
    assert again.engine.context(again.state).mail.message_id("ack:HD-1") == real
    again.close()


def test_a_resolved_ticket_gets_its_resolution_time_back_and_still_closes_on_time(backend):
    """Issue 9: `rebuild` restores `resolved_at` from the records (written when a ticket is resolved), so a resolved
    ticket closes `close_after` after its resolution, and its resolution notice is not sent again."""
    clock = Clock(T0)
    desk, _ = running(backend, clock)
    clock.now += timedelta(minutes=10)
    backend.agent_relabels(desk.state.tickets["HD-1"].refs[0], add={RESOLVED}, remove={OPEN})
    desk.run_pass()  # the resolution notice goes out
    resolved = desk.state.tickets["HD-1"]
    assert resolved.status.value == "resolved" and resolved.resolved_at == clock.now
    assert [str(m["X-Mailhelpdesk-Kind"]) for m in backend.outgoing()].count("resolution") == 1
    raws = list(desk.mailbox.records(records_label(desk.config.helpdesk.label_root)))
    assert read_records(raws, desk.config.support_address, "HD").entries["HD-1"].resolved == clock.now.isoformat()
    sent, labels = len(backend.outgoing()), backend.all_labels()

    state = lose_and_rebuild(backend, desk, clock)
    assert state.tickets["HD-1"].status.value == "resolved"
    assert state.tickets["HD-1"].resolved_at == resolved.resolved_at
    again = backend.helpdesk(clock)
    clock.now += timedelta(minutes=1)
    report = again.run_pass()
    assert [line for line in report.done if line.startswith("send")] == [] and len(backend.outgoing()) == sent
    clock.now = resolved.resolved_at + timedelta(days=3) - timedelta(minutes=1)
    again.run_pass()
    assert again.state.tickets["HD-1"].status.value == "resolved"
    clock.now = resolved.resolved_at + timedelta(days=3)  # [resolution] close_after = "3d"
    again.run_pass()
    closed = again.state.tickets["HD-1"]
    assert closed.status.value == "closed" and closed.closed_at == clock.now
    assert len(backend.outgoing()) == sent, "nothing was sent again"
    assert labels != backend.all_labels()  # the ticket's mail now shows it closed
    again.close()


def test_without_records_of_it_a_resolution_is_dated_by_its_notice_and_not_sent_again(imap_account, smtp_sink, tmp_path):
    """Records written before they carried secrets and resolutions (an older daemon), here: none at all. `rebuild`
    dates the resolution by the notice's copy in the sent folder, sends nothing twice, and a new secret makes the
    ids from then on; the acknowledgement already sent is still ours."""
    from backends import ImapBackend

    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    clock = Clock(T0)
    desk, real = running(backend, clock)
    old_secret = desk.state.cursors.get(ID_SECRET, "")
    clock.now += timedelta(minutes=10)
    backend.agent_relabels(desk.state.tickets["HD-1"].refs[0], add={RESOLVED}, remove={OPEN})
    desk.run_pass()
    resolved_at = desk.state.tickets["HD-1"].resolved_at
    sent = len(backend.outgoing())
    client = imap_account.client()
    client.select_folder("Helpdesk/Records")
    client.delete_messages(client.search("ALL"))
    client.expunge()

    clock.now += timedelta(hours=2)
    state = lose_and_rebuild(backend, desk, clock)
    assert state.cursors[ID_SECRET] not in ("", old_secret)
    rebuilt = state.tickets["HD-1"]
    assert rebuilt.status.value == "resolved" and rebuilt.resolved_at == resolved_at  # the notice's Date: that pass
    assert state.is_ours(real) and not rebuilt.ack_wanted
    again = backend.helpdesk(clock)
    clock.now += timedelta(minutes=1)
    again.run_pass()
    assert len(backend.outgoing()) == sent
    clock.now = resolved_at + timedelta(days=3)
    again.run_pass()
    assert again.state.tickets["HD-1"].status.value == "closed" and len(backend.outgoing()) == sent
    again.close()
