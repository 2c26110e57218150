"""A system clock that jumps (issue 16, item 5), against a real Dovecot and an aiosmtpd sink: the daemon gets an
injected wall clock and an injected monotonic clock, and the wall clock jumps a day ahead between two passes
while the monotonic clock says a minute went by. Nothing is fired for the false time (no breach reminder, no lead
escalation, no digest); once the clock is corrected each fires at its real time; mail the server stamped at the
new time confirms it; a clock that steps back sends nothing twice."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from backends import ImapBackend

from mailhelpdesk.app.cli import main
from mailhelpdesk.app.daemon import Helpdesk
from mailhelpdesk.model import Step

T = datetime(2026, 11, 19, 10, 0, tzinfo=UTC)  # a Thursday, 11:00 in Vienna: the request arrives
LEAD = "lead@shop.example"
DAY = timedelta(days=1)
MIN = timedelta(minutes=1)
DIGESTS = {"digest", "lead digest"}


def request(n: int, when: datetime) -> bytes:
    return (f"From: <customer{n}@c{n}.example>\r\nTo: support@shop.example\r\nSubject: Broken order {n}\r\n"
            f"Date: {when:%a, %d %b %Y %H:%M:%S +0000}\r\nMessage-ID: <jump-{n}@c{n}.example>\r\n\r\nHelp.\r\n").encode()


class Clocks:
    """The daemon's two clocks, set by the test: the wall clock (which may jump) and the monotonic one."""

    def __init__(self, wall: datetime):
        self.wall, self.seconds = wall, 0.0

    def advance(self, delta: timedelta, wall: datetime | None = None) -> None:
        """`delta` of real time went by; the wall clock reads `wall` (a jump) or moved as much."""
        self.seconds += delta.total_seconds()
        self.wall = wall if wall is not None else self.wall + delta


@pytest.fixture
def harness(imap_account, smtp_sink, tmp_path):
    """A running helpdesk (an empty first pass an hour before) with a 2 h first response and a lead; then a
    request arrives at T - 1 min and the pass at T makes its ticket."""
    backend = ImapBackend(imap_account, smtp_sink, tmp_path)
    sla = dataclasses.replace(backend.config.sla, first_response={"urgent": "1h", "high": "2h", "normal": "2h", "low": "2d"},
                              escalate_to=[LEAD])
    config = dataclasses.replace(backend.config, sla=sla)
    clocks = Clocks(T - timedelta(hours=1))
    desk = Helpdesk(config, clock=lambda: clocks.wall, monotonic=lambda: clocks.seconds)
    desk.run_pass()
    backend.deliver(request(1, T - MIN), T - MIN)
    clocks.advance(timedelta(hours=1))
    desk.run_pass()
    (ticket,) = desk.state.tickets.values()
    assert ticket.due_at == T - MIN + timedelta(hours=2) and ticket.assignee  # 2 h after it arrived
    yield backend, desk, clocks, ticket.key
    desk.close()


def sent(sink) -> list[tuple[str, str]]:
    return [(str(m.message["X-Mailhelpdesk-Kind"]), str(m.message["To"])) for m in sink.messages]


def new_mail(sink, before: int) -> list[tuple[str, str]]:
    return sent(sink)[before:]


def assignee_email(desk: Helpdesk, key: str) -> str:
    name = desk.state.tickets[key].assignee
    return next(a.email for a in desk.config.agents if a.name == name)


