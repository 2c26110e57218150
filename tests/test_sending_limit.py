"""`status` counts what was sent in the last 24 hours against the provider's daily limit and warns from 80 %."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailhelpdesk.app.commands import show_status
from mailhelpdesk.model import SENDS_CURSOR, SentRecord, State, counted
from mailhelpdesk.store.state import Store

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def count_send(state: State, at: datetime) -> None:
    """A mail handed to the provider at `at`, counted as outbox.recorded counts it."""
    state.cursors[SENDS_CURSOR] = counted(state.cursors.get(SENDS_CURSOR, {}), at)


def status_with(tmp_path, sent_hours_ago: list[float], limit: int) -> list[str]:
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text(f'[helpdesk]\naddress = "support@shop.example"\ntimezone = "UTC"\nstate_file = "state.json"\n'
                      f'[mailbox]\nbackend = "local"\ndaily_send_limit = {limit}\n')
    state = State()
    for i, hours in enumerate(sent_hours_ago):
        mid = f"<m{i}@shop.example>"
        state.sent[mid] = SentRecord(f"ack:HD-{i}", mid, f"c{i}@c.example", "acknowledgement", f"HD-{i}",
                                     NOW - timedelta(hours=hours), done=True)
    Store(tmp_path / "state.json").save(state)
    lines: list[str] = []
    show_status(config, lines.append, now=NOW)
    return [line for line in lines if "sent in the last 24 h" in line]


def test_status_warns_near_the_daily_sending_limit(tmp_path):
    (line,) = status_with(tmp_path, [1.0] * 410 + [30.0] * 300, limit=500)
    assert line.startswith("WARNING") and "410 of 500" in line and "daily_send_limit" in line


def test_status_counts_quietly_below_it_and_without_a_limit(tmp_path):
    (line,) = status_with(tmp_path, [1.0] * 100, limit=500)
    assert line == "sent in the last 24 h: 100 of 500 allowed a day"
    (line,) = status_with(tmp_path, [1.0] * 100, limit=0)
    assert line == "sent in the last 24 h: 100"


def test_the_last_day_is_counted_as_mail_goes_out_not_from_the_sent_log(tmp_path):
    """Old tickets and their sent log move to the archive; the hourly counter still knows the last 24 hours."""
    state = State()
    for hours_ago, n in ((30, 50), (20, 300), (1, 110)):
        for _ in range(n):
            count_send(state, NOW - timedelta(hours=hours_ago))
    assert state.sends_last_day(NOW) == 410
    assert len(state.cursors["sends_by_hour"]) == 2, "hours older than a day are forgotten"
    config = tmp_path / "mailhelpdesk.toml"
    config.write_text('[helpdesk]\naddress = "support@shop.example"\ntimezone = "UTC"\nstate_file = "state.json"\n'
                      '[mailbox]\nbackend = "local"\ndaily_send_limit = 500\n')
    Store(tmp_path / "state.json").save(state)
    lines: list[str] = []
    show_status(config, lines.append, now=NOW)
    assert any(line.startswith("WARNING") and "410 of 500" in line for line in lines)


def test_near_the_limit_customers_mail_goes_and_notices_to_agents_wait():
    from mailhelpdesk.app.effects import Effects
    from test_workflow import at, question, workflow_desk

    class Recorder:
        def __init__(self):
            self.sent: list[str] = []

        def set_labels(self, refs, add, remove):
            pass

        def already_sent(self, message_id):
            return False

        def send(self, message, labels, thread_id=""):
            self.sent.append(str(message["X-Mailhelpdesk-Kind"]))
            return ""

    desk = workflow_desk(mailbox={"backend": "local", "daily_send_limit": 100}, assignment={"notify": True})
    for _ in range(89):
        count_send(desk.state, at(19, 8))
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(question(at(19, 9), "<wf2@customer.example>", "ben@other.example", "Login"), now=at(19, 9))
    desk.tick(at(19, 9))
    assert {a.kind for a in desk.sends()} == {"acknowledgement", "assignment"}
    mailbox = Recorder()
    Effects(desk.config, mailbox, lambda: None).apply(desk.state, desk.actions, at(19, 9))
    assert mailbox.sent == ["acknowledgement", "acknowledgement"], "90 % of the limit reached: customers only"
    waiting = [r for r in desk.state.sent.values() if not r.done]
    assert waiting and all(r.kind == "assignment" for r in waiting), "the notices wait in the outbox, not lost"
