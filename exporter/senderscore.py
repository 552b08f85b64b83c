"""What a Sender Score answer means (Validity, ../shared/REFERENCE.md). No I/O here.

The score is the last octet of the A record for ``<reversed ip>.score.senderscore.com``.
NXDOMAIN (or no record) means no score: too little mail seen from the IP. An answer
outside 127/8, 127.255.255.255 (query blocked) or a last octet above 100 is unknown.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final, Literal

from exporter.dnsbl import LOOPBACK
from exporter.resolver import Answer

__all__ = ["BANDS", "SENDERSCORE_ZONE", "ScoreVerdict", "band", "classify_score"]

SENDERSCORE_ZONE: Final = "score.senderscore.com"
_BLOCKED: Final = "127.255.255.255"

BANDS: Final = ((80, "good"), (70, "fair"), (0, "poor"))
"""Validity's reading of a score: 80 and above good, 70-79 fair, below 70 poor."""


def band(score: int) -> str:
    """The band a score falls in (see :data:`BANDS`)."""
    return next(name for floor, name in BANDS if score >= floor)


@dataclass(frozen=True)
class ScoreVerdict:
    state: Literal["score", "no_score", "unknown"]
    score: int | None = None
    problem: str = ""


def classify_score(answer: Answer) -> ScoreVerdict:
    """Judge the A answer for an IP's Sender Score name."""
    if answer.empty:
        return ScoreVerdict("no_score")
    if not answer.trustworthy:
        return ScoreVerdict("unknown", problem=f"lookup failed: {answer.describe}")
    if len(answer.records) != 1:
        return ScoreVerdict("unknown", problem=f"expected one address, got {answer.describe}")
    record = answer.records[0]
    try:
        address = ipaddress.IPv4Address(record)
    except ValueError:
        return ScoreVerdict("unknown", problem=f"not an IPv4 address: {record}")
    if address not in LOOPBACK:
        return ScoreVerdict("unknown", problem=f"answer outside 127.0.0.0/8: {record}")
    if record == _BLOCKED:
        return ScoreVerdict("unknown", problem=f"{record}: query blocked by Validity")
    score = int(record.rsplit(".", 1)[1])
    if score > 100:
        return ScoreVerdict("unknown", problem=f"{record}: last octet {score} is not a score")
    return ScoreVerdict("score", score)
