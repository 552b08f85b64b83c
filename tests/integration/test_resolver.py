"""The c-ares resolver against a real nsd: every status, limits, cancellation, the cache.

The name servers are real (nsd, serving zones built by the test); the only stand-ins
are a UDP socket that never answers (a dead name server) and a UDP relay in front of
nsd that counts the queries on the wire (concurrency) or holds them (cancellation).
Nothing sleeps: the cache is proven by changing nsd's answers, not by waiting.
"""

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from exporter.resolver import Answer, RecordType, Resolver, Status
from tests.harness.nsd_server import IPV6_HOST, NsdFactory, NsdServer, zone_text
from tests.harness.ports import HOST
from tests.harness.udp_dns import DnsRelay, SilentUdpServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ZONE = "rbl.test."
REVERSE_ZONE = "0.0.10.in-addr.arpa."
SERVFAIL_ZONE = "broken.test."
NOT_SERVED = "elsewhere.test"
MANY = 100
# TXT strings with bytes a zone may carry: UTF-8 (Ü), NUL, a quote, a newline, markup
# and \255 (not UTF-8 at all).
HOSTILE_TXT = r'"\195\156ber \000 \"q\" \010<script>alert(1)</script> \255"'
HOSTILE_TEXT = 'Über \x00 "q" \n<script>alert(1)</script> \ufffd'


def _zones(ttl: int = 300) -> dict[str, str]:
    records = [
        "2.0.0.127 IN A 127.0.0.2",
        "2.0.0.127 IN A 127.0.0.4",
        '2.0.0.127 IN TXT "Listed: see" " https://rbl.test/q/127.0.0.2"',
        '2.0.0.127 IN TXT "second record"',
        f"hostile IN TXT {HOSTILE_TXT}",
        "mta6 IN AAAA 2001:db8::25",
        'textonly IN TXT "no address here"',
        *(f"n{i} IN A 127.0.{i // 256}.{i % 256}" for i in range(MANY)),
    ]
    return {
        ZONE: zone_text(ZONE, records, ttl=ttl),
        REVERSE_ZONE: zone_text(REVERSE_ZONE, ["25 IN PTR mta1.example.com."], ttl=ttl),
    }


def _many(count: int = MANY) -> list[tuple[str, RecordType]]:
    return [(f"n{i}.{ZONE}", "A") for i in range(count)]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind((IPV6_HOST, 0))
    except OSError:
        return False
    return True


@pytest.fixture
def nsd(nsd_factory: NsdFactory) -> NsdServer:
    return nsd_factory(_zones(), servfail_zones=[SERVFAIL_ZONE])


@pytest.fixture
async def resolver(nsd: NsdServer) -> AsyncIterator[Resolver]:
    resolver = Resolver([HOST], port=nsd.port, timeout=1.0, attempts=1)
    try:
        yield resolver
    finally:
        await resolver.close()


# --- answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "record_type", "records"),
    [
        (f"2.0.0.127.{ZONE}", "A", ("127.0.0.2", "127.0.0.4")),
        (f"mta6.{ZONE}", "AAAA", ("2001:db8::25",)),
        (f"25.{REVERSE_ZONE}", "PTR", ("mta1.example.com",)),
        (f"hostile.{ZONE}", "TXT", (HOSTILE_TEXT,)),
    ],
)
async def test_answer_records(
    resolver: Resolver, name: str, record_type: RecordType, records: tuple[str, ...]
) -> None:
    answer = await resolver.lookup(name, record_type)
    assert answer.status == "answer"
    assert answer.trustworthy
    assert sorted(answer.records) == sorted(records)


async def test_txt_strings_of_a_record_are_joined_and_records_kept_apart(
    resolver: Resolver,
) -> None:
    answer = await resolver.lookup(f"2.0.0.127.{ZONE}", "TXT")
    assert answer.status == "answer"
    assert sorted(answer.records) == [
        "Listed: see https://rbl.test/q/127.0.0.2",
        "second record",
    ]


@pytest.mark.parametrize(
    ("name", "record_type", "status", "trustworthy"),
    [
        (f"1.0.0.127.{ZONE}", "A", "nxdomain", True),
        (f"textonly.{ZONE}", "A", "nodata", True),
        (f"2.0.0.127.{ZONE}", "AAAA", "nodata", True),
        (f"2.0.0.127.{NOT_SERVED}", "A", "refused", False),
        (f"2.0.0.127.{SERVFAIL_ZONE}", "A", "servfail", False),
    ],
)
async def test_failure_statuses(
    resolver: Resolver, name: str, record_type: RecordType, status: Status, trustworthy: bool
) -> None:
    answer = await resolver.lookup(name, record_type)
    assert answer == Answer(status)
    assert answer.trustworthy is trustworthy


