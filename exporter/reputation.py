"""What an HTTP reputation source says about an IP: a JSON field mapped to a rating. No I/O.

This is the old tool's Brightmail column kept as a generic source: Symantec's JSON
endpoint (``/s/wl-brightmail/ip/IP.json``, field ``entityRecord.rep``) is gone, so each
``reputation:`` entry names a URL template, the dotted path of the field in the JSON
answer and how its values map to good / neutral / bad. Values are compared as text,
without regard to case (a JSON number ``3`` is ``"3"``); a value the mapping does not
name gives no rating (unknown), never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from exporter.remote_text import printable
from exporter.snapshot import Rating

__all__ = ["RatingVerdict", "judge"]

_MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class RatingVerdict:
    state: Literal["rated", "no_data", "unknown"]
    rating: Rating | None = None
    value: str = ""
    problem: str = ""


def _field(document: Any, path: str) -> Any:
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(part)
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def judge(status: int, body: str, field: str, ratings: Mapping[str, Rating]) -> RatingVerdict:
    """The rating an answer (HTTP ``status`` and ``body``) gives.

    404 is "the source knows nothing of this IP" (no rating, not a failure). Any other
    non-200 status, a body that is not JSON, a missing field or a value that is not
    in ``ratings`` is unknown, with the reason.
    """
    if status == 404:
        return RatingVerdict("no_data")
    if status != 200:
        return RatingVerdict("unknown", problem=f"HTTP {status}")
    try:
        document = json.loads(body)
    except ValueError:
        return RatingVerdict("unknown", problem="the answer is not JSON")
    try:
        raw = _field(document, field)
    except KeyError as missing:
        return RatingVerdict("unknown", problem=f"no {field} in the answer (at {missing})")
    if raw is None:
        return RatingVerdict("no_data")
    text = _text(raw)
    if text is None:
        return RatingVerdict("unknown", problem=f"{field} is not a single value")
    value = printable(text, _MAX_VALUE_CHARS)
    by_value = {key.strip().lower(): rating for key, rating in ratings.items()}
    rating = by_value.get(text.strip().lower())
    if rating is None:
        return RatingVerdict("unknown", value=value, problem=f"{value!r} is not in ratings")
    return RatingVerdict("rated", rating=rating, value=value)
