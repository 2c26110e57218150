"""One JSON object per line, for log collectors (`run --log-format json`): log records and `run`'s own output."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


def json_line(message: str, level: str = "info", at: datetime | None = None, **extra: object) -> str:
    """One line of output as a JSON object: {"time", "level", "message", ...}."""
    entry = {"time": (at or datetime.now(UTC)).isoformat(), "level": level, "message": message, **extra}
    return json.dumps(entry, ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra: dict[str, object] = {}
        if record.name != "mailhelpdesk":
            extra["logger"] = record.name
        if record.exc_info:
            extra["error"] = self.formatException(record.exc_info)
        return json_line(record.getMessage(), record.levelname.lower(), datetime.fromtimestamp(record.created, UTC), **extra)
