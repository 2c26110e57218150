"""sd_notify without a dependency: READY=1 once started, WATCHDOG=1 after each healthy loop."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Tell systemd (Type=notify, WatchdogSec=) how we are; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False
