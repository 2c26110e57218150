"""Shared helpers for the benchmark scripts (not tests: they print figures and never fail CI).

Every script prints a human-readable report and, as its last line, ``BENCH-RESULT {json}`` so that
``bench/run_all.py`` can build one summary table. Servers are the test helpers from ``tests/`` and only
ever listen on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
for _p in (str(REPO), str(TESTS), str(TESTS / "contract")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

SUPPORT = "support@example.com"  # build_corpus()'s defaults
AGENTS = [{"name": "Alice", "email": "alice@example.com"}, {"name": "Bob", "email": "bob@example.com"}]
RESULT_PREFIX = "BENCH-RESULT "


def _exit_on_sigterm() -> None:
    """A terminated benchmark still runs its finally blocks: the servers it started stop, their files go."""
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        pass


_exit_on_sigterm()


def quiet_logs() -> None:
    """The daemon logs every send at INFO and errors at ERROR; benchmarks keep the console for figures."""
    logging.getLogger("mailhelpdesk").setLevel(logging.CRITICAL)
    logging.getLogger("googleapiclient").setLevel(logging.ERROR)


def emit(name: str, result: dict[str, Any]) -> None:
    """The machine-readable last line for run_all.py."""
    print(RESULT_PREFIX + json.dumps({"bench": name, **result}, default=str), flush=True)


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"mailhelpdesk-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ memory


def _status_kb(field: str) -> int | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next reading covers only what follows (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """VmHWM (peak resident set since start or since reset_peak_rss()), else ru_maxrss (since start)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return (kb or 0) / 1024


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------ IMAP


class ImapCounter:
    """Counts the IMAP commands (by name, ``UID FETCH`` as one name) and the bytes each way of one IMAPClient.

    Every command, whether imaplib sends it or IMAPClient's own raw path (FETCH, SEARCH, APPEND, IDLE), takes
    a tag from ``_imap._new_tag()`` and then writes ``<tag> <NAME> ...`` with ``_imap.send()``: both are wrapped
    on the instance, nothing global is patched.
    """

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.sent = 0
        self.received = 0
        self._pending: bytes | None = None

    def attach(self, client: Any) -> "ImapCounter":
        imap = client._imap
        new_tag, send, read, readline = imap._new_tag, imap.send, imap.read, imap.readline

        def counting_new_tag() -> bytes:
            tag = new_tag()
            self._pending = tag if isinstance(tag, bytes) else str(tag).encode()
            return tag

        def counting_send(data: bytes) -> None:
            self.sent += len(data)
            if self._pending is not None and data.startswith(self._pending + b" "):
                words = data[len(self._pending) + 1 :].split(b" ", 2)
                name = words[0].decode("ascii", "replace").upper()
                if name == "UID" and len(words) > 1:
                    name += " " + words[1].decode("ascii", "replace").split("\r")[0].upper()
                self.commands.append(name.strip())
                self._pending = None
            return send(data)

        def counting_read(size: int) -> bytes:
            data = read(size)
            self.received += len(data)
            return data

        def counting_readline() -> bytes:
            data = readline()
            self.received += len(data)
            return data

        imap._new_tag, imap.send, imap.read, imap.readline = counting_new_tag, counting_send, counting_read, counting_readline
        return self

    def reset(self) -> None:
        self.commands.clear()
        self.sent = self.received = 0

    def summary(self) -> str:
        from collections import Counter

        return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in Counter(self.commands).items()) or "-"


def instrument_imap(helpdesk: Any) -> ImapCounter:
    """Count the commands of the helpdesk's IMAP connection (attached when it connects, also after a reconnect)."""
    counter = ImapCounter()
    mailbox = helpdesk.mailbox
    connect = mailbox.connect

    def counting_connect() -> None:
        connect()
        counter.attach(mailbox.client)

    mailbox.connect = counting_connect
    return counter


def start_dovecot(tmp: Path):
    from servers import DOVECOT_BIN, DovecotServer

    if not os.access(DOVECOT_BIN, os.X_OK):
        print(f"SKIPPED: {DOVECOT_BIN} not found (apt-get install dovecot-imapd)")
        return None
    return DovecotServer(tmp / "dovecot")


@contextmanager
def mail_servers(name: str, tmp: Path) -> Iterator[tuple[Any, Any]]:
    """A private Dovecot and an SMTP sink on 127.0.0.1 for bench `name`, stopped after it; (None, None), with a
    "skipped" result for run_all, where Dovecot is not installed."""
    server = start_dovecot(tmp)
    if server is None:
        emit(name, {"skipped": "no dovecot"})
        yield None, None
        return
    from servers import SmtpSink

    sink = SmtpSink()
    try:
        yield server, sink
    finally:
        sink.stop()
        server.close()


def imap_config(account: Any, smtp: Any, state_dir: Path, *, sending: bool = True, **sections: dict) -> Any:
    """A config for the helpdesk on this Dovecot account; with sending=False no acknowledgements or notices."""
    from mailhelpdesk.config import config_from_dict

    data: dict[str, Any] = {
        "helpdesk": {"address": SUPPORT, "name": "Bench Support", "timezone": "Europe/Vienna",
                     "state_file": str(state_dir / "state.json")},
        "agents": AGENTS,
        "mailbox": {"backend": "imap"},
        "imap": {"host": account.host, "port": account.port, "security": "none", "username": account.username,
                 "password": account.password, "sent_folder": "Sent"},
        "smtp": {"host": smtp.host if smtp else "127.0.0.1", "port": smtp.port if smtp else 25, "security": "none"},
    }
    if not sending:
        data["autoreply"] = {"enabled": False}
        data["assignment"] = {"notify": False}
        data["resolution"] = {"notify": False}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    state_dir.mkdir(parents=True, exist_ok=True)
    return config_from_dict(data, state_dir / "mailhelpdesk.toml")


