"""HTTP reputation sources (``reputation:``): one GET per IP and source, judged by
:func:`exporter.reputation.judge`.

Each source has its own :class:`~exporter.http_fetch.HttpFetcher` (``concurrency``
requests in flight, ``timeout`` each, one retry, a deadline per request; after
:data:`GIVE_UP_AFTER` unanswered requests in a row the source is not asked again
that cycle). Values in the URL's query string (API keys) never reach a log line.
A failed request or an answer that gives no rating is unknown: the last
trustworthy rating stays (``lookup_ok`` 0 with the reason), exactly as for
blocklists. One failing source never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

from exporter.config import ReputationSource
from exporter.http_fetch import HttpFetcher, HttpProblem
from exporter.logs import event
from exporter.reputation import RatingVerdict, judge
from exporter.snapshot import ReputationState, SourceReport

__all__ = ["GIVE_UP_AFTER", "ReputationResult", "ReputationSources", "url_secrets"]

_LOG = logging.getLogger("mtarep.exporter.reputation")

GIVE_UP_AFTER = 5
"""Requests in a row that get no answer or no connection before a source is not asked
again until the next cycle (its other IPs are unknown this cycle)."""


def url_secrets(url: str) -> list[str]:
    """The values in a URL's query string that look like keys (8 characters or more: an
    API key, a token, not ``format=json``), as written and as decoded (logs show
    either): kept out of logs."""
    query = urlsplit(url.replace("{ip}", "")).query
    written = [part.partition("=")[2] for part in query.split("&")]
    decoded = [value for _, value in parse_qsl(query)]
    return sorted({value for value in [*written, *decoded] if len(value) >= 8})


@dataclass
class ReputationResult:
    states: dict[str, dict[str, ReputationState]]
    """IP -> source name -> state."""
    report: SourceReport


def _state(verdict: RatingVerdict, before: ReputationState | None, now: float) -> ReputationState:
    previous = before or ReputationState()
    if verdict.state == "unknown":
        return previous.model_copy(update={"lookup_ok": False, "problem": verdict.problem})
    rating = verdict.rating
    return ReputationState(
        rating=rating,
        value=verdict.value,
        lookup_ok=True,
        since=previous.since if previous.rating == rating and previous.since else now,
    )


class ReputationSources:
    def __init__(
        self,
        sources: Sequence[ReputationSource],
        fetchers: Mapping[str, HttpFetcher] | None = None,
    ) -> None:
        self.sources = list(sources)
        self.fetchers = dict(fetchers or {})
        for source in self.sources:
            if source.name not in self.fetchers:
                self.fetchers[source.name] = HttpFetcher(
                    source.timeout,
                    source.concurrency,
                    secrets=url_secrets(source.url),
                    give_up_after=GIVE_UP_AFTER,
                )

    def close(self) -> None:
        for fetcher in self.fetchers.values():
            fetcher.close()

    async def _ask(self, source: ReputationSource, ip: str) -> RatingVerdict:
        url = source.url.replace("{ip}", quote(ip, safe=""))
        try:
            reply = await self.fetchers[source.name].get(url)
        except HttpProblem as problem:
            return RatingVerdict("unknown", problem=str(problem))
        return judge(reply.status, reply.text, source.field, source.ratings)

    async def collect(
        self,
        ips: Sequence[str],
        previous: Mapping[str, Mapping[str, ReputationState]],
        now: float,
    ) -> ReputationResult:
        """Every IP on every source; ``previous``: last cycle's states by IP and source."""
        report = SourceReport()
        started = time.monotonic()
        for fetcher in self.fetchers.values():
            fetcher.start_round()
        async with asyncio.TaskGroup() as group:
            tasks = {
                (ip, source.name): group.create_task(self._ask(source, ip))
                for source in self.sources
                for ip in ips
            }
        states: dict[str, dict[str, ReputationState]] = {ip: {} for ip in ips}
        problems: Counter[tuple[str, str]] = Counter()
        for (ip, name), task in tasks.items():
            verdict = task.result()
            if verdict.state == "unknown":
                report.fail(f"{name} for {ip}: {verdict.problem}")
                problems[(name, verdict.problem)] += 1
            states[ip][name] = _state(verdict, previous.get(ip, {}).get(name), now)
        for (name, problem), count in problems.items():
            source = next(s for s in self.sources if s.name == name)
            event(
                _LOG,
                "reputation.unknown",
                logging.WARNING,
                source=name,
                url=self.fetchers[name].scrub(source.url),
                ips=count,
                problem=problem,
            )
        report.duration = time.monotonic() - started
        return ReputationResult(states, report)
