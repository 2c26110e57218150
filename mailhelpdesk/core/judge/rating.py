"""Ratings arrive as replies whose subject the rating link pre-filled: `[HD-42] rating: good`."""

from __future__ import annotations

import re

RATINGS = ("good", "okay", "bad")
RATING = re.compile(r"\brating:\s*(good|okay|bad)\b", re.IGNORECASE)


def rating_in(subject: str) -> str | None:
    found = RATING.search(subject)
    return found.group(1).lower() if found else None
