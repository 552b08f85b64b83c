"""Store behaviour against fakeredis, with a fake clock (no sleeping, no server)."""

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exporter.store import (
    EVENTS_KEY,
    Ack,
    IssueKey,
    IssueKind,
    IssueNotOpen,
    Store,
    StoreError,
    StoreUnavailable,
)

pytestmark = pytest.mark.anyio

KEY = IssueKey("192.0.2.10", "rbl", "zen.spamhaus.org")
OTHER = IssueKey("192.0.2.11", "rbl", "zen.spamhaus.org")
HOSTILE = (
    "550 5.7.1 \"quoted\" 'single' \\backslash\r\nsecond line\n"
    "<script>alert('x')</script> &amp; Ünïcödé 日本語 emoji 📨 tab\there NUL\x00end"
)


@dataclass
class FakeClock:
    """A clock the test moves by hand; ``hooks`` run (once each) on the next reads."""

    now: float = 1_700_000_000.0
    calls: int = 0
    hooks: list[Callable[[], None]] = field(default_factory=list)

    def __call__(self) -> float:
        self.calls += 1
        if self.hooks:
            self.hooks.pop(0)()
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def client(server: fakeredis.FakeServer) -> AsyncIterator[redis.asyncio.Redis]:
    fake = fakeredis.FakeAsyncRedis(decode_responses=True, server=server)
    yield fake
    await fake.aclose()


@pytest.fixture
def other_client(server: fakeredis.FakeServer) -> Iterator[redis.Redis]:
    """A synchronous client on the same fake server: 'another process' for races."""
    fake = fakeredis.FakeRedis(decode_responses=True, server=server)
    yield fake
    fake.close()


@pytest.fixture
def store(client: redis.asyncio.Redis, clock: FakeClock) -> Store:
    return Store(client, clock=clock, history_limit=1000, description="redis://127.0.0.1:6379/0")


# -- issues ------------------------------------------------------------------


async def test_open_issue_keeps_first_seen_and_updates_last_seen_and_detail(
    store: Store, clock: FakeClock
) -> None:
    assert await store.open_issue(KEY, "mx1.example.com", {"txt": "listed 1"}) is True
    clock.advance(900)
    assert await store.open_issue(KEY, "mx1.example.com", {"txt": "listed 2"}) is False

    record = await store.issue(KEY)
    assert record is not None
    assert record.key == KEY
    assert record.host == "mx1.example.com"
    assert record.first_seen == 1_700_000_000.0
    assert record.last_seen == 1_700_000_900.0
    assert record.detail == {"txt": "listed 2"}
    assert record.ack is None


async def test_opening_twice_records_one_event(store: Store, clock: FakeClock) -> None:
    await store.open_issue(KEY, "mx1", {})
    clock.advance(60)
    await store.open_issue(KEY, "mx1", {"more": True})

    events = await store.events()
    assert [(e.type, e.at, e.host, e.key) for e in events] == [
        ("listed", 1_700_000_000.0, "mx1", KEY)
    ]


@pytest.mark.parametrize(
    ("kind", "opened", "cleared"),
    [
        ("rbl", "listed", "delisted"),
        ("provider", "block_seen", "block_cleared"),
        ("snds", "issue_opened", "issue_cleared"),
        ("senderscore", "issue_opened", "issue_cleared"),
        ("reputation", "issue_opened", "issue_cleared"),
        ("dns", "issue_opened", "issue_cleared"),
    ],
)
async def test_event_names_by_kind(
    store: Store, kind: IssueKind, opened: str, cleared: str
) -> None:
    key = IssueKey("192.0.2.1", kind, "subject")
    await store.open_issue(key, "mx1", {})
    assert await store.clear_issue(key) is True
    assert [e.type for e in await store.events()] == [cleared, opened]


