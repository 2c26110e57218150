"""Clocks for the tests: no test reads the machine's date, and CI proves it by running the suite a year ahead.

- ``MAILHELPDESK_TEST_DAYS_AHEAD=365 python -m pytest`` (CI's second run) moves the wall clock of the whole
  session ahead, so a test that would break on a later day (a date bomb) breaks today. This pytest process
  and every Python process the tests start read a clock moved by time-machine: conftest calls
  :func:`start_session`, and ``clocks_site/sitecustomize.py``, put on ``PYTHONPATH``, starts it in the
  children. Monotonic clocks, sleeps and timeouts stay real, so waits neither hang nor fail (libfaketime
  0.9.10 under CPython 3.11 does one or the other). Dovecot, which is C, runs under Debian's libfaketime
  (``apt-get install faketime``): tests/servers.py passes :func:`libfaketime_environment` through its
  ``import_environment`` setting, so the arrival times it keeps and searches live on the same day. (File
  times stay real there: a message APPENDed without a date gets the real day; give tests' mail a date.)
- A test that starts a daemon or CLI process gives it its own clock with :func:`child_env` (the same
  time-machine, started at ``MAILHELPDESK_TEST_NOW`` and ticking on), and runs an in-process CLI on a
  fixed instant with :func:`frozen_at`.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

DAYS_AHEAD = "MAILHELPDESK_TEST_DAYS_AHEAD"
NOW = "MAILHELPDESK_TEST_NOW"
SITE_DIR = str(Path(__file__).resolve().parent / "clocks_site")

_traveller = None  # the running time_machine.travel, kept for the life of the process


def days_ahead() -> int:
    """The whole days from ``$MAILHELPDESK_TEST_DAYS_AHEAD`` (0 when unset or empty)."""
    value = os.environ.get(DAYS_AHEAD, "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${DAYS_AHEAD}={value!r}: give a whole number of days, like 365") from None


def start() -> None:
    """This process's wall clock: from ``$MAILHELPDESK_TEST_NOW`` (an ISO time) if set, else moved
    ``$MAILHELPDESK_TEST_DAYS_AHEAD`` days ahead if set; either way it ticks on. Once per process."""
    global _traveller
    now, days = os.environ.get(NOW, "").strip(), days_ahead()
    if _traveller is not None or not (now or days):
        return
    import time_machine

    _traveller = time_machine.travel(datetime.fromisoformat(now) if now else timedelta(days=days), tick=True)
    _traveller.start()


def _with_site(environ: dict[str, str]) -> dict[str, str]:
    paths = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != SITE_DIR]
    return {**environ, "PYTHONPATH": os.pathsep.join([SITE_DIR, *paths])}


def start_session() -> None:
    """With ``$MAILHELPDESK_TEST_DAYS_AHEAD``: start(), and let every Python subprocess start it too."""
    if days_ahead():
        start()
        os.environ.update(_with_site(dict(os.environ)))


def child_env(now: datetime, **extra: str) -> dict[str, str]:
    """The environment for a Python subprocess whose wall clock reads ``now`` at its start and ticks on."""
    if now.tzinfo is None:
        raise ValueError("give child_env an aware datetime")
    return _with_site({**os.environ, NOW: now.isoformat(), **extra})


def frozen_at(now: datetime):
    """Context manager: this process's wall clock stands at ``now`` (for a CLI run in-process)."""
    import time_machine

    return time_machine.travel(now, tick=False)


def libfaketime_environment() -> dict[str, str]:
    """Environment that moves a C program's clock the same days ahead ({} when the clock is not moved)."""
    days = days_ahead()
    if not days:
        return {}
    libraries = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not libraries:
        raise RuntimeError(f"${DAYS_AHEAD} is set but libfaketime is missing: apt-get install -y faketime")
    # NO_FAKE_STAT: file times stay as written (Dovecot keeps the arrival time it is given in a file's mtime)
    return {"LD_PRELOAD": libraries[0], "FAKETIME": f"{days:+d}d", "NO_FAKE_STAT": "1"}


def wait_for(condition, timeout: float) -> bool:
    """Wait for progress, not for time: True as soon as `condition()` holds (looked at every 50 ms), False when
    it still does not after `timeout` seconds (a bound for a hung test, never an expected duration)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.05)
    return True
