"""The whole DNS collection (hosts, RBLs, Sender Score, FCrDNS, HELO) against a real nsd.

Each test serves the zones it needs (the MTAs' names and reverse zones, a DNSBL zone,
``score.senderscore.com``) from its own nsd, runs one cycle with ``collect`` (or
:class:`~exporter.cycle.Collection` with a Redis store) and checks one behaviour.
"""

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Config
from exporter.cycle import Collection
from exporter.dns_source import DnsResults, collect
from exporter.dnsbl import zone_label
from exporter.redis_connection import open_redis
from exporter.service import make_resolver
from exporter.snapshot import CheckState, RblState, Snapshot, TargetState
from exporter.store import IssueKey, Store
from tests.harness.nsd_server import NsdFactory, NsdServer, zone_text
from tests.harness.ports import HOST
from tests.harness.redis_server import RedisServer
from tests.harness.smtp_listener import SmtpListener
from tests.harness.udp_dns import SilentUdpServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NOW = 1_700_000_000.0
DOMAIN = "example.com."
MTA1, IP1, REV1 = "mta1.example.com", "10.0.0.25", "25.0.0.10"
MTA6, IP6 = "mta6.example.com", "2001:db8::25"
REV6 = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
"""``2001:db8::25`` in DNSBL form: all 32 nibbles, reversed."""
REVERSE_V4 = "0.0.10.in-addr.arpa."
REVERSE_V6 = "8.b.d.0.1.0.0.2.ip6.arpa."
ZEN = "zen.spamhaus.org"
SCORE = "score.senderscore.com"
HELO_TIMEOUT = 0.3


def _zones(
    rbl: Sequence[str] = (),
    *,
    score: Sequence[str] = (),
    ptr_v4: Sequence[str] = (f"25 IN PTR {MTA1}.",),
    rbl_zone: str | None = None,
) -> dict[str, str]:
    """The MTAs' zones, a DNSBL zone (``rbl`` records plus the 127.0.0.2 test entry),
    and the Sender Score zone. ``rbl_zone``: the whole DNSBL zone text instead."""
    return {
        DOMAIN: zone_text(DOMAIN, [f"mta1 IN A {IP1}", f"mta6 IN AAAA {IP6}"]),
        REVERSE_V4: zone_text(REVERSE_V4, list(ptr_v4)),
        REVERSE_V6: zone_text(
            REVERSE_V6, [f"{REV6.removesuffix('.8.b.d.0.1.0.0.2')} IN PTR {MTA6}."]
        ),
        ZEN: rbl_zone or zone_text(ZEN, ["2.0.0.127 IN A 127.0.0.2", *rbl]),
        SCORE: zone_text(SCORE, list(score)),
    }


def _config(
    port: int,
    *,
    hosts: Any = (MTA1,),
    rbls: Sequence[Any] = (ZEN,),
    helo: Mapping[str, Any] | None = None,
    timeout: str = "0.5s",
) -> Config:
    return Config.model_validate(
        {
            "mta_map": hosts if isinstance(hosts, Mapping) else list(hosts),
            "rbls": list(rbls),
            "dns": {"nameservers": [HOST], "port": port, "timeout": timeout, "attempts": 1},
            "helo_check": dict(helo) if helo else {"enabled": False},
        }
    )


async def _collect(
    config: Config, previous: Snapshot | None = None, *, now: float = NOW
) -> DnsResults:
    resolver = make_resolver(config)
    try:
        return await collect(
            config, config.hosts, resolver, previous or Snapshot(), clock=lambda: now
        )
    finally:
        await resolver.close()


def _only(results: DnsResults) -> TargetState:
    assert len(results.targets) == 1, results.targets
    return results.targets[0]


def _as_previous(results: DnsResults) -> Snapshot:
    return Snapshot(taken_at=NOW, targets=results.targets, zones=results.zones)


# --- RBL verdicts ---------------------------------------------------------------------