def multiappend(client: Any, folder: str, messages: list[tuple[bytes, datetime, list]], chunk: int = 250) -> None:
    """APPEND many messages over one connection, several per command (MULTIAPPEND, RFC 3502) when offered."""
    if b"MULTIAPPEND" in client.capabilities():
        for start in range(0, len(messages), chunk):
            client.multiappend(folder, [{"msg": raw, "date": when, "flags": flags}
                                        for raw, when, flags in messages[start : start + chunk]])
    else:
        for raw, when, flags in messages:
            client.append(folder, raw, flags=flags, msg_time=when)


def load_imap(account: Any, messages: list[tuple[str, bytes, datetime]]) -> float:
    """Deliver (folder, raw, when) triples; returns seconds taken."""
    started = time.perf_counter()
    client = account.client(timeout=120)
    try:
        for folder in ("INBOX", "Sent"):
            batch = [(raw, when, [b"\\Seen"] if folder == "Sent" else []) for f, raw, when in messages if f == folder]
            if batch:
                multiappend(client, folder, batch)
    finally:
        client.logout()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------ Gmail fake


def gmail_helpdesk(fake: Any, state_dir: Path, clock=None, *, sending: bool = True, **sections: dict) -> Any:
    from google.oauth2.credentials import Credentials

    from mailhelpdesk.config import config_from_dict
    from mailhelpdesk.app.daemon import Helpdesk
    from mailhelpdesk.backends.gmail import GmailMailbox

    data: dict[str, Any] = {
        "helpdesk": {"address": SUPPORT, "name": "Bench Support", "timezone": "Europe/Vienna",
                     "state_file": str(state_dir / "state.json")},
        "agents": AGENTS,
        "mailbox": {"backend": "gmail"},
        "gmail": {"api_endpoint": fake.url},
    }
    if not sending:
        data["autoreply"] = {"enabled": False}
        data["assignment"] = {"notify": False}
        data["resolution"] = {"notify": False}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    state_dir.mkdir(parents=True, exist_ok=True)
    config = config_from_dict(data, state_dir / "mailhelpdesk.toml")
    mailbox = GmailMailbox(config, credentials=Credentials(token="fake-token"))
    return Helpdesk(config, mailbox=mailbox, clock=clock)


class GmailMeter:
    """API calls and quota units of the fake between two points."""

    def __init__(self, fake: Any):
        self.fake = fake

    def reset(self) -> None:
        self.fake.reset_counters()

    def read(self) -> dict[str, Any]:
        counts = self.fake.call_counts()
        return {"calls": sum(counts.values()), "units": self.fake.quota_units, "http": len(self.fake.requests),
                "by_method": dict(sorted(counts.items()))}


def short_methods(by_method: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('users.', '')} x{v}" for k, v in by_method.items()) or "-"


# ------------------------------------------------------------------------------------------------ mail


def small_message(i: int, when: datetime, *, domain: str = "customer.example", reply_to: str | None = None,
                  subject: str | None = None, sender: str | None = None) -> bytes:
    """A small, unique, realistic-enough customer mail (about 600 bytes)."""
    sender = sender or f"customer{i}@{domain}"
    mid = f"<bench.{i}.{when.timestamp():.0f}@{domain}>"
    lines = [
        f"Return-Path: <{sender}>",
        f"From: Customer {i} <{sender}>",
        f"To: Support <{SUPPORT}>",
        f"Subject: {subject or f'Order {100000 + i} has not arrived'}",
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: {mid}",
    ]
    if reply_to:
        lines += [f"In-Reply-To: {reply_to}", f"References: {reply_to}"]
    lines += [
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 7bit",
        "",
        "Hello,",
        "",
        f"my order {100000 + i} was due last week and is still not here. Could you check where it is?",
        "",
        "Thanks,",
        f"Customer {i}",
        "",
    ]
    return "\r\n".join(lines).encode()


def message_id_of(raw: bytes) -> str:
    found = re.search(rb"^Message-ID: (<[^>]+>)", raw, re.M | re.I)
    return found.group(1).decode() if found else ""


def corpus_messages(count: int, now: datetime) -> list[Any]:
    """The realistic corpus (tests/corpus.py), large enough for `count` messages, cut to exactly `count`."""
    from corpus import build_corpus

    conversations = max(120, int(count / 2.75) + 10)
    while True:
        corpus = build_corpus(n_conversations=conversations, now=now)
        if len(corpus.messages) >= count:
            return corpus.messages[:count]
        conversations = int(conversations * 1.15) + 1


def bench_now() -> datetime:
    """A few minutes ago, whole seconds: the corpus is dated before it (IMAP keeps only past arrival times)."""
    return (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)


def fmt_rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "-"


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A markdown table."""
    text = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(header)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in text]
    return "\n".join(out)
