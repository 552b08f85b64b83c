"""Postfix log lines, read into typed records (../shared/REFERENCE.md "Postfix logs").

No I/O here: the maillog source reads the bytes, this module says what one line
means, so another MTA's format (PowerMTA accounting files, Exim) can sit beside it.
:func:`parse_line` takes one raw line (``bytes``, with or without its newline) and a
:class:`ParseContext` (when "now" is, and the time zone of stamps that carry none),
and returns a record (an immutable, typed :class:`~typing.NamedTuple`: cheap to make,
which matters at a million lines a cycle) or the :class:`SkipReason` of a line it does
not read (:func:`parse` gives None instead):

- :class:`Delivery` — ``QID: to=<rcpt>[, orig_to=<..>], relay=..., [conn_use=N,]
  delay=N, delays=a/b/c/d[, tls=...], dsn=X.Y.Z, status=STATUS (reply)`` with
  STATUS ``sent``, ``deferred``, ``bounced`` or ``SOFTBOUNCE`` (``soft_bounce =
  yes``; the record says ``softbounce``: the mail stays queued, like a deferral).
- :class:`Expiry` — qmgr's ``QID: from=<sender>, status=expired, returned to sender``
  (``force-expired`` after ``postsuper -e``).
- :class:`HostReply` — the SMTP client's soft errors on a server that is not the last
  one it will try, logged with no ``to=``: ``QID: host X[ip] said: ...``, ``QID: host
  X[ip] refused to talk to me: ...``, ``QID: lost connection with X[ip] while ...``,
  ``QID: conversation with X[ip] timed out while ...``. Gmail's rate limits often
  show only like this.

The line must start with a timestamp, the host name and a Postfix program: classic
syslog ``Feb  8 14:02:11`` (no year, day padded with a space), postlog
(``maillog_file``) ``Feb 08 14:02:11``, or rsyslog's RFC 3339
``2026-03-03T10:45:35.473746+00:00``; then ``postfix/prog[pid]: ``, also
``postfix-NAME/prog[pid]: `` (multi-instance) and ``postfix/submission/smtpd[pid]: ``
(a ``syslog_name`` set per service). Queue ids are short (hex, ``463F01A2EBD``) or
long (``3Pt2mN2VXxznjll``). A year-less stamp takes the latest year that does not put
it more than a day after "now" (so ``Dec 31 23:59:59`` read on January 1st is last
year's, and ``Jan  1 00:00:01`` read a minute before midnight on December 31st is
next year's: an MTA clock or zone a little ahead, not a line a year old).

Lines that are truncated (a ``to=`` line without its ``dsn=``, ``status=`` or closing
parenthesis), binary (a NUL), invalid UTF-8 or not Postfix's are skipped, never
guessed at. Work per line is bounded: a line longer than :data:`MAX_LINE_BYTES` is
skipped unread, and the rest is found with ``str.find`` and anchored regular
expressions without nested quantifiers. Nothing is cleaned here: ``reply`` and ``line`` are the
text as logged (valid UTF-8, no NUL, but possibly other control characters), so
whatever keeps or shows them must pass them through
:func:`exporter.remote_text.printable`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Final, Literal, NamedTuple

__all__ = [
    "MAX_ADDRESSES",
    "MAX_CANDIDATES",
    "MAX_LINE_BYTES",
    "RECORD_MARKERS",
    "Delivery",
    "DeliveryStatus",
    "Expiry",
    "HostReply",
    "HostReplyKind",
    "ParseContext",
    "Record",
    "SkipReason",
    "addresses_in",
    "parse",
    "parse_line",
    "reply_dsn",
]

MAX_LINE_BYTES: Final = 32 * 1024
"""Longer lines are skipped unread (``too_long``). Postfix's own lines stay far below:
a joined multi-line reply of a big provider is well under 2 KB."""
RECORD_MARKERS: Final = (
    b": to=<",
    b"expired, returned to sender",
    b": host ",
    b": lost connection with ",
    b": conversation with ",
)
"""Every line that gives a record contains one of these. A reader in a hurry may count
a line with none of them as ``not_read`` without parsing it (most lines of a busy
log: ``connect from``, ``client=``, ``message-id=``, ``removed``, qmgr's ``from=``)."""
MAX_ADDRESSES: Final = 16
""":func:`addresses_in` gives at most this many addresses."""
FUTURE_SLACK: Final = 86_400.0
"""A year-less stamp may be this many seconds after "now" (clock or zone skew)."""


class SkipReason(StrEnum):
    """Why :func:`parse_line` read no record from a line (the values are label-safe)."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    """Longer than :data:`MAX_LINE_BYTES`."""
    BINARY = "binary"
    """Contains a NUL byte."""
    INVALID_UTF8 = "invalid_utf8"
    NOT_POSTFIX = "not_postfix"
    """No timestamp, host and ``postfix*/prog[pid]: `` at the start."""
    BAD_TIME = "bad_time"
    """Shaped like a timestamp, but no such time (``Feb 30``, ``25:00:00``)."""
    NOT_READ = "not_read"
    """A Postfix line of a kind mtarep does not read (``connect from``, ``removed``...)."""
    TRUNCATED = "truncated"
    """Starts like a line mtarep reads (``QID: to=<``) but does not parse to its end."""


class DeliveryStatus(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    SOFTBOUNCE = "softbounce"
    """Postfix's ``SOFTBOUNCE``: would have bounced, but ``soft_bounce = yes`` kept it queued."""


HostReplyKind = Literal["said", "refused", "lost_connection", "timed_out"]


class Delivery(NamedTuple):
    """One delivery attempt to one recipient (``QID: to=<...>, ..., status=...``)."""

    time: float
    """Unix seconds."""
    hostname: str
    """The host name in the line (the MTA that logged it)."""
    program: str
    """``postfix/smtp``, ``postfix-out/smtp``, ``postfix/submission/smtpd``..."""
    pid: int
    queue_id: str
    recipient: str
    """As logged, without the angle brackets; "" for ``to=<>``."""
    domain: str | None
    """The recipient's domain, lower case; None for ``to=<>`` or a bare local part."""
    orig_to: str | None
    relay: str
    """As logged: ``mx.example.com[192.0.2.1]:25``, ``none``, ``local``,
    ``mail.example.com[private/dovecot-lmtp]`` (LMTP over a socket)."""
    conn_use: int | None
    delay: float | None
    delays: str | None
    """``a/b/c/d`` as logged."""
    dsn: str
    status: DeliveryStatus
    reply: str
    """What is inside the final parentheses, as logged (may itself contain parentheses)."""
    line: str
    """The whole line as logged, without its newline."""

    # Read from ``relay`` when asked (most lines are only counted).

    @property
    def relay_host(self) -> str:
        """``mx.example.com``; the whole ``relay`` when it is not ``host[...]``."""
        return _relay_parts(self.relay)[0]

    @property
    def relay_ip(self) -> str | None:
        """The address in the brackets as logged; None for ``none``, ``local``, a socket."""
        return _relay_parts(self.relay)[1]

    @property
    def relay_port(self) -> int | None:
        return _relay_parts(self.relay)[2]


class Expiry(NamedTuple):
    """qmgr gave up on a message: ``QID: from=<sender>, status=expired, returned to sender``."""

    time: float
    hostname: str
    program: str
    pid: int
    queue_id: str
    sender: str
    """As logged, without the angle brackets; "" for the null sender."""
    forced: bool
    """``status=force-expired`` (``postsuper -e``) rather than ``expired``."""
    line: str


class HostReply(NamedTuple):
    """A soft error on a server that was not the last to try; the line names no recipient."""

    time: float
    hostname: str
    program: str
    pid: int
    queue_id: str
    kind: HostReplyKind
    """``said`` (a reply), ``refused`` (to talk: the greeting), ``lost_connection``,
    ``timed_out``."""
    remote_host: str
    remote_ip: str
    reply: str
    """Everything after ``QID: ``: ``host mx.example.com[192.0.2.1] said: 421-4.7.28 ...``."""
    dsn: str
    """The enhanced status code of the SMTP reply (``4.7.28``), "" when it has none."""
    line: str


Record = Delivery | Expiry | HostReply


class ParseContext:
    """When "now" is, and the zone of timestamps that carry none, for one batch of lines.

    ``now`` is an aware :class:`~datetime.datetime` or Unix seconds. ``tz`` is the
    zone of the MTA's year-less (and zone-less RFC 3339) stamps; ``None`` means the
    local zone of this process (its DST rules included). It caches the conversion of
    each minute it sees, so use one context per batch read at one time.
    """

    __slots__ = ("_minute_cache", "_now", "_now_year", "_tz")

    def __init__(self, now: datetime | float, tz: tzinfo | None = UTC) -> None:
        if isinstance(now, datetime):
            if now.tzinfo is None or now.utcoffset() is None:
                raise ValueError("now must be an aware datetime (or Unix seconds)")
            self._now = now.timestamp()
        else:
            self._now = float(now)
        self._tz = tz
        self._now_year = datetime.fromtimestamp(self._now, tz).year
        self._minute_cache: dict[str, float | None] = {}

    @property
    def now(self) -> float:
        return self._now

    @property
    def tz(self) -> tzinfo | None:
        return self._tz

    def syslog_stamp(self, minute: str, second: str) -> float | None:
        """Unix seconds of the year-less stamp ``"Feb  8 14:02"`` + ``"11"`` (the year
        chosen as the module says, for the stamp's minute; cached per minute); None when
        no year has that date (``Feb 30``) or a field is out of range."""
        start = self._minute_cache.get(minute, -1.0)
        if start == -1.0:
            start = self._parse_minute(minute)
            if len(self._minute_cache) > 100_000:  # bounded memory on a very long batch
                self._minute_cache.clear()
            self._minute_cache[minute] = start
        if start is None or not second.isdigit() or int(second) > 59:
            return None
        return start + int(second)

    def _parse_minute(self, text: str) -> float | None:
        month_name, _, rest = text.partition(" ")
        day, _, hour_minute = rest.strip(" ").partition(" ")
        month = _MONTHS.get(month_name)
        hour, _, minute = hour_minute.partition(":")
        if month is None or not (day.isdigit() and hour.isdigit() and minute.isdigit()):
            return None
        return self._minute_start(month, int(day), int(hour), int(minute))

    def _minute_start(self, month: int, day: int, hour: int, minute: int) -> float | None:
        latest = self._now + FUTURE_SLACK
        # Feb 29 may skip back over non-leap years (8 years around 2100).
        for year in range(self._now_year + 1, self._now_year - 9, -1):
            try:
                stamp = self.local_time(datetime(year, month, day, hour, minute))
            except ValueError:
                if not (1 <= month <= 12 and 0 <= hour <= 23 and 0 <= minute <= 59):
                    return None
                continue
            if stamp <= latest:
                return stamp
        return None

    def local_time(self, naive: datetime) -> float:
        """Unix seconds of a wall-clock time in this context's zone."""
        if self._tz is None:
            return naive.timestamp()  # the process's local zone, DST included
        return naive.replace(tzinfo=self._tz).timestamp()


# The line's header -----------------------------------------------------------------

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}