async def test_listing_with_txt_reason_reaches_state_and_redis_issue(
    nsd_factory: NsdFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    text = "Listed in XBL <https://check.spamhaus.org/query/ip/10.0.0.25>"
    reason = f"{text} Über"
    nsd = nsd_factory(_zones([f"{REV1} IN A 127.0.0.4", rf'{REV1} IN TXT "{text}" " \195\156ber"']))
    link = "https://check.spamhaus.org/listed/?searchterm={ip}"
    config = _config(nsd.port, rbls=[{"zone": ZEN, "removal_link": link}])
    connection = await open_redis(redis_server.url, tmp_path / "unused")
    resolver = make_resolver(config)
    try:
        store = Store(connection.client, clock=lambda: NOW)
        snapshot = await Collection(config, resolver, store, clock=lambda: NOW).run()
        issue = await store.issue(IssueKey(IP1, "rbl", ZEN))
    finally:
        await resolver.close()
        await connection.close()
    state = snapshot.targets[0].rbl[ZEN]
    meaning = "XBL: exploited or infected host"
    assert state == RblState(
        listed=True, lookup_ok=True, codes=("127.0.0.4",), meaning=meaning, reason=reason, since=NOW
    )
    assert snapshot.zones[ZEN].healthy
    assert snapshot.sources["rbl"].success
    assert issue is not None
    assert issue.host == MTA1
    assert issue.detail == {
        "summary": f"listed on {ZEN}: {meaning}",
        "severity": "error",  # a Spamhaus listing
        "zone": ZEN,
        "codes": ["127.0.0.4"],
        "meaning": meaning,
        "reason": reason,
        "removal_link": "https://check.spamhaus.org/listed/?searchterm=10.0.0.25",
        "assistance_link": None,
        "lookup_ok": True,
        "since": NOW,
    }


async def test_not_listed(nsd_factory: NsdFactory) -> None:
    nsd = nsd_factory(_zones())
    results = await _collect(_config(nsd.port))
    assert _only(results).rbl[ZEN] == RblState(listed=False, lookup_ok=True, since=NOW)
    assert results.reports["rbl"].errors == 0


@pytest.mark.parametrize(
    "code", ["127.255.255.252", "127.255.255.254", "127.255.255.255", "127.0.0.1"]
)
async def test_non_listing_code_is_unknown_and_never_listed(
    nsd_factory: NsdFactory, code: str
) -> None:
    nsd = nsd_factory(_zones())
    config = _config(nsd.port)
    before = await _collect(config)
    assert _only(before).rbl[ZEN].listed is False
    nsd.replace_zones(_zones([f"{REV1} IN A {code}"]))
    results = await _collect(config, _as_previous(before), now=NOW + 900)
    state = _only(results).rbl[ZEN]
    assert state.listed is False  # the last trustworthy verdict, not "listed"
    assert state.lookup_ok is False
    assert state.since == NOW
    assert f"not a listing: {code}" in state.problem
    assert results.zones[ZEN].healthy
    assert results.reports["rbl"].errors == 1


async def test_answer_outside_loopback_is_unknown(nsd_factory: NsdFactory) -> None:
    nsd = nsd_factory(_zones([f"{REV1} IN A 192.0.2.1"]))
    results = await _collect(_config(nsd.port))
    state = _only(results).rbl[ZEN]
    assert (state.listed, state.lookup_ok) == (None, False)
    assert "answer outside 127.0.0.0/8 (192.0.2.1)" in state.problem


async def test_wildcard_zone_is_unhealthy_and_lists_nobody(nsd_factory: NsdFactory) -> None:
    nsd = nsd_factory(_zones(rbl_zone=zone_text(ZEN, ["* IN A 127.0.0.2"])))
    results = await _collect(_config(nsd.port, hosts=[MTA1, MTA6]))
    zone = results.zones[ZEN]
    assert not zone.healthy
    assert "self-test for 127.0.0.1" in zone.problem
    assert "answers for everything" in zone.problem
    assert len(results.targets) == 2
    for target in results.targets:
        assert target.rbl[ZEN].listed is None
        assert target.rbl[ZEN].lookup_ok is False
        assert target.listings == []


async def test_ipv6_listing_in_nibble_format_for_a_host_with_only_aaaa(
    nsd_factory: NsdFactory,
) -> None:
    nsd = nsd_factory(_zones([f"{REV6} IN A 127.0.0.2"]))
    results = await _collect(_config(nsd.port, hosts=[MTA6]))
    target = _only(results)
    assert target.ip == IP6
    assert target.rbl[ZEN] == RblState(
        listed=True,
        lookup_ok=True,
        codes=("127.0.0.2",),
        meaning="SBL: Spamhaus Block List (spam sources and operations)",
        since=NOW,
    )
    assert target.checks["forward"].ok is True
    assert (target.senderscore, target.senderscore_problem) == (None, "")
    assert results.reports["hosts"].errors == 0


@pytest.mark.parametrize(
    ("rbl", "status", "problem"),
    [
        ("unserved.example.net", "REFUSED", "fails the self-test for 127.0.0.2: lookup failed"),
        ("key.zen.dq.spamhaus.net", "SERVFAIL", "fails the self-test for 127.0.0.2"),
    ],
)
async def test_zone_that_fails_to_answer_is_unhealthy(
    nsd_factory: NsdFactory, rbl: str, status: str, problem: str
) -> None:
    nsd = nsd_factory(_zones(), servfail_zones=[rbl] if status == "SERVFAIL" else [])
    results = await _collect(_config(nsd.port, rbls=[ZEN, rbl]))
    name = zone_label(rbl)  # a Spamhaus DQS key stays out of what is reported
    assert results.zones[ZEN].healthy
    assert not results.zones[name].healthy
    assert problem in results.zones[name].problem
    assert status in results.zones[name].problem
    target = _only(results)
    assert target.rbl[ZEN].lookup_ok is True
    assert (target.rbl[name].listed, target.rbl[name].lookup_ok) == (None, False)


# --- Sender Score -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "score", "problem"),
    [
        ([f"{REV1} IN A 127.0.4.85"], 85, ""),
        ([], None, ""),
        ([f"{REV1} IN A 127.255.255.255"], None, "127.255.255.255: query blocked by Validity"),
    ],
)
async def test_senderscore(
    nsd_factory: NsdFactory, records: list[str], score: int | None, problem: str
) -> None:
    nsd = nsd_factory(_zones(score=records))
    results = await _collect(_config(nsd.port))
    target = _only(results)
    assert (target.senderscore, target.senderscore_problem) == (score, problem)
    assert results.reports["senderscore"].errors == (1 if problem else 0)