async def test_clear_issue_ends_its_acknowledgement(store: Store, clock: FakeClock) -> None:
    await store.open_issue(KEY, "mx1", {"txt": "x"})
    clock.advance(10)
    ack = await store.acknowledge(KEY, "alice", "asked Spamhaus for removal")
    assert ack == Ack(user="alice", at=1_700_000_010.0, note="asked Spamhaus for removal")
    clock.advance(10)

    assert await store.clear_issue(KEY) is True

    assert await store.issue(KEY) is None
    assert await store.ack(KEY) is None
    assert await store.open_issues() == []
    events = await store.events()
    assert [(e.type, e.at, e.user, e.note) for e in events] == [
        ("ack_ended", 1_700_000_020.0, "alice", "asked Spamhaus for removal"),
        ("delisted", 1_700_000_020.0, None, None),
        ("ack", 1_700_000_010.0, "alice", "asked Spamhaus for removal"),
        ("listed", 1_700_000_000.0, None, None),
    ]
    # A re-listing is a new issue: new first_seen, not acknowledged.
    clock.advance(10)
    assert await store.open_issue(KEY, "mx1", {}) is True
    record = await store.issue(KEY)
    assert record is not None
    assert record.first_seen == 1_700_000_030.0
    assert record.ack is None


async def test_clear_without_ack_records_no_ack_ended(store: Store) -> None:
    await store.open_issue(KEY, "mx1", {})
    await store.clear_issue(KEY)
    assert [e.type for e in await store.events()] == ["delisted", "listed"]


async def test_clear_issue_that_is_not_open_does_nothing(store: Store) -> None:
    assert await store.clear_issue(KEY) is False
    await store.open_issue(KEY, "mx1", {})
    assert await store.clear_issue(KEY) is True
    assert await store.clear_issue(KEY) is False
    assert [e.type for e in await store.events()] == ["delisted", "listed"]


async def test_open_issues_lists_oldest_first_and_filters_by_host(
    store: Store, clock: FakeClock
) -> None:
    dns = IssueKey("192.0.2.20", "dns", "ptr")
    await store.open_issue(OTHER, "mx2", {"n": 1})
    clock.advance(1)
    await store.open_issue(KEY, "mx1", {"n": 2})
    clock.advance(1)
    await store.open_issue(dns, "mx2", {"n": 3})
    await store.acknowledge(dns, "bob")

    everything = await store.open_issues()
    assert [r.key for r in everything] == [OTHER, KEY, dns]
    mx2 = await store.open_issues("mx2")
    assert [(r.key, r.detail, r.ack is not None) for r in mx2] == [
        (OTHER, {"n": 1}, False),
        (dns, {"n": 3}, True),
    ]
    assert await store.open_issues("mx9") == []


# -- acknowledgements ---------------------------------------------------------


async def test_acknowledging_an_unknown_issue_raises(store: Store) -> None:
    with pytest.raises(IssueNotOpen, match=r"rbl zen\.spamhaus\.org for 192\.0\.2\.10"):
        await store.acknowledge(KEY, "alice")
    assert await store.ack(KEY) is None
    assert await store.events() == []


async def test_acknowledging_a_cleared_issue_raises(store: Store) -> None:
    await store.open_issue(KEY, "mx1", {})
    await store.clear_issue(KEY)
    with pytest.raises(IssueNotOpen):
        await store.acknowledge(KEY, "alice", "too late")
    assert await store.ack(KEY) is None
    assert [e.type for e in await store.events()] == ["delisted", "listed"]


async def test_acknowledge_needs_a_user(store: Store) -> None:
    await store.open_issue(KEY, "mx1", {})
    with pytest.raises(ValueError, match="user"):
        await store.acknowledge(KEY, "")


async def test_reacknowledging_replaces_the_ack(store: Store, clock: FakeClock) -> None:
    await store.open_issue(KEY, "mx1", {})
    await store.acknowledge(KEY, "alice", "first")
    clock.advance(5)
    await store.acknowledge(KEY, "bob", "taking over")
    assert await store.ack(KEY) == Ack("bob", 1_700_000_005.0, "taking over")
    record = await store.issue(KEY)
    assert record is not None
    assert record.ack == Ack("bob", 1_700_000_005.0, "taking over")