_HEADER: Final = re.compile(
    r"(?:(?P<mon>[A-Z][a-z]{2}) (?P<day>[ 0-3]?[0-9]) (?P<hms>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"|(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?))"
    r" (?P<host>[^\s\[\]]{1,255})"
    r" (?P<prog>postfix(?:-[A-Za-z0-9_.-]{1,64})?(?:/[A-Za-z0-9_.-]{1,64}){1,4})"
    r"\[(?P<pid>[0-9]{1,10})\]: "
)
_QUEUE_ID: Final = re.compile(r"(?:[0-9A-F]{6,20}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,24}): ")
"""Short ids are upper-case hex; long ids (``enable_long_queue_ids``) use digits and
letters without vowels, so no word (``warning:``, ``NOQUEUE:``) passes for one."""

_REMOTE: Final = r"(?P<host>[^\s\[\]]{1,255})\[(?P<ip>[^\s\[\]]{1,64})\]"
_SAID: Final = re.compile(r"host " + _REMOTE + r" (?P<what>said|refused to talk to me): ")
_LOST: Final = re.compile(r"lost connection with " + _REMOTE + r" while \S")
_TIMED_OUT: Final = re.compile(r"conversation with " + _REMOTE + r" timed out while \S")
_RELAY: Final = re.compile(
    r"(?P<host>[^\s\[\]]{0,255})\[(?P<inside>[^\s\[\]]{1,255})\](?::(?P<port>[0-9]{1,5}))?"
)
_IP_SHAPED: Final = re.compile(r"[0-9A-Fa-f:.]*[0-9][0-9A-Fa-f:.]*")
_DSN: Final = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")
_REPLY_DSN: Final = re.compile(
    r"(?<!\S)[245][0-9]{2}[ -](?P<dsn>[245]\.[0-9]{1,3}\.[0-9]{1,3})(?!\S)"
)
_STATUSES: Final = {
    "sent": DeliveryStatus.SENT,
    "deferred": DeliveryStatus.DEFERRED,
    "bounced": DeliveryStatus.BOUNCED,
    "SOFTBOUNCE": DeliveryStatus.SOFTBOUNCE,
}
_RETURNED: Final = ", returned to sender"


