"""The ackservice's background work: the metrics snapshot and the Alertmanager silences.

Every :data:`REFRESH_SECONDS`, and right after an acknowledgement is given or
withdrawn (:meth:`Refresher.poke`), one pass reads the open issues from Redis, builds
a new :class:`AckSnapshot` (what ``/metrics`` renders: the scrape itself does no I/O)
and, with an Alertmanager configured, brings the silences in step. A pass that fails
keeps the last snapshot and says so (``mtarep_ackservice_refresh_success 0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ackservice.overview import issue_severity_of
from ackservice.silences import Silencer
from exporter.config import Config
from exporter.logs import event
from exporter.severity import Severity
from exporter.store import ISSUE_KINDS, IssueRecord, Store, StoreError

__all__ = ["REFRESH_SECONDS", "AckCollector", "AckSnapshot", "Refresher"]

_LOG = logging.getLogger("mtarep.ackservice.refresher")

REFRESH_SECONDS = 15.0
STOP_TIMEOUT = 5.0
_SEVERITIES: tuple[Severity, ...] = ("warning", "error")


@dataclass(frozen=True)
class AckSnapshot:
    """What the open issues looked like at ``taken_at``."""

    taken_at: float
    acknowledged: tuple[tuple[str, str, str, str], ...]
    """(host, ip, kind, subject) of every open, acknowledged issue."""
    open_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    """(kind, severity) -> how many issues are open."""

    @classmethod
    def of(cls, records: list[IssueRecord], config: Config, now: float) -> AckSnapshot:
        counts: dict[tuple[str, str], int] = {
            (kind, severity): 0 for kind in sorted(ISSUE_KINDS) for severity in _SEVERITIES
        }
        acknowledged = []
        for record in records:
            severity = issue_severity_of(record, config)
            counts[(record.key.kind, severity)] = counts.get((record.key.kind, severity), 0) + 1
            if record.ack is not None:
                key = record.key
                acknowledged.append((record.host, key.ip, key.kind, key.subject))
        return cls(now, tuple(sorted(acknowledged)), counts)


class Refresher:
    """Runs the passes; ``latest`` is the last good snapshot (None before the first)."""

    def __init__(
        self,
        store: Store,
        config: Config,
        silencer: Silencer | None = None,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = REFRESH_SECONDS,
    ) -> None:
        self.store = store
        self.config = config
        self.silencer = silencer
        self.clock = clock
        self.interval = interval
        self.latest: AckSnapshot | None = None
        self.last_ok: bool | None = None
        self.last_error = ""
        self.silences_ok: bool | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False

    def poke(self) -> None:
        """Run a pass now (after an acknowledgement was given or withdrawn)."""
        self._wake.set()

    async def refresh(self) -> bool:
        """One pass; True when Redis answered (the silences say for themselves)."""
        async with self._lock:
            try:
                records = await self.store.open_issues()
            except StoreError as error:
                if self.last_ok is not False:
                    event(_LOG, "refresh.failed", logging.WARNING, error=str(error))
                self.last_ok, self.last_error = False, str(error)
                return False
            if self.last_ok is False:
                event(_LOG, "refresh.recovered")
            self.latest = AckSnapshot.of(records, self.config, self.clock())
            self.last_ok, self.last_error = True, ""
            if self.silencer is not None:
                acked = {r.key.id: r for r in records if r.ack is not None}
                self.silences_ok = await self.silencer.sync(acked)
            return True

    async def run(self) -> None:
        """Passes until cancelled: every ``interval``, and at once when poked."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as error:  # a bug must not end the loop for good
                event(_LOG, "refresh.crashed", logging.ERROR, error=repr(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()

    async def stop(self, task: asyncio.Task[None], timeout: float = STOP_TIMEOUT) -> bool:
        """End ``task`` (running :meth:`run`); False if it still runs after ``timeout``.

        redis-py can absorb a cancellation that arrives mid-command, so no new pass
        starts once ``stop`` is called, and the task is cancelled again until it ends.
        """
        self._stopping = True
        deadline = time.monotonic() + timeout
        while not task.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                event(_LOG, "refresher.stop_timed_out", logging.ERROR, seconds=timeout)
                return False
            task.cancel()
            await asyncio.wait({task}, timeout=min(0.1, remaining))
        return True


class AckCollector(Collector):
    """Renders the refresher's latest snapshot on every scrape (no I/O here)."""

    def __init__(self, refresher: Refresher) -> None:
        self._refresher = refresher

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        refresher = self._refresher
        snapshot = refresher.latest
        success = GaugeMetricFamily(
            "mtarep_ackservice_refresh_success",
            "1 when the last read of the open issues from Redis worked",
        )
        success.add_metric([], 1.0 if refresher.last_ok else 0.0)
        yield success
        if refresher.silencer is not None:
            silences = GaugeMetricFamily(
                "mtarep_ackservice_silence_sync_success",
                "1 when Alertmanager took every silence change of the last pass",
            )
            silences.add_metric([], 1.0 if refresher.silences_ok else 0.0)
            yield silences
        if snapshot is None:
            return  # nothing known yet: absent, never a made-up zero
        taken = GaugeMetricFamily(
            "mtarep_ackservice_last_refresh_timestamp_seconds",
            "When the open issues were last read from Redis",
        )
        taken.add_metric([], snapshot.taken_at)
        yield taken
        acknowledged = GaugeMetricFamily(
            "mtarep_issue_acknowledged",
            "1 per open issue that someone acknowledged",
            labels=["host", "ip", "kind", "subject"],
        )
        for labels in snapshot.acknowledged:
            acknowledged.add_metric(list(labels), 1.0)
        yield acknowledged
        open_issues = GaugeMetricFamily(
            "mtarep_issues_open",
            "How many issues are open, by kind and severity",
            labels=["kind", "severity"],
        )
        for (kind, severity), count in sorted(snapshot.open_counts.items()):
            open_issues.add_metric([kind, severity], float(count))
        yield open_issues
