"""One retry style (backends/retry.py, tenacity) for SMTP and the Gmail API: exponential waits, and once the daemon's
stop event is set (SIGTERM) no new try starts and a wait under way ends at once. No test here sleeps: waits are
counted, and a wait cut short is one that returned because the event was set."""

from __future__ import annotations

import threading

import httplib2
import pytest
from googleapiclient.errors import HttpError

from mailhelpdesk.config import config_from_dict
from mailhelpdesk.errors import MailboxError
from mailhelpdesk.backends.gmail import GmailMailbox
from mailhelpdesk.backends.retry import persist


class Busy(Exception):
    """A passing fault."""


class Failing:
    """A call that fails `times` times (then returns "ok"), counting its attempts."""

    def __init__(self, times: int = 1_000, error: Exception | None = None):
        self.times, self.error, self.attempts = times, error or Busy("try later"), 0

    def __call__(self) -> str:
        self.attempts += 1
        if self.attempts <= self.times:
            raise self.error
        return "ok"


class StopArrivesWhileWaiting(threading.Event):
    """The stop event, set by another thread (as the SIGTERM handler does) as soon as a wait on it begins."""

    def __init__(self):
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        threading.Thread(target=self.set).start()
        return super().wait(timeout)


def passing(exc: BaseException) -> bool:
    return isinstance(exc, Busy)


def test_a_wait_under_way_ends_when_the_stop_event_is_set_and_no_new_try_starts():
    stop = StopArrivesWhileWaiting()
    call = Failing()
    with pytest.raises(Busy, match="try later"):  # the fault itself, not a tenacity wrapper
        persist(call, passing=passing, stop=stop, attempts=5, first=3600, most=3600)
    assert call.attempts == 1 and stop.waits == [3600]  # one hour asked for; it ended when the event was set


def test_once_stopping_a_failure_is_not_tried_again():
    stop = threading.Event()

    def fails_and_stop_arrives():
        stop.set()
        raise Busy("try later")

    with pytest.raises(Busy):
        persist(fails_and_stop_arrives, passing=passing, stop=stop, attempts=5, first=3600, most=3600)


def test_waits_double_up_to_the_most_and_attempts_are_bounded(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("mailhelpdesk.backends.retry.time.sleep", slept.append)  # no stop event: plain sleeps
    call = Failing()
    with pytest.raises(Busy):
        persist(call, passing=passing, stop=None, attempts=6, first=1, most=8)
    assert call.attempts == 6 and slept == [1, 2, 4, 8, 8]
    recovers = Failing(times=2)
    assert persist(recovers, passing=passing, stop=threading.Event(), attempts=6, first=0, most=0) == "ok"
    assert recovers.attempts == 3


def test_a_failure_that_will_not_pass_is_raised_at_once():
    call = Failing(error=ValueError("bad request"))
    with pytest.raises(ValueError):
        persist(call, passing=passing, stop=threading.Event(), attempts=6, first=3600, most=3600)
    assert call.attempts == 1


class Request:
    """A Gmail API request that answers 503 every time."""

    def __init__(self):
        self.attempts = 0

    def execute(self):
        self.attempts += 1
        raise HttpError(httplib2.Response({"status": 503}), b'{"error": {"status": "UNAVAILABLE"}}')


def test_the_gmail_adapter_stops_retrying_when_the_daemon_stops(tmp_path):
    config = config_from_dict({"helpdesk": {"address": "support@shop.example"}, "mailbox": {"backend": "gmail"}},
                              tmp_path / "mailhelpdesk.toml")
    mailbox = GmailMailbox(config, credentials=object())
    stop = StopArrivesWhileWaiting()
    mailbox.stop_when(stop)  # what base.stop_on does for the daemon
    request = Request()
    with pytest.raises(MailboxError, match="503"):
        mailbox._execute(request)
    assert request.attempts == 1 and stop.waits == [1]
