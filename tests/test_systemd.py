"""The systemd integration speaks the sd_notify protocol (checked against a real datagram socket)."""

from __future__ import annotations

import socket

from mailhelpdesk.app.systemd import notify


def test_notify_sends_to_the_socket_systemd_gives(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1") is True
        assert server.recv(100) == b"READY=1"


def test_notify_is_a_no_op_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("WATCHDOG=1") is False


def test_the_unit_file_runs_the_daemon_with_a_watchdog():
    from pathlib import Path

    unit = (Path(__file__).parent.parent / "deploy" / "mailhelpdesk.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "mailhelpdesk run" in unit
