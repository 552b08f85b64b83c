"""The Microsoft SNDS source: fetch the data and IP status feeds, match them to our IPs.

Both feeds are asked for at most once per ``snds.refresh`` (SNDS publishes one day's
data per day), whether the last try worked or not, through
:class:`~exporter.http_fetch.HttpFetcher` (timeouts, one retry). A feed that cannot
be fetched or read (a timeout, a 401/403/500, an HTML page, an empty data feed)
fails the ``snds`` source with a clear reason and the last good data stays, with its
day (``mtarep_snds_data_day_timestamp_seconds`` says how old it is). The key is a
secret: it is replaced by ``***`` in every message and log line.

An IP that the data feed does not name has no data (``SndsState.data`` None: its
series are absent), never green. IP status ranges match every monitored IP inside them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter.http_fetch import HttpFetcher, HttpProblem, Reply
from exporter.logs import event
from exporter.snapshot import SndsFeed, SndsState, SourceReport
from exporter.snds import (
    DataFeed,
    SndsError,
    StatusFeed,
    blocked_range_of,
    data_day,
    parse_data,
    parse_ip_status,
)

__all__ = ["SndsResult", "SndsSource"]

_LOG = logging.getLogger("mtarep.exporter.snds")

_STATUS_HINTS = {
    401: "the key is not accepted",
    403: "the key is not accepted",
    404: "no such page: check snds.url",
}


@dataclass
class SndsResult:
    feed: SndsFeed
    states: dict[str, SndsState | None]
    """IP -> what SNDS says about it (None: nothing known yet)."""
    report: SourceReport | None
    """None when no fetch was due this cycle (the source did not run)."""


class SndsSource:
    """Keeps the last good feeds in memory; fetches them again when they are due."""

    def __init__(
        self, url: str, key: str, refresh: float, timeout: float, fetcher: HttpFetcher | None = None
    ) -> None:
        self.base = url.rstrip("/")
        self.key = key
        self.key_id = hashlib.sha256(f"mtarep-snds\0{key}".encode()).hexdigest()[:16]
        self.refresh = refresh
        self.fetcher = fetcher or HttpFetcher(timeout, concurrency=2, secrets=[key])
        self._data: DataFeed | None = None
        self._status: StatusFeed | None = None

    def close(self) -> None:
        self.fetcher.close()

    def _due(self, fetched_at: float | None, now: float) -> bool:
        return fetched_at is None or now - fetched_at >= self.refresh

    async def _fetch(self, page: str, what: str) -> str:
        url = f"{self.base}/{page}?key={self.key}"
        try:
            reply: Reply = await self.fetcher.get(url)
        except HttpProblem as problem:
            raise SndsError(f"SNDS {what}: {problem}") from None
        if reply.status != 200:
            hint = _STATUS_HINTS.get(reply.status)
            raise SndsError(
                f"SNDS {what}: HTTP {reply.status} {reply.reason}" + (f" ({hint})" if hint else "")
            )
        return reply.text

    async def collect(
        self,
        previous: SndsFeed,
        previous_states: Mapping[str, SndsState | None],
        ips: Iterable[str],
        now: float,
    ) -> SndsResult:
        """This cycle's SNDS view of ``ips``; ``previous_states``: last cycle's, by IP.

        A feed is fetched when its last good fetch is older than ``refresh`` (or there
        was none). Between fetches, and after a restart until the next one, each IP
        keeps its previous view.
        """
        if previous.key_id != self.key_id:  # another key (or the first): nothing is known
            previous, previous_states = SndsFeed(key_id=self.key_id), {}
        feed = previous
        report: SourceReport | None = None
        data_due = self._due(previous.data_tried_at or previous.data_fetched_at, now)
        status_due = self._due(previous.status_tried_at or previous.status_fetched_at, now)
        if data_due or status_due:
            report = SourceReport()
            started = time.monotonic()
            if data_due:
                feed = await self._refresh_data(feed, report, now)
            if status_due:
                feed = await self._refresh_status(feed, report, now)
            report.duration = time.monotonic() - started
        states = {ip: self._state(ip, previous_states.get(ip)) for ip in ips}
        return SndsResult(feed, states, report)

    async def _refresh_data(self, feed: SndsFeed, report: SourceReport, now: float) -> SndsFeed:
        feed = feed.model_copy(update={"data_tried_at": now})
        try:
            data = parse_data(await self._fetch("data.aspx", "data"))
        except SndsError as error:
            report.fail(str(error))
            event(_LOG, "snds.data_failed", logging.ERROR, error=str(error), kept_day=feed.day)
            return feed
        if data.skipped:
            event(
                _LOG,
                "snds.rows_skipped",
                logging.WARNING,
                rows=data.skipped,
                problems="; ".join(data.problems),
            )
        self._data = data
        day = data_day(data)
        event(_LOG, "snds.data_fetched", day=day, rows=len(data.rows), skipped=data.skipped)
        return feed.model_copy(
            update={
                "day": day,
                "data_fetched_at": now,
                "rows": len(data.rows),
                "data_rows_skipped": data.skipped,
            }
        )

    async def _refresh_status(self, feed: SndsFeed, report: SourceReport, now: float) -> SndsFeed:
        feed = feed.model_copy(update={"status_tried_at": now})
        try:
            status = parse_ip_status(await self._fetch("ipStatus.aspx", "IP status"))
        except SndsError as error:
            report.fail(str(error))
            event(_LOG, "snds.status_failed", logging.ERROR, error=str(error))
            return feed
        if status.skipped:
            event(
                _LOG,
                "snds.status_rows_skipped",
                logging.WARNING,
                rows=status.skipped,
                problems="; ".join(status.problems),
            )
        self._status = status
        event(_LOG, "snds.status_fetched", blocked_ranges=len(status.ranges))
        return feed.model_copy(
            update={
                "status_fetched_at": now,
                "status_rows_skipped": status.skipped,
            }
        )

    def _state(self, ip: str, previous: SndsState | None) -> SndsState | None:
        """From the feeds in memory; a feed not (yet) in memory keeps the previous view."""
        before = previous or SndsState()
        data = self._data.rows.get(ip) if self._data is not None else before.data
        if self._status is not None:
            blocked = blocked_range_of(ip, self._status.ranges)
            status = {
                "blocked": blocked is not None,
                "block_range": str(blocked) if blocked else "",
                "block_reason": blocked.reason if blocked else "",
            }
        else:
            status = {
                "blocked": before.blocked,
                "block_range": before.block_range,
                "block_reason": before.block_reason,
            }
        if self._data is None and self._status is None and previous is None:
            return None
        return SndsState(data=data, **status)
