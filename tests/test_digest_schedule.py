"""The digest's schedule is read as cron reads it: weekday 1-5 is Monday to Friday (APScheduler 3 alone would
read it as Tuesday to Saturday), 0 and 7 are Sunday."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailhelpdesk.core.duties.digests import _weekday_names, next_fire

FRIDAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("field, names", [
    ("1-5", "mon,tue,wed,thu,fri"),
    ("0", "sun"), ("7", "sun"), ("0,6", "sun,sat"), ("5-7", "sun,fri,sat"),
    ("*/2", "sun,tue,thu,sat"), ("1-5/2", "mon,wed,fri"), ("3/2", "wed,fri"),
    ("*", "*"), ("mon-fri", "mon-fri"),
])
def test_weekday_numbers_become_the_days_cron_means(field, names):
    assert _weekday_names(field) == names


@pytest.mark.parametrize("field", ["8", "5-3", "-1"])
def test_a_weekday_out_of_range_is_refused(field):
    with pytest.raises(ValueError):
        _weekday_names(field)


def test_the_default_schedule_fires_on_working_days_only():
    fires, at = [], FRIDAY
    for _ in range(5):
        at = next_fire("0 9 * * 1-5", UTC, at)
        fires.append(at.strftime("%a %d"))
        at += timedelta(minutes=1)
    assert fires == ["Mon 23", "Tue 24", "Wed 25", "Thu 26", "Fri 27"]


def test_a_digest_asked_for_at_night_does_not_use_up_the_mornings_scheduled_one():
    """`digest --send` at 01:30 and the 09:00 digest of the same day are two mails (two keys, two Message-IDs);
    a second `--send` that day is the first one again (exactly once)."""
    from mailhelpdesk.core.duties.digests import build_digests
    from test_engine import Desk

    desk = Desk()
    desk.feed("question.eml")
    desk.tick()
    ctx, night = desk.engine.context(desk.state), datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
    asked = {m.to: m.message_id for m in build_digests(ctx, desk.state, night, asked=True)}
    again = {m.to: m.message_id for m in build_digests(ctx, desk.state, night + timedelta(hours=2), asked=True)}
    scheduled = {m.to: m.message_id for m in build_digests(ctx, desk.state, datetime(2026, 11, 20, 8, 0, tzinfo=UTC))}
    assert asked and asked == again
    assert set(asked) == set(scheduled) and not set(asked.values()) & set(scheduled.values())
