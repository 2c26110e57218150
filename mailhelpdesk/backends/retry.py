"""The one way the adapters try again after a passing fault (a rate limit, a 5xx, a dropped connection): tenacity,
with exponential waits, and every wait ends the moment the daemon is stopping (`base.stop_on`, on SIGTERM)."""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, stop_when_event_set, wait_exponential

T = TypeVar("T")


class _Stopped(Exception):
    """A wait ended because the daemon is stopping (never leaves this module)."""


def persist(call: Callable[[], T], *, passing: Callable[[BaseException], bool], stop: threading.Event | None,
            attempts: int, first: float, most: float, within: float | None = None) -> T:
    """`call()`, again after a failure that `passing` says may pass: at most `attempts` tries (all of them within
    `within` seconds, when given), waiting `first`, then twice as long each time, up to `most` seconds. Once `stop`
    is set no new try starts and a wait under way ends at once; the last failure is raised as it was. Without a
    `stop` (no daemon around it) the waits are plain sleeps."""
    halt = stop_after_attempt(attempts) | stop_when_event_set(stop or threading.Event())
    if within is not None:
        halt = halt | stop_after_delay(within)
    failures: list[BaseException] = []

    def remember(state) -> None:
        failures.append(state.outcome.exception())

    def pause(seconds: float) -> None:
        if stop is None:
            time.sleep(seconds)
        elif stop.wait(seconds):
            raise _Stopped

    retrying = Retrying(retry=retry_if_exception(passing), stop=halt, wait=wait_exponential(first, max=most),
                        sleep=pause, before_sleep=remember, reraise=True)
    try:
        return retrying(call)
    except _Stopped:
        pass
    raise failures[-1]
