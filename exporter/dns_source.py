"""The DNS-based sources: monitored hosts, RBL/DNSBL listings, Sender Score, FCrDNS, HELO.

:func:`collect` runs one cycle of them against the previous snapshot and returns the
new target states, zone health and per-source reports. The rules that keep verdicts
trustworthy live in :mod:`exporter.dnsbl`, :mod:`exporter.senderscore` and
:mod:`exporter.fcrdns`; this module asks the questions and applies them:

- a failed lookup never flips the last trustworthy verdict (``listed`` and check
  results keep their last value, ``lookup_ok`` goes to 0 with the reason);
- a zone that fails its self-test gives no verdict that cycle;
- a host whose name cannot be resolved keeps the addresses it had.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.config import Config, Host, RblSpec
from exporter.dnsbl import (
    LISTED_TEST_IP,
    NOT_LISTED_TEST_IP,
    RblVerdict,
    ZoneHealth,
    classify,
    code_meanings,
    query_name,
    reverse_name,
    reverse_names,
    self_test,
    zone_label,
)
from exporter.fcrdns import CheckVerdict, forward_check, ptr_check
from exporter.helo import check_helo
from exporter.logs import event
from exporter.remote_text import MAX_REASON_CHARS, printable
from exporter.resolver import Answer, Query, Resolver
from exporter.senderscore import SENDERSCORE_ZONE, classify_score
from exporter.snapshot import CheckState, RblState, Snapshot, SourceReport, TargetState, ZoneState

__all__ = ["DnsResults", "HeloChecker", "collect"]

_LOG = logging.getLogger("mtarep.exporter.dns")
_HELO_CONCURRENCY = 50

_NO_HISTORY = RblState()

HeloChecker = Callable[[str, str, int, float], Coroutine[Any, Any, tuple[bool | None, str]]]


@dataclass
class DnsResults:
    targets: tuple[TargetState, ...]
    zones: dict[str, ZoneState]
    reports: dict[str, SourceReport]


@dataclass(frozen=True)
class _Target:
    host: Host
    ip: str
    reversed_ip: str
    ptr_name: str


class _Timed:
    """Times a source's part of the cycle into its report."""

    def __init__(self, report: SourceReport) -> None:
        self._report = report

    def __enter__(self) -> SourceReport:
        self._start = time.monotonic()
        return self._report

    def __exit__(self, *_: object) -> None:
        self._report.duration += time.monotonic() - self._start


def _rbl_state(
    verdict: RblVerdict,
    previous: RblState | None,
    reason: str | None,
    clean: RblState,
) -> RblState:
    """The new state; ``reason`` is the listing's TXT text, None when that lookup failed.

    ``clean`` is this cycle's "not listed, nothing before" state: shared, like an
    unchanged previous state, because most of 50,000 states per cycle are one of the two.
    """
    if verdict.state == "not_listed":
        if previous is None:
            return clean
        if previous.listed is False and previous.lookup_ok and not previous.problem:
            return previous
    before = previous or _NO_HISTORY
    if verdict.state == "unknown":
        return before.model_copy(update={"lookup_ok": False, "problem": verdict.problem})
    listed = verdict.state == "listed"
    if reason is None:  # keep the reason we had rather than forget it
        reason = before.reason if before.listed else ""
    return RblState(
        listed=listed,
        lookup_ok=True,
        codes=verdict.codes,
        meaning=verdict.meaning,
        reason=reason if listed else "",
        since=before.since if before.listed == listed else clean.since,
    )


def _address_order(ip: str) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


def _check_state(verdict: CheckVerdict, previous: CheckState | None) -> CheckState:
    """A check without a result this cycle keeps the last pass/fail and its detail."""
    if verdict.ok is None:
        before = previous or CheckState()
        return before.model_copy(update={"problem": verdict.detail})
    return CheckState(ok=verdict.ok, detail=verdict.detail)