async def test_unacknowledge(store: Store, clock: FakeClock) -> None:
    await store.open_issue(KEY, "mx1", {})
    assert await store.unacknowledge(KEY, "alice") is False
    await store.acknowledge(KEY, "alice")
    clock.advance(3)
    assert await store.unacknowledge(KEY, "bob") is True
    assert await store.ack(KEY) is None
    assert await store.unacknowledge(KEY, "bob") is False
    newest = (await store.events(limit=1))[0]
    assert (newest.type, newest.user, newest.at, newest.host) == (
        "unack",
        "bob",
        1_700_000_003.0,
        "mx1",
    )
    # The issue itself stays open; clearing it now records no ack_ended.
    assert await store.clear_issue(KEY) is True
    assert (await store.events(limit=1))[0].type == "delisted"


# -- transactions: a concurrent writer between the read and the write --------


async def test_acknowledge_loses_the_race_against_a_clear(
    store: Store, clock: FakeClock, other_client: redis.Redis
) -> None:
    await store.open_issue(KEY, "mx1", {})

    def cleared_meanwhile() -> None:
        other_client.delete(f"mtarep:issue:{KEY.id}")
        other_client.zrem("mtarep:issues", KEY.id)

    clock.hooks.append(cleared_meanwhile)  # runs after acknowledge() read "open"
    with pytest.raises(IssueNotOpen):
        await store.acknowledge(KEY, "alice")
    assert await store.ack(KEY) is None
    assert [e.type for e in await store.events()] == ["listed"]


async def test_clear_sees_an_ack_written_meanwhile(
    store: Store, clock: FakeClock, other_client: redis.Redis
) -> None:
    await store.open_issue(KEY, "mx1", {})

    def acked_meanwhile() -> None:
        other_client.hset(
            f"mtarep:ack:{KEY.id}", mapping={"user": "carol", "at": "1.0", "note": "late"}
        )

    clock.hooks.append(acked_meanwhile)  # runs after clear_issue() read "no ack"
    assert await store.clear_issue(KEY) is True
    assert await store.ack(KEY) is None
    events = await store.events()
    assert [(e.type, e.user) for e in events] == [
        ("ack_ended", "carol"),
        ("delisted", None),
        ("listed", None),
    ]


async def test_open_issue_retried_after_a_concurrent_open(
    store: Store, clock: FakeClock, other_client: redis.Redis
) -> None:
    def opened_meanwhile() -> None:
        other_client.hset(
            f"mtarep:issue:{KEY.id}",
            mapping={
                "ip": KEY.ip,
                "kind": KEY.kind,
                "subject": KEY.subject,
                "host": "mx1",
                "first_seen": "5.0",
                "last_seen": "5.0",
                "detail": "{}",
            },
        )

    clock.hooks.append(opened_meanwhile)
    assert await store.open_issue(KEY, "mx1", {"a": 1}) is False
    assert clock.calls == 2  # the first attempt was discarded and run again
    record = await store.issue(KEY)
    assert record is not None
    assert (record.first_seen, record.detail) == (5.0, {"a": 1})
    assert await store.events() == []


# -- history ------------------------------------------------------------------


async def test_history_is_bounded_to_history_limit(
    client: redis.asyncio.Redis, clock: FakeClock
) -> None:
    store = Store(client, clock=clock, history_limit=5)
    for n in range(4):
        clock.advance(1)
        key = IssueKey(f"192.0.2.{n}", "rbl", "zen.spamhaus.org")
        await store.open_issue(key, "mx1", {})
        clock.advance(1)
        await store.clear_issue(key)

    assert await client.xlen(EVENTS_KEY) == 5  # exact trimming, not approximate
    events = await store.events(limit=100)
    assert [(e.type, e.ip) for e in events] == [
        ("delisted", "192.0.2.3"),
        ("listed", "192.0.2.3"),
        ("delisted", "192.0.2.2"),
        ("listed", "192.0.2.2"),
        ("delisted", "192.0.2.1"),
    ]


