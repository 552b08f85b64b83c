"""DNS lookups for every check: c-ares (pycares) driven by the asyncio event loop.

One :class:`Resolver` (one c-ares channel) lives as long as the exporter. Lookups are
answered by the configured name servers (``dns.nameservers``/``port``) or the system
resolver, with ``dns.timeout`` per try and ``dns.attempts`` tries, and at most
``dns.concurrency`` queries in flight; the rest wait in a queue.

c-ares keeps a cache of answers for their TTL (negative answers for the zone's SOA
minimum, RFC 2308; at most one hour), so a cycle that repeats inside the TTL does not
query again. Failures (SERVFAIL, REFUSED, timeouts) are never cached.

Why not dnspython or aiodns for the lookups: building and parsing each message with
dnspython costs ~150 µs of CPU (under 7,000 lookups/s); aiodns runs pycares 5 in its
event-thread mode with one future per query (8,000-18,000/s here). Driving the
channel from the loop with plain callbacks reaches well over 20,000/s
(``tests/bench/``).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import pycares
import pycares.errno

__all__ = ["Answer", "Query", "RecordType", "Resolver", "Status"]

RecordType = Literal["A", "AAAA", "PTR", "TXT"]
Status = Literal["answer", "nxdomain", "nodata", "servfail", "refused", "timeout", "error"]
Query = tuple[str, RecordType]

_QUERY_TYPES: Final[dict[RecordType, int]] = {
    "A": pycares.QUERY_TYPE_A,
    "AAAA": pycares.QUERY_TYPE_AAAA,
    "PTR": pycares.QUERY_TYPE_PTR,
    "TXT": pycares.QUERY_TYPE_TXT,
}
_FAILURES: Final[dict[int, Status]] = {
    pycares.errno.ARES_ENOTFOUND: "nxdomain",
    pycares.errno.ARES_ENODATA: "nodata",
    pycares.errno.ARES_ESERVFAIL: "servfail",
    pycares.errno.ARES_EREFUSED: "refused",
    pycares.errno.ARES_ETIMEOUT: "timeout",
}
_MAX_TIMER = 0.25
"""Longest wait before c-ares is asked to handle its timeouts and retries."""
_MIN_TIMER = 0.001
_BUFFER_PER_QUERY = 4096
_MIN_RECEIVE_BUFFER = 1 << 20
"""The kernel caps a socket's receive buffer at net.core.rmem_max (often 4 MiB)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one lookup.

    ``records`` holds the data of the records of the asked type: addresses for A and
    AAAA, names (no trailing dot) for PTR, the text for TXT (its strings joined).
    ``detail`` says what went wrong for ``error`` (and ``timeout``, ``servfail``...).
    """

    status: Status
    records: tuple[str, ...] = ()
    detail: str = ""

    @property
    def empty(self) -> bool:
        """The name server says there is nothing: NXDOMAIN, or no record of the type."""
        return self.status in ("nxdomain", "nodata")

    @property
    def trustworthy(self) -> bool:
        """True when the name server answered (with data, NXDOMAIN or no data)."""
        return self.status in ("answer", "nxdomain", "nodata")

    @property
    def describe(self) -> str:
        """A short human description: ``NXDOMAIN``, ``127.0.0.2``, ``timed out``."""
        if self.status == "answer":
            return ", ".join(self.records)
        return {
            "nxdomain": "NXDOMAIN",
            "nodata": "no record of that type",
            "servfail": "SERVFAIL",
            "refused": "REFUSED",
            "timeout": "timed out",
        }.get(self.status, self.detail or "lookup failed")


def _record_text(data: Any) -> str:
    if isinstance(data, pycares.ARecordData | pycares.AAAARecordData):
        return str(data.addr)
    if isinstance(data, pycares.PTRRecordData):
        return str(data.dname).rstrip(".")
    if isinstance(data, pycares.TXTRecordData):
        return bytes(data.data).decode("utf-8", errors="replace")
    return str(data)


def _answer(result: Any, error: int | None, query_type: int) -> Answer:
    if error is None:
        records = tuple(
            _record_text(record.data) for record in result.answer if record.type == query_type
        )
        return Answer("answer", records) if records else Answer("nodata")
    status = _FAILURES.get(error)
    if status is not None:
        return Answer(status)
    detail = pycares.errno.strerror(error)
    return Answer("error", detail=detail if isinstance(detail, str) else detail.decode())


def _server(address: str, port: int) -> str:
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{host}:{port}"


class _Batch:
    """The lookups one caller waits for; answers land by index."""

    __slots__ = ("answers", "cancelled", "done", "left")

    def __init__(self, size: int, done: asyncio.Future[None]) -> None:
        self.answers: list[Answer | None] = [None] * size
        self.left = size
        self.done = done
        self.cancelled = False

    def settle(self, index: int, answer: Answer) -> None:
        if self.cancelled:
            return
        self.answers[index] = answer
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)


class Resolver:
    """Asynchronous DNS lookups through one c-ares channel (see the module docstring).

    Use it from one event loop; :meth:`close` it when done. ``counts`` is the number of
    lookups by :data:`Status` since the resolver was made.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 2.0,
        attempts: int = 2,
        concurrency: int = 200,
    ) -> None:
        self.concurrency = concurrency
        self._settings: dict[str, Any] = {
            "nameservers": nameservers,
            "port": port,
            "timeout": timeout,
            "attempts": attempts,
            "concurrency": concurrency,
        }
        self.counts: Counter[Status] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: set[int] = set()
        self._writers: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._queue: deque[tuple[_Batch, int, str, RecordType]] = deque()
        self._in_flight = 0
        options: dict[str, Any] = {}
        if nameservers:
            options["servers"] = [_server(address, port) for address in nameservers]
        elif port != 53:
            options["udp_port"] = options["tcp_port"] = port
        self._channel: pycares.Channel | None = pycares.Channel(
            timeout=timeout,
            tries=attempts,
            sock_state_cb=self._socket_state,
            flags=pycares.ARES_FLAG_NOSEARCH,
            # Room for every answer in flight: the default buffer (208 KiB) dropped
            # ~34 of the first 200 answers of a cycle, each then waiting a timeout.
            socket_receive_buffer_size=max(_MIN_RECEIVE_BUFFER, concurrency * _BUFFER_PER_QUERY),
            **options,
        )

    # -- public API ----------------------------------------------------------------

    async def lookup(self, name: str, record_type: RecordType) -> Answer:
        """One lookup."""
        return (await self.lookup_many([(name, record_type)]))[0]

    async def lookup_many(self, queries: Sequence[Query], *, cached: bool = True) -> list[Answer]:
        """Every lookup of ``queries``, concurrently; the answers in the same order.

        ``cached=False`` asks the name servers even inside a cached answer's TTL (a
        short-lived channel of its own, whose cache is thrown away).
        """
        if not queries:
            return []
        if not cached:
            fresh = Resolver(**self._settings)
            try:
                answers = await fresh.lookup_many(queries)
            finally:
                await fresh.close()
            self.counts.update(fresh.counts)
            return answers
        loop = self._bind_loop()
        batch = _Batch(len(queries), loop.create_future())
        self._queue.extend(
            (batch, index, name, record_type) for index, (name, record_type) in enumerate(queries)
        )
        self._top_up()
        self._arm_timer()  # the new lookups' deadlines may come before the timer's
        try:
            await batch.done
        except BaseException:
            batch.cancelled = True  # queued lookups are dropped, answers in flight ignored
            raise
        return [answer or Answer("error", detail="no answer") for answer in batch.answers]

    async def close(self) -> None:
        """Stop every lookup and release the channel's sockets."""
        channel, self._channel = self._channel, None
        if channel is None:
            return
        for batch, index, *_ in self._queue:  # their callers must not wait forever
            batch.settle(index, Answer("error", detail="resolver closed"))
        self._queue.clear()
        channel.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loop is not None:
            for fd in self._readers:
                self._loop.remove_reader(fd)
            for fd in self._writers:
                self._loop.remove_writer(fd)
        self._readers.clear()
        self._writers.clear()
        channel.close()

    # -- c-ares <-> event loop -------------------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        if self._channel is None:
            raise RuntimeError("resolver is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a Resolver is bound to the event loop that first used it")
        return loop

    def _top_up(self) -> None:
        """Start queued lookups while fewer than ``concurrency`` are in flight."""
        channel = self._channel
        while self._queue and self._in_flight < self.concurrency and channel is not None:
            batch, index, name, record_type = self._queue.popleft()
            if batch.cancelled:
                continue
            self._in_flight += 1
            query_type = _QUERY_TYPES[record_type]
            settle = self._on_answer(batch, index, query_type)
            try:
                # c-ares may answer from its cache inside query(): the callback only records.
                channel.query(name, query_type, callback=settle)
            except pycares.AresError as error:
                # Not sent (a malformed name, every server known to be down): c-ares has
                # normally called back with the failure already; if not, settle it now.
                settle(None, error.args[0])

    def _on_answer(self, batch: _Batch, index: int, query_type: int) -> Callable[[Any, Any], None]:
        settled = False

        def settle(result: Any, error: int | None) -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            self._in_flight -= 1
            answer = _answer(result, error, query_type)
            self.counts[answer.status] += 1
            batch.settle(index, answer)

        return settle

    def _socket_state(self, fd: int, readable: bool, writable: bool) -> None:
        loop = self._loop
        if loop is None:
            return
        if readable and fd not in self._readers:
            loop.add_reader(fd, self._process, fd, pycares.ARES_SOCKET_BAD)
            self._readers.add(fd)
        elif not readable and fd in self._readers:
            loop.remove_reader(fd)
            self._readers.discard(fd)
        if writable and fd not in self._writers:
            loop.add_writer(fd, self._process, pycares.ARES_SOCKET_BAD, fd)
            self._writers.add(fd)
        elif not writable and fd in self._writers:
            loop.remove_writer(fd)
            self._writers.discard(fd)
        if self._timer is None and (self._readers or self._writers):
            self._arm_timer()

    def _process(self, read_fd: int, write_fd: int) -> None:
        if self._channel is not None:
            self._channel.process_fd(read_fd, write_fd)
            self._top_up()

    def _arm_timer(self) -> None:
        channel, loop = self._channel, self._loop
        if channel is None or loop is None or not (self._readers or self._writers):
            return
        if self._timer is not None:
            self._timer.cancel()
        next_timeout = cast(Callable[[float], float], channel.timeout)  # untyped in pycares
        delay = max(next_timeout(_MAX_TIMER), _MIN_TIMER)
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._process(pycares.ARES_SOCKET_BAD, pycares.ARES_SOCKET_BAD)
        self._arm_timer()
