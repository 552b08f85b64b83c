"""``/metrics``: a custom Collector that renders the latest snapshot, and nothing else.

No I/O at scrape time: every family is built fresh from the snapshot, so a series
disappears the cycle its subject does (a delisted IP is no longer "listed", a
removed zone is gone). Label values come from the configuration and the closed
sets in :mod:`exporter.snapshot`; free text (TXT reasons, errors) stays in Redis.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import get_args

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.snapshot import SOURCES, Color, Rating, Snapshot

__all__ = ["MetricsPage", "SnapshotCollector", "build_registry", "render", "render_snapshot"]


class SnapshotCollector(Collector):
    """Renders ``latest()`` on every scrape."""

    def __init__(self, latest: Callable[[], Snapshot]) -> None:
        self._latest = latest

    def describe(self) -> list[Metric]:
        return []  # families depend on the snapshot: no description ahead of time

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        target_labels = ["host", "ip"]
        info = GaugeMetricFamily(
            "mtarep_host_info", "1 per monitored (host, ip)", labels=["host", "ip", "ssh_host"]
        )
        score = GaugeMetricFamily(
            "mtarep_senderscore",
            "Sender Score 0-100; absent when the IP has none",
            labels=target_labels,
        )
        listed = GaugeMetricFamily(
            "mtarep_rbl_listed",
            "1 listed, 0 not listed: the last trustworthy answer of the zone",
            labels=[*target_labels, "rbl"],
        )
        lookup_ok = GaugeMetricFamily(
            "mtarep_rbl_lookup_ok",
            "1 when this cycle's lookup gave a trustworthy answer",
            labels=[*target_labels, "rbl"],
        )
        listings = GaugeMetricFamily(
            "mtarep_rbl_listings", "How many zones list the IP", labels=target_labels
        )
        checks = GaugeMetricFamily(
            "mtarep_dns_check_ok",
            "1 pass, 0 fail (check = ptr, forward, helo); absent until known",
            labels=[*target_labels, "check"],
        )
        for target in snapshot.targets:
            pair = [target.host, target.ip]
            info.add_metric([*pair, target.ssh_host], 1)
            if target.senderscore is not None:
                score.add_metric(pair, target.senderscore)
            for zone, state in target.rbl.items():
                if state.listed is not None:
                    listed.add_metric([*pair, zone], 1 if state.listed else 0)
                lookup_ok.add_metric([*pair, zone], 1 if state.lookup_ok else 0)
            listings.add_metric(pair, len(target.listings))
            for check, check_state in target.checks.items():
                if check_state.ok is not None:
                    checks.add_metric([*pair, check], 1 if check_state.ok else 0)
        healthy = GaugeMetricFamily(
            "mtarep_rbl_zone_healthy",
            "1 when the zone lists 127.0.0.2 and not 127.0.0.1 (RFC 5782 self-test)",
            labels=["rbl"],
        )
        for zone, zone_state in snapshot.zones.items():
            healthy.add_metric([zone], 1 if zone_state.healthy else 0)
        yield from (info, score, listed, lookup_ok, listings, checks, healthy)
        yield from _snds_families(snapshot)
        yield from _reputation_families(snapshot)
        yield from _mailflow_families(snapshot)
        yield from _maillog_families(snapshot)
        yield from _collection_families(snapshot)
        queries = CounterMetricFamily(
            "mtarep_dns_queries",
            "DNS lookups by result (answered by the name servers or c-ares' TTL cache)",
            labels=["result"],
        )
        for result, count in sorted(snapshot.dns_lookups.items()):
            queries.add_metric([result], count)
        yield queries


def _snds_families(snapshot: Snapshot) -> Iterator[Metric]:
    labels = ["host", "ip"]
    color = GaugeMetricFamily(
        "mtarep_snds_filter_result",
        "SNDS filter result: 1 for the current colour, 0 for the others; absent: no data",
        labels=[*labels, "color"],
    )
    traps = GaugeMetricFamily("mtarep_snds_trap_hits", "SNDS trap hits", labels=labels)
    complaints = GaugeMetricFamily(
        "mtarep_snds_complaint_rate", "SNDS complaint rate (a ratio, 0-1)", labels=labels
    )
    recipients = GaugeMetricFamily(
        "mtarep_snds_message_recipients", "SNDS message recipients", labels=labels
    )
    blocked = GaugeMetricFamily(
        "mtarep_snds_ip_blocked", "1 when SNDS IP status lists the IP as blocked", labels=labels
    )
    for target in snapshot.targets:
        if target.snds is None:
            continue
        pair = [target.host, target.ip]
        data = target.snds.data
        if data is not None:
            for name in get_args(Color):
                color.add_metric([*pair, name], 1 if data.color == name else 0)
            traps.add_metric(pair, data.trap_hits)
            recipients.add_metric(pair, data.message_recipients)
            if data.complaint_rate is not None:
                complaints.add_metric(pair, data.complaint_rate)
        if target.snds.blocked is not None:
            blocked.add_metric(pair, 1 if target.snds.blocked else 0)
    yield from (color, traps, complaints, recipients, blocked)
    feed = snapshot.snds
    if feed.day is not None:
        day = datetime.strptime(feed.day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        yield GaugeMetricFamily(
            "mtarep_snds_data_day_timestamp_seconds",
            "Midnight UTC of the day the last good SNDS data is about",
            value=day,
        )
    if feed.data_fetched_at is not None or feed.status_fetched_at is not None:
        yield GaugeMetricFamily(
            "mtarep_snds_rows_skipped",
            "Rows of the last good SNDS data and IP status that did not parse",
            value=feed.data_rows_skipped + feed.status_rows_skipped,
        )


def _reputation_families(snapshot: Snapshot) -> Iterator[Metric]:
    labels = ["host", "ip", "source"]
    rating = GaugeMetricFamily(
        "mtarep_reputation",
        "1 for the current rating of an HTTP reputation source, 0 for the others",
        labels=[*labels, "rating"],
    )
    lookup_ok = GaugeMetricFamily(
        "mtarep_reputation_lookup_ok",
        "1 when this cycle's request to the source gave a trustworthy answer",
        labels=labels,
    )
    for target in snapshot.targets:
        for source, state in target.reputation.items():
            key = [target.host, target.ip, source]
            if state.rating is not None:
                for name in get_args(Rating):
                    rating.add_metric([*key, name], 1 if state.rating == name else 0)
            lookup_ok.add_metric(key, 1 if state.lookup_ok else 0)
    yield from (rating, lookup_ok)


def _mailflow_families(snapshot: Snapshot) -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "mtarep_mailflow_messages",
        "Today's count from the {prefix}:{YYYYMMDD}:{status} HINCRBY hashes",
        labels=["source", "domain", "status"],
    )
    flow = snapshot.mailflow
    for prefix, domains in sorted(flow.counts.items()):
        for domain, statuses in domains.items():
            for status, count in statuses.items():
                messages.add_metric([prefix, domain, status], count)
    yield messages
    if flow.day:
        yield GaugeMetricFamily(
            "mtarep_mailflow_values_skipped",
            "Fields of today's mail flow hashes that were skipped (not a count or a domain)",
            value=flow.skipped,
        )


def _maillog_families(snapshot: Snapshot) -> Iterator[Metric]:
    blocked = GaugeMetricFamily(
        "mtarep_provider_blocked",
        "1 when a rejection matching the provider's pattern was logged within the block window",
        labels=["host", "provider"],
    )
    last_seen = GaugeMetricFamily(
        "mtarep_provider_block_last_seen_timestamp_seconds",
        "When the newest rejection matching the provider's pattern was logged",
        labels=["host", "provider"],
    )
    deliveries = CounterMetricFamily(
        "mtarep_maillog_deliveries",
        "Delivery lines in the Postfix log by recipient domain (graph_domains, else other) "
        "and status",
        labels=["host", "domain", "status"],
    )
    bytes_read = CounterMetricFamily(
        "mtarep_maillog_bytes_read", "Bytes of the Postfix log read", labels=["host"]
    )
    skipped = CounterMetricFamily(
        "mtarep_maillog_lines_skipped",
        "Log lines that are not Postfix lines mtarep reads, or did not parse",
        labels=["host"],
    )
    read_ok = GaugeMetricFamily(
        "mtarep_maillog_read_success",
        "1 when this cycle's read of the host's log worked",
        labels=["host"],
    )
    last_read = GaugeMetricFamily(
        "mtarep_maillog_last_read_timestamp_seconds",
        "When the host's log was last read without error",
        labels=["host"],
    )
    for host, state in sorted(snapshot.maillog.items()):
        for provider, by_ip in sorted(state.blocks.items()):
            blocked.add_metric([host, provider], 1 if any(b.blocked for b in by_ip.values()) else 0)
            last_seen.add_metric([host, provider], max(b.last_seen for b in by_ip.values()))
        for domain, statuses in sorted(state.deliveries.items()):
            for status, count in sorted(statuses.items()):
                deliveries.add_metric([host, domain, status], count)
        bytes_read.add_metric([host], state.bytes_read_total)
        skipped.add_metric([host], state.lines_skipped_total)
        read_ok.add_metric([host], 1 if state.read_ok else 0)
        if state.read_at is not None:
            last_read.add_metric([host], state.read_at)
    yield from (blocked, last_seen, deliveries, bytes_read, skipped, read_ok, last_read)


def _collection_families(snapshot: Snapshot) -> Iterator[Metric]:
    success = GaugeMetricFamily(
        "mtarep_collection_success", "1 when the source's last run had no error", labels=["source"]
    )
    duration = GaugeMetricFamily(
        "mtarep_collection_duration_seconds",
        "How long the source's last run took",
        labels=["source"],
    )
    last = GaugeMetricFamily(
        "mtarep_collection_last_success_timestamp_seconds",
        "When the source last ran without error",
        labels=["source"],
    )
    errors = CounterMetricFamily(
        "mtarep_collection_errors",
        "Failed lookups, checks or writes of the source",
        labels=["source"],
    )
    for source in SOURCES:
        state = snapshot.sources.get(source)
        if state is None:
            continue
        success.add_metric([source], 1 if state.success else 0)
        duration.add_metric([source], state.duration_seconds)
        if state.last_success is not None:
            last.add_metric([source], state.last_success)
        errors.add_metric([source], state.errors_total)
    yield from (success, duration, last, errors)


def build_registry(latest: Callable[[], Snapshot]) -> CollectorRegistry:
    """The exporter's own registry (never the global one): build info and the snapshot."""
    registry = CollectorRegistry(auto_describe=True)
    build_info = Gauge(
        "mtarep_build_info", "mtarep version, always 1", ["version"], registry=registry
    )
    build_info.labels(version=__version__).set(1)
    registry.register(SnapshotCollector(latest))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry``."""
    return generate_latest(registry)


class MetricsPage:
    """``/metrics`` bodies, rendered once per snapshot and off the event loop.

    2,000 IPs x 25 zones are ~100,000 series (~9 MB of text, ~0.8 s to render here):
    rendered on every scrape inside the loop, that would stall the DNS lookups of a
    running cycle. The body (and its gzip form, asked for by Prometheus) is made in
    a worker thread when the snapshot changes, and reused until it changes again.
    """

    def __init__(self, latest: Callable[[], Snapshot]) -> None:
        self._latest = latest
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._bodies: dict[str, bytes] = {}

    async def body(self, encoding: str = "identity") -> bytes:
        """The exposition of the latest snapshot; ``encoding`` is ``identity`` or ``gzip``."""
        async with self._lock:
            snapshot = self._latest()
            if snapshot is not self._snapshot:
                self._bodies = {"identity": await asyncio.to_thread(render_snapshot, snapshot)}
                self._snapshot = snapshot
            if encoding not in self._bodies:
                self._bodies[encoding] = await asyncio.to_thread(
                    gzip.compress, self._bodies["identity"], 6
                )
            return self._bodies[encoding]


def render_snapshot(snapshot: Snapshot) -> bytes:
    """The text exposition of ``snapshot`` (with the build info)."""
    return render(build_registry(lambda: snapshot))