async def test_events_newest_first_with_limit(store: Store, clock: FakeClock) -> None:
    for n in range(5):
        clock.advance(1)
        await store.open_issue(IssueKey(f"192.0.2.{n}", "dns", "ptr"), "mx1", {})
    events = await store.events(limit=2)
    assert [(e.ip, e.at) for e in events] == [
        ("192.0.2.4", 1_700_000_005.0),
        ("192.0.2.3", 1_700_000_004.0),
    ]
    assert await store.events(limit=0) == []


async def test_snapshot_round_trip_per_name(store: Store) -> None:
    assert await store.snapshot("1of1") is None
    await store.save_snapshot("1of1", {"taken_at": 1.5, "targets": []})
    await store.save_snapshot("2of2", {"taken_at": 2.5})
    assert await store.snapshot("1of1") == {"taken_at": 1.5, "targets": []}
    assert await store.snapshot("2of2") == {"taken_at": 2.5}


async def test_a_change_is_an_event_with_its_detail(store: Store, clock: FakeClock) -> None:
    key = IssueKey("192.0.2.1", "senderscore", "senderscore")
    await store.record_change(key, "mx1", "senderscore 85 (good) -> 62 (poor)")
    [change] = await store.events(key=key)
    assert (change.type, change.host, change.detail) == (
        "changed",
        "mx1",
        "senderscore 85 (good) -> 62 (poor)",
    )
    assert change.at == clock.now
    assert await store.open_issues() == []  # a change is not an issue


async def test_events_filtered_per_issue(store: Store, clock: FakeClock) -> None:
    await store.open_issue(KEY, "mx1", {})
    await store.open_issue(OTHER, "mx1", {})
    clock.advance(1)
    await store.acknowledge(KEY, "alice")
    await store.acknowledge(OTHER, "bob")
    clock.advance(1)
    await store.clear_issue(OTHER)

    assert [(e.type, e.user) for e in await store.events(key=KEY)] == [
        ("ack", "alice"),
        ("listed", None),
    ]
    assert [e.type for e in await store.events(key=OTHER)] == [
        "ack_ended",
        "delisted",
        "ack",
        "listed",
    ]
    assert [e.type for e in await store.events(key=OTHER, limit=1)] == ["ack_ended"]
    assert await store.events(key=IssueKey("192.0.2.99", "rbl", "zen.spamhaus.org")) == []


async def test_events_of_an_issue_found_behind_many_newer_events(store: Store) -> None:
    await store.open_issue(KEY, "mx1", {})
    for n in range(700):  # more than one page of the backwards scan
        key = IssueKey(f"198.51.100.{n % 250}", "snds", f"s{n}")
        await store.open_issue(key, "mx2", {})
    events = await store.events(key=KEY)
    assert [(e.type, e.key) for e in events] == [("listed", KEY)]


# -- keys ----------------------------------------------------------------------


def test_issue_key_normalises_ip_addresses() -> None:
    assert IssueKey("2001:DB8:0:0::1", "rbl", "z") == IssueKey("2001:db8::1", "rbl", "z")
    assert IssueKey("2001:DB8:0:0::1", "rbl", "z").ip == "2001:db8::1"


def test_issue_key_ids_are_unambiguous() -> None:
    # Naively joined with ":", both would be "2001:db8::1:dns:ptr:x".
    first = IssueKey("2001:db8::1", "dns", "ptr:x")
    second = IssueKey("2001:db8::1:dns:ptr", "dns", "x")
    assert first.id != second.id
    assert first.id == "2001%3Adb8%3A%3A1:dns:ptr%3Ax"
    assert IssueKey.from_id(first.id) == first
    assert IssueKey.from_id(second.id) == second
    odd = IssueKey("192.0.2.1", "reputation", "a%3Ab:c d/é")
    assert IssueKey.from_id(odd.id) == odd


