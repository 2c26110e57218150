"""`digest --send` while the daemon runs: the command leaves a request file beside the state and the daemon sends
the digests at its next pass, through its own outbox (so each digest still goes at most once a day, and only one
process ever writes the state file)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mailhelpdesk.model import SendMail, State

if TYPE_CHECKING:
    from mailhelpdesk.core.context import Context

log = logging.getLogger("mailhelpdesk")
EXPIRES = timedelta(hours=12)  # a request the daemon could not take in time is dropped, never sent days later


def request_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".digest-request")


def ask(state_file: Path, now: datetime) -> Path:
    """Leave the request (atomically) for the running daemon."""
    path = request_path(state_file)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"requested_at": now.isoformat(), "pid": os.getpid()}))
    os.replace(tmp, path)
    return path


def take(ctx: "Context", state: State, now: datetime, state_file: Path) -> list[SendMail]:
    """The daemon's side, once per pass: the digests asked for since the last pass (and the request removed)."""
    path = request_path(state_file)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        data = {}
        log.warning("ignoring an unreadable digest request %s: %s", path, exc)
    path.unlink(missing_ok=True)
    try:
        asked = datetime.fromisoformat(data["requested_at"])
    except (KeyError, TypeError, ValueError):
        return []
    if now - asked > EXPIRES:
        log.warning("digest request of %s dropped: the daemon did not run in time", asked.isoformat())
        return []
    from mailhelpdesk.core.duties.digests import build_digests

    log.info("sending the digests asked for by `mailhelpdesk digest --send`")
    return build_digests(ctx, state, now, asked=True)
