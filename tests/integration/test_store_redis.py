"""The Store against a real redis-server: schema, transactions, outage and recovery."""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.redis_connection import RedisConnection, open_redis
from exporter.store import EVENTS_KEY, Ack, IssueKey, IssueNotOpen, Store, StoreUnavailable
from tests.harness.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

KEY = IssueKey("192.0.2.10", "rbl", "zen.spamhaus.org")
V6 = IssueKey("2001:db8::25", "provider", "gmail")
HOSTILE = '421-4.7.28 "x" <script>alert(1)</script>\r\nÜnïcödé 日本語 \x00'
# A lone surrogate (a log line decoded with surrogateescape) can only live in JSON detail.
UNDECODABLE = HOSTILE + "\udcff"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def connection(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[RedisConnection]:
    conn = await open_redis(redis_server.url, tmp_path / "unused")
    try:
        yield conn
    finally:
        await conn.close()


async def test_core_behaviour(connection: RedisConnection) -> None:
    clock = Clock()
    store = Store(connection.client, clock=clock, description=connection.description)
    await store.ping()

    assert await store.open_issue(KEY, "mx1", {"txt": UNDECODABLE}) is True
    clock.now += 60
    assert await store.open_issue(KEY, "mx1", {"txt": "again"}) is False
    assert await store.open_issue(V6, "mx6", {"reply": UNDECODABLE}) is True
    await store.acknowledge(KEY, "alice", HOSTILE)

    record = await store.issue(KEY)
    assert record is not None
    assert (record.first_seen, record.last_seen, record.detail) == (
        1_700_000_000.0,
        1_700_000_060.0,
        {"txt": "again"},
    )
    assert record.ack == Ack("alice", 1_700_000_060.0, HOSTILE)
    v6 = await store.issue(IssueKey("2001:DB8:0::25", "provider", "gmail"))
    assert v6 is not None
    assert v6.detail == {"reply": UNDECODABLE}

    assert await store.clear_issue(KEY) is True
    assert await store.ack(KEY) is None
    with pytest.raises(IssueNotOpen):
        await store.acknowledge(KEY, "bob")
    assert [(e.type, e.user) for e in await store.events(key=KEY)] == [
        ("ack_ended", "alice"),
        ("delisted", None),
        ("ack", "alice"),
        ("listed", None),
    ]
    assert [e.type for e in await store.events(key=V6)] == ["block_seen"]
    assert [r.key for r in await store.open_issues()] == [V6]

    await store.save_host_results("mx1", {"txt": HOSTILE})
    assert await store.all_host_results() == {
        "mx1": {"host": "mx1", "updated_at": 1_700_000_060.0, "results": {"txt": HOSTILE}}
    }


async def test_history_is_trimmed_exactly(connection: RedisConnection) -> None:
    store = Store(connection.client, history_limit=5)
    for n in range(8):
        await store.open_issue(IssueKey(f"192.0.2.{n}", "dns", "ptr"), "mx1", {})
    # Real Redis trims "~" (approximate) MAXLEN only by whole nodes of ~100 entries.
    assert await connection.client.xlen(EVENTS_KEY) == 5
    assert [e.ip for e in await store.events()] == [f"192.0.2.{n}" for n in range(7, 2, -1)]


async def test_concurrent_writers_from_two_connections(
    redis_server: RedisServer, tmp_path: Path, connection: RedisConnection
) -> None:
    other = await open_redis(redis_server.url, tmp_path / "unused")
    try:
        stores = [Store(connection.client), Store(other.client)]
        opened = await asyncio.gather(
            *(stores[n % 2].open_issue(KEY, "mx1", {"n": n}) for n in range(20))
        )
        assert opened.count(True) == 1
        assert [e.type for e in await stores[0].events(key=KEY)] == ["listed"]

        # An acknowledgement racing a clear never outlives the issue (in practice the
        # ack's shorter transaction commits first and the clear's WATCH on the ack key
        # makes it retry and end the ack; the unit tests force the other order).
        for round_ in range(30):
            await stores[0].open_issue(KEY, "mx1", {"round": round_})
            acknowledging = stores[round_ % 2].acknowledge(KEY, "alice")
            clearing = stores[(round_ + 1) % 2].clear_issue(KEY)
            if round_ % 2:
                cleared, ack_result = await asyncio.gather(
                    clearing, acknowledging, return_exceptions=True
                )
            else:
                ack_result, cleared = await asyncio.gather(
                    acknowledging, clearing, return_exceptions=True
                )
            assert cleared is True
            assert isinstance(ack_result, Ack | IssueNotOpen), ack_result
            assert await stores[0].ack(KEY) is None
            newest = await stores[0].events(key=KEY, limit=1)
            expected = "ack_ended" if isinstance(ack_result, Ack) else "delisted"
            assert newest[0].type == expected
    finally:
        await other.close()


async def test_redis_killed_then_restarted(
    redis_server: RedisServer, connection: RedisConnection
) -> None:
    store = Store(connection.client, description=connection.description)
    await store.open_issue(KEY, "mx1", {"txt": "listed"})
    await store.acknowledge(KEY, "alice", "working on it")

    redis_server.kill()
    expected = f"Redis unavailable (redis://127.0.0.1:{redis_server.port}/0): Connection refused"
    with pytest.raises(StoreUnavailable) as caught:
        await store.issue(KEY)
    assert str(caught.value) == expected
    # An acknowledgement that cannot be stored is refused, not lost silently.
    with pytest.raises(StoreUnavailable):
        await store.acknowledge(V6, "bob")

    redis_server.restart()
    record = await store.issue(KEY)  # the same Store and client: it reconnects
    assert record is not None
    assert record.detail == {"txt": "listed"}
    assert record.ack is not None
    assert (record.ack.user, record.ack.note) == ("alice", "working on it")
    assert [e.type for e in await store.events(key=KEY)] == ["ack", "listed"]


async def test_open_redis_logs_the_target(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="exporter.redis_connection"):
        conn = await open_redis(redis_server.url, tmp_path)
    await conn.close()
    assert (conn.embedded, conn.description) == (False, redis_server.url)
    messages = [r.getMessage() for r in caplog.records if r.name == "exporter.redis_connection"]
    assert messages == [f"redis.connected target={redis_server.url} embedded=false"]
