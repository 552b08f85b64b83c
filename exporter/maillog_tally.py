"""Turn the Postfix lines a cycle read into a host's counts and blocks. No I/O here.

- **Deliveries**: every delivery line counts once under its recipient domain (a
  ``graph_domains`` entry, else ``other``) and status: ``sent``, ``deferred`` (each
  deferral is an attempt; Postfix's SOFTBOUNCE counts here too), ``bounced``, and
  ``expired`` (qmgr's ``status=expired``, which names no recipient: its domain is the
  one the message's last deferral named, when this process saw it, else ``other``).
- **Provider blocks**: a deferral or bounce, or a ``host X said:`` / ``refused to talk
  to me`` line, whose reply matches a provider's pattern. The blocked IP is the
  sending IP the reply names (``[192.0.2.1 15]``), else the host's primary IP (its
  first IPv4). Per provider and IP the newest matching line is kept with its time,
  recipient domain, dsn and relay; it is a block while ``block_window`` has not passed
  since. A run of blocks counts its lines from the first one; a block older than the
  window plus a day is forgotten.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.postfix_log import (
    Delivery,
    DeliveryStatus,
    Expiry,
    HostReply,
    ParseContext,
    SkipReason,
    addresses_in,
    parse_line,
)
from exporter.provider_patterns import ProviderMatcher
from exporter.remote_text import MAX_REASON_CHARS, printable
from exporter.snapshot import OTHER_DOMAIN, MaillogState, ProviderBlock

__all__ = ["DeferredDomains", "Tally", "primary_ip", "tally_lines"]

FORGET_AFTER = 86_400.0
"""A block is forgotten this long after its window has passed."""
_COUNTED = {
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.DEFERRED: "deferred",
    DeliveryStatus.SOFTBOUNCE: "deferred",
    DeliveryStatus.BOUNCED: "bounced",
}
_DEFERRALS = frozenset({DeliveryStatus.DEFERRED, DeliveryStatus.SOFTBOUNCE})
_BLOCKING = _DEFERRALS | {DeliveryStatus.BOUNCED}


class DeferredDomains:
    """Queue id -> recipient domain of its last deferral, for the most recent ``size`` ids.

    qmgr's expiry line names the sender only; this is how an expiry finds its domain.
    Kept in memory: after a restart an expiry of an older deferral counts as ``other``.
    """

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._domains: OrderedDict[str, str] = OrderedDict()

    def remember(self, queue_id: str, domain: str) -> None:
        self._domains[queue_id] = domain
        self._domains.move_to_end(queue_id)
        while len(self._domains) > self._size:
            self._domains.popitem(last=False)

    def pop(self, queue_id: str) -> str | None:
        return self._domains.pop(queue_id, None)


@dataclass
class Tally:
    state: MaillogState
    skipped: dict[str, int]
    """Why lines were skipped, by :class:`~exporter.postfix_log.SkipReason` value."""


def primary_ip(ips: Sequence[str]) -> str | None:
    """The IP a block is put on when the reply names none: the first IPv4, else the first."""
    ordered = sorted(ips, key=lambda ip: (ipaddress.ip_address(ip).version, ip))
    return ordered[0] if ordered else None


def _domain_label(domain: str | None, graph_domains: frozenset[str]) -> str:
    return domain if domain is not None and domain in graph_domains else OTHER_DOMAIN


@dataclass
class _Run:
    """A run of matching lines for one provider and IP, while the lines are read.

    ProviderBlock models are only made once, at the end, from the newest line.
    """

    first_seen: float
    last_seen: float
    count: int
    ip_named: bool
    newest: Delivery | HostReply | None
    """None: nothing newer than ``kept`` was read."""
    kept: ProviderBlock | None


def _block(provider: str, ip: str, run: _Run) -> ProviderBlock:
    record = run.newest
    if record is None:
        assert run.kept is not None
        return run.kept
    if isinstance(record, Delivery):
        relay, status, domain = record.relay, record.status.value, record.domain or ""
    else:
        relay, status, domain = f"{record.remote_host}[{record.remote_ip}]", "reply", ""
    return ProviderBlock(
        provider=provider,
        ip=ip,
        ip_named=run.ip_named,
        first_seen=run.first_seen,
        last_seen=run.last_seen,
        count=run.count,
        line=printable(record.line, MAX_REASON_CHARS),
        domain=domain,
        dsn=record.dsn,
        relay=printable(relay, 200),
        status=status,
        blocked=True,
    )


def tally_lines(
    previous: MaillogState,
    lines: Iterable[bytes],
    *,
    sent: Mapping[str, int] | None = None,
    ips: Sequence[str],
    matcher: ProviderMatcher,
    graph_domains: Iterable[str],
    block_window: float,
    context: ParseContext,
    deferred: DeferredDomains,
) -> Tally:
    """``previous`` advanced by ``lines`` and the ``sent`` deliveries the reader counted
    by recipient domain (position and read status are the caller's)."""
    graph = frozenset(graph_domains)
    monitored = {str(ipaddress.ip_address(ip)) for ip in ips}
    fallback = primary_ip(list(monitored))
    deliveries = {domain: dict(counts) for domain, counts in previous.deliveries.items()}
    runs: dict[tuple[str, str], _Run] = {
        (provider, ip): _Run(b.first_seen, b.last_seen, b.count, b.ip_named, None, b)
        for provider, by_ip in previous.blocks.items()
        for ip, b in by_ip.items()
    }
    skipped: dict[str, int] = {}

    def count(domain: str, status: str) -> None:
        by_status = deliveries.setdefault(domain, {})
        by_status[status] = by_status.get(status, 0) + 1

    def block(record: Delivery | HostReply) -> None:
        providers = matcher.providers_matching(record.reply)
        if not providers:
            return
        named = [ip for ip in addresses_in(record.reply) if ip in monitored]
        targets = [(ip, True) for ip in named] or ([(fallback, False)] if fallback else [])
        at = record.time
        for provider in providers:
            for ip, ip_named in targets:
                run = runs.get((provider, ip))
                if run is None or at - run.last_seen > block_window:
                    runs[(provider, ip)] = _Run(at, at, 1, ip_named, record, None)
                elif at >= run.last_seen:  # (an older line than the newest is not kept)
                    run.last_seen, run.count, run.ip_named = at, run.count + 1, ip_named
                    run.newest = record

    for domain, number in (sent or {}).items():
        label = _domain_label(domain or None, graph)
        by_status = deliveries.setdefault(label, {})
        by_status["sent"] = by_status.get("sent", 0) + number
    for raw in lines:
        record = parse_line(raw, context)
        if isinstance(record, SkipReason):
            skipped[record.value] = skipped.get(record.value, 0) + 1
        elif isinstance(record, Delivery):
            label = _domain_label(record.domain, graph)
            count(label, _COUNTED[record.status])
            if record.status in _DEFERRALS:
                deferred.remember(record.queue_id, label)
            if record.status in _BLOCKING:
                block(record)
        elif isinstance(record, Expiry):
            count(deferred.pop(record.queue_id) or OTHER_DOMAIN, "expired")
        elif record.kind in ("said", "refused"):
            block(record)
    now = context.now
    kept: dict[str, dict[str, ProviderBlock]] = {}
    for (provider, ip), run in runs.items():
        if now - run.last_seen <= block_window + FORGET_AFTER:
            made = _block(provider, ip, run)
            blocked = now - run.last_seen <= block_window
            if made.blocked != blocked:
                made = made.model_copy(update={"blocked": blocked})
            kept.setdefault(provider, {})[ip] = made
    state = previous.model_copy(
        update={
            "deliveries": deliveries,
            "blocks": kept,
            "lines_skipped_total": previous.lines_skipped_total + sum(skipped.values()),
        }
    )
    return Tally(state, skipped)
