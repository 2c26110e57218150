"""Run the whole test session some days ahead of the real clock, so a test that will break on a later day
(a date bomb) breaks today. CI runs the suite twice: as is, and with ``MAILHELPDESK_TEST_DAYS_AHEAD=365``.

When the variable is set:

- this pytest process and every Python process the tests start (daemons, CLIs) read a wall clock moved
  ahead by time-machine: conftest starts it here, and ``clock_ahead_site/sitecustomize.py``, put on
  ``PYTHONPATH``, starts it in the children. Monotonic clocks, sleeps and timeouts stay real, so waits
  neither hang nor fail (libfaketime 0.9.10 under CPython 3.11 does one or the other);
- Dovecot, which is C, runs under Debian's libfaketime (``apt-get install faketime``): tests/servers.py
  passes ``LD_PRELOAD`` and ``FAKETIME`` through its ``import_environment`` setting, so its arrival times
  and searches live on the same day as the daemon.
"""

from __future__ import annotations

import glob
import os
from datetime import timedelta
from pathlib import Path

ENV = "MAILHELPDESK_TEST_DAYS_AHEAD"
SITE_DIR = str(Path(__file__).resolve().parent / "clock_ahead_site")

_traveller = None  # the running time_machine.travel, kept for the life of the process


def days_ahead() -> int:
    """The whole days from ``$MAILHELPDESK_TEST_DAYS_AHEAD`` (0 when unset or empty)."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${ENV}={value!r}: give a whole number of days, like 365") from None


def start() -> None:
    """Move this process's wall clock ahead by ``days_ahead()`` days and let it tick on; once per process."""
    global _traveller
    days = days_ahead()
    if not days or _traveller is not None:
        return
    import time_machine

    _traveller = time_machine.travel(timedelta(days=days), tick=True)
    _traveller.start()


def start_here_and_in_children() -> None:
    """start(), and put clock_ahead_site on ``PYTHONPATH`` so Python subprocesses start it too."""
    if not days_ahead():
        return
    start()
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if SITE_DIR not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *paths])


def libfaketime_environment() -> dict[str, str]:
    """Environment that moves a C program's clock the same days ahead ({} when the clock is not moved)."""
    days = days_ahead()
    if not days:
        return {}
    libraries = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not libraries:
        raise RuntimeError(f"${ENV} is set but libfaketime is missing: apt-get install -y faketime")
    # NO_FAKE_STAT: file times stay real, as written (Dovecot keeps a message's arrival time in its file's mtime)
    return {"LD_PRELOAD": libraries[0], "FAKETIME": f"{days:+d}d", "NO_FAKE_STAT": "1"}
