"""Text a remote party wrote (SMTP greetings, PTR names, TXT records), made safe to keep.

One rule for all of it: whitespace becomes a space, other control and format
characters (bidi overrides included) are dropped, and the result is cut to a limit.
Such text may go to Redis, the API and pages (escaped there), never into a label.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_DETAIL_CHARS", "MAX_REASON_CHARS", "printable"]

MAX_DETAIL_CHARS = 200
"""For a remote part of a one-line detail (a greeting, a PTR name)."""
MAX_REASON_CHARS = 1000
"""For a TXT reason of a listing."""


def printable(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` with whitespace made spaces, other control characters dropped, cut to ``limit``."""
    cleaned = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or not unicodedata.category(char).startswith("C")
    )
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