def test_a_clock_a_day_ahead_fires_nothing_and_after_the_correction_everything_fires_at_its_time(harness, smtp_sink,
                                                                                              caplog, tmp_path):
    backend, desk, clocks, key = harness
    caplog.set_level(logging.WARNING, logger="mailhelpdesk")
    digest_at = desk.state.cursors["digest_at"]
    before = len(smtp_sink.messages)

    # a bad NTP step: Friday 10:01, a minute after Thursday 10:00 -- past the breach (Thu 12:00), the lead's
    # escalation (Thu 16:00) and Friday's digests (09:00 Vienna): today all of them would go at once
    clocks.advance(MIN, wall=T + DAY + MIN)
    desk.run_pass()
    clocks.advance(MIN)
    desk.run_pass()
    assert desk.time.now == T + 2 * MIN and desk.time.held == DAY
    jumped = [r.message for r in caplog.records if "jumped ahead" in r.message]
    assert jumped == ["the system clock jumped ahead by 1 day; deciding on 2026-11-19 10:01:00 UTC until the mail "
                      "server's clock confirms it (mail arriving with its time)"], "said once, not at every pass"
    false = new_mail(smtp_sink, before)
    assert not [m for m in false if m[1] == LEAD or m[0] in DIGESTS], f"fired for a time that has not come: {false}"
    assert desk.state.tickets[key].escalations == () and desk.state.cursors["digest_at"] == digest_at
    config = tmp_path / "status.toml"  # `status` needs no server: only where the state is
    config.write_text(f'[helpdesk]\naddress = "support@shop.example"\nstate_file = "{tmp_path / "state.json"}"\n'
                      'timezone = "Europe/Vienna"\n[mailbox]\nbackend = "local"\n')
    status = CliRunner().invoke(main, ["status", "--config", str(config), "--now", clocks.wall.isoformat()])
    assert "CLOCK: the system clock is 1 day ahead of the time the daemon decides on" in status.output, status.output
    assert "STALE" not in status.output, "the last pass is told by the system clock, as `status` reads it"

    clocks.advance(MIN, wall=T + 3 * MIN)  # NTP corrects it
    desk.run_pass()
    assert desk.time.held is None and any("agrees again" in r.message for r in caplog.records)
    assert desk.health.read().get("clock") is None

    count = len(smtp_sink.messages)
    clocks.advance(T + timedelta(hours=2, minutes=1) - clocks.wall)  # the real breach
    desk.run_pass()
    assert Step.BREACH in desk.state.tickets[key].escalations
    assert assignee_email(desk, key) in {to for _, to in new_mail(smtp_sink, count)}, "reminded at the breach"
    assert LEAD not in {to for _, to in sent(smtp_sink)}, "the lead not yet"

    count = len(smtp_sink.messages)
    clocks.advance(T + timedelta(hours=6, minutes=1) - clocks.wall)  # 17:01 in Vienna: 4 business hours later
    desk.run_pass()
    assert Step.LEAD in desk.state.tickets[key].escalations
    assert LEAD in {to for _, to in new_mail(smtp_sink, count)}, "the lead hears at its time"

    count = len(smtp_sink.messages)
    clocks.advance(T + DAY - timedelta(hours=1, minutes=59) - clocks.wall)  # Friday 09:01 in Vienna
    desk.run_pass()
    assert DIGESTS <= {kind for kind, _ in new_mail(smtp_sink, count)}, "the day's digests at their time"
    ids = Counter(str(m.message["Message-ID"]) for m in smtp_sink.messages)
    assert max(ids.values()) == 1, "nothing twice"


def test_mail_stamped_by_the_server_at_the_new_time_confirms_a_jump(harness, smtp_sink):
    """The server's clock agrees with the system clock (the daemon was the one behind): the new time is taken, and
    what is due by it fires."""
    backend, desk, clocks, key = harness
    clocks.advance(MIN, wall=T + timedelta(hours=3))
    backend.deliver(request(2, T + timedelta(hours=3) - MIN), T + timedelta(hours=3) - MIN)
    desk.run_pass()
    assert desk.time.now == T + timedelta(hours=3) and desk.time.held is None
    assert Step.BREACH in desk.state.tickets[key].escalations, "due by the confirmed time"
    assert len(desk.state.tickets) == 2


def test_a_clock_that_steps_back_sends_nothing_twice(harness, smtp_sink):
    backend, desk, clocks, key = harness
    clocks.advance(T + timedelta(hours=2, minutes=1) - clocks.wall)
    desk.run_pass()
    assert Step.BREACH in desk.state.tickets[key].escalations
    first = Counter(sent(smtp_sink))
    assert all(n == 1 for n in first.values()), first

    back = T - timedelta(hours=1)
    clocks.advance(MIN, wall=back)  # stepped back three hours
    desk.run_pass()
    assert desk.time.held == -timedelta(hours=3, minutes=2) and desk.time.now == T + timedelta(hours=2, minutes=2)
    assert Counter(sent(smtp_sink)) == first, "held: nothing new, nothing again"

    clocks.advance(MIN)  # and the server's mail confirms the earlier time: decisions go back with it
    backend.deliver(request(3, back), back)
    desk.run_pass()
    assert desk.time.held is None and desk.time.now == back + MIN
    clocks.advance(timedelta(hours=4))  # past the first ticket's breach a second time
    desk.run_pass()
    after = Counter(sent(smtp_sink))
    assert all(n == 1 for n in after.values()), f"sent twice: {[m for m, n in after.items() if n > 1]}"
    assert desk.state.tickets[key].escalations.count(Step.BREACH) == 1
    assert ("acknowledgement", "customer3@c3.example") in after, "the new request is answered as ever"
    ids = Counter(str(m.message["Message-ID"]) for m in smtp_sink.messages)
    assert max(ids.values()) == 1