def parse(raw: bytes, context: ParseContext) -> Record | None:
    """The record of one line, or None when it is skipped (:func:`parse_line` says why)."""
    result = parse_line(raw, context)
    return None if isinstance(result, SkipReason) else result


def parse_line(raw: bytes, context: ParseContext) -> Record | SkipReason:
    """Read one raw log line (a trailing ``\\n``/``\\r\\n`` is ignored)."""
    if len(raw) > MAX_LINE_BYTES + 2:
        return SkipReason.TOO_LONG
    raw = raw.rstrip(b"\r\n")
    if not raw:
        return SkipReason.EMPTY
    if len(raw) > MAX_LINE_BYTES:
        return SkipReason.TOO_LONG
    if b"\x00" in raw:
        return SkipReason.BINARY
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return SkipReason.INVALID_UTF8
    header = _HEADER.match(line)
    if header is None:
        return SkipReason.NOT_POSTFIX
    queue_id = _QUEUE_ID.match(line, header.end())
    if queue_id is None:
        return SkipReason.NOT_READ
    start = queue_id.end()
    if line.startswith("to=<", start):
        return _delivery(line, start, header, context)
    if line.startswith("from=<", start):
        return _expiry(line, start, header, context)
    if line.startswith(("host ", "lost connection with ", "conversation with "), start):
        return _host_reply(line, start, header, context)
    return SkipReason.NOT_READ


