"""Today's mail flow counters, as other tools keep them in Redis with HINCRBY.

The old tool's graphs read hashes ``{prefix}:{YYYYMMDD}:{status}`` (status ``sent``,
``bounced``, ``expired`` or ``fbl``; field = recipient domain, value = count) that the
team's own delivery and feedback-loop scripts increment::

    redis-cli HINCRBY mycompany:20261201:sent gmail.com 1

Each cycle reads today's hashes (today in ``mailflow.timezone``, else the exporter's
local zone; yesterday's keys are never read) for ``mailflow.prefixes`` or, when none
are configured, every prefix found with SCAN. With ``graph_domains`` only those
domains are shown (0 when a hash lacks them) and the rest is summed as ``other``;
without, every domain is shown up to ``mailflow.max_domains`` per prefix (the
busiest), the rest again as ``other``, with a warning. A value that is not a whole
number >= 0, or a field that is not a domain name, is skipped and counted.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from exporter.config import Config
from exporter.logs import event
from exporter.snapshot import MAILFLOW_STATUSES, OTHER_DOMAIN, MailflowState, SourceReport
from exporter.store import Store, StoreError

__all__ = ["MailflowResult", "collect_mailflow", "mailflow_day", "tally"]

_LOG = logging.getLogger("mtarep.exporter.mailflow")
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_-]{1,63})*\.?$")


@dataclass
class MailflowResult:
    state: MailflowState
    report: SourceReport


def mailflow_day(now: float, timezone: str | None) -> str:
    """``YYYYMMDD`` of ``now`` in ``timezone`` (None: the local zone)."""
    zone = ZoneInfo(timezone) if timezone else None
    return datetime.fromtimestamp(now, zone).strftime("%Y%m%d")


def _count(value: str) -> int | None:
    text = value.strip()
    return int(text) if text.isdigit() else None


def tally(
    hashes: dict[str, dict[str, str]], graph_domains: Sequence[str], max_domains: int
) -> tuple[dict[str, dict[str, int]], int, bool]:
    """One prefix's hashes (status -> field -> value) as domain -> status -> count.

    Returns the counts, how many fields were skipped, and whether domains were capped.
    """
    skipped = 0
    counts: dict[str, Counter[str]] = {}
    for status, fields in hashes.items():
        for raw_domain, raw_value in fields.items():
            domain = raw_domain.strip().lower().rstrip(".")
            value = _count(raw_value)
            if value is None or not _DOMAIN.match(domain):
                skipped += 1
                continue
            counts.setdefault(domain, Counter())[status] += value
    if graph_domains:
        shown = list(graph_domains)
    else:
        busiest = sorted(counts, key=lambda d: (-sum(counts[d].values()), d))
        shown = busiest[:max_domains]
    capped = not graph_domains and len(counts) > max_domains
    other: Counter[str] = Counter()
    for domain, by_status in counts.items():
        if domain not in shown:
            other.update(by_status)
    result = {
        domain: {status: counts.get(domain, Counter())[status] for status in MAILFLOW_STATUSES}
        for domain in shown
    }
    if other or graph_domains:
        result[OTHER_DOMAIN] = {status: other[status] for status in MAILFLOW_STATUSES}
    return result, skipped, capped


async def collect_mailflow(
    config: Config, store: Store, previous: MailflowState, clock: Callable[[], float]
) -> MailflowResult:
    """Read today's counters; Redis away keeps the last counts and fails the source."""
    report = SourceReport()
    started = time.monotonic()
    day = mailflow_day(clock(), config.mailflow.timezone)
    settings = config.mailflow
    try:
        prefixes = settings.prefixes or await store.mailflow_prefixes(day, MAILFLOW_STATUSES)
        hashes = await store.mailflow_counts(prefixes, day, MAILFLOW_STATUSES)
    except StoreError as error:
        report.fail(f"cannot read the mail flow counters: {error}")
        event(_LOG, "mailflow.unreadable", logging.ERROR, error=str(error))
        report.duration = time.monotonic() - started
        return MailflowResult(previous, report)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    skipped = 0
    for prefix in prefixes:
        by_status: dict[str, dict[str, str]] = {}
        for status in MAILFLOW_STATUSES:
            fields = hashes[(prefix, status)]
            if isinstance(fields, StoreError):
                report.fail(str(fields))
                event(_LOG, "mailflow.not_a_hash", logging.WARNING, error=str(fields))
                continue
            by_status[status] = fields
        counts[prefix], prefix_skipped, capped = tally(
            by_status, config.graph_domains, settings.max_domains
        )
        skipped += prefix_skipped
        if capped:
            event(
                _LOG,
                "mailflow.domains_capped",
                logging.WARNING,
                prefix=prefix,
                shown=settings.max_domains,
                hint="set graph_domains, or raise mailflow.max_domains",
            )
    if skipped:
        event(_LOG, "mailflow.values_skipped", logging.WARNING, day=day, fields=skipped)
    report.duration = time.monotonic() - started
    state = MailflowState(day=day, counts=counts, skipped=skipped)
    return MailflowResult(state, report)
