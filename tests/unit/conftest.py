"""Fixtures of the unit tests."""

from collections.abc import AsyncIterator

import fakeredis
import pytest

from exporter.store import Store
from tests.unit.cycle_env import HOST, IP, OTHER_ZONE, ZONE, Env, FakeClock, FakeDns, FakeHelo


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(decode_responses=True, server=server)
    clock = FakeClock()
    dns_fake = FakeDns()
    dns_fake.host(HOST, IP)
    dns_fake.healthy_zone(ZONE)
    dns_fake.healthy_zone(OTHER_ZONE)
    dns_fake.score(IP, 90)
    yield Env(dns_fake, FakeHelo(), clock, Store(client, clock=clock), server, client)
    await client.aclose()
