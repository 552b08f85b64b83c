"""A cycle with the SNDS and HTTP reputation sources: issues, metrics, failures kept apart.

HTTP answers come from a fake fetcher (the real client is tested against a real HTTP
server in tests/integration/test_http_sources.py); DNS, HELO, Redis and the clock are
the fakes of tests/unit/cycle_env.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import pytest

from exporter.cycle import Collection
from exporter.http_fetch import HttpFetcher, HttpProblem, Reply
from exporter.metrics import build_registry
from exporter.reputation_source import ReputationSources
from exporter.resolver import Resolver
from exporter.snds_source import SndsSource
from exporter.store import IssueKey
from tests.unit.cycle_env import HOST, IP, Env, make_config, only

pytestmark = pytest.mark.anyio

KEY = "f00d-cafe-snds-key"
SNDS_URL = "https://snds.test/snds"
REP_URL = "https://rep.test/ip/{ip}.json"


def data_row(color: str = "GREEN", traps: int = 0, recipients: int = 5000) -> str:
    return (
        f"{IP},11/30/2026 12:00 AM,11/30/2026 11:00 PM,{recipients},{recipients},{recipients},"
        f"{color},< 0.1%,,,{traps},{HOST},bounce@example.test,"
    )


@dataclass
class FakeFetcher:
    """Answers GETs by URL prefix; a callable answer may raise :class:`HttpProblem`."""

    answers: dict[str, Reply | Callable[[], Reply]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def get(self, url: str) -> Reply:
        self.asked.append(url)
        for prefix, answer in self.answers.items():
            if url.startswith(prefix):
                return answer() if callable(answer) else answer
        return Reply(404, "Not Found", "text/plain", "")

    def close(self) -> None:
        pass

    def start_round(self) -> None:
        pass

    def scrub(self, text: str) -> str:
        return text


def ok(text: str, content_type: str = "text/csv") -> Reply:
    return Reply(200, "OK", content_type, text)


def failing(reason: str) -> Callable[[], Reply]:
    def fail() -> Reply:
        raise HttpProblem(reason)

    return fail


@dataclass
class Sources:
    env: Env
    snds: FakeFetcher
    reputation: FakeFetcher

    def collection(self) -> Collection:
        config = make_config(
            reputation=[{"name": "brightmail", "url": REP_URL, "field": "entityRecord.rep"}]
        )
        snds = SndsSource(SNDS_URL, KEY, 3600, 5, fetcher=cast(HttpFetcher, self.snds))
        reputation = ReputationSources(
            config.reputation, {"brightmail": cast(HttpFetcher, self.reputation)}
        )
        return Collection(
            config,
            cast(Resolver, self.env.dns),
            self.env.store,
            clock=self.env.clock,
            helo_checker=self.env.helo,
            snds=snds,
            reputation=reputation,
        )

    def serve_snds(self, data: Reply | Callable[[], Reply], status: str = "") -> None:
        self.snds.answers[f"{SNDS_URL}/data.aspx"] = data
        self.snds.answers[f"{SNDS_URL}/ipStatus.aspx"] = ok(status)

    def rate(self, rating: str) -> None:
        body = json.dumps({"entityRecord": {"rep": rating}})
        self.reputation.answers[f"https://rep.test/ip/{IP}.json"] = ok(body, "application/json")


@pytest.fixture
def sources(env: Env) -> Sources:
    return Sources(env, FakeFetcher(), FakeFetcher())


async def test_snds_red_with_traps_opens_two_warning_issues(sources: Sources) -> None:
    sources.serve_snds(ok(data_row("RED", traps=12)))
    sources.rate("good")
    snapshot = await sources.env.cycle(sources.collection())

    target = only(snapshot)
    assert target.snds is not None
    assert target.snds.data is not None
    assert (target.snds.data.color, target.snds.data.trap_hits) == ("red", 12)
    assert snapshot.snds.day == "2026-11-30"
    store = sources.env.store
    color = await store.issue(IssueKey(IP, "snds", "filter"))
    traps = await store.issue(IssueKey(IP, "snds", "traps"))
    assert color is not None
    assert traps is not None
    assert color.detail["severity"] == traps.detail["severity"] == "warning"
    assert color.detail["summary"] == "SNDS filter result red"
    assert traps.detail["threshold"] == 10
    assert color.detail["day"] == "2026-11-30"

    registry = build_registry(lambda: snapshot)
    labels = {"host": HOST, "ip": IP}
    assert registry.get_sample_value("mtarep_snds_filter_result", {**labels, "color": "red"}) == 1
    assert registry.get_sample_value("mtarep_snds_filter_result", {**labels, "color": "green"}) == 0
    assert registry.get_sample_value("mtarep_snds_trap_hits", labels) == 12
    assert registry.get_sample_value("mtarep_snds_ip_blocked", labels) == 0
    assert (
        registry.get_sample_value("mtarep_snds_data_day_timestamp_seconds") == 1_795_996_800
    )  # 2026-11-30
    assert registry.get_sample_value("mtarep_collection_success", {"source": "snds"}) == 1


async def test_green_below_the_trap_threshold_opens_nothing(sources: Sources) -> None:
    sources.serve_snds(ok(data_row("GREEN", traps=9)))
    await sources.env.cycle(sources.collection())
    assert await sources.env.store.open_issues() == []


async def test_an_ip_snds_does_not_name_has_no_series(sources: Sources) -> None:
    sources.serve_snds(ok(data_row().replace(IP, "198.51.100.1")))
    snapshot = await sources.env.cycle(sources.collection())
    target = only(snapshot)
    assert target.snds is not None
    assert target.snds.data is None
    registry = build_registry(lambda: snapshot)
    labels = {"host": HOST, "ip": IP, "color": "green"}
    assert registry.get_sample_value("mtarep_snds_filter_result", labels) is None


async def test_a_blocked_ip_is_an_error_issue(sources: Sources) -> None:
    sources.serve_snds(ok(data_row()), status=f"{IP},{IP},Yes,Blocked for spam\r\n")
    await sources.env.cycle(sources.collection())
    record = await sources.env.store.issue(IssueKey(IP, "snds", "blocked"))
    assert record is not None
    assert (record.detail["severity"], record.detail["block_reason"]) == (
        "error",
        "Blocked for spam",
    )
    assert record.detail["block_range"] == f"{IP}-{IP}"


async def test_a_failed_snds_fetch_keeps_its_issues(sources: Sources) -> None:
    collection = sources.collection()
    sources.serve_snds(ok(data_row("YELLOW")))
    await sources.env.cycle(collection)
    sources.serve_snds(failing("no answer within 5s"))
    sources.env.clock.advance(3600)
    snapshot = await sources.env.cycle(collection)

    assert snapshot.sources["snds"].success is False
    assert "no answer within 5s" in snapshot.sources["snds"].error
    assert await sources.env.store.issue(IssueKey(IP, "snds", "filter")) is not None
    target = only(snapshot)
    assert target.snds is not None
    assert target.snds.data is not None
    assert target.snds.data.color == "yellow"


async def test_between_refreshes_snds_is_not_asked_and_keeps_its_state(sources: Sources) -> None:
    collection = sources.collection()
    sources.serve_snds(ok(data_row("YELLOW")))
    first = await sources.env.cycle(collection)
    second = await sources.env.cycle(collection)  # 15 minutes later: not due
    assert len(sources.snds.asked) == 2
    assert second.sources["snds"] == first.sources["snds"]
    assert only(second).snds == only(first).snds


async def test_bad_reputation_is_an_error_and_an_unknown_answer_keeps_it(
    sources: Sources,
) -> None:
    sources.serve_snds(ok(data_row()))
    collection = sources.collection()
    sources.rate("bad")
    snapshot = await sources.env.cycle(collection)
    key = IssueKey(IP, "reputation", "brightmail")
    record = await sources.env.store.issue(key)
    assert record is not None
    assert (record.detail["severity"], record.detail["value"]) == ("error", "bad")
    registry = build_registry(lambda: snapshot)
    labels = {"host": HOST, "ip": IP, "source": "brightmail"}
    assert registry.get_sample_value("mtarep_reputation", {**labels, "rating": "bad"}) == 1
    assert registry.get_sample_value("mtarep_reputation", {**labels, "rating": "good"}) == 0

    sources.reputation.answers.clear()
    sources.reputation.answers["https://rep.test/"] = ok("<html>captcha</html>", "text/html")
    snapshot = await sources.env.cycle(collection)
    assert only(snapshot).reputation["brightmail"].rating == "bad"
    assert await sources.env.store.issue(key) is not None  # unknown clears nothing
    registry = build_registry(lambda: snapshot)
    assert registry.get_sample_value("mtarep_reputation_lookup_ok", labels) == 0
    assert registry.get_sample_value("mtarep_reputation", {**labels, "rating": "bad"}) == 1

    sources.reputation.answers.clear()
    sources.rate("neutral")
    await sources.env.cycle(collection)
    assert await sources.env.store.issue(key) is None


async def test_a_crashing_source_fails_alone(sources: Sources) -> None:
    def crash() -> Reply:
        raise RuntimeError("bug in a source")

    sources.serve_snds(crash)
    sources.rate("good")
    snapshot = await sources.env.cycle(sources.collection())
    assert snapshot.sources["snds"].success is False
    assert "RuntimeError: bug in a source" in snapshot.sources["snds"].error
    assert snapshot.sources["reputation"].success is True
    assert snapshot.sources["rbl"].success is True
    assert only(snapshot).reputation["brightmail"].rating == "good"


async def test_a_fresh_exporter_that_cannot_reach_snds_clears_no_snds_issue(
    sources: Sources,
) -> None:
    """No snapshot (a new exporter, a renamed shard) and the SNDS data feed down: nothing
    is known of the colour, so the acknowledged issue and its acknowledgement stay."""
    key = IssueKey(IP, "snds", "filter")
    await sources.env.store.open_issue(key, HOST, {"summary": "SNDS filter result red"})
    await sources.env.store.acknowledge(key, "alice", "on it")
    sources.serve_snds(failing("no answer within 5s"))
    snapshot = await sources.env.cycle(sources.collection())

    assert snapshot.sources["snds"].success is False
    record = await sources.env.store.issue(key)
    assert record is not None
    assert record.ack is not None
    assert [e.type for e in await sources.env.events(key)] == ["issue_opened", "ack"]


async def test_a_failed_fetch_is_tried_again_only_after_the_refresh(sources: Sources) -> None:
    collection = sources.collection()
    sources.serve_snds(failing("no answer within 5s"))
    await sources.env.cycle(collection)
    asked = len(sources.snds.asked)
    await sources.env.cycle(collection)  # 15 minutes later
    assert len(sources.snds.asked) == asked
    sources.env.clock.advance(3600)
    await sources.env.cycle(collection)
    assert len(sources.snds.asked) > asked


async def test_another_snds_key_starts_afresh(sources: Sources) -> None:
    collection = sources.collection()
    sources.serve_snds(ok(data_row("YELLOW")))
    first = await sources.env.cycle(collection)
    assert first.snds.key_id
    assert KEY not in first.snds.key_id
    other = SndsSource(
        SNDS_URL, "another-key-1234", 3600, 5, fetcher=cast(HttpFetcher, sources.snds)
    )
    collection.snds = other
    asked = len(sources.snds.asked)
    second = await sources.env.cycle(collection)  # within the refresh: asked anyway
    assert len(sources.snds.asked) == asked + 2
    assert second.snds.key_id == other.key_id != first.snds.key_id