async def test_counts_are_by_status(resolver: Resolver) -> None:
    answers = await resolver.lookup_many(
        [
            (f"2.0.0.127.{ZONE}", "A"),
            (f"mta6.{ZONE}", "AAAA"),
            (f"1.0.0.127.{ZONE}", "A"),
            (f"textonly.{ZONE}", "A"),
            (f"x.{NOT_SERVED}", "A"),
            (f"x.{SERVFAIL_ZONE}", "A"),
        ]
    )
    assert [a.status for a in answers] == [
        "answer",
        "answer",
        "nxdomain",
        "nodata",
        "refused",
        "servfail",
    ]
    assert resolver.counts == Counter(
        {"answer": 2, "nxdomain": 1, "nodata": 1, "refused": 1, "servfail": 1}
    )


async def test_a_malformed_name_is_an_error_answer_not_an_exception(resolver: Resolver) -> None:
    answers = await resolver.lookup_many([("a..b.test", "A"), (f"2.0.0.127.{ZONE}", "A")])
    assert answers[0].status == "error"
    assert answers[0].detail
    assert answers[1].status == "answer"


# --- name servers that do not answer ------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2])
async def test_a_silent_name_server_times_out_after_every_attempt(attempts: int) -> None:
    timeout = 0.2
    async with SilentUdpServer() as silent:
        resolver = Resolver([HOST], port=silent.port, timeout=timeout, attempts=attempts)
        try:
            started = time.monotonic()
            answers = await resolver.lookup_many([("a.silent.test", "A"), ("b.silent.test", "A")])
            elapsed = time.monotonic() - started
        finally:
            await resolver.close()
    assert answers == [Answer("timeout"), Answer("timeout")]
    assert resolver.counts == Counter({"timeout": 2})
    assert silent.received == 2 * attempts
    # c-ares doubles the wait for each further attempt: 0.2 s, then 0.4 s.
    assert timeout <= elapsed < timeout * (2**attempts - 1) + 0.5


async def test_a_stopped_name_server_is_a_failure_not_an_exception(nsd: NsdServer) -> None:
    resolver = Resolver([HOST], port=nsd.port, timeout=0.2, attempts=2)
    try:
        assert (await resolver.lookup(f"n1.{ZONE}", "A")).status == "answer"
        nsd.stop()
        answers = await resolver.lookup_many(_many(5))
        assert answers[1].status == "answer"  # cached (TTL 300)
        failed = answers[:1] + answers[2:]
        assert all(not a.trustworthy for a in failed), failed
        nsd.start()  # back on the same port: answered again, no stale failure kept
        assert (await resolver.lookup(f"n2.{ZONE}", "A")).records == ("127.0.0.2",)
    finally:
        await resolver.close()


# --- concurrency, cancellation, close ------------------------------------------------


async def test_concurrency_limit_is_honoured_on_the_wire(nsd: NsdServer) -> None:
    async with DnsRelay(nsd.port) as relay:
        resolver = Resolver([HOST], port=relay.port, timeout=2.0, attempts=1, concurrency=3)
        try:
            relay.hold()  # the first queries wait: the limit is reached, not just obeyed
            task = asyncio.create_task(resolver.lookup_many(_many()))
            await relay.wait_received(3)
            assert relay.in_flight == 3
            relay.release()
            async with asyncio.timeout(10):
                answers = await task
        finally:
            await resolver.close()
    assert [a.records for a in answers] == [(f"127.0.0.{i}",) for i in range(MANY)]
    assert relay.received == MANY
    # Without the limit all 100 would be sent at once, before any answer is read.
    assert relay.max_in_flight == 3