def _time(header: re.Match[str], context: ParseContext) -> float | None:
    hms_end = header.end("hms")
    if hms_end >= 0:
        # "Feb  8 14:02:11": the stamp up to the minute is the cache key.
        return context.syslog_stamp(
            header.string[: hms_end - 3], header.string[hms_end - 2 : hms_end]
        )
    try:
        stamp = datetime.fromisoformat(header["iso"])
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return context.local_time(stamp)
    return stamp.timestamp()


# The message parts -------------------------------------------------------------------


def _delivery(
    line: str, start: int, header: re.Match[str], context: ParseContext
) -> Delivery | SkipReason:
    """``to=<rcpt>[, orig_to=<..>], relay=R, ..., dsn=D, status=S (reply)`` from ``start``."""
    relay_at = line.find(">, relay=", start + 4)
    if relay_at < 0:
        return SkipReason.TRUNCATED
    recipient = line[start + 4 : relay_at]
    orig_to: str | None = None
    split = recipient.find(">, orig_to=<")
    if split >= 0:
        recipient, orig_to = recipient[:split], recipient[split + 12 :]
    dsn_at = line.find(", dsn=", relay_at + 9)
    if dsn_at < 0:
        return SkipReason.TRUNCATED
    status_at = line.find(", status=", dsn_at + 6)
    if status_at < 0:
        return SkipReason.TRUNCATED
    dsn = line[dsn_at + 6 : status_at]
    if not _DSN.fullmatch(dsn):
        return SkipReason.TRUNCATED
    paren = line.find(" (", status_at + 9)
    if paren < 0 or not line.endswith(")"):
        return SkipReason.TRUNCATED
    status = _STATUSES.get(line[status_at + 9 : paren])
    if status is None:
        return SkipReason.NOT_READ  # an address verification probe, a future status...
    relay, _, rest = line[relay_at + 9 : dsn_at].partition(", ")
    if not relay:
        return SkipReason.TRUNCATED
    conn_use: int | None = None
    delay: float | None = None
    delays: str | None = None
    for part in rest.split(", ") if rest else ():
        name, _, value = part.partition("=")
        if name == "conn_use" and value.isdigit():
            conn_use = int(value)
        elif name == "delay":
            delay = _number(value)
        elif name == "delays":
            delays = value
    time = _time(header, context)
    if time is None:
        return SkipReason.BAD_TIME
    hostname, program, pid = header.group("host", "prog", "pid")
    return Delivery(
        time,
        hostname,
        program,
        int(pid),
        line[header.end() : start - 2],
        recipient,
        _domain(recipient),
        orig_to,
        relay,
        conn_use,
        delay,
        delays,
        dsn,
        status,
        line[paren + 2 : -1],
        line,
    )


def _relay_parts(relay: str) -> tuple[str, str | None, int | None]:
    """(host, ip, port) of ``relay=``: ``mx[192.0.2.1]:25``, ``mx[private/lmtp]``, ``none``."""
    match = _RELAY.fullmatch(relay)
    if match is None:
        return relay, None, None
    inside, port = match["inside"], match["port"]
    ip = inside if _IP_SHAPED.fullmatch(inside) else None
    return match["host"], ip, int(port) if port else None


