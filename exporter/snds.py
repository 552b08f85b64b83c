"""What Microsoft SNDS says, read from its two CSV feeds (../shared/REFERENCE.md). No I/O here.

**Data** (``data.aspx``): no header, CRLF, one row per IP and activity period, 14 fields:

    0 IP, 1 activity start, 2 activity end, 3 RCPT commands, 4 DATA commands,
    5 message recipients, 6 filter result (GREEN/YELLOW/RED), 7 complaint rate,
    8 trap period start, 9 trap period end, 10 trap hits, 11 sample HELO,
    12 sample MAIL FROM, 13 comments

Dates are ``M/D/YYYY h:mm AM/PM`` with no zone (read as UTC); the complaint rate is
written like ``< 0.1%`` (``<``, ``>`` and ``%`` stripped, then a ratio: 0.001). Rows of
one IP are summed (counts), the worst colour and the highest complaint rate win. A
row that does not parse is skipped and counted, never fatal.

**IP status** (``ipStatus.aspx``): rows ``firstIP,lastIP,Yes,reason`` for blocked ranges
only; an empty body means nothing is blocked.

An answer that is an HTML page (SNDS' error and login pages) is refused as a whole:
:class:`SndsError`. So is an empty data feed.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from exporter.remote_text import MAX_DETAIL_CHARS, printable
from exporter.snapshot import Color, SndsData

__all__ = [
    "BlockedRange",
    "DataFeed",
    "SndsError",
    "StatusFeed",
    "blocked_range_of",
    "data_day",
    "parse_data",
    "parse_ip_status",
]

DATA_FIELDS = 14
_COLORS: dict[str, Color] = {"green": "green", "yellow": "yellow", "red": "red"}
_COLOR_RANK: dict[Color, int] = {"green": 0, "yellow": 1, "red": 2}
_DATE_FORMAT = "%m/%d/%Y %I:%M %p"
_RATE = re.compile(r"^[<>]?\s*(\d+(?:\.\d+)?)\s*%$")
_MAX_PROBLEMS = 5


class SndsError(Exception):
    """The answer as a whole is not what SNDS sends (HTML, empty): nothing in it is used."""


@dataclass
class DataFeed:
    rows: dict[str, SndsData]
    """IP (normalised) -> its activity, rows of one IP summed."""
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    """The first few reasons rows were skipped (``line 3: ...``)."""


@dataclass(frozen=True)
class BlockedRange:
    first: ipaddress.IPv4Address | ipaddress.IPv6Address
    last: ipaddress.IPv4Address | ipaddress.IPv6Address
    reason: str

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return ip.version == self.first.version and self.first <= ip <= self.last  # type: ignore[operator]

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass
class StatusFeed:
    ranges: list[BlockedRange]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def _refuse_html(text: str, what: str) -> None:
    start = text.lstrip()[:200].lower()
    if start.startswith("<") or "<html" in start or "<!doctype" in start:
        raise SndsError(
            f"SNDS {what} answered with an HTML page (an error or sign-in page), not CSV"
        )


def _rows(text: str) -> Iterable[tuple[int, list[str]]]:
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if row and any(cell.strip() for cell in row):
            yield number, row


def _date(text: str) -> float:
    return datetime.strptime(text, _DATE_FORMAT).replace(tzinfo=UTC).timestamp()


def _optional_date(text: str) -> float | None:
    return _date(text) if text else None


def _count(text: str) -> int:
    value = int(text or "0")
    if value < 0:
        raise ValueError(f"negative count {value}")
    return value


def _complaint_rate(text: str) -> float | None:
    """``< 0.1%`` -> 0.001; None when empty or in a form nobody has documented."""
    match = _RATE.match(text)
    return float(match.group(1)) / 100 if match else None


def _data_row(raw: Sequence[str]) -> tuple[str, SndsData]:
    if len(raw) < DATA_FIELDS:
        raise ValueError(f"{len(raw)} fields, expected {DATA_FIELDS}")
    cells = [cell.strip() for cell in raw]
    ip = str(ipaddress.ip_address(cells[0]))
    color = _COLORS.get(cells[6].lower())
    if color is None:
        raise ValueError(f"filter result {printable(cells[6], 40)!r} is not GREEN, YELLOW or RED")
    comments = ",".join(raw[13:]).strip()  # the last field: a comma in it splits it
    return ip, SndsData(
        activity_start=_date(cells[1]),
        activity_end=_date(cells[2]),
        rcpt_commands=_count(cells[3]),
        data_commands=_count(cells[4]),
        message_recipients=_count(cells[5]),
        color=color,
        complaint_rate=_complaint_rate(cells[7]),
        complaint_rate_text=printable(cells[7], 40),
        trap_start=_optional_date(cells[8]),
        trap_end=_optional_date(cells[9]),
        trap_hits=_count(cells[10]),
        sample_helo=printable(cells[11], MAX_DETAIL_CHARS),
        sample_mail_from=printable(cells[12], MAX_DETAIL_CHARS),
        comments=printable(comments, MAX_DETAIL_CHARS),
    )


def _merge(a: SndsData, b: SndsData) -> SndsData:
    """Two activity periods of one IP as one."""
    rates = [rate for rate in (a.complaint_rate, b.complaint_rate) if rate is not None]
    worst = a if _COLOR_RANK[a.color] >= _COLOR_RANK[b.color] else b
    highest = max((a, b), key=lambda row: row.complaint_rate or -1.0)
    traps = [t for t in (a.trap_start, b.trap_start) if t is not None]
    trap_ends = [t for t in (a.trap_end, b.trap_end) if t is not None]
    return a.model_copy(
        update={
            "activity_start": min(a.activity_start, b.activity_start),
            "activity_end": max(a.activity_end, b.activity_end),
            "rcpt_commands": a.rcpt_commands + b.rcpt_commands,
            "data_commands": a.data_commands + b.data_commands,
            "message_recipients": a.message_recipients + b.message_recipients,
            "color": worst.color,
            "complaint_rate": max(rates) if rates else None,
            "complaint_rate_text": highest.complaint_rate_text,
            "trap_start": min(traps) if traps else None,
            "trap_end": max(trap_ends) if trap_ends else None,
            "trap_hits": a.trap_hits + b.trap_hits,
        }
    )


def parse_data(text: str) -> DataFeed:
    """The data feed; :class:`SndsError` when it is HTML or empty."""
    _refuse_html(text, "data")
    if not text.strip():
        raise SndsError(
            "SNDS data is empty (no data published yet for the last day, or no IP on this key)"
        )
    feed = DataFeed(rows={})
    for number, cells in _rows(text):
        try:
            ip, row = _data_row(cells)
        except ValueError as error:
            feed.skipped += 1
            if len(feed.problems) < _MAX_PROBLEMS:
                feed.problems.append(f"line {number}: {printable(str(error), 120)}")
            continue
        feed.rows[ip] = _merge(feed.rows[ip], row) if ip in feed.rows else row
    if not feed.rows:
        raise SndsError(
            f"SNDS data has no row that parses ({feed.skipped} skipped: "
            + "; ".join(feed.problems)
            + ")"
        )
    return feed


def data_day(feed: DataFeed) -> str:
    """``YYYY-MM-DD`` the data is about: the day the latest activity period ends on."""
    latest = max(row.activity_end for row in feed.rows.values())
    # An activity period ending at midnight belongs to the day before.
    return datetime.fromtimestamp(latest - 1, UTC).strftime("%Y-%m-%d")


def parse_ip_status(text: str) -> StatusFeed:
    """The IP status feed (blocked ranges); an empty body is "nothing blocked"."""
    _refuse_html(text, "IP status")
    feed = StatusFeed(ranges=[])
    for number, raw in _rows(text):
        cells = [cell.strip() for cell in raw]
        try:
            if len(cells) < 3:
                raise ValueError(f"{len(cells)} fields, expected firstIP,lastIP,Yes,reason")
            first, last = ipaddress.ip_address(cells[0]), ipaddress.ip_address(cells[1])
            if first.version != last.version or first > last:  # type: ignore[operator]
                raise ValueError(f"{first}-{last} is not a range")
            if cells[2].lower() != "yes":
                continue  # not blocked
            reason = printable(",".join(raw[3:]).strip(), MAX_DETAIL_CHARS)
            feed.ranges.append(BlockedRange(first, last, reason))
        except ValueError as error:
            feed.skipped += 1
            if len(feed.problems) < _MAX_PROBLEMS:
                feed.problems.append(f"line {number}: {printable(str(error), 120)}")
    return feed


def blocked_range_of(ip: str, ranges: Sequence[BlockedRange]) -> BlockedRange | None:
    """The first blocked range that holds ``ip``, if any."""
    address = ipaddress.ip_address(ip)
    return next((r for r in ranges if address in r), None)