@pytest.mark.parametrize(
    ("ip", "kind", "subject", "message"),
    [
        ("192.0.2.1", "bogus", "z", "unknown issue kind 'bogus'"),
        ("", "rbl", "z", "ip must not be empty"),
        ("192.0.2.1", "rbl", "", "subject must not be empty"),
    ],
)
def test_issue_key_validation(ip: str, kind: Any, subject: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IssueKey(ip, kind, subject)


@pytest.mark.parametrize("bad", ["", "a:b", "a:b:c:d", "192.0.2.1:bogus:z", "x:rbl:%FF"])
def test_issue_key_from_id_rejects_non_ids(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^not an issue id"):
        IssueKey.from_id(bad)


async def test_ipv6_issues_are_stored_apart(store: Store) -> None:
    first = IssueKey("2001:db8::1", "rbl", "zen.spamhaus.org")
    second = IssueKey("2001:db8::1:0", "rbl", "zen.spamhaus.org")
    await store.open_issue(first, "mx6", {"which": 1})
    await store.open_issue(second, "mx6", {"which": 2})
    await store.acknowledge(second, "alice")

    record = await store.issue(IssueKey("2001:0DB8:0000::0001", "rbl", "zen.spamhaus.org"))
    assert record is not None
    assert (record.key, record.detail, record.ack) == (first, {"which": 1}, None)
    assert {r.key for r in await store.open_issues("mx6")} == {first, second}
    assert [e.type for e in await store.events(key=first)] == ["listed"]
    assert [e.type for e in await store.events(key=second)] == ["ack", "listed"]


async def test_hostile_text_round_trips_exactly(store: Store) -> None:
    subject = "odd:zone %3A <b>"
    key = IssueKey("2001:db8::25", "provider", subject)
    detail = {
        "reply": HOSTILE,
        "lone surrogate from a badly decoded log": "\udcff",
        HOSTILE: [HOSTILE, 1, None, 2.5],
    }
    await store.open_issue(key, "mx1", detail)
    await store.acknowledge(key, "o'brien <admin>", HOSTILE)

    record = await store.issue(key)
    assert record is not None
    assert record.detail == detail
    assert record.key.subject == subject
    assert record.ack is not None
    assert (record.ack.user, record.ack.note) == ("o'brien <admin>", HOSTILE)
    [listed] = await store.open_issues()
    assert listed.detail == detail
    [ack_event, _opened] = await store.events(key=key)
    assert (ack_event.note, ack_event.subject) == (HOSTILE, subject)


async def test_remote_text_never_reaches_key_names(
    store: Store, client: redis.asyncio.Redis
) -> None:
    await store.open_issue(KEY, "mx1", {"reply": HOSTILE})
    await store.acknowledge(KEY, "alice", HOSTILE)
    await store.save_host_results("mx1", {"reply": HOSTILE})
    names = [str(name) for name in await client.keys("*")]
    assert names
    for name in names:
        assert name.startswith("mtarep:")
        assert "<" not in name
        assert "\n" not in name
        assert "550" not in name


# -- host results ----------------------------------------------------------------


async def test_host_results(store: Store, clock: FakeClock) -> None:
    assert await store.host_results("mx1") is None
    assert await store.all_host_results() == {}

    await store.save_host_results("mx1", {"rbl": {"zen": "listed"}, "txt": HOSTILE})
    clock.advance(30)
    await store.save_host_results("mx2", {"senderscore": 97})
    clock.advance(30)
    await store.save_host_results("mx1", {"rbl": {}})

    mx1 = {"host": "mx1", "updated_at": 1_700_000_060.0, "results": {"rbl": {}}}
    mx2 = {"host": "mx2", "updated_at": 1_700_000_030.0, "results": {"senderscore": 97}}
    assert await store.host_results("mx1") == mx1
    assert await store.all_host_results() == {"mx1": mx1, "mx2": mx2}

    await store.forget_host("mx1")
    assert await store.host_results("mx1") is None
    assert await store.all_host_results() == {"mx2": mx2}


# -- errors ---------------------------------------------------------------------


def _public_calls(store: Store) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "ping": store.ping,
        "save_host_results": lambda: store.save_host_results("mx1", {}),
        "host_results": lambda: store.host_results("mx1"),
        "all_host_results": store.all_host_results,
        "forget_host": lambda: store.forget_host("mx1"),
        "open_issue": lambda: store.open_issue(KEY, "mx1", {}),
        "clear_issue": lambda: store.clear_issue(KEY),
        "issue": lambda: store.issue(KEY),
        "open_issues": store.open_issues,
        "acknowledge": lambda: store.acknowledge(KEY, "alice"),
        "unacknowledge": lambda: store.unacknowledge(KEY, "alice"),
        "ack": lambda: store.ack(KEY),
        "events": lambda: store.events(key=KEY),
        "save_snapshot": lambda: store.save_snapshot("1of1", {}),
        "snapshot": lambda: store.snapshot("1of1"),
        "record_change": lambda: store.record_change(KEY, "mx1", "x"),
        "mailflow_prefixes": lambda: store.mailflow_prefixes("20261201", ["sent"]),
        "mailflow_counts": lambda: store.mailflow_counts(["acme"], "20261201", ["sent"]),
        "shared_secret": lambda: store.shared_secret("csrf"),
    }


def test_every_public_method_is_covered_by_the_error_tests() -> None:
    store = Store(fakeredis.FakeAsyncRedis(decode_responses=True))
    public = {
        name for name in dir(Store) if not name.startswith("_") and callable(getattr(Store, name))
    }
    assert public == set(_public_calls(store))


async def test_every_public_method_reports_a_lost_connection(
    store: Store, server: fakeredis.FakeServer
) -> None:
    await store.open_issue(KEY, "mx1", {})
    server.connected = False
    for name, call in _public_calls(store).items():
        with pytest.raises(StoreUnavailable) as caught:
            await call()
        assert str(caught.value).startswith("Redis unavailable (redis://127.0.0.1:6379/0): "), name


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_refused_connection_raises_store_unavailable_without_password(
    refused_port: int,
) -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{refused_port}/0"
    client = redis.asyncio.Redis.from_url(url, decode_responses=True, retry=Retry(NoBackoff(), 0))
    store = Store(client, description=f"redis://:***@127.0.0.1:{refused_port}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.open_issue(KEY, "mx1", {})
    finally:
        await client.aclose()
    assert str(caught.value) == (
        f"Redis unavailable (redis://:***@127.0.0.1:{refused_port}/0): Connection refused"
    )
    assert "hunter2secret" not in repr(caught.value)
    assert "hunter2secret" not in str(caught.value.__cause__)


async def test_password_is_scrubbed_from_error_text(tmp_path: Path) -> None:
    # The socket path echoed in redis-py's error message contains the password.
    path = tmp_path / "hunter2secret" / "redis.sock"
    client = redis.asyncio.Redis(
        unix_socket_path=str(path),
        password="hunter2secret",
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
    )
    store = Store(client, description="unix:///somewhere")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.ping()
    finally:
        await client.aclose()
    assert str(caught.value) == "Redis unavailable (unix:///somewhere): No such file or directory"
    assert "hunter2secret" not in str(caught.value)


async def test_redis_command_error_is_a_store_error(
    store: Store, client: redis.asyncio.Redis
) -> None:
    await client.rpush("mtarep:host:mx1", "not a string")  # wrong type for the schema
    with pytest.raises(
        StoreError, match=r"^Redis error \(redis://127\.0\.0\.1:6379/0\): WRONGTYPE"
    ):
        await store.host_results("mx1")
    with pytest.raises(StoreError) as caught:
        await store.host_results("mx1")
    assert not isinstance(caught.value, StoreUnavailable)


async def test_unreadable_stored_data_is_a_store_error(
    store: Store, client: redis.asyncio.Redis
) -> None:
    await client.set("mtarep:host:mx1", "{not json")
    with pytest.raises(StoreError, match="unreadable JSON at mtarep:host:mx1"):
        await store.host_results("mx1")
    await store.open_issue(KEY, "mx1", {})
    await client.hset(f"mtarep:issue:{KEY.id}", "first_seen", "yesterday")
    with pytest.raises(StoreError, match="unreadable timestamp"):
        await store.issue(KEY)


def test_store_rejects_bad_construction() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        Store(fakeredis.FakeAsyncRedis())
    with pytest.raises(ValueError, match="history_limit"):
        Store(fakeredis.FakeAsyncRedis(decode_responses=True), history_limit=0)
