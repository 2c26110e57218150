"""Which time a pass decides on when the system clock jumps. A bad NTP step a day ahead would otherwise fire the
breach reminders, the lead's escalations and the day's digests at once, for a time that has not come (and
nothing at the real time: each is sent once). Between passes of one process the monotonic clock says how much
time really went by; when the wall clock disagrees with it by more than TOLERANCE, the pass goes on deciding on
the last time it decided on plus the monotonic time elapsed, until the mail server confirms the wall clock (the
newest arrival time of mail delivered in the pass, stamped by the server's own clock, lies within TOLERANCE of
it). A step back is held the same way: decisions never go back in time on the system clock's word alone, and
what is sent is sent once whatever the clock says (every mail has a key).

Pure: the readings in, the time to use and a note to log out (`decide`). The first pass of a process has nothing
to compare with and takes the wall clock as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

TOLERANCE = timedelta(minutes=10)  # NTP slews by far less; a pass, however long, is measured by both clocks


@dataclass(frozen=True)
class Anchor:
    """What the last pass decided on: the time, the monotonic clock's reading then, and how far the wall clock
    was off while it was held (None while the wall clock is trusted)."""

    now: datetime
    monotonic: float
    held: timedelta | None = None


@dataclass(frozen=True)
class Reading:
    now: datetime  # the time this pass decides on
    anchor: Anchor  # for the next pass
    note: str = ""  # what to log, once: the wall clock was found off, or is trusted again
    wall: datetime | None = None  # the system clock, when it is not trusted (None: `now` is the wall clock)

    @property
    def held(self) -> timedelta | None:
        """How far the system clock is off the time decided on (positive: ahead), while it is not trusted."""
        return self.anchor.held


def decide(anchor: Anchor | None, wall: datetime, monotonic: float, arrival: datetime | None = None,
           tolerance: timedelta = TOLERANCE) -> Reading:
    """The time to decide on: `wall` (the system clock) unless it disagrees by more than `tolerance` with the
    last pass's time plus the monotonic time elapsed since, and `arrival` (the newest time the server stamped on
    mail delivered in this pass; None when none came) does not confirm it."""
    if anchor is None:
        return Reading(wall, Anchor(wall, monotonic))
    expected = anchor.now + timedelta(seconds=max(monotonic - anchor.monotonic, 0.0))
    off = wall - expected
    if abs(off) <= tolerance:
        note = f"the system clock agrees again; deciding on {_at(wall)}" if anchor.held is not None else ""
        return Reading(wall, Anchor(wall, monotonic), note)
    if arrival is not None and abs(wall - arrival) <= tolerance:
        note = (f"the mail server's clock confirms the system clock ({_at(wall)}, {_offset(off)} the time decided "
                f"on before); deciding on it")
        return Reading(wall, Anchor(wall, monotonic), note)
    again = anchor.held is not None and abs(anchor.held - off) <= tolerance  # the same jump, noted already
    note = "" if again else (f"the system clock {_jumped(off)}; deciding on {_at(expected)} until the mail "
                             "server's clock confirms it (mail arriving with its time)")
    return Reading(expected, Anchor(expected, monotonic, held=off), note, wall=wall)


def _jumped(off: timedelta) -> str:
    return f"jumped ahead by {span(off)}" if off > timedelta(0) else f"stepped back by {span(off)}"


def _offset(off: timedelta) -> str:
    return f"{span(off)} {'after' if off > timedelta(0) else 'before'}"


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}".strip()


def span(delta: timedelta) -> str:
    """A length of time for people: "23 h 59 min", "2 days 1 h", "12 min" (the sign is dropped)."""
    minutes = int(abs(delta).total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
