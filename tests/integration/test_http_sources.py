"""SNDS and HTTP reputation against a real HTTP server on loopback (not mocks of requests).

The server (tests/harness/http_server.py) answers as each test scripts it: good CSV,
broken rows, blocked ranges, an empty body, an HTML page, 401/500, and an answer that
never comes (the client's timeout ends it). Every test that fails a fetch also checks
that the SNDS key shows nowhere: not in the reason, not in any captured log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from urllib.parse import unquote

import pytest

from exporter.config import ReputationSource
from exporter.reputation_source import ReputationSources
from exporter.snapshot import SndsFeed, SndsState
from exporter.snds_source import SndsResult, SndsSource
from tests.harness.http_server import Answer, ScriptedHttpServer
from tests.harness.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

KEY = "8f0c2d9e-5b1a-4c7e-9d3f-a6b2e1c4d8f0"
NOW = 1_764_590_400.0  # 2025-12-01T12:00:00Z
HOUR = 3600.0
IPS = ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.99", "2001:db8::25"]
GOOD_DATA = "\r\n".join(
    [
        "192.0.2.10,11/30/2026 12:00 AM,11/30/2026 11:00 PM,5000,5000,4800,GREEN,< 0.1%,,,0,"
        "mta1.example.com,bounce@example.com,",
        "192.0.2.11,11/30/2026 12:00 AM,11/30/2026 11:00 PM,900,900,880,YELLOW,0.4%,"
        "11/30/2026 2:10 AM,11/30/2026 9:45 PM,3,mta1.example.com,bounce@example.com,",
        "192.0.2.12,11/30/2026 12:00 AM,11/30/2026 11:00 PM,700,700,690,RED,2.5%,"
        "11/30/2026 1:00 AM,11/30/2026 10:00 PM,15,mta2.example.com,news@example.com,",
        "2001:db8::25,11/30/2026 12:00 AM,11/30/2026 11:00 PM,10,10,10,GREEN,,,,0,,,",
        "",
    ]
)
BLOCKED = (
    "192.0.2.8,192.0.2.11,Yes,Blocked due to user complaints or other evidence of spamming\r\n"
)


@pytest.fixture
def server() -> Iterator[ScriptedHttpServer]:
    with ScriptedHttpServer() as running:
        yield running


@pytest.fixture
async def snds(server: ScriptedHttpServer) -> AsyncIterator[SndsSource]:
    source = SndsSource(f"{server.url}/snds/", KEY, refresh=HOUR, timeout=0.5)
    try:
        yield source
    finally:
        source.close()


def serve_snds(server: ScriptedHttpServer, data: Answer, status: Answer | None = None) -> None:
    server.routes["/snds/data.aspx"] = data
    server.routes["/snds/ipStatus.aspx"] = status or Answer(body="")


async def collect(
    source: SndsSource,
    feed: SndsFeed | None = None,
    before: dict[str, SndsState | None] | None = None,
    now: float = NOW,
) -> SndsResult:
    return await source.collect(feed or SndsFeed(), before or {}, IPS, now)


def assert_key_hidden(caplog: pytest.LogCaptureFixture, result: SndsResult) -> None:
    assert KEY not in caplog.text
    assert result.report is not None
    assert all(KEY not in problem for problem in result.report.problems)


# -- SNDS ------------------------------------------------------------------------------


async def test_good_feeds_match_every_monitored_ip(
    server: ScriptedHttpServer, snds: SndsSource
) -> None:
    serve_snds(server, Answer(body=GOOD_DATA), Answer(body=BLOCKED))
    result = await collect(snds)

    assert result.report is not None
    assert result.report.errors == 0
    assert (result.feed.day, result.feed.rows, result.feed.data_fetched_at) == (
        "2026-11-30",
        4,
        NOW,
    )
    states = result.states
    assert {ip: s.data.color if s and s.data else None for ip, s in states.items()} == {
        "192.0.2.10": "green",
        "192.0.2.11": "yellow",
        "192.0.2.12": "red",
        "192.0.2.99": None,  # SNDS says nothing: no data, not green
        "2001:db8::25": "green",
    }
    red = states["192.0.2.12"]
    assert red is not None
    assert red.data is not None
    assert (red.data.trap_hits, red.data.complaint_rate) == (15, 0.025)
    # The blocked range holds two monitored IPs, with its reason.
    blocked = {ip for ip, s in states.items() if s and s.blocked}
    assert blocked == {"192.0.2.10", "192.0.2.11"}
    first = states["192.0.2.10"]
    assert first is not None
    assert first.block_range == "192.0.2.8-192.0.2.11"
    assert first.block_reason.startswith("Blocked due to user complaints")
    assert states["192.0.2.99"] == SndsState(data=None, blocked=False)
    assert sorted(server.requests) == [
        f"/snds/data.aspx?key={KEY}",
        f"/snds/ipStatus.aspx?key={KEY}",
    ]


async def test_feeds_are_fetched_at_most_once_per_refresh(
    server: ScriptedHttpServer, snds: SndsSource
) -> None:
    serve_snds(server, Answer(body=GOOD_DATA))
    first = await collect(snds)
    again = await collect(snds, first.feed, first.states, NOW + HOUR - 1)
    assert again.report is None  # the source did not run
    assert again.states == first.states
    assert len(server.requests) == 2
    later = await collect(snds, first.feed, first.states, NOW + HOUR)
    assert later.report is not None
    assert len(server.requests) == 4


async def test_malformed_and_short_rows_are_skipped_and_counted(
    server: ScriptedHttpServer, snds: SndsSource, caplog: pytest.LogCaptureFixture
) -> None:
    broken = "192.0.2.11,11/30/2026,short\r\nnot,an,ip,at,all,,,,,,,,,\r\n" + GOOD_DATA
    serve_snds(server, Answer(body=broken), Answer(body="garbage\r\n" + BLOCKED))
    with caplog.at_level(logging.WARNING):
        result = await collect(snds)
    assert result.report is not None
    assert result.report.errors == 0  # skipped rows are counted, never fatal
    assert result.feed.rows == 4
    assert (result.feed.data_rows_skipped, result.feed.status_rows_skipped) == (2, 1)
    assert "snds.rows_skipped rows=2" in caplog.text
    assert "snds.status_rows_skipped rows=1" in caplog.text


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Answer(body=""), "SNDS data is empty"),
        (Answer(body="\r\n"), "SNDS data is empty"),
        (
            Answer(body="<html><body>Please sign in</body></html>", content_type="text/html"),
            "SNDS data answered with an HTML page",
        ),
        (
            Answer(body="<!DOCTYPE html><title>Error</title>", content_type="text/plain"),
            "SNDS data answered with an HTML page",
        ),
        (Answer(401, "denied"), "SNDS data: HTTP 401 Unauthorized (the key is not accepted)"),
        (Answer(403, "denied"), "SNDS data: HTTP 403 Forbidden (the key is not accepted)"),
        (Answer(500, "oops"), "SNDS data: HTTP 500 Internal Server Error"),
        (Answer(hold=True), "SNDS data: no answer within 0.5s"),
    ],
)
async def test_a_failed_fetch_keeps_the_last_good_data_and_says_why(
    server: ScriptedHttpServer,
    snds: SndsSource,
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    reason: str,
) -> None:
    serve_snds(server, Answer(body=GOOD_DATA), Answer(body=BLOCKED))
    good = await collect(snds)

    serve_snds(server, answer, Answer(body=BLOCKED))
    with caplog.at_level(logging.DEBUG):
        result = await collect(snds, good.feed, good.states, NOW + HOUR)

    assert result.report is not None
    assert result.report.errors == 1
    assert result.report.problems[0].startswith(reason)
    assert (result.feed.day, result.feed.data_fetched_at) == ("2026-11-30", NOW)
    assert result.states == good.states  # the last good data stays
    assert "snds.data_failed" in caplog.text
    assert_key_hidden(caplog, result)


async def test_a_server_error_is_retried_once(
    server: ScriptedHttpServer, snds: SndsSource, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def flaky(path: str) -> Answer:
        calls.append(path)
        return Answer(503, "busy") if len(calls) == 1 else Answer(body=GOOD_DATA)

    serve_snds(server, Answer(body=GOOD_DATA))
    server.routes["/snds/data.aspx"] = flaky
    with caplog.at_level(logging.DEBUG):
        result = await collect(snds)
    assert len(calls) == 2
    assert result.report is not None
    assert result.report.errors == 0
    assert result.feed.rows == 4
    assert_key_hidden(caplog, result)


async def test_a_server_that_is_down_is_a_clear_reason(caplog: pytest.LogCaptureFixture) -> None:
    with ScriptedHttpServer() as gone:
        url = gone.url
    source = SndsSource(f"{url}/snds", KEY, refresh=HOUR, timeout=0.5)
    try:
        with caplog.at_level(logging.DEBUG):
            result = await collect(source)
    finally:
        source.close()
    assert result.report is not None
    assert result.report.problems[0] == "SNDS data: cannot connect: Connection refused"
    assert_key_hidden(caplog, result)


async def test_status_alone_can_fail_and_data_still_counts(
    server: ScriptedHttpServer, snds: SndsSource
) -> None:
    serve_snds(server, Answer(body=GOOD_DATA), Answer(500, "oops"))
    result = await collect(snds)
    assert result.report is not None
    assert result.report.problems == ["SNDS IP status: HTTP 500 Internal Server Error"]
    assert server.requests.count(f"/snds/ipStatus.aspx?key={KEY}") == 2  # retried once
    assert result.feed.day == "2026-11-30"
    assert result.feed.status_fetched_at is None
    state = result.states["192.0.2.12"]
    assert state is not None
    assert state.data is not None
    assert state.blocked is None  # not known yet: never "not blocked"


# -- HTTP reputation -------------------------------------------------------------------


def reputation_routes(server: ScriptedHttpServer, gate: threading.Event | None = None) -> None:
    ratings = {
        "192.0.2.10": {"entityRecord": {"rep": "good"}},
        "192.0.2.11": {"entityRecord": {"rep": "neutral"}},
        "192.0.2.12": {"entityRecord": {"rep": "bad"}},
        "2001:db8::25": {"entityRecord": {"rep": "Bad"}},
    }

    def answer(path: str) -> Answer:
        ip = unquote(path.rsplit("/", 1)[-1].removesuffix(".json"))
        if ip not in ratings:
            return Answer(404, "unknown ip", gate=gate)
        return Answer(body=json.dumps(ratings[ip]), content_type="application/json", gate=gate)

    server.routes.clear()
    for ip in [*IPS, "192.0.2.50"]:
        server.routes[f"/ip/{ip.replace(':', '%3A')}.json"] = answer


def brightmail(server: ScriptedHttpServer, **extra: object) -> ReputationSource:
    return ReputationSource.model_validate(
        {
            "name": "brightmail",
            "url": f"{server.url}/ip/{{ip}}.json",
            "field": "entityRecord.rep",
            "timeout": "0.5s",
            **extra,
        }
    )


async def test_reputation_ratings_per_ip(server: ScriptedHttpServer) -> None:
    reputation_routes(server)
    sources = ReputationSources([brightmail(server)])
    try:
        result = await sources.collect(IPS, {}, NOW)
    finally:
        sources.close()
    ratings = {ip: by_source["brightmail"].rating for ip, by_source in result.states.items()}
    assert ratings == {
        "192.0.2.10": "good",
        "192.0.2.11": "neutral",
        "192.0.2.12": "bad",
        "192.0.2.99": None,  # 404: the source knows nothing of it
        "2001:db8::25": "bad",
    }
    assert all(s["brightmail"].lookup_ok for s in result.states.values())
    assert result.report.errors == 0
    assert "/ip/2001%3Adb8%3A%3A25.json" in server.requests


async def test_an_unusable_answer_keeps_the_last_rating(
    server: ScriptedHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    reputation_routes(server)
    sources = ReputationSources([brightmail(server)])
    try:
        first = await sources.collect(IPS, {}, NOW)
        server.routes["/ip/192.0.2.12.json"] = Answer(body="<html>captcha</html>")
        server.routes["/ip/192.0.2.10.json"] = Answer(hold=True)
        with caplog.at_level(logging.WARNING):
            second = await sources.collect(IPS, first.states, NOW + 900)
    finally:
        sources.close()
    bad = second.states["192.0.2.12"]["brightmail"]
    assert (bad.rating, bad.lookup_ok, bad.problem) == ("bad", False, "the answer is not JSON")
    assert bad.since == NOW
    slow = second.states["192.0.2.10"]["brightmail"]
    assert (slow.rating, slow.lookup_ok, slow.problem) == ("good", False, "no answer within 0.5s")
    assert second.report.errors == 2
    assert "reputation.unknown source=brightmail" in caplog.text


async def test_requests_per_source_never_exceed_its_concurrency(
    server: ScriptedHttpServer,
) -> None:
    gate = threading.Event()
    reputation_routes(server, gate)
    ips = [f"192.0.2.{n}" for n in range(10, 16)]
    for ip in ips:
        server.routes[f"/ip/{ip}.json"] = lambda path: Answer(404, gate=gate)
    sources = ReputationSources([brightmail(server, concurrency=2)])
    try:
        running = asyncio.create_task(sources.collect(ips, {}, NOW))
        await asyncio.to_thread(
            wait_until, lambda: server.max_in_flight >= 2, 10, "two requests in flight"
        )
        gate.set()
        result = await running
    finally:
        sources.close()
    assert len(server.requests) == len(ips)
    assert server.max_in_flight == 2
    assert result.report.errors == 0


async def test_a_trickling_answer_ends_at_the_request_deadline(server: ScriptedHttpServer) -> None:
    reputation_routes(server)
    slow = json.dumps({"entityRecord": {"rep": "good"}}) + " " * 100
    server.routes["/ip/192.0.2.10.json"] = Answer(body=slow, trickle=0.1)
    sources = ReputationSources([brightmail(server)])  # timeout 0.5s: deadline 1.5s
    try:
        result = await sources.collect(["192.0.2.10"], {}, NOW)
    finally:
        sources.close()
    state = result.states["192.0.2.10"]["brightmail"]
    assert (state.lookup_ok, state.problem) == (False, "the answer took longer than 1.5s")


async def test_a_source_that_stops_answering_is_given_up_on_for_the_cycle(
    server: ScriptedHttpServer,
) -> None:
    server.routes.clear()
    ips = [f"192.0.2.{n}" for n in range(20, 28)]
    for ip in ips:
        server.routes[f"/ip/{ip}.json"] = Answer(hold=True)
    sources = ReputationSources([brightmail(server, timeout="0.2s", concurrency=1)])
    try:
        first = await sources.collect(ips, {}, NOW)
        asked = len(server.requests)
        second = await sources.collect(ips, first.states, NOW + 900)
    finally:
        sources.close()
    problems = [first.states[ip]["brightmail"].problem for ip in ips]
    assert problems[:5] == ["no answer within 0.2s"] * 5
    assert all(p.startswith("not asked: the last 5 requests failed") for p in problems[5:])
    assert asked == 5 * 2  # five IPs, each tried twice (one retry); the rest not asked
    assert len(server.requests) == 2 * asked  # the next cycle asks again
    assert second.report.errors == len(ips)


async def test_trickling_headers_end_at_the_request_deadline_too(
    server: ScriptedHttpServer,
) -> None:
    server.routes["/ip/192.0.2.10.json"] = Answer(body="{}", trickle_headers=0.1)
    sources = ReputationSources([brightmail(server)])  # timeout 0.5s: deadline 1.5s
    started = asyncio.get_running_loop().time()
    try:
        result = await sources.collect(["192.0.2.10"], {}, NOW)
    finally:
        sources.close()
    assert asyncio.get_running_loop().time() - started < 3
    state = result.states["192.0.2.10"]["brightmail"]
    assert state.problem == "the answer took longer than 1.5s"


async def test_a_hanging_request_never_keeps_the_process_from_exiting(
    server: ScriptedHttpServer,
) -> None:
    server.routes["/ip/192.0.2.10.json"] = Answer(hold=True)
    sources = ReputationSources([brightmail(server, timeout="20s")])
    try:
        asking = asyncio.create_task(sources.collect(["192.0.2.10"], {}, NOW))
        await asyncio.to_thread(wait_until, lambda: server.max_in_flight == 1, 10, "the request")
        hanging = [t for t in threading.enumerate() if t.name == "mtarep-http"]
        assert hanging
        assert all(t.daemon for t in hanging)  # not joined at interpreter exit
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
    finally:
        sources.close()


async def test_an_api_key_in_a_reputation_url_stays_out_of_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ScriptedHttpServer() as gone:
        url = gone.url
    token = "Zm9vYmFy%2Bc2VjcmV0"  # as written; decoded: Zm9vYmFy+c2VjcmV0
    source = ReputationSource.model_validate(
        {
            "name": "keyed",
            "url": f"{url}/ip/{{ip}}.json?token={token}&x=1",
            "field": "rep",
            "timeout": "0.5s",
        }
    )
    sources = ReputationSources([source])
    try:
        with caplog.at_level(logging.DEBUG):
            result = await sources.collect(["192.0.2.10"], {}, NOW)
    finally:
        sources.close()
    assert result.states["192.0.2.10"]["keyed"].lookup_ok is False
    assert "reputation.unknown source=keyed" in caplog.text
    assert "Zm9vYmFy" not in caplog.text