def _expiry(
    line: str, start: int, header: re.Match[str], context: ParseContext
) -> Expiry | SkipReason:
    """``from=<sender>, status=expired, returned to sender`` from ``start``."""
    status_at = line.find(">, status=", start + 6)
    if status_at < 0:
        return SkipReason.NOT_READ  # ``from=<x>, size=N, nrcpt=M (queue active)``
    rest = line[status_at + 10 :]
    word, comma, _ = rest.partition(",")
    if word not in ("expired", "force-expired"):
        return SkipReason.NOT_READ
    ending = rest[len(word) :]
    if not comma or ending != _RETURNED:
        return SkipReason.TRUNCATED if _RETURNED.startswith(ending) else SkipReason.NOT_READ
    time = _time(header, context)
    if time is None:
        return SkipReason.BAD_TIME
    hostname, program, pid = header.group("host", "prog", "pid")
    return Expiry(
        time,
        hostname,
        program,
        int(pid),
        line[header.end() : start - 2],
        line[start + 6 : status_at],
        word == "force-expired",
        line,
    )


def _host_reply(
    line: str, start: int, header: re.Match[str], context: ParseContext
) -> HostReply | SkipReason:
    kind: HostReplyKind
    if (match := _SAID.match(line, start)) is not None:
        kind = "said" if match["what"] == "said" else "refused"
    elif (match := _LOST.match(line, start)) is not None:
        kind = "lost_connection"
    elif (match := _TIMED_OUT.match(line, start)) is not None:
        kind = "timed_out"
    else:
        return SkipReason.NOT_READ
    time = _time(header, context)
    if time is None:
        return SkipReason.BAD_TIME
    reply = line[start:]
    hostname, program, pid = header.group("host", "prog", "pid")
    return HostReply(
        time,
        hostname,
        program,
        int(pid),
        line[header.end() : start - 2],
        kind,
        match["host"],
        match["ip"],
        reply,
        reply_dsn(reply) if kind in ("said", "refused") else "",
        line,
    )


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _domain(address: str) -> str | None:
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return None
    domain = domain.rstrip(".").lower()
    return domain or None


def reply_dsn(text: str) -> str:
    """The first enhanced status code of an SMTP reply in ``text`` (``421-4.7.28`` gives
    ``4.7.28``), or ""."""
    match = _REPLY_DSN.search(text)
    return match["dsn"] if match is not None else ""


# Addresses named in a reply ------------------------------------------------------------

_ADDRESS: Final = re.compile(
    # IPv6 (two colons at least), possibly ending in dotted IPv4 (``::ffff:192.0.2.1``).
    r"(?:(?<![0-9A-Za-z_:.])|(?<=IPv6:))"
    r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
    r"(?!\.?[0-9A-Za-z_:])"
    # IPv4: not part of a longer dotted number (a version, an IPv6 address).
    r"|(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?!\.?[0-9])"
)
MAX_CANDIDATES: Final = 64
""":func:`addresses_in` looks at this many address-shaped strings at most."""


def addresses_in(text: str) -> list[str]:
    """The IPv4 and IPv6 addresses ``text`` names, normalised (``2001:DB8::0:1`` gives
    ``2001:db8::1``, ``::ffff:192.0.2.1`` gives ``192.0.2.1``), each once, in order, at
    most :data:`MAX_ADDRESSES`.

    Gmail's ``[192.0.2.1 15]``, Yahoo's ``Messages from 192.0.2.1 temporarily
    deferred``, Microsoft's ``messages from [192.0.2.1] weren't sent``, AT&T's
    ``550-192.0.2.1 blocked`` are all found; so is the receiving server's own address in
    ``host mx[198.51.100.7] said:``, so compare the result with your sending IPs.
    Version numbers (``1.2.3.4.5``), times (``10:45:35``) and words with colons are not
    addresses.
    """
    found: list[str] = []
    for number, match in enumerate(_ADDRESS.finditer(text)):
        if number >= MAX_CANDIDATES:
            break
        try:
            address = ipaddress.ip_address(match.group())
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address):
            if address.is_unspecified:
                continue  # "::" in prose
            address = address.ipv4_mapped or address
        if address.compressed not in found:
            found.append(address.compressed)
            if len(found) >= MAX_ADDRESSES:
                break
    return found
