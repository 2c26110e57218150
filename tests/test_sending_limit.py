"""`status` counts what was sent in the last 24 hours against the provider's daily limit and warns from 80 %."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailhelpdesk.commands import show_status
from mailhelpdesk.model import SentRecord, State
from mailhelpdesk.store import Store

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


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