# --- FCrDNS -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "ptr_v4", "ptr", "forward"),
    [
        pytest.param(
            [MTA1],
            [f"25 IN PTR {MTA1}."],
            CheckState(ok=True, detail=f"PTR names {MTA1}"),
            CheckState(ok=True, detail=f"{MTA1} resolves to {IP1}"),
            id="v4-pass",
        ),
        pytest.param(
            [MTA6],
            [],
            CheckState(ok=True, detail=f"PTR names {MTA6}"),
            CheckState(ok=True, detail=f"{MTA6} resolves to {IP6}"),
            id="v6-pass",
        ),
        pytest.param(
            [MTA1],
            ["25 IN PTR other.example.com."],
            CheckState(ok=False, detail=f"PTR names other.example.com, expected {MTA1}"),
            CheckState(ok=True, detail=f"{MTA1} resolves to {IP1}"),
            id="ptr-mismatch",
        ),
        pytest.param(
            [MTA1],
            [],
            CheckState(ok=False, detail="the IP has no PTR record"),
            CheckState(ok=True, detail=f"{MTA1} resolves to {IP1}"),
            id="no-ptr",
        ),
        pytest.param(
            {"mta1": {"fqdn": MTA1, "ips": ["10.0.0.26"]}},
            [f"26 IN PTR {MTA1}."],
            CheckState(ok=True, detail=f"PTR names {MTA1}"),
            CheckState(ok=False, detail=f"{MTA1} resolves to {IP1}, not 10.0.0.26"),
            id="forward-mismatch",
        ),
    ],
)
async def test_ptr_and_forward(
    nsd_factory: NsdFactory, hosts: Any, ptr_v4: list[str], ptr: CheckState, forward: CheckState
) -> None:
    nsd = nsd_factory(_zones(ptr_v4=ptr_v4))
    results = await _collect(_config(nsd.port, hosts=hosts))
    checks = _only(results).checks
    assert (checks["ptr"], checks["forward"]) == (ptr, forward)
    assert results.reports["fcrdns"].errors == 0


# --- name server failures ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _dead_name_server(kind: str, nsd: NsdServer) -> AsyncIterator[int]:
    """The port of a name server that gives no answer: silent, or nsd stopped."""
    if kind == "silent":
        async with SilentUdpServer() as silent:
            yield silent.port
    else:
        nsd.stop()
        yield nsd.port


