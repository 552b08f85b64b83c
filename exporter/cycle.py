"""One collection cycle: run the sources, publish the snapshot, record it in Redis.

:class:`Collection` holds the latest :class:`~exporter.snapshot.Snapshot` (what
``/metrics`` renders). A cycle builds a new snapshot from the sources and the last
one, publishes it at once, and then writes it to the store: the snapshot itself
(so a restarted exporter serves it straight away), each host's results (for the
ackservice and the API), the issues it opens and clears, and the history of state
changes. Redis being away costs the store writes of that cycle (reported as the
``store`` source), never the metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from exporter.config import Config, Host
from exporter.dns_source import HeloChecker, collect
from exporter.dnsbl import zone_label
from exporter.helo import check_helo
from exporter.issues import current_issues, undetermined_issues
from exporter.logs import event
from exporter.mailflow import collect_mailflow
from exporter.maillog_source import MaillogSource, logged_hosts
from exporter.reputation_source import ReputationSources
from exporter.resolver import Resolver
from exporter.senderscore import band
from exporter.snapshot import (
    MailflowState,
    MaillogState,
    Snapshot,
    SndsFeed,
    SourceReport,
    SourceState,
    TargetState,
)
from exporter.snds_source import SndsSource
from exporter.store import IssueKey, IssueRecord, Store, StoreError

__all__ = ["Collection", "host_results", "in_shard"]

_LOG = logging.getLogger("mtarep.exporter.cycle")
T = TypeVar("T")


@dataclass
class _OtherResults:
    targets: Sequence[TargetState]
    snds: SndsFeed
    mailflow: MailflowState
    maillog: dict[str, MaillogState]


def host_results(
    snapshot: Snapshot, host: Host, targets: Sequence[TargetState] | None = None
) -> dict[str, Any]:
    """The results of ``host`` as the store keeps them for the ackservice and the API:
    ``{"alias", "ssh_host", "ips": {ip: TargetState}, "maillog": MaillogState (no read
    position) or None, "snds_day"}`` (``targets``: the host's, when already sorted out).
    """
    if targets is None:
        targets = [t for t in snapshot.targets if t.host == host.fqdn]
    log = snapshot.maillog.get(host.fqdn)
    return {
        "alias": host.alias,
        "ssh_host": host.ssh_host,
        "ips": {t.ip: t.model_dump(mode="json") for t in targets},
        "maillog": None
        if log is None
        else log.model_dump(mode="json", exclude={"file_id", "offset"}),
        "snds_day": snapshot.snds.day,
    }


def in_shard(fqdn: str, index: int, count: int) -> bool:
    """Whether shard ``index`` of ``count`` monitors ``fqdn`` (a stable hash of the name)."""
    digest = hashlib.sha256(fqdn.lower().encode()).digest()
    return int.from_bytes(digest[:8], "big") % count == index


async def _guarded(
    reports: dict[str, SourceReport | None],
    source: str,
    work: Coroutine[Any, Any, T] | None,
) -> T | None:
    """Run one source (None: not configured). A crash fails that source alone: its
    report in ``reports`` says why, the result is None, and the others go on."""
    if work is None:
        return None
    try:
        return await work
    except Exception as error:
        report = reports[source] = SourceReport()
        report.fail(f"{source} failed: {type(error).__name__}: {error}")
        event(_LOG, "source.crashed", logging.ERROR, source=source, error=repr(error))
        return None


def _score_change(before: TargetState | None, after: TargetState) -> str | None:
    old = before.senderscore if before else None
    new = after.senderscore
    if old is None or new is None or band(old) == band(new):
        return None
    return f"senderscore {old} ({band(old)}) -> {new} ({band(new)})"


class Collection:
    """The exporter's collection: the latest snapshot and how to make the next one."""

    def __init__(
        self,
        config: Config,
        resolver: Resolver,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        helo_checker: HeloChecker = check_helo,
        log: logging.Logger = _LOG,
        snds_key: str | None = None,
        snds: SndsSource | None = None,
        reputation: ReputationSources | None = None,
        maillog: MaillogSource | None = None,
    ) -> None:
        self.config = config
        self.resolver = resolver
        self.store = store
        self.clock = clock
        self.helo_checker = helo_checker
        self.log = log
        self.snapshot = Snapshot()
        self.written = Snapshot()
        """The last snapshot whose history reached the store (what changes are told against)."""
        shard = config.shard
        self.name = f"{shard.index + 1}of{shard.count}"
        self.hosts: Sequence[Host] = [
            host for host in config.hosts if in_shard(host.fqdn, shard.index, shard.count)
        ]
        self.zone_specs = {zone_label(spec.zone): spec for spec in config.rbl_zones}
        if snds is None and snds_key:
            settings = config.snds
            snds = SndsSource(settings.url, snds_key, settings.refresh, settings.timeout)
        self.snds = snds
        """None: no SNDS key, the source is off."""
        if reputation is None and config.reputation:
            reputation = ReputationSources(config.reputation)
        self.reputation = reputation
        """None: no ``reputation:`` sources."""
        if maillog is None and logged_hosts(self.hosts):
            maillog = MaillogSource(config)
        self.maillog = maillog
        """None: no host of this shard has a ``maillog_path``."""

    def close(self) -> None:
        """Release the sources' connections and threads."""
        if self.snds is not None:
            self.snds.close()
        if self.reputation is not None:
            self.reputation.close()
        if self.maillog is not None:
            self.maillog.close()

    async def restore(self) -> bool:
        """Load the last snapshot from the store; False when there is none or it is unusable."""
        try:
            document = await self.store.snapshot(self.name)
            if document is None:
                return False
            self.snapshot = self.written = Snapshot.model_validate(document)
        except (StoreError, ValidationError) as error:
            event(self.log, "snapshot.not_restored", logging.WARNING, error=str(error))
            return False
        event(self.log, "snapshot.restored", taken_at=self.snapshot.taken_at)
        return True

    async def run(self) -> Snapshot:
        """One full cycle; the new snapshot is published before the store is written."""
        previous = self.snapshot
        results = await collect(
            self.config,
            self.hosts,
            self.resolver,
            previous,
            clock=self.clock,
            helo_checker=self.helo_checker,
        )
        reports: dict[str, SourceReport | None] = dict(results.reports)
        others = await self._other_sources(previous, results.targets, reports)
        now = self.clock()
        sources = {
            name: report.state(previous.sources.get(name), now)
            for name, report in reports.items()
            if report is not None
        }
        for name in ("snds", "store"):  # not run this cycle: known as it was
            if name in previous.sources and name not in sources:
                sources[name] = previous.sources[name]
        lookups = dict(previous.dns_lookups)
        for status, count in self.resolver.counts.items():
            lookups[status] = lookups.get(status, 0) + count
        self.resolver.counts.clear()
        self.snapshot = Snapshot(
            taken_at=now,
            targets=others.targets,
            zones=results.zones,
            sources=sources,
            dns_lookups=lookups,
            snds=others.snds,
            mailflow=others.mailflow,
            maillog=others.maillog,
        )
        await self._store(sources, now)
        return self.snapshot

    async def _other_sources(
        self,
        previous: Snapshot,
        dns_targets: Sequence[TargetState],
        reports: dict[str, SourceReport | None],
    ) -> _OtherResults:
        """SNDS, HTTP reputation, maillog and mail flow, side by side, for the targets the
        DNS sources found. A source that is off, not due or crashed keeps its last state."""
        now = self.clock()
        ips = sorted({t.ip for t in dns_targets})
        ips_by_host: dict[str, list[str]] = {}
        for target in dns_targets:
            ips_by_host.setdefault(target.host, []).append(target.ip)
        before_snds = {t.ip: t.snds for t in previous.targets}
        before_reputation = {t.ip: t.reputation for t in previous.targets}
        snds, reputation, maillog = self.snds, self.reputation, self.maillog
        async with asyncio.TaskGroup() as group:
            snds_task = group.create_task(
                _guarded(
                    reports,
                    "snds",
                    snds.collect(previous.snds, before_snds, ips, now) if snds else None,
                )
            )
            reputation_task = group.create_task(
                _guarded(
                    reports,
                    "reputation",
                    reputation.collect(ips, before_reputation, now) if reputation else None,
                )
            )
            maillog_task = group.create_task(
                _guarded(
                    reports,
                    "maillog",
                    maillog.collect(self.hosts, previous.maillog, ips_by_host, now)
                    if maillog
                    else None,
                )
            )
            mailflow_task = group.create_task(
                _guarded(
                    reports,
                    "mailflow",
                    collect_mailflow(self.config, self.store, previous.mailflow, self.clock),
                )
            )
        others = _OtherResults(dns_targets, previous.snds, previous.mailflow, {})
        snds_states, reputation_states = before_snds, before_reputation
        if (snds_result := snds_task.result()) is not None:
            others.snds, snds_states = snds_result.feed, snds_result.states
            reports["snds"] = snds_result.report
        if (reputation_result := reputation_task.result()) is not None:
            reputation_states = reputation_result.states
            reports["reputation"] = reputation_result.report
        elif reputation is not None:  # crashed: no rating is known this cycle
            failed = {"lookup_ok": False, "problem": "the reputation source failed"}
            reputation_states = {
                ip: {name: state.model_copy(update=failed) for name, state in by_source.items()}
                for ip, by_source in before_reputation.items()
            }
        if (mailflow_result := mailflow_task.result()) is not None:
            others.mailflow, reports["mailflow"] = mailflow_result.state, mailflow_result.report
        if (maillog_result := maillog_task.result()) is not None:
            others.maillog, reports["maillog"] = maillog_result
        elif maillog is not None:  # crashed: nothing is known of any log this cycle
            failed = {"read_ok": False, "problem": "the maillog source failed"}
            others.maillog = {h: s.model_copy(update=failed) for h, s in previous.maillog.items()}
        others.targets = [
            t.model_copy(
                update={
                    "snds": snds_states.get(t.ip) if snds else None,
                    "reputation": reputation_states.get(t.ip, {}) if reputation else {},
                }
            )
            for t in dns_targets
        ]
        return others

    async def _store(self, sources: dict[str, SourceState], now: float) -> None:
        """Write the published snapshot: results, issues, history, then the snapshot
        itself with this write's ``store`` state (so a restart shows it as it was)."""
        report = SourceReport()
        started = time.monotonic()

        def with_store_state() -> Snapshot:
            report.duration = time.monotonic() - started
            state = report.state(sources.get("store"), now)
            return self.snapshot.model_copy(update={"sources": {**sources, "store": state}})

        try:
            await self._write(self.written)
            self.written = self.snapshot
            self.snapshot = with_store_state()
            await self.store.save_snapshot(self.name, self.snapshot.model_dump(mode="json"))
        except StoreError as error:
            report.fail(str(error))
            event(self.log, "store.write_failed", logging.ERROR, error=str(error))
            self.snapshot = with_store_state()

    async def _write(self, written: Snapshot) -> None:
        """Host results, issues and history of the published snapshot.

        ``written`` is the last snapshot whose history is in the store: a change
        that happened while Redis was away is still recorded once it is back.
        """
        snapshot = self.snapshot
        before = {(t.host, t.ip): t for t in written.targets}
        by_host: dict[str, list[TargetState]] = {}
        for target in snapshot.targets:
            by_host.setdefault(target.host, []).append(target)
        for host in self.hosts:
            document = host_results(snapshot, host, by_host.get(host.fqdn, []))
            await self.store.save_host_results(host.fqdn, document)
        for target in snapshot.targets:
            change = _score_change(before.get((target.host, target.ip)), target)
            if change:
                key = IssueKey(target.ip, "senderscore", "senderscore")
                await self.store.record_change(key, target.host, change)
        wanted = current_issues(snapshot, self.config, self.zone_specs)
        undetermined = undetermined_issues(snapshot, snds_on=self.snds is not None)
        for key, (fqdn, detail) in wanted.items():
            await self.store.open_issue(key, fqdn, detail)
        for record in await self._owned_open_issues():
            # Unknown this cycle: neither open nor clear it, whatever it was.
            if record.key not in wanted and not undetermined.covers(record.key, record.host):
                await self.store.clear_issue(record.key)

    async def _owned_open_issues(self) -> list[IssueRecord]:
        """Open issues this shard is responsible for: its hosts', and unknown hosts'."""
        configured = {host.fqdn for host in self.config.hosts}
        mine = {host.fqdn for host in self.hosts}
        return [
            record
            for record in await self.store.open_issues()
            if record.host in mine or record.host not in configured
        ]
