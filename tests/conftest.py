"""Shared pytest fixtures. The servers themselves live in tests/servers.py."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # pytest's default import mode already adds it; importlib mode does not
    sys.path.insert(0, _TESTS_DIR)

from servers import DOVECOT_BIN, DovecotServer, ImapAccount, SmtpSink  # noqa: E402
import clocks  # noqa: E402

clocks.start_session()  # only with $MAILHELPDESK_TEST_DAYS_AHEAD (CI's second run)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory):
    """A private Dovecot (servers.DovecotServer) on 127.0.0.1 for the whole session.

    Skips (reason also shown in the warnings summary) when /usr/sbin/dovecot is missing;
    with MAILHELPDESK_REQUIRE_DOVECOT=1 a missing dovecot fails instead.
    """
    if not os.access(DOVECOT_BIN, os.X_OK):
        reason = f"{DOVECOT_BIN} not found; install it with: apt-get install -y dovecot-imapd"
        if os.environ.get("MAILHELPDESK_REQUIRE_DOVECOT") == "1":
            pytest.fail(reason + " (MAILHELPDESK_REQUIRE_DOVECOT=1)", pytrace=False)
        warnings.warn(pytest.PytestWarning("IMAP tests skipped: " + reason))
        pytest.skip(reason)
    server = DovecotServer(tmp_path_factory.mktemp("dovecot"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def imap_account(dovecot):
    """A fresh user with a random password on the session Dovecot (servers.ImapAccount)."""
    account = ImapAccount.create(dovecot)
    try:
        yield account
    finally:
        account.close()


@pytest.fixture
def smtp_sink():
    """A servers.SmtpSink without AUTH on 127.0.0.1, stopped at teardown."""
    sink = SmtpSink()
    try:
        yield sink
    finally:
        sink.stop()