@pytest.mark.parametrize(
    ("kind", "failure"),
    [("silent", "timed out"), ("stopped", "Could not contact DNS servers")],
)
async def test_dead_name_server_keeps_the_last_trustworthy_verdicts(
    nsd_factory: NsdFactory, kind: str, failure: str
) -> None:
    nsd = nsd_factory(
        _zones(
            [f"{REV1} IN A 127.0.0.2", f'{REV1} IN TXT "spam seen"'],
            score=[f"{REV1} IN A 127.0.4.85"],
        )
    )
    before = await _collect(_config(nsd.port))
    first = _only(before)
    assert first.rbl[ZEN].listed is True
    assert first.senderscore == 85
    async with _dead_name_server(kind, nsd) as port:
        started = time.monotonic()
        results = await _collect(_config(port, timeout="0.2s"), _as_previous(before), now=NOW + 900)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0
    target = _only(results)  # the host's address is kept although its name did not resolve
    assert target.ip == IP1
    state = target.rbl[ZEN]
    assert (state.listed, state.lookup_ok, state.since) == (True, False, NOW)
    assert (state.codes, state.reason) == (("127.0.0.2",), "spam seen")
    assert failure in state.problem
    assert not results.zones[ZEN].healthy
    assert target.senderscore == 85
    assert failure in target.senderscore_problem
    for check in ("ptr", "forward"):
        assert target.checks[check].ok is True, check
        assert failure in target.checks[check].problem
    for source in ("hosts", "rbl", "senderscore", "fcrdns"):
        assert results.reports[source].errors > 0, source


# --- HELO -----------------------------------------------------------------------------------


async def _helo_cycle(nsd_factory: NsdFactory, greeting: bytes | None) -> tuple[DnsResults, float]:
    """One cycle for an MTA at 127.0.0.1 whose SMTP port greets with ``greeting``."""
    nsd = nsd_factory(_zones())
    async with SmtpListener(greeting) as listener:
        config = _config(
            nsd.port,
            hosts={"mta1": {"fqdn": MTA1, "ips": ["127.0.0.1"]}},
            helo={"port": listener.port, "timeout": f"{HELO_TIMEOUT}s"},
        )
        started = time.monotonic()
        results = await _collect(config)
        return results, time.monotonic() - started


@pytest.mark.parametrize(
    ("greeting", "expected"),
    [
        (
            b"220 mta1.example.com ESMTP Postfix\r\n",
            CheckState(ok=True, detail=f"banner names {MTA1}"),
        ),
        (
            b"220 localhost ESMTP\r\n",
            CheckState(ok=False, detail=f"banner names localhost, expected {MTA1}"),
        ),
    ],
)
async def test_helo_banner(nsd_factory: NsdFactory, greeting: bytes, expected: CheckState) -> None:
    results, _ = await _helo_cycle(nsd_factory, greeting)
    assert _only(results).checks["helo"] == expected
    assert results.reports["helo"].errors == 0


async def test_helo_silence_is_no_pass_and_ends_with_the_timeout(nsd_factory: NsdFactory) -> None:
    results, elapsed = await _helo_cycle(nsd_factory, None)
    # No greeting is not a wrong banner: the check is unknown (not a pass, not a fail).
    assert _only(results).checks["helo"] == CheckState(
        ok=None,
        problem=f"no SMTP greeting: timed out after {HELO_TIMEOUT:g}s waiting for the greeting",
    )
    assert results.reports["helo"].errors == 1
    assert HELO_TIMEOUT <= elapsed < HELO_TIMEOUT + 1.5


async def test_a_list_that_dies_inside_the_ttl_fails_its_self_test_at_once(
    nsd_factory: NsdFactory,
) -> None:
    """The self-test asks the server, never the cache: the wildcard shows next cycle."""
    nsd = nsd_factory(_zones())
    config = _config(nsd.port)
    resolver = make_resolver(config)
    try:
        first = await collect(config, config.hosts, resolver, Snapshot(), clock=lambda: NOW)
        assert first.zones[ZEN].healthy
        assert _only(first).rbl[ZEN].listed is False  # NXDOMAIN, cached for the zone's TTL
        dead = zone_text(ZEN, ["* IN A 127.0.0.2"])  # the list now answers for everything
        nsd.replace_zones(_zones(rbl_zone=dead))

        second = await collect(config, config.hosts, resolver, _as_previous(first))
    finally:
        await resolver.close()

    assert not second.zones[ZEN].healthy
    assert "lists it (127.0.0.2): the list answers for everything" in second.zones[ZEN].problem
    state = _only(second).rbl[ZEN]
    assert (state.listed, state.lookup_ok) == (False, False)  # never raised as a listing
