"""clock_guard.decide as a table: the wall clock and the monotonic clock between two passes, the newest arrival
the server stamped, and the time the pass decides on. No clock is read: every reading is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailhelpdesk.core.clock_guard import TOLERANCE, Anchor, decide, span

T = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # the time the last pass decided on
M = 5000.0  # the monotonic clock then
DAY = timedelta(days=1)
MIN = timedelta(minutes=1)
TRUSTED = Anchor(T, M)
HELD = Anchor(T, M, held=DAY)  # the last pass found the wall clock a day ahead


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


@pytest.mark.parametrize("name, anchor, wall, elapsed, arrival, decided, held, note", [
    # name, last pass, wall clock now, monotonic time elapsed, newest arrival, decided on, held, note says
    ("first pass of a process", None, T + DAY, timedelta(0), None, T + DAY, None, ""),
    ("both clocks agree", TRUSTED, T + MIN, MIN, None, T + MIN, None, ""),
    ("a long pass is no jump", TRUSTED, T + 3 * timedelta(hours=1), 3 * timedelta(hours=1), None,
     T + 3 * timedelta(hours=1), None, ""),
    ("drift within the tolerance is trusted", TRUSTED, T + MIN + TOLERANCE, MIN, None, T + MIN + TOLERANCE, None, ""),
    ("a day ahead is held", TRUSTED, T + DAY + MIN, MIN, None, T + MIN, DAY, "jumped ahead by 1 day"),
    ("a day ahead, mail stamped by the server at our old time", TRUSTED, T + DAY + MIN, MIN, T + MIN / 2,
     T + MIN, DAY, "jumped ahead by 1 day"),
    ("a day ahead, confirmed by the server's stamp", TRUSTED, T + DAY + MIN, MIN, T + DAY + MIN / 2,
     T + DAY + MIN, None, "confirms the system clock"),
    ("still held: noted once", HELD, T + DAY + 2 * MIN, 2 * MIN, None, T + 2 * MIN, DAY, ""),
    ("held, then corrected", HELD, T + 3 * MIN, 3 * MIN, None, T + 3 * MIN, None, "agrees again"),
    ("held, then a different jump", HELD, T + 2 * DAY, MIN, None, T + MIN, 2 * DAY - MIN, "jumped ahead by 1 day 23 h"),
    ("a step back is held too", TRUSTED, T - timedelta(hours=2) + MIN, MIN, None, T + MIN, -timedelta(hours=2),
     "stepped back by 2 h"),
    ("a step back confirmed by the server", TRUSTED, T - timedelta(hours=2) + MIN, MIN, T - timedelta(hours=2),
     T - timedelta(hours=2) + MIN, None, "confirms"),
    ("a suspended machine: both clocks moved", TRUSTED, T + timedelta(hours=8), timedelta(hours=8), None,
     T + timedelta(hours=8), None, ""),
])
def test_the_time_a_pass_decides_on(name, anchor, wall, elapsed, arrival, decided, held, note):
    reading = decide(anchor, wall, M + seconds(elapsed), arrival)
    assert reading.now == decided, name
    assert reading.held == held, name
    assert (note in reading.note) if note else reading.note == "", (name, reading.note)
    assert reading.anchor.now == decided and reading.anchor.monotonic == M + seconds(elapsed), "the next pass goes on from here"
    assert reading.wall == (wall if held is not None else None)


def test_a_held_clock_goes_on_with_the_monotonic_clock_pass_after_pass():
    """Each pass decides on the last pass's time plus the real time elapsed: nothing stands still, nothing
    runs ahead, until the wall clock is corrected."""
    reading = decide(TRUSTED, T + DAY, M + 30, None)
    for n in range(2, 10):
        reading = decide(reading.anchor, T + DAY + n * timedelta(seconds=30), M + 30 * n, None)
        assert reading.now == T + n * timedelta(seconds=30) and reading.note == ""
    assert reading.held == DAY


def test_a_monotonic_clock_that_goes_back_is_no_time_elapsed():
    reading = decide(TRUSTED, T, M - 100, None)
    assert reading.now == T and reading.note == ""


def test_the_note_names_the_time_decided_on():
    reading = decide(TRUSTED, T + DAY, M + 60, None)
    assert reading.note == ("the system clock jumped ahead by 23 h 59 min; deciding on 2026-12-07 10:01:00 UTC until the "
                            "mail server's clock confirms it (mail arriving with its time)")


@pytest.mark.parametrize("delta, words", [
    (timedelta(hours=23, minutes=59), "23 h 59 min"), (timedelta(minutes=12), "12 min"),
    (timedelta(days=2, hours=1), "2 days 1 h"), (-timedelta(hours=2), "2 h 0 min"), (DAY, "1 day"),
])
def test_spans_for_people(delta, words):
    assert span(delta) == words
