"""The maillog source: read each host's Postfix log incrementally, count and find blocks.

Hosts with a ``maillog_path`` (per host in the long ``mta_map`` form, or the old
top-level key) are read every cycle, concurrently (``maillog.concurrency``), each
within ``maillog.timeout``: over SSH (:mod:`exporter.maillog_ssh`) or from this
machine (``maillog.source: local``), both with the reader of
:mod:`exporter.maillog_reader`. Where reading stopped (file identity and offset) is
part of the snapshot, which Redis keeps, so a restart goes on where the last stored
cycle stopped. What the new lines say is tallied by :mod:`exporter.maillog_tally`.

A host that cannot be read (down, key refused, timeout, file missing) keeps its
position, counts and blocks as they were (``read_ok`` false, with the reason): its
provider issues neither open nor clear, and the other hosts go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from exporter.config import Config, Host
from exporter.logs import event
from exporter.maillog_reader import LogRead, ReadFailed, read_local
from exporter.maillog_ssh import SshReader, SshSettings
from exporter.maillog_tally import DeferredDomains, tally_lines
from exporter.postfix_log import ParseContext
from exporter.provider_patterns import ProviderMatcher
from exporter.snapshot import MaillogState, SourceReport

__all__ = ["LocalReader", "MaillogSource", "logged_hosts"]

_LOG = logging.getLogger("mtarep.exporter.maillog")

LocalReader = Callable[[str, str, int, int], Awaitable[LogRead]]

UNFINISHED_LINE = 65_536
"""A read that stopped less than this short of the log's end only left a line that is
still being written (the reader never cuts one): the log was read up to date."""


def logged_hosts(hosts: Sequence[Host]) -> list[Host]:
    """The hosts whose log is read."""
    return [host for host in hosts if host.maillog_path]


class MaillogSource:
    def __init__(
        self,
        config: Config,
        *,
        ssh: SshReader | None = None,
        local: LocalReader = read_local,
    ) -> None:
        settings = config.maillog
        self.config = config
        self.matcher = ProviderMatcher.from_config(config.provider_patterns)
        self.zone = ZoneInfo(settings.timezone) if settings.timezone else None
        self.local = local
        self.ssh: SshReader | None = None
        if settings.source == "ssh":
            known_hosts = settings.known_hosts or Path("~/.ssh/known_hosts").expanduser()
            self.ssh = ssh or SshReader(
                SshSettings(known_hosts, config.ssh_key, settings.timeout, settings.concurrency)
            )
        self._limit = asyncio.Semaphore(settings.concurrency)
        self._deferred: dict[str, DeferredDomains] = {}

    def close(self) -> None:
        if self.ssh is not None:
            self.ssh.close()

    async def _read(self, host: Host, before: MaillogState) -> LogRead:
        path = host.maillog_path or ""
        budget = self.config.maillog.initial_window
        async with self._limit, asyncio.timeout(self.config.maillog.timeout):
            if self.ssh is not None:
                return await self.ssh.read(host, path, before.file_id, before.offset, budget)
            return await self.local(path, before.file_id, before.offset, budget)

    async def _host(
        self, host: Host, before: MaillogState, ips: Sequence[str], now: float
    ) -> tuple[MaillogState, str]:
        """The host's new state, and the problem ("" when the read worked)."""
        if not ips:  # a block could not be put on an IP: leave the lines for later
            problem = f"{host.fqdn}: its IPs are not known (its name does not resolve yet)"
            return before.model_copy(update={"read_ok": False, "problem": problem}), problem
        try:
            read = await self._read(host, before)
        except TimeoutError:
            problem = f"no result within {self.config.maillog.timeout:g}s"
        except ReadFailed as failed:
            problem = str(failed)
        else:
            return self._advance(host, before, read, ips, now), ""
        problem = f"{host.fqdn} ({host.maillog_path}): {problem}"
        event(_LOG, "maillog.unreadable", logging.ERROR, host=host.fqdn, error=problem)
        return before.model_copy(update={"read_ok": False, "problem": problem}), problem

    def _advance(
        self, host: Host, before: MaillogState, read: LogRead, ips: Sequence[str], now: float
    ) -> MaillogState:
        tally = tally_lines(
            before,
            read.lines,
            sent=read.sent,
            ips=ips,
            matcher=self.matcher,
            graph_domains=self.config.graph_domains,
            block_window=self.config.block_window,
            context=ParseContext(now, self.zone),
            deferred=self._deferred.setdefault(host.fqdn, DeferredDomains()),
        )
        if read.lost:
            event(
                _LOG,
                "maillog.rotated_file_gone",
                logging.WARNING,
                host=host.fqdn,
                unread_from=before.offset,
                hint="the rotated log was compressed or removed before its tail was read",
            )
        if read.truncated:
            event(_LOG, "maillog.truncated", logging.WARNING, host=host.fqdn)
        if tally.skipped:
            event(_LOG, "maillog.lines_skipped", logging.DEBUG, host=host.fqdn, **tally.skipped)
        file_id, offset = read.position(before.file_id, before.offset)
        # Caught up: at the end of the log, but for a line still being written.
        caught_up = file_id == read.file_id and read.size - offset < UNFINISHED_LINE
        if read.size - offset > self.config.maillog.initial_window:
            event(
                _LOG,
                "maillog.behind",
                logging.WARNING,
                host=host.fqdn,
                unread_bytes=read.size - offset,
                hint="the log grows faster than maillog.initial_window per cycle",
            )
        return tally.state.model_copy(
            update={
                "file_id": file_id,
                "offset": offset,
                "read_ok": True,
                "caught_up": caught_up,
                "problem": "",
                "read_at": now,
                "bytes_read_total": before.bytes_read_total + read.bytes_read,
                "lines_skipped_total": tally.state.lines_skipped_total + read.lines_skipped,
            }
        )

    async def collect(
        self,
        hosts: Sequence[Host],
        previous: Mapping[str, MaillogState],
        ips_by_host: Mapping[str, Sequence[str]],
        now: float,
    ) -> tuple[dict[str, MaillogState], SourceReport]:
        """Every logged host of ``hosts`` read once; one failing host fails only itself."""
        report = SourceReport()
        started = time.monotonic()
        logged = logged_hosts(hosts)
        async with asyncio.TaskGroup() as group:
            tasks = {
                host.fqdn: group.create_task(
                    self._host(
                        host,
                        previous.get(host.fqdn, MaillogState()),
                        ips_by_host.get(host.fqdn, ()),
                        now,
                    )
                )
                for host in logged
            }
        states: dict[str, MaillogState] = {}
        for fqdn, task in tasks.items():
            states[fqdn], problem = task.result()
            if problem:
                report.fail(problem)
        report.duration = time.monotonic() - started
        return states, report
