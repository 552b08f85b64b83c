"""Small UDP helpers for DNS tests, run in the test's own event loop.

* :class:`SilentUdpServer`: a "name server" that reads every query and never answers
  (what a dead or firewalled resolver looks like to a client that waits for a reply).
* :class:`DnsRelay`: forwards queries to a real server (nsd) and its answers back,
  counting the queries that are waiting for an answer, and able to hold queries
  until the test releases them.

Both are ``async with`` context managers; leaving the block closes their sockets.
"""

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

import dns.exception
import dns.message
import dns.name

from tests.harness.ports import HOST

WAIT_LIMIT = 10.0
"""Longest a test waits for queries to arrive (a bound, not a sleep)."""


class _QueryCounter:
    """Counts received queries; lets a test wait until ``n`` have arrived."""

    def __init__(self) -> None:
        self.received = 0
        self._arrived = asyncio.Event()

    def count(self) -> None:
        self.received += 1
        self._arrived.set()

    async def wait_received(self, n: int, limit: float = WAIT_LIMIT) -> None:
        """Wait until at least ``n`` queries have arrived (TimeoutError after ``limit``)."""
        async with asyncio.timeout(limit):
            while self.received < n:
                self._arrived.clear()
                await self._arrived.wait()


Address = tuple[str | int, ...]
DatagramHandler = Callable[[bytes, Address], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: DatagramHandler) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors (a client that went away): nothing to do


class SilentUdpServer(_QueryCounter):
    """Binds a UDP port on ``host`` and reads every datagram without ever answering.

    ``port`` is known once the block is entered; ``received`` counts the queries.
    """

    def __init__(self, host: str = HOST) -> None:
        super().__init__()
        self.host = host
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(lambda _data, _addr: self.count()), local_addr=(self.host, 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            self._transport.close()


class DnsRelay(_QueryCounter):
    """A UDP relay on ``HOST`` in front of the DNS server at ``upstream_port``.

    Queries are matched to answers by their DNS id and question. ``in_flight`` is the
    number of queries received from clients and not yet answered back;
    ``max_in_flight`` the most there ever were at once. While :meth:`hold` is in force
    queries are kept (they count as in flight) instead of forwarded; :meth:`release`
    forwards them.
    """

    def __init__(self, upstream_port: int, upstream_host: str = HOST) -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.max_in_flight = 0
        self.forwarded = 0
        self._waiting: dict[tuple[int, dns.name.Name, int], Address] = {}
        self._held: list[bytes] = []
        self._holding = False
        self._front: asyncio.DatagramTransport | None = None
        self._back: asyncio.DatagramTransport | None = None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def hold(self) -> None:
        self._holding = True

    def release(self) -> None:
        self._holding = False
        held, self._held = self._held, []
        for query in held:
            self._forward(query)

    @staticmethod
    def _key(message: bytes) -> tuple[int, dns.name.Name, int] | None:
        """The id and the question: what an answer shares with its query (None: garbage)."""
        try:
            parsed = dns.message.from_wire(message)
        except dns.exception.DNSException:
            return None
        if not parsed.question:
            return None
        question = parsed.question[0]
        return parsed.id, question.name, question.rdtype

    def _from_client(self, data: bytes, addr: Address) -> None:
        key = self._key(data)
        if key is None:
            return
        self._waiting[key] = addr
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.count()
        if self._holding:
            self._held.append(data)
        else:
            self._forward(data)

    def _forward(self, query: bytes) -> None:
        assert self._back is not None
        self.forwarded += 1
        self._back.sendto(query)

    def _from_upstream(self, data: bytes, _addr: Address) -> None:
        key = self._key(data)
        client = None if key is None else self._waiting.pop(key, None)
        if client is not None and self._front is not None:
            self._front.sendto(data, client)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._front, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._from_client), local_addr=(HOST, 0)
        )
        self.port = self._front.get_extra_info("sockname")[1]
        self._back, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._from_upstream), remote_addr=self.upstream
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for transport in (self._front, self._back):
            if transport is not None:
                transport.close()