async def test_cancelled_lookup_many_leaves_the_resolver_usable(nsd: NsdServer) -> None:
    async with DnsRelay(nsd.port) as relay:
        resolver = Resolver([HOST], port=relay.port, timeout=5.0, attempts=1, concurrency=3)
        try:
            relay.hold()
            task = asyncio.create_task(resolver.lookup_many(_many(20)))
            await relay.wait_received(3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            relay.release()  # the three in flight are answered to nobody
            async with asyncio.timeout(5):  # a leaked in-flight slot would hang here
                answers = await resolver.lookup_many(_many(30)[20:])
        finally:
            await resolver.close()
    assert [a.records for a in answers] == [(f"127.0.0.{i}",) for i in range(20, 30)]
    assert relay.received == 3 + 10  # the 17 queued lookups were dropped, never sent


async def test_closed_resolver_refuses_work(resolver: Resolver) -> None:
    assert (await resolver.lookup(f"n0.{ZONE}", "A")).status == "answer"
    await resolver.close()
    await resolver.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await resolver.lookup(f"n0.{ZONE}", "A")
    with pytest.raises(RuntimeError, match="closed"):
        await resolver.lookup_many(_many(3))


async def test_close_ends_lookups_still_waiting() -> None:
    async with SilentUdpServer() as silent:
        resolver = Resolver([HOST], port=silent.port, timeout=5.0, attempts=1, concurrency=2)
        task = asyncio.create_task(resolver.lookup_many(_many(5)))
        await silent.wait_received(2)
        await resolver.close()
        async with asyncio.timeout(2):
            answers = await task
    assert [a.status for a in answers] == ["error"] * 5


# --- IPv6 name server ------------------------------------------------------------------


async def test_ipv6_name_server(nsd_factory: NsdFactory) -> None:
    if not _ipv6_loopback():
        pytest.skip("::1 is not available on this machine")
    server = nsd_factory(_zones(), ipv6=True)
    resolver = Resolver([IPV6_HOST], port=server.port, timeout=1.0, attempts=1)
    try:
        answers = await resolver.lookup_many(
            [(f"2.0.0.127.{ZONE}", "A"), (f"mta6.{ZONE}", "AAAA"), (f"25.{REVERSE_ZONE}", "PTR")]
        )
    finally:
        await resolver.close()
    assert [a.records for a in answers] == [
        ("127.0.0.2", "127.0.0.4"),
        ("2001:db8::25",),
        ("mta1.example.com",),
    ]


# --- the answer cache ---------------------------------------------------------------------

CACHED = "cached.test."
UNCACHED = "uncached.test."


def _ttl_zones(address: str, *, with_new_name: bool = False) -> dict[str, str]:
    extra = [f"new IN A {address}"] if with_new_name else []
    return {
        CACHED: zone_text(CACHED, [f"a IN A {address}", *extra], ttl=300),
        UNCACHED: zone_text(UNCACHED, [f"a IN A {address}", *extra], ttl=0),
    }


async def test_answers_are_cached_for_their_ttl(nsd_factory: NsdFactory) -> None:
    server = nsd_factory(_ttl_zones("127.0.0.2"))
    queries: list[tuple[str, RecordType]] = [
        (f"a.{CACHED}", "A"),
        (f"new.{CACHED}", "A"),
        (f"a.{UNCACHED}", "A"),
        (f"new.{UNCACHED}", "A"),
    ]
    resolver = Resolver([HOST], port=server.port, timeout=1.0, attempts=1)
    try:
        first = await resolver.lookup_many(queries)
        server.replace_zones(_ttl_zones("127.0.0.3", with_new_name=True))
        second = await resolver.lookup_many(queries)
    finally:
        await resolver.close()
    assert first == [
        Answer("answer", ("127.0.0.2",)),
        Answer("nxdomain"),
        Answer("answer", ("127.0.0.2",)),
        Answer("nxdomain"),
    ]
    assert second == [
        Answer("answer", ("127.0.0.2",)),  # TTL 300: the cached answer, not re-queried
        Answer("nxdomain"),  # negative answer cached for the SOA minimum (300)
        Answer("answer", ("127.0.0.3",)),  # TTL 0: asked again, the new answer
        Answer("answer", ("127.0.0.3",)),
    ]


async def test_cached_answer_survives_the_name_server_stopping(nsd_factory: NsdFactory) -> None:
    server = nsd_factory(_ttl_zones("127.0.0.2"))
    resolver = Resolver([HOST], port=server.port, timeout=0.2, attempts=1)
    try:
        first = await resolver.lookup(f"a.{CACHED}", "A")
        server.stop()
        again = await resolver.lookup(f"a.{CACHED}", "A")
        uncached = await resolver.lookup(f"a.{UNCACHED}", "A")
    finally:
        await resolver.close()
    assert first == again == Answer("answer", ("127.0.0.2",))
    assert not uncached.trustworthy
