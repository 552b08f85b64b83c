"""Fakes for collection-cycle tests: DNS answers from a dict, a HELO checker, a clock.

The fake resolver answers every lookup from :class:`FakeDns` (default NXDOMAIN); the
fake HELO checker answers by IP; the store is fakeredis. The ``env`` fixture
(tests/unit/conftest.py) gives one of each. Nothing here touches the network or sleeps.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import dns.reversename
import fakeredis
import redis.asyncio

from exporter.config import Config, Thresholds
from exporter.cycle import Collection, in_shard
from exporter.dnsbl import query_name, reverse_name
from exporter.resolver import Answer, Query, RecordType, Resolver, Status
from exporter.senderscore import SENDERSCORE_ZONE
from exporter.snapshot import Snapshot, TargetState
from exporter.store import Event, IssueKey, IssueRecord, Store

T0 = 1_700_000_000.0
HOST = "mx1.example.test"
IP = "192.0.2.10"
IP6 = "2001:db8::10"
ZONE = "bl.test"
OTHER_ZONE = "other.test"
REMOVAL = "https://bl.test/remove?ip={ip}"
ASSISTANCE = "https://help.example.test/delisting"
TXT = "Listed for spam, see https://bl.test/lookup/192.0.2.10"
RBL_KEY = IssueKey(IP, "rbl", ZONE)
SCORE_KEY = IssueKey(IP, "senderscore", "senderscore")
SENDERSCORE_ISSUE_BELOW = Thresholds().senderscore_below


# -- fakes -----------------------------------------------------------------------------


@dataclass
class FakeClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 900.0) -> None:
        self.now += seconds


def _normal(name: str) -> str:
    return name.rstrip(".").lower()


def rbl_name(ip: str, zone: str) -> str:
    return query_name(reverse_name(ip), zone)


def ptr_name(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text()


class FakeDns:
    """The same interface as :class:`~exporter.resolver.Resolver`, answering from a dict.

    Unknown names are NXDOMAIN. ``asked`` keeps every query, in order.
    """

    def __init__(self) -> None:
        self.answers: dict[tuple[str, RecordType], Answer] = {}
        self.counts: Counter[Status] = Counter()
        self.asked: list[Query] = []
        self.closed = False

    # -- the Resolver interface ----------------------------------------------------------

    async def lookup_many(self, queries: Sequence[Query], *, cached: bool = True) -> list[Answer]:
        answers = []
        for name, record_type in queries:
            self.asked.append((name, record_type))
            answer = self.answers.get((_normal(name), record_type), Answer("nxdomain"))
            self.counts[answer.status] += 1
            answers.append(answer)
        return answers

    async def lookup(self, name: str, record_type: RecordType) -> Answer:
        return (await self.lookup_many([(name, record_type)]))[0]

    async def close(self) -> None:
        self.closed = True

    # -- setting answers -----------------------------------------------------------------

    def set(self, name: str, record_type: RecordType, answer: Answer) -> None:
        self.answers[(_normal(name), record_type)] = answer

    def forget(self, name: str, record_type: RecordType) -> None:
        self.answers.pop((_normal(name), record_type), None)

    def records(self, name: str, record_type: RecordType, *values: str) -> None:
        self.set(name, record_type, Answer("answer", values))

    def host(self, fqdn: str, *ips: str) -> None:
        """A/AAAA of ``fqdn`` and a matching PTR for every IP."""
        v4 = [ip for ip in ips if ":" not in ip]
        v6 = [ip for ip in ips if ":" in ip]
        self.set(fqdn, "A", Answer("answer", tuple(v4)) if v4 else Answer("nodata"))
        self.set(fqdn, "AAAA", Answer("answer", tuple(v6)) if v6 else Answer("nodata"))
        for ip in ips:
            self.records(ptr_name(ip), "PTR", fqdn)

    def healthy_zone(self, zone: str) -> None:
        """RFC 5782: the zone lists 127.0.0.2 (and, by default, not 127.0.0.1)."""
        self.records("2.0.0.127." + zone, "A", "127.0.0.2")

    def list_ip(self, ip: str, zone: str, *codes: str, txt: str | None = None) -> None:
        self.records(rbl_name(ip, zone), "A", *(codes or ("127.0.0.2",)))
        if txt is not None:
            self.records(rbl_name(ip, zone), "TXT", txt)

    def delist(self, ip: str, zone: str) -> None:
        self.forget(rbl_name(ip, zone), "A")
        self.forget(rbl_name(ip, zone), "TXT")

    def fail_rbl(self, ip: str, zone: str, status: Status) -> None:
        self.set(rbl_name(ip, zone), "A", Answer(status))

    def score(self, ip: str, score: int) -> None:
        self.records(rbl_name(ip, SENDERSCORE_ZONE), "A", f"127.0.4.{score}")


@dataclass
class FakeHelo:
    """HELO checker: passes unless ``results`` says otherwise for the IP."""

    results: dict[str, tuple[bool | None, str]] = field(default_factory=dict)
    calls: list[tuple[str, str, int, float]] = field(default_factory=list)
    during: Callable[[], None] | None = None
    """Runs inside the check: something that happens in the middle of a cycle."""

    async def __call__(
        self, ip: str, fqdn: str, port: int, timeout: float
    ) -> tuple[bool | None, str]:
        self.calls.append((ip, fqdn, port, timeout))
        if self.during is not None:
            self.during()
        return self.results.get(ip, (True, f"the MTA announces {fqdn}"))


# -- builders --------------------------------------------------------------------------


def make_config(**overrides: Any) -> Config:
    """One host with a fixed IP, one zone with a removal and an assistance link."""
    document: dict[str, Any] = {
        "mta_map": {"mx1": {"fqdn": HOST, "ips": [IP]}},
        "rbls": [{"zone": ZONE, "removal_link": REMOVAL, "codes": {"127.0.0.2": "spam source"}}],
        "assistance_links": {ZONE: ASSISTANCE},
    }
    document.update(overrides)
    return Config.model_validate(document)


def hosts_by_shard(count: int = 2) -> dict[int, str]:
    """One host name per shard index."""
    found: dict[int, str] = {}
    for n in range(100):
        fqdn = f"mx{n}.example.test"
        for index in range(count):
            if index not in found and in_shard(fqdn, index, count):
                found[index] = fqdn
        if len(found) == count:
            return found
    raise AssertionError("no host for every shard")


@dataclass
class Env:
    dns: FakeDns
    helo: FakeHelo
    clock: FakeClock
    store: Store
    server: fakeredis.FakeServer
    client: redis.asyncio.Redis

    def collection(self, config: Config | None = None) -> Collection:
        return Collection(
            config or make_config(),
            cast(Resolver, self.dns),
            self.store,
            clock=self.clock,
            helo_checker=self.helo,
        )

    async def cycle(self, collection: Collection) -> Snapshot:
        """Move the clock on and run one cycle."""
        self.clock.advance()
        return await collection.run()

    async def events(self, key: IssueKey | None = None) -> list[Event]:
        """Events oldest first."""
        return list(reversed(await self.store.events(key=key)))

    async def issue(self, key: IssueKey) -> IssueRecord | None:
        return await self.store.issue(key)


def only(snapshot: Snapshot, host: str = HOST, ip: str = IP) -> TargetState:
    target = snapshot.target(host, ip)
    assert target is not None, f"no target {host} {ip} in {snapshot.targets}"
    return target


def ips_of(snapshot: Snapshot, host: str = HOST) -> list[str]:
    return [t.ip for t in snapshot.targets if t.host == host]
