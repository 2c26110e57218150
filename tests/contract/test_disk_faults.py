"""Fail closed: when the state cannot be saved (a full disk), nothing more is sent until it can; the daemon stays
alive and says why (log, `status`); once space returns every mail has gone out exactly once. With
`[imap] save_sent = "no"` (no copy in the mailbox can prove a send), against a real Dovecot and aiosmtpd, the
state on a real, small tmpfs that the test fills."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backends import AGENTS, SUPPORT
from clocks import wait_for
from mailhelpdesk.config import config_from_dict
from mailhelpdesk.app.daemon import Health, Helpdesk, serve

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)  # a Friday, in working hours


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root may mount one; CI runs as root). Skipped, saying why, where that is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode}): "
                    "the full-disk test needs root or CAP_SYS_ADMIN")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the filesystem to the last byte; returns the filler (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
        try:
            while True:  # the last partial block
                handle.write(b"\0")
        except OSError:
            pass
    with pytest.raises(OSError):
        (disk / "probe").write_bytes(b"x" * 8192)
    return filler


TOPICS = ("the invoice", "the parcel", "the login", "a refund", "the price list", "an address change",
          "the API", "a second seat", "the opening hours")


def request(n: int) -> bytes:
    """Nine people's requests, each in words of their own (the same mail again would be a robot's)."""
    topic = TOPICS[n % len(TOPICS)]
    return (f"From: customer{n}@example.org\r\nTo: {SUPPORT}\r\nSubject: Question about {topic}\r\n"
            f"Date: Fri, 20 Nov 2026 10:0{n}:00 +0000\r\nMessage-ID: <q{n}@example.org>\r\n\r\n"
            f"Hello, help with {topic}.\r\n").encode()


def config(account, tmp_path: Path, disk: Path, smtp_port: int):
    data = {
        "helpdesk": {"address": SUPPORT, "name": "Shop Support", "timezone": "Europe/Vienna",
                     "state_file": str(disk / "state.json")},
        "agents": AGENTS,
        "assignment": {"notify": False},
        "mailbox": {"backend": "imap", "poll_interval": 1},
        "imap": {"host": account.host, "port": account.port, "security": "none", "username": account.username,
                 "password": account.password, "sent_folder": "Sent", "save_sent": "no"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
    }
    return config_from_dict(data, tmp_path / "mailhelpdesk.toml")


def test_a_full_disk_stops_sending_until_space_returns_then_each_mail_goes_exactly_once(
        imap_account, smtp_sink, small_disk, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailhelpdesk")
    for n in range(1, 10):  # enough mail that the saves after the disk fills outgrow the journal's last block
        imap_account.append("INBOX", request(n), when=NOW - timedelta(minutes=30 - n))
    # an SMTP outage: the acknowledgements wait in the outbox (port 9: nobody listens)
    down = Helpdesk(config(imap_account, tmp_path, small_disk, 9), clock=lambda: NOW)
    down.run_pass()
    outbox = {r.message_id for r in down.state.sent.values() if not r.done}
    assert len(outbox) >= 4  # four acknowledgements, and the first run's summaries to the agents
    down.close()

    # SMTP is back and the daemon restarts: the disk fills up right after the first mail has gone out (a save is
    # one journal line: the journal's last block may still hold a few; sending stops at the first save that fails)
    desk = Helpdesk(config(imap_account, tmp_path, small_disk, smtp_sink.port), clock=lambda: NOW)
    real_send = desk.mailbox.send
    filler: list[Path] = []

    def send_then_fill(message, labels, thread_id=""):
        ref = real_send(message, labels, thread_id)
        if not filler:
            filler.append(fill(small_disk))
        return ref

    desk.mailbox.send = send_then_fill
    stop = threading.Event()
    daemon = threading.Thread(target=serve, args=(desk, lambda report: None, stop), daemon=True)
    daemon.start()
    try:
        assert wait_for(lambda: filler and "cannot save the state file" in caplog.text, 60)
        sent_when_full = len(smtp_sink.messages)
        assert wait_for(lambda: caplog.text.count("cannot save the state file") >= 3, 60)  # the daemon keeps trying
        assert daemon.is_alive()
        assert len(smtp_sink.messages) == sent_when_full < len(outbox), "nothing more is sent while the state cannot be saved"
        assert "giving up" not in caplog.text, "a mail that went out is never reported as given up"
        health = Health(desk.store.path).read()
        assert "No space left on device" in health.get("unsaved", ""), health

        from mailhelpdesk.app.commands import show_status

        lines: list[str] = []
        (tmp_path / "mailhelpdesk.toml").write_text(
            f'[helpdesk]\naddress = "{SUPPORT}"\nstate_file = "{desk.store.path}"\n[mailbox]\nbackend = "local"\n')
        assert show_status(tmp_path / "mailhelpdesk.toml", lines.append, now=NOW) == 1
        assert any(line.startswith("NOT SAVING:") and "No space left on device" in line for line in lines), lines

        filler[0].unlink()  # space returns
        assert wait_for(lambda: len(smtp_sink.messages) >= len(outbox) and not desk.unsaved, 60)
        assert wait_for(lambda: Health(desk.store.path).read().get("unsaved") is None, 60)
    finally:
        stop.set()
        daemon.join(30)
    assert not daemon.is_alive()
    ids = Counter(str(m.message["Message-ID"]) for m in smtp_sink.messages)
    assert set(ids) == outbox and set(ids.values()) == {1}, ids
    acks = sorted(str(m.message["To"]) for m in smtp_sink.messages if m.message["X-Mailhelpdesk-Kind"] == "acknowledgement")
    assert acks == [f"customer{n}@example.org" for n in range(1, 10)]

    # and a restart after all this sends nothing again
    again = Helpdesk(config(imap_account, tmp_path, small_disk, smtp_sink.port), clock=lambda: NOW + timedelta(minutes=1))
    again.run_pass()
    again.close()
    assert len(smtp_sink.messages) == len(outbox)
    assert not any(os.path.basename(p).startswith(".state.json.") for p in os.listdir(small_disk)), "no temp files left"
