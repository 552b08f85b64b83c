"""The HELO banner check: does an MTA greet with the name its FCrDNS names?

``check_helo("192.0.2.25", "mta1.example.com", 25, 5.0)`` connects, reads the SMTP
greeting (RFC 5321 section 4.2: ``220-...`` lines ending with a ``220 ...`` line),
says ``QUIT`` and closes. The first word after the ``220`` is the name the MTA
announces; it must equal the FQDN, case-insensitively, ignoring a trailing dot.

Network problems never raise: they become a :class:`Banner` with an ``error`` and a
detail sentence. Cancellation propagates, and the connection is closed in every case.
The greeting is remote text: a detail carries it only through
:func:`exporter.remote_text.printable`.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass

from exporter.config_types import dns_name_key
from exporter.fcrdns import same_name
from exporter.remote_text import printable

MAX_REPLY_BYTES = 4096
"""At most this much of a greeting is read; a longer one is judged by its start."""
MAX_GREETING_CHARS = 1024
QUIT_WAIT = 1.0
"""Seconds (at most the check's timeout) to wait for the ``221`` reply to ``QUIT``."""
CLOSE_WAIT = 1.0

_CODE_220 = re.compile(rb"220(?:[ -]|$)")
_ANNOUNCED = re.compile(r"\s*220[ -]\s*(\S+)")


@dataclass(frozen=True)
class Banner:
    """An SMTP greeting (lines joined with a space, CR/LF removed) or why there is none."""

    greeting: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.greeting is None) == (self.error is None):
            raise ValueError("a Banner has exactly one of greeting and error")


async def read_greeting(ip: str, port: int, timeout: float) -> Banner:
    """The greeting of the SMTP server at ``ip`` (an IPv4 or IPv6 literal) and ``port``.

    Connecting and reading the greeting together take at most ``timeout`` seconds;
    saying ``QUIT`` afterwards and closing take at most a second or two more.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            reader, writer = await asyncio.open_connection(ip, port)
    except TimeoutError:
        return Banner(error=f"timed out after {timeout:g}s connecting")
    except OSError as exc:
        return Banner(error=_os_reason(exc))
    try:
        try:
            async with asyncio.timeout_at(deadline):
                data, closed = await _read_reply(reader)
        except TimeoutError:
            return Banner(error=f"timed out after {timeout:g}s waiting for the greeting")
        except OSError as exc:
            return Banner(error=_os_reason(exc))
        banner = _parse_greeting(data, closed)
        if not closed:
            await _say_quit(reader, writer, min(timeout, QUIT_WAIT))
        return banner
    finally:
        await _close(writer)


def helo_matches(greeting: str, fqdn: str) -> bool:
    """True when the name announced after ``220`` is ``fqdn`` (any case, trailing dot or not).

    >>> helo_matches("220 MTA1.example.com. ESMTP Postfix", "mta1.example.com")
    True
    """
    name = _announced_name(greeting)
    return name is not None and bool(dns_name_key(fqdn)) and same_name(name, fqdn)


async def check_helo(ip: str, fqdn: str, port: int, timeout: float) -> tuple[bool | None, str]:
    """(ok, detail): whether the MTA at ``ip`` announces ``fqdn``, and a sentence saying so.

    ``ok`` is None when no greeting came (refused, timed out, closed): the banner
    could not be checked, which is not the same as a wrong banner.
    """
    banner = await read_greeting(ip, port, timeout)
    if banner.greeting is None:
        return None, f"no SMTP greeting: {banner.error}"
    name = _announced_name(banner.greeting)
    if name is None:
        return False, f"banner names no host: {printable(banner.greeting)}"
    if same_name(name, fqdn):
        return True, f"banner names {printable(name)}"
    return False, f"banner names {printable(name)}, expected {fqdn}"


def _announced_name(greeting: str) -> str | None:
    match = _ANNOUNCED.match(greeting)
    return match.group(1) if match else None


def _os_reason(exc: OSError) -> str:
    """``connection refused``, ``no route to host``, ...: the system's words, lower case."""
    # Not exc.strerror: asyncio puts "Connect call failed ('192.0.2.25', 25)" there.
    reason = os.strerror(exc.errno) if exc.errno else printable(str(exc)) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def _reply_end(data: bytes) -> int | None:
    """Index just past the last line of the first reply in ``data``, if it is complete."""
    start = 0
    while (newline := data.find(b"\n", start)) != -1:
        if data[start + 3 : start + 4] != b"-":
            return newline + 1
        start = newline + 1
    return None


async def _read_reply(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """(bytes, closed): one reply, or its first MAX_REPLY_BYTES, or all until the peer closed."""
    data = b""
    while len(data) < MAX_REPLY_BYTES:
        chunk = await reader.read(MAX_REPLY_BYTES - len(data))
        if not chunk:
            return data, True
        data += chunk
        if _reply_end(data) is not None:
            break
    return data, False


def _parse_greeting(data: bytes, closed: bool) -> Banner:
    end = _reply_end(data)
    if end is None and closed:
        if data:
            return Banner(error="connection closed in the middle of the greeting")
        return Banner(error="connection closed before a greeting")
    lines = data[:end].split(b"\n")
    text = " ".join(
        line.strip(b"\r").decode("utf-8", errors="replace") for line in lines if line.strip(b"\r")
    )
    text = text.replace("\r", " ")[:MAX_GREETING_CHARS]
    if not _CODE_220.match(lines[0].strip(b"\r")):
        return Banner(error=f"greeting is not 220: {printable(text)}")
    return Banner(greeting=text)


async def _say_quit(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
) -> None:
    """Send ``QUIT`` and wait briefly for the reply; any failure is ignored."""
    try:
        async with asyncio.timeout(timeout):
            writer.write(b"QUIT\r\n")
            await writer.drain()
            await _read_reply(reader)
    except OSError:  # TimeoutError included
        pass


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close and wait briefly until closed; abort (dropping unsent bytes) if that fails."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_WAIT):
            await writer.wait_closed()
    except OSError:  # TimeoutError included
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
