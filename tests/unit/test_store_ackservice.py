"""The Store methods the ackservice added: the shared secret behind its form tokens."""

import re
from collections.abc import AsyncIterator

import fakeredis
import pytest
import redis.asyncio

from exporter.store import Store, StoreError, StoreUnavailable

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def client(server: fakeredis.FakeServer) -> AsyncIterator[redis.asyncio.Redis]:
    fake = fakeredis.FakeAsyncRedis(decode_responses=True, server=server)
    yield fake
    await fake.aclose()


async def test_the_first_caller_makes_the_secret_and_every_replica_reads_the_same(
    server: fakeredis.FakeServer, client: redis.asyncio.Redis
) -> None:
    other = fakeredis.FakeAsyncRedis(decode_responses=True, server=server)
    try:
        first = await Store(client).shared_secret("csrf")
        second = await Store(other).shared_secret("csrf")
    finally:
        await other.aclose()

    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert second == first
    assert await client.get("mtarep:secret:csrf") == first


async def test_secrets_of_different_names_differ(client: redis.asyncio.Redis) -> None:
    store = Store(client)
    assert await store.shared_secret("csrf") != await store.shared_secret("other")
    assert sorted(await client.keys("mtarep:secret:*")) == [
        "mtarep:secret:csrf",
        "mtarep:secret:other",
    ]


async def test_an_existing_secret_is_never_replaced(client: redis.asyncio.Redis) -> None:
    await client.set("mtarep:secret:csrf", "a" * 64)
    assert await Store(client).shared_secret("csrf") == "a" * 64


async def test_an_empty_stored_secret_is_an_error_not_a_weak_key(
    client: redis.asyncio.Redis,
) -> None:
    await client.set("mtarep:secret:csrf", "")
    with pytest.raises(StoreError, match="empty"):
        await Store(client).shared_secret("csrf")


async def test_redis_down_is_store_unavailable(
    server: fakeredis.FakeServer, client: redis.asyncio.Redis
) -> None:
    server.connected = False
    with pytest.raises(StoreUnavailable):
        await Store(client).shared_secret("csrf")
