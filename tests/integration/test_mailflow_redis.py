"""Today's mail flow counters read from a real redis-server, as other tools write them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from exporter.config import Config
from exporter.mailflow import collect_mailflow
from exporter.redis_connection import open_redis
from exporter.snapshot import MailflowState
from exporter.store import Store
from tests.harness.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NOW = 1_796_130_000.0  # 2026-12-01T13:00:00Z
TODAY, YESTERDAY = "20261201", "20261130"
ZERO = {"sent": 0, "bounced": 0, "expired": 0, "fbl": 0}


def config(**mailflow: object) -> Config:
    return Config.model_validate(
        {
            "mta_map": ["mta1.example.com"],
            "graph_domains": ["gmail.com", "yahoo.com"],
            "mailflow": {"timezone": "UTC", **mailflow},
        }
    )


@pytest.fixture
async def client(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[redis.asyncio.Redis]:
    connection = await open_redis(redis_server.url, tmp_path / "unused")
    try:
        yield connection.client
    finally:
        await connection.close()


async def fill(client: redis.asyncio.Redis) -> None:
    """What the team's scripts do: HINCRBY per message."""
    for prefix, day, status, domain, count in [
        ("acme", TODAY, "sent", "gmail.com", 120),
        ("acme", TODAY, "sent", "yahoo.com", 40),
        ("acme", TODAY, "sent", "example.org", 7),
        ("acme", TODAY, "bounced", "gmail.com", 4),
        ("acme", TODAY, "fbl", "yahoo.com", 2),
        ("acme", YESTERDAY, "sent", "gmail.com", 9999),  # yesterday: never read
        ("news", TODAY, "expired", "gmail.com", 3),
    ]:
        await client.hincrby(f"{prefix}:{day}:{status}", domain, count)
    await client.hset(f"acme:{TODAY}:bounced", "yahoo.com", "lots")  # not a count
    await client.hset(f"acme:{TODAY}:fbl", "aol.com", "-1")
    await client.set(f"weird:{TODAY}:sent", "a string, not a hash")
    for n in range(200):  # unrelated keys SCAN walks past
        await client.set(f"session:{n}", "x")


async def test_prefixes_found_with_scan_today_only(client: redis.asyncio.Redis) -> None:
    await fill(client)
    store = Store(client)
    result = await collect_mailflow(config(), store, MailflowState(), lambda: NOW)

    state = result.state
    assert state.day == TODAY
    assert set(state.counts) == {"acme", "news", "weird"}
    assert state.counts["acme"] == {
        "gmail.com": {**ZERO, "sent": 120, "bounced": 4},
        "yahoo.com": {**ZERO, "sent": 40, "fbl": 2},
        "other": {**ZERO, "sent": 7},
    }
    assert state.counts["news"]["gmail.com"] == {**ZERO, "expired": 3}
    assert state.skipped == 2  # "lots" and -1
    # The string key is reported, the rest is still read.
    assert result.report.errors == 1
    assert "weird:20261201:sent" in result.report.problems[0]
    assert "WRONGTYPE" in result.report.problems[0]


async def test_configured_prefixes_and_a_missing_hash_is_zero(
    client: redis.asyncio.Redis,
) -> None:
    await fill(client)
    result = await collect_mailflow(
        config(prefixes=["acme", "idle"]), Store(client), MailflowState(), lambda: NOW
    )
    assert set(result.state.counts) == {"acme", "idle"}
    assert result.state.counts["idle"] == {"gmail.com": ZERO, "yahoo.com": ZERO, "other": ZERO}
    assert result.report.errors == 0


async def test_redis_gone_keeps_the_last_counts(
    client: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    await fill(client)
    store = Store(client)
    first = await collect_mailflow(config(prefixes=["acme"]), store, MailflowState(), lambda: NOW)
    redis_server.kill()
    second = await collect_mailflow(config(prefixes=["acme"]), store, first.state, lambda: NOW)
    assert second.state == first.state
    assert second.report.errors == 1
    assert second.report.problems[0].startswith(
        "cannot read the mail flow counters: Redis unavailable"
    )