class _Collection:
    def __init__(
        self,
        config: Config,
        hosts: Sequence[Host],
        resolver: Resolver,
        previous: Snapshot,
        helo_checker: HeloChecker,
    ) -> None:
        self.config = config
        self.hosts = hosts
        self.resolver = resolver
        self.helo_checker = helo_checker
        self.previous = {(t.host, t.ip): t for t in previous.targets}
        self.reports = {
            name: SourceReport() for name in ("hosts", "rbl", "senderscore", "fcrdns", "helo")
        }
        self.forward: dict[tuple[str, str], CheckVerdict] = {}

    def timed(self, source: str) -> _Timed:
        return _Timed(self.reports[source])

    # -- hosts -----------------------------------------------------------------------

    async def targets(self) -> list[_Target]:
        with self.timed("hosts") as report:
            queries: list[Query] = [(h.fqdn, "A") for h in self.hosts]
            queries += [(h.fqdn, "AAAA") for h in self.hosts]
            answers = await self.resolver.lookup_many(queries)
            count = len(self.hosts)
            targets: list[_Target] = []
            for host, a, aaaa in zip(self.hosts, answers[:count], answers[count:], strict=True):
                ips = self._host_ips(host, a, aaaa, report)
                for ip in ips:
                    family = a if ipaddress.ip_address(ip).version == 4 else aaaa
                    self.forward[(host.fqdn, ip)] = forward_check(host.fqdn, ip, family)
                    targets.append(_Target(host, ip, *reverse_names(ip)))
            return targets

    def _host_ips(self, host: Host, a: Answer, aaaa: Answer, report: SourceReport) -> list[str]:
        if host.ips:
            return [str(ipaddress.ip_address(ip)) for ip in host.ips]
        resolved = [*a.records, *aaaa.records]
        if a.trustworthy and aaaa.trustworthy and resolved:
            return [str(ipaddress.ip_address(ip)) for ip in resolved]
        # Keep watching the addresses it had: a broken record does not delist anything.
        if not a.trustworthy or not aaaa.trustworthy:
            failed = a if not a.trustworthy else aaaa
            problem = f"cannot resolve {host.fqdn}: {failed.describe}"
            event(_LOG, "host.unresolved", logging.WARNING, host=host.fqdn, error=problem)
        else:
            problem = f"{host.fqdn} has no A or AAAA record"
            event(_LOG, "host.no_address", logging.WARNING, host=host.fqdn)
        report.fail(problem)
        known = [ip for (name, ip) in self.previous if name == host.fqdn]
        # IPv4 first: addresses of different versions do not compare (TypeError).
        return sorted(
            {str(ipaddress.ip_address(ip)) for ip in [*resolved, *known]}, key=_address_order
        )

    # -- RBL -------------------------------------------------------------------------

    async def rbl(
        self, targets: Sequence[_Target], now: float
    ) -> tuple[dict[tuple[str, str], dict[str, RblState]], dict[str, ZoneState]]:
        zones = self.config.rbl_zones
        with self.timed("rbl") as report:
            probes: list[Query] = []
            for spec in zones:
                probes.append((query_name(reverse_name(LISTED_TEST_IP), spec.zone), "A"))
                probes.append((query_name(reverse_name(NOT_LISTED_TEST_IP), spec.zone), "A"))
            queries: list[Query] = [
                (query_name(t.reversed_ip, spec.zone), "A") for t in targets for spec in zones
            ]
            # The self-test never comes from the cache: a list that died since must
            # not pass on last cycle's answer while fresh lookups read "listed".
            async with asyncio.TaskGroup() as group:
                probing = group.create_task(self.resolver.lookup_many(probes, cached=False))
                asking = group.create_task(self.resolver.lookup_many(queries))
            probed, answers = probing.result(), asking.result()
            health: dict[str, ZoneHealth] = {}
            for index, spec in enumerate(zones):
                name = zone_label(spec.zone)
                health[spec.zone] = self_test(name, probed[2 * index], probed[2 * index + 1])
                if not health[spec.zone].healthy:
                    problem = health[spec.zone].problem
                    report.fail(problem)
                    event(_LOG, "rbl.zone_unhealthy", logging.WARNING, rbl=name, problem=problem)
            verdicts = self._rbl_verdicts(targets, zones, answers, health, report)
            reasons = await self._reasons(targets, zones, verdicts)
            clean = RblState(listed=False, lookup_ok=True, since=now)
            labels = {spec.zone: zone_label(spec.zone) for spec in zones}
            states: dict[tuple[str, str], dict[str, RblState]] = {}
            for t in targets:
                before = self.previous.get((t.host.fqdn, t.ip))
                states[(t.host.fqdn, t.ip)] = {
                    labels[spec.zone]: _rbl_state(
                        verdicts[(t.ip, spec.zone)],
                        before.rbl.get(labels[spec.zone]) if before else None,
                        reasons.get((t.ip, spec.zone)),
                        clean,
                    )
                    for spec in zones
                }
        zone_states = {
            labels[zone]: ZoneState(healthy=h.healthy, problem=h.problem)
            for zone, h in health.items()
        }
        return states, zone_states

    def _rbl_verdicts(
        self,
        targets: Sequence[_Target],
        zones: Sequence[RblSpec],
        answers: Sequence[Answer],
        health: Mapping[str, ZoneHealth],
        report: SourceReport,
    ) -> dict[tuple[str, str], RblVerdict]:
        meanings = {spec.zone: code_meanings(spec.zone, spec.codes) for spec in zones}
        verdicts: dict[tuple[str, str], RblVerdict] = {}
        unknown: Counter[tuple[str, str]] = Counter()
        answer_iter = iter(answers)
        for t in targets:
            for spec in zones:
                answer = next(answer_iter)
                zone_health = health[spec.zone]
                if not zone_health.healthy:
                    verdict = RblVerdict("unknown", problem=zone_health.problem)
                else:
                    verdict = classify(answer, meanings[spec.zone])
                    if verdict.state == "unknown":
                        unknown[(spec.zone, verdict.problem)] += 1
                        report.fail(f"{zone_label(spec.zone)} for {t.ip}: {verdict.problem}")
                verdicts[(t.ip, spec.zone)] = verdict
        # One line per zone and reason, not one per IP: a refusal code hits every IP.
        for (zone, problem), count in unknown.items():
            event(
                _LOG,
                "rbl.unknown",
                logging.WARNING,
                rbl=zone_label(zone),
                ips=count,
                problem=problem,
            )
        return verdicts

    async def _reasons(
        self,
        targets: Sequence[_Target],
        zones: Sequence[RblSpec],
        verdicts: Mapping[tuple[str, str], RblVerdict],
    ) -> dict[tuple[str, str], str | None]:
        """The TXT text of each listing; None when its TXT lookup failed."""
        listed = [
            (t, spec.zone)
            for t in targets
            for spec in zones
            if verdicts[(t.ip, spec.zone)].state == "listed"
        ]
        answers = await self.resolver.lookup_many(
            [(query_name(t.reversed_ip, zone), "TXT") for t, zone in listed]
        )
        return {
            (t.ip, zone): printable(" ".join(answer.records), MAX_REASON_CHARS)
            if answer.trustworthy
            else None
            for (t, zone), answer in zip(listed, answers, strict=True)
        }

    # -- Sender Score ------------------------------------------------------------------

    async def senderscore(
        self, targets: Sequence[_Target]
    ) -> dict[tuple[str, str], tuple[int | None, str]]:
        scored = [t for t in targets if ipaddress.ip_address(t.ip).version == 4]
        with self.timed("senderscore") as report:
            answers = await self.resolver.lookup_many(
                [(query_name(t.reversed_ip, SENDERSCORE_ZONE), "A") for t in scored]
            )
            scores: dict[tuple[str, str], tuple[int | None, str]] = {}
            for t, answer in zip(scored, answers, strict=True):
                verdict = classify_score(answer)
                if verdict.state == "unknown":
                    report.fail(f"Sender Score for {t.ip}: {verdict.problem}")
                    event(
                        _LOG,
                        "senderscore.unknown",
                        logging.WARNING,
                        ip=t.ip,
                        problem=verdict.problem,
                    )
                    before = self.previous.get((t.host.fqdn, t.ip))
                    scores[(t.host.fqdn, t.ip)] = (
                        before.senderscore if before else None,
                        verdict.problem,
                    )
                else:
                    scores[(t.host.fqdn, t.ip)] = (verdict.score, "")
            return scores

    # -- FCrDNS and HELO ------------------------------------------------------------------

    async def fcrdns(
        self, targets: Sequence[_Target]
    ) -> dict[tuple[str, str], dict[str, CheckVerdict]]:
        with self.timed("fcrdns") as report:
            answers = await self.resolver.lookup_many([(t.ptr_name, "PTR") for t in targets])
            verdicts: dict[tuple[str, str], dict[str, CheckVerdict]] = {}
            for t, answer in zip(targets, answers, strict=True):
                key = (t.host.fqdn, t.ip)
                verdicts[key] = {
                    "ptr": ptr_check(t.host.fqdn, answer),
                    "forward": self.forward[key],
                }
                for check, verdict in verdicts[key].items():
                    if verdict.ok is None:
                        report.fail(f"{check} for {t.ip}: {verdict.detail}")
            return verdicts

    async def helo(self, targets: Sequence[_Target]) -> dict[tuple[str, str], CheckVerdict]:
        settings = self.config.helo_check
        if not settings.enabled:
            return {}
        limit = asyncio.Semaphore(_HELO_CONCURRENCY)

        async def one(t: _Target) -> CheckVerdict:
            try:
                async with limit:
                    ok, detail = await self.helo_checker(
                        t.ip, t.host.fqdn, settings.port, settings.timeout
                    )
            except Exception as error:  # one MTA's surprise must not cost every verdict
                event(_LOG, "helo.check_crashed", logging.ERROR, ip=t.ip, error=repr(error))
                ok, detail = None, f"the check failed: {type(error).__name__}"
            if ok is None:  # no greeting: the banner could not be checked
                report.fail(f"helo for {t.ip}: {detail}")
            return CheckVerdict(ok, detail)

        with self.timed("helo") as report:
            async with asyncio.TaskGroup() as group:
                tasks = {(t.host.fqdn, t.ip): group.create_task(one(t)) for t in targets}
            return {key: task.result() for key, task in tasks.items()}


async def collect(
    config: Config,
    hosts: Sequence[Host],
    resolver: Resolver,
    previous: Snapshot,
    *,
    clock: Callable[[], float] = time.time,
    helo_checker: HeloChecker = check_helo,
) -> DnsResults:
    """One cycle of the DNS sources for ``hosts`` (this shard's), given the last snapshot."""
    run = _Collection(config, hosts, resolver, previous, helo_checker)
    now = clock()
    targets = await run.targets()
    async with asyncio.TaskGroup() as group:
        rbl_task = group.create_task(run.rbl(targets, now))
        score_task = group.create_task(run.senderscore(targets))
        fcrdns_task = group.create_task(run.fcrdns(targets))
        helo_task = group.create_task(run.helo(targets))
    rbl_states, zones = rbl_task.result()
    scores, fcrdns, helo = score_task.result(), fcrdns_task.result(), helo_task.result()
    states: list[TargetState] = []
    for t in targets:
        key = (t.host.fqdn, t.ip)
        before = run.previous.get(key)
        verdicts = dict(fcrdns[key])
        if key in helo:
            verdicts["helo"] = helo[key]
        score, score_problem = scores.get(key, (None, ""))
        states.append(
            TargetState(
                host=t.host.fqdn,
                ip=t.ip,
                ssh_host=t.host.ssh_host,
                senderscore=score,
                senderscore_problem=score_problem,
                rbl=rbl_states[key],
                checks={
                    check: _check_state(verdict, before.checks.get(check) if before else None)
                    for check, verdict in verdicts.items()
                },
            )
        )
    return DnsResults(tuple(states), zones, run.reports)
