"""How fast is one DNS collection cycle? mtarep beside a plain loop and dnsperf.

Run from the repository root with the virtualenv active::

    python -m tests.bench.bench_dns_cycle            # 200 hosts x 10 IPs, 25 DNSBL zones
    python -m tests.bench.bench_dns_cycle --help     # sizes, repeats, dnsperf settings, --profile

A real ``nsd`` on a free loopback port (in a temporary directory, stopped at the end)
serves every zone the cycle asks: 25 DNSBL zones ``z01.bl.test`` ... with the RFC 5782
test entries and a few percent of the monitored IPs listed (A and TXT), a
``score.senderscore.com`` zone with a score for most IPs, the hosts' forward zone and
the reverse zone for their PTR records. It measures, in one run:

- **mtarep**: :func:`exporter.dns_source.collect` for every host, HELO check off, with a
  fresh :class:`~exporter.resolver.Resolver` (c-ares' cache cold), repeated; then a
  second cycle on the same resolver (answers from c-ares' TTL cache);
- **baseline**: a sequential ``dns.resolver.Resolver`` loop (dnspython, no cache) over a
  random sample of the very queries mtarep asked;
- **ceiling**: ``dnsperf`` over all of those queries;
- **reference**: a bare pycares channel (a callback that only counts) over the same
  queries with the same concurrency, interleaved with the mtarep runs: what c-ares
  itself costs on this machine, without any of mtarep's work.

Each run also reports the kernel's UDP receive-buffer drops (``RcvbufErrors`` of
``/proc/net/snmp``, system wide): an answer dropped there is only asked again by c-ares
after ``dns.timeout``, which shows as a stall of that length in the cycle.

The cycle's verdicts are checked against what the zones hold (every listing found with
its codes and TXT reason, every score, PTR and forward check, no lookup failed or timed
out), so the benchmark cannot be fast by being wrong; a wrong cycle stops it (exit 1).
Not part of the pytest suite.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import platform
import pstats
import random
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import dns.exception
import dns.resolver
import dns.version
import pycares
import pycares.errno
import yaml

from exporter.config import Config, load_config
from exporter.dns_source import DnsResults, collect
from exporter.resolver import Answer, Query, Resolver, Status
from exporter.service import make_resolver
from exporter.snapshot import Snapshot
from tests.harness.binaries import find_binary
from tests.harness.nsd_server import NsdServer, zone_text

TARGET_RATE = 20_000
"""Lookups per second a cold cycle must reach (the median of the repeats)."""

FORWARD_ZONE = "mail.test"
REVERSE_ZONE = "10.in-addr.arpa"
SENDERSCORE_ZONE = "score.senderscore.com"
TRUSTWORTHY: frozenset[Status] = frozenset({"answer", "nxdomain", "nodata"})
DEFAULT_DNSPERF = ("1,1,100", "4,1,500", "4,2,500")
"""dnsperf -c,-T,-q tried by default; the fastest on a 2-core machine, depending on load."""
LISTING_CODES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9", "127.0.0.10")


class BenchmarkError(AssertionError):
    """The cycle gave a wrong result (or the setup is broken): its numbers mean nothing."""


# -- workload ------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What the zones hold, so the cycle's verdicts can be checked."""

    hosts: dict[str, tuple[str, ...]]
    """Host FQDN -> its monitored IPs."""
    zones: tuple[str, ...]
    listed: dict[tuple[str, str], tuple[str, str]]
    """(ip, zone) -> (code, TXT reason)."""
    scores: dict[str, int]

    @property
    def ips(self) -> list[str]:
        return [ip for ips in self.hosts.values() for ip in ips]


def _ip(host: int, index: int) -> str:
    return f"10.{host // 256}.{host % 256}.{index + 1}"


def _reversed(ip: str) -> str:
    return ".".join(reversed(ip.split(".")))


def build_workload(
    hosts: int, ips_per_host: int, zones: int, listed_fraction: float, seed: int
) -> Workload:
    if not (1 <= ips_per_host <= 254 and 1 <= hosts <= 256 * 256 and 1 <= zones <= 99):
        raise SystemExit("need 1-65536 hosts, 1-254 IPs per host and 1-99 zones")
    rng = random.Random(seed)
    host_ips = {
        f"mta{h:03d}.{FORWARD_ZONE}": tuple(_ip(h, k) for k in range(ips_per_host))
        for h in range(hosts)
    }
    all_ips = [ip for ips in host_ips.values() for ip in ips]
    zone_names = tuple(f"z{z:02d}.bl.test" for z in range(1, zones + 1))
    per_zone = max(1, round(listed_fraction * len(all_ips)))
    listed: dict[tuple[str, str], tuple[str, str]] = {}
    for zone in zone_names:
        for ip in rng.sample(all_ips, per_zone):
            reason = f"{ip} listed by {zone}: see https://{zone}/lookup?ip={ip}"
            listed[(ip, zone)] = (rng.choice(LISTING_CODES), reason)
    scored = rng.sample(all_ips, round(0.9 * len(all_ips)))  # "most IPs"; the rest: no score
    scores = {ip: rng.randint(0, 100) for ip in scored}
    return Workload(host_ips, zone_names, listed, scores)


def zone_files(workload: Workload) -> dict[str, str]:
    """Zone name -> zone text for nsd."""
    zones: dict[str, list[str]] = {
        zone: [
            "2.0.0.127 IN A 127.0.0.2",  # RFC 5782 test entries; 127.0.0.1 is not listed
            '2.0.0.127 IN TXT "RFC 5782 test entry"',
        ]
        for zone in workload.zones
    }
    for (ip, zone), (code, reason) in workload.listed.items():
        zones[zone] += [f"{_reversed(ip)} IN A {code}", f'{_reversed(ip)} IN TXT "{reason}"']
    zones[SENDERSCORE_ZONE] = [
        f"{_reversed(ip)} IN A 127.0.4.{score}" for ip, score in workload.scores.items()
    ]
    zones[FORWARD_ZONE] = [
        f"{fqdn.removesuffix('.' + FORWARD_ZONE)} IN A {ip}"
        for fqdn, ips in workload.hosts.items()
        for ip in ips
    ]
    zones[REVERSE_ZONE] = [
        f"{_reversed(ip).removesuffix('.10')} IN PTR {fqdn}."
        for fqdn, ips in workload.hosts.items()
        for ip in ips
    ]
    return {name: zone_text(name, records) for name, records in zones.items()}


def write_config(directory: Path, workload: Workload, port: int, concurrency: int | None) -> Config:
    """An mtarep.yml for the workload, loaded the way the exporter loads it."""
    dns_settings: dict[str, object] = {"nameservers": ["127.0.0.1"], "port": port}
    if concurrency is not None:
        dns_settings["concurrency"] = concurrency
    document = {
        "mta_map": {
            fqdn.split(".")[0]: {"fqdn": fqdn, "ips": list(ips)}
            for fqdn, ips in workload.hosts.items()
        },
        "rbls": list(workload.zones),
        "dns": dns_settings,
        "helo_check": {"enabled": False},
    }
    path = directory / "mtarep.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_config(path, environ={}).config


# -- mtarep --------------------------------------------------------------------------


class RecordingResolver(Resolver):
    """A :class:`Resolver` that keeps every query and answer (for the untimed cycle)."""

    def __init__(self, config: Config) -> None:
        settings = config.dns
        super().__init__(
            settings.nameservers,
            port=settings.port,
            timeout=settings.timeout,
            attempts=settings.attempts,
            concurrency=settings.concurrency,
        )
        self.queries: list[Query] = []
        self.answers: list[Answer] = []

    async def lookup_many(self, queries: Sequence[Query], *, cached: bool = True) -> list[Answer]:
        answers = await super().lookup_many(queries, cached=cached)
        self.queries += queries
        self.answers += answers
        return answers


async def _no_helo(ip: str, fqdn: str, port: int, timeout: float) -> tuple[bool, str]:
    return True, "skipped"


@dataclass(frozen=True)
class Run:
    label: str
    lookups: int
    seconds: float
    statuses: Counter[str] = field(default_factory=Counter)
    note: str = ""
    drops: int | None = None
    """UDP receive-buffer drops during the run (None: not on Linux)."""

    @property
    def rate(self) -> float:
        return self.lookups / self.seconds if self.seconds > 0 else 0.0


def udp_receive_drops() -> int | None:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (Linux)."""
    try:
        rows = [
            line.split()
            for line in Path("/proc/net/snmp").read_text().splitlines()
            if line.startswith("Udp:")
        ]
        return int(dict(zip(rows[0][1:], rows[1][1:], strict=True))["RcvbufErrors"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def _drops_since(before: int | None) -> int | None:
    after = udp_receive_drops()
    return after - before if after is not None and before is not None else None


async def timed_cycle(label: str, config: Config, resolver: Resolver) -> tuple[Run, DnsResults]:
    before = Counter(resolver.counts)
    drops = udp_receive_drops()
    start = time.perf_counter()
    results = await collect(config, config.hosts, resolver, Snapshot(), helo_checker=_no_helo)
    seconds = time.perf_counter() - start
    statuses: Counter[str] = Counter(resolver.counts)
    statuses.subtract(before)
    statuses = +statuses  # drop zero counts
    run = Run(label, sum(statuses.values()), seconds, statuses, drops=_drops_since(drops))
    return run, results


def check_cycle(run: Run, results: DnsResults, workload: Workload) -> None:
    """Raise :class:`BenchmarkError` unless the cycle found exactly what the zones hold."""
    problems: list[str] = []
    failed = {status: n for status, n in run.statuses.items() if status not in TRUSTWORTHY}
    if failed:
        problems.append(f"lookups failed (timeout/servfail/...): {failed}")
    unhealthy = {zone: state.problem for zone, state in results.zones.items() if not state.healthy}
    if unhealthy or set(results.zones) != set(workload.zones):
        problems.append(f"zones not healthy or missing: {unhealthy or set(results.zones)}")
    expected_targets = {(fqdn, ip) for fqdn, ips in workload.hosts.items() for ip in ips}
    if {(t.host, t.ip) for t in results.targets} != expected_targets:
        problems.append(f"{len(results.targets)} targets, expected {len(expected_targets)}")
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for target in results.targets:
        for zone, state in target.rbl.items():
            if not state.lookup_ok:
                problems.append(f"{target.ip} on {zone}: no verdict ({state.problem})")
            if state.listed:
                found[(target.ip, zone)] = (",".join(state.codes), state.reason)
        score = workload.scores.get(target.ip)
        if target.senderscore != score or target.senderscore_problem:
            problems.append(
                f"{target.ip}: Sender Score {target.senderscore} "
                f"({target.senderscore_problem or 'no problem'}), expected {score}"
            )
        for check in ("ptr", "forward"):
            outcome = target.checks.get(check)
            if outcome is None or outcome.ok is not True:
                problems.append(f"{target.ip}: {check} check {outcome}")
    if found != workload.listed:
        missing = workload.listed.keys() - found.keys()
        extra = found.keys() - workload.listed.keys()
        wrong = {k for k in found.keys() & workload.listed.keys() if found[k] != workload.listed[k]}
        problems.append(
            f"listings differ: {len(missing)} missing, {len(extra)} extra, "
            f"{len(wrong)} with other codes/reasons (e.g. {sorted(missing | extra | wrong)[:3]})"
        )
    if problems:
        shown = "\n  ".join(problems[:10])
        raise BenchmarkError(f"{run.label}: wrong cycle ({len(problems)} problems):\n  {shown}")


@dataclass
class MtarepResults:
    cold: list[Run]
    warm: list[Run]
    bare: list[Run]
    queries: list[Query]
    answers: list[Answer]
    concurrency: int
    timeout: float
    profile: str = ""


async def measure_mtarep(
    config: Config, workload: Workload, repeats: int, profile: int
) -> MtarepResults:
    # An untimed cycle first: records the queries (for the baseline and dnsperf), and
    # warms up the interpreter and nsd so the first timed run is not the odd one out.
    recorder = RecordingResolver(config)
    try:
        run, results = await timed_cycle("recording cycle", config, recorder)
        check_cycle(run, results, workload)
    finally:
        await recorder.close()
    queries, concurrency = recorder.queries, recorder.concurrency
    timeout = config.dns.timeout
    measured = MtarepResults([], [], [], queries, recorder.answers, concurrency, timeout)
    port = config.dns.port
    for index in range(1, repeats + 1):
        resolver = make_resolver(config)  # fresh channel: c-ares' cache is cold
        try:
            cold, results = await timed_cycle(f"mtarep cold #{index}", config, resolver)
            check_cycle(cold, results, workload)
            warm, results = await timed_cycle(f"mtarep warm #{index}", config, resolver)
            check_cycle(warm, results, workload)
        finally:
            await resolver.close()
        measured.cold.append(cold)
        measured.warm.append(warm)
        # Interleaved, so a machine busy with something else slows both alike.
        measured.bare.append(
            measure_bare_pycares(f"bare pycares #{index}", queries, port, concurrency)
        )
    if profile:
        measured.profile = await profile_cycle(config, workload, profile)
    return measured


async def profile_cycle(config: Config, workload: Workload, top: int) -> str:
    """One more cold cycle under cProfile: the functions that take the time."""
    resolver = make_resolver(config)
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        run, results = await timed_cycle("profiled cold cycle", config, resolver)
        profiler.disable()
        check_cycle(run, results, workload)
    finally:
        await resolver.close()
    out = io.StringIO()
    print(f"{run.label}: {run.lookups} lookups in {run.seconds:.3f} s under cProfile", file=out)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# -- baseline, ceiling and reference ----------------------------------------------------

_QUERY_TYPES = {
    "A": pycares.QUERY_TYPE_A,
    "AAAA": pycares.QUERY_TYPE_AAAA,
    "PTR": pycares.QUERY_TYPE_PTR,
    "TXT": pycares.QUERY_TYPE_TXT,
}
_NO_RECORD = {pycares.errno.ARES_ENOTFOUND: "nxdomain", pycares.errno.ARES_ENODATA: "nodata"}


def measure_bare_pycares(label: str, queries: Sequence[Query], port: int, concurrency: int) -> Run:
    """The same queries through a bare pycares channel: no mtarep code, a counting callback.

    Driven by a plain selector loop, at most ``concurrency`` in flight (as mtarep's
    Resolver does), with a fresh channel (cold cache): the cost of c-ares itself.
    """
    selector = selectors.DefaultSelector()
    registered: set[int] = set()

    def socket_state(fd: int, readable: bool, writable: bool) -> None:
        events = (selectors.EVENT_READ if readable else 0) | (
            selectors.EVENT_WRITE if writable else 0
        )
        if fd in registered and events:
            selector.modify(fd, events)
        elif fd in registered:
            selector.unregister(fd)
            registered.discard(fd)
        elif events:
            selector.register(fd, events)
            registered.add(fd)

    channel = pycares.Channel(
        servers=[f"127.0.0.1:{port}"],
        timeout=2.0,
        tries=2,
        sock_state_cb=socket_state,
        flags=pycares.ARES_FLAG_NOSEARCH,
    )
    next_timeout = cast(Callable[[float], float], channel.timeout)  # untyped in pycares
    statuses: Counter[str] = Counter()
    in_flight = 0

    def answered(result: Any, error: int | None) -> None:
        nonlocal in_flight
        in_flight -= 1
        statuses["answer" if error is None else _NO_RECORD.get(error, "failed")] += 1

    bad = pycares.ARES_SOCKET_BAD
    sent, total = 0, len(queries)
    drops = udp_receive_drops()
    start = time.perf_counter()
    try:
        while statuses.total() < total:
            while in_flight < concurrency and sent < total:
                name, record_type = queries[sent]
                sent += 1
                in_flight += 1
                channel.query(name, _QUERY_TYPES[record_type], callback=answered)
            ready = selector.select(next_timeout(0.25))
            if not ready:
                channel.process_fd(bad, bad)
            for key, mask in ready:
                read_fd = key.fd if mask & selectors.EVENT_READ else bad
                channel.process_fd(read_fd, key.fd if mask & selectors.EVENT_WRITE else bad)
        seconds = time.perf_counter() - start
    finally:
        channel.close()
        selector.close()
    if statuses["failed"]:
        raise BenchmarkError(f"{label}: {statuses['failed']} lookups failed")
    return Run(label, total, seconds, statuses, drops=_drops_since(drops))


def measure_baseline(
    queries: Sequence[Query], answers: Sequence[Answer], port: int, sample: int, seed: int
) -> Run:
    """Sequential dnspython lookups (no cache) of a random sample of mtarep's queries."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.cache = None
    resolver.timeout = 2.0
    resolver.lifetime = 4.0
    chosen = random.Random(seed).sample(range(len(queries)), min(sample, len(queries)))
    outcomes: list[str] = []
    drops = udp_receive_drops()
    start = time.perf_counter()
    for index in chosen:
        name, record_type = queries[index]
        try:
            answer = resolver.resolve(name, record_type, raise_on_no_answer=False, search=False)
            outcomes.append("answer" if answer.rrset is not None else "nodata")
        except dns.resolver.NXDOMAIN:
            outcomes.append("nxdomain")
        except dns.exception.Timeout:
            outcomes.append("timeout")
        except dns.resolver.NoNameservers:
            outcomes.append("servfail")
    seconds = time.perf_counter() - start
    drops = _drops_since(drops)
    disagree = sum(
        outcome != answers[index].status for index, outcome in zip(chosen, outcomes, strict=True)
    )
    if disagree:
        raise BenchmarkError(f"baseline: {disagree} of {len(chosen)} answers differ from mtarep's")
    note = f"random sample of {len(chosen):,} of the cycle's {len(queries):,} queries"
    label = "baseline dnspython, sequential"
    return Run(label, len(chosen), seconds, Counter(outcomes), note, drops)


@dataclass(frozen=True)
class DnsperfSetting:
    clients: int
    threads: int
    outstanding: int

    @classmethod
    def parse(cls, text: str) -> DnsperfSetting:
        try:
            clients, threads, outstanding = (int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected CLIENTS,THREADS,QUERIES: {text!r}"
            ) from None
        return cls(clients, threads, outstanding)

    def argv(self) -> list[str]:
        return ["-c", str(self.clients), "-T", str(self.threads), "-q", str(self.outstanding)]


def _dnsperf_number(output: str, label: str) -> float:
    match = re.search(rf"{label}:\s+([\d.]+)", output)
    if match is None:
        raise BenchmarkError(f"dnsperf output has no {label!r}:\n{output}")
    return float(match.group(1))


def measure_dnsperf(binary: str, data: Path, port: int, setting: DnsperfSetting, runs: int) -> Run:
    argv = [binary, "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-n", str(runs)]
    argv += setting.argv()
    drops = udp_receive_drops()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    drops = _drops_since(drops)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise BenchmarkError(f"{' '.join(argv)} failed ({result.returncode}):\n{output}")
    completed = int(_dnsperf_number(output, "Queries completed"))
    lost = int(_dnsperf_number(output, "Queries lost"))
    rate = _dnsperf_number(output, "Queries per second")
    seconds = completed / rate if rate else 0.0
    flags = " ".join(argv[argv.index("-n") :])
    note = f"dnsperf {flags}" + (f", {lost} LOST" if lost else "")
    return Run("ceiling dnsperf", completed, seconds, Counter(lost=lost), note, drops)


# -- report -----------------------------------------------------------------------------


def _command_output(argv: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return (result.stdout + result.stderr).strip()


def machine_info(nsd: str, dnsperf: str) -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dnsperf_version = re.search(r"Version\s+(\S+)", _command_output([dnsperf, "-h"]))
    nsd_version = _command_output([nsd, "-v"]).splitlines()[0]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"machine   nproc {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), {cpu}, "
        f"{platform.system()} {platform.release()}, load average {load}",
        f"software  Python {platform.python_version()} ({platform.python_implementation()}), "
        f"pycares {pycares.__version__} (c-ares {pycares.ARES_VERSION}), "
        f"dnspython {dns.version.version}, {nsd_version}, "
        f"dnsperf {dnsperf_version.group(1) if dnsperf_version else '?'}",
    ]


def _row(
    label: str,
    lookups: int | str = "",
    seconds: float | str = "",
    rate: float | str = "",
    drops: int | str | None = "",
) -> str:
    def cell(value: float | str | None, spec: str) -> str:
        if value is None:
            return "n/a"
        return value if isinstance(value, str) else format(value, spec)

    return (
        f"{label:<44} {cell(lookups, ',d'):>9} {cell(seconds, '.3f'):>8} "
        f"{cell(rate, ',.0f'):>10} {cell(drops, ',d'):>10}"
    ).rstrip()


def _run_row(run: Run, suffix: str = "") -> str:
    return _row(run.label + suffix, run.lookups, run.seconds, run.rate, run.drops)


def _summary(label: str, runs: Sequence[Run]) -> tuple[float, list[str]]:
    rates = [run.rate for run in runs]
    median = statistics.median(rates)
    low, high = min(rates), max(rates)
    spread = (high - low) / median * 100 if median else 0.0
    detail = f"{'':4}(min {low:,.0f}, max {high:,.0f}: spread {spread:.0f}% of the median)"
    return median, [_row(f"{label}, median of {len(runs)}", rate=median), detail]


def report(
    workload: Workload,
    mtarep: MtarepResults,
    *,
    baseline: Run,
    dnsperf: Sequence[Run],
    info: Sequence[str],
    setup_seconds: float,
) -> tuple[str, bool]:
    cold, cold_lines = _summary("mtarep cold", mtarep.cold)
    warm, warm_lines = _summary("mtarep warm (TTL cache)", mtarep.warm)
    bare, bare_lines = _summary("bare pycares", mtarep.bare)
    ceiling = max(run.rate for run in dnsperf)
    types = Counter(record_type for _, record_type in mtarep.queries)
    statuses = Counter(answer.status for answer in mtarep.answers)
    met = cold >= TARGET_RATE
    ips = len(workload.ips)
    stalled = [run.label for run in mtarep.cold if run.drops]
    lines = [
        "mtarep DNS collection cycle benchmark (tests/bench/bench_dns_cycle.py)",
        *info,
        f"workload  {len(workload.hosts)} hosts x {ips // len(workload.hosts)} IPs = {ips:,} IPs, "
        f"{len(workload.zones)} DNSBL zones, {len(workload.listed):,} listings (ip, zone), "
        f"{len(workload.scores):,} Sender Scores; nsd on 127.0.0.1 (one server process, "
        f"{len(workload.zones) + 3} zones, started in {setup_seconds:.1f} s)",
        f"cycle     {len(mtarep.queries):,} queries: "
        + ", ".join(f"{kind} {n:,}" for kind, n in sorted(types.items()))
        + "; answers: "
        + ", ".join(f"{status} {n:,}" for status, n in sorted(statuses.items())),
        f"mtarep    collect() for every host, HELO check off, dns.concurrency "
        f"{mtarep.concurrency}, dns.timeout {mtarep.timeout:g} s; a fresh Resolver for each "
        "cold cycle, "
        "the warm cycle right after on the same one",
        "",
        _row("", "lookups", "seconds", "lookups/s", "UDP drops"),
        *(_run_row(run) for run in mtarep.cold),
        *cold_lines,
        *(_run_row(run, " (TTL cache)") for run in mtarep.warm),
        *warm_lines,
        _run_row(baseline),
        f"{'':4}({baseline.note})",
        *(line for run in dnsperf for line in (_run_row(run), f"{'':4}({run.note})")),
        *(_run_row(run) for run in mtarep.bare),
        *bare_lines,
        f"{'':4}(reference: the same queries through a bare pycares channel, same concurrency,"
        " a callback that only counts)",
        "",
        f"mtarep cold / baseline       {cold / baseline.rate:6.2f}x",
        f"mtarep cold / dnsperf best   {cold / ceiling:6.2f}x"
        f"   (warm / dnsperf best {warm / ceiling:.2f}x)",
        f"mtarep cold / bare pycares   {cold / bare:6.2f}x",
        f"target    cold median >= {TARGET_RATE:,} lookups/s: "
        + ("MET" if met else "NOT MET")
        + f" ({cold:,.0f})",
        f"checked   every cycle found exactly the {len(workload.listed):,} listings (codes and "
        "TXT reasons), every score, PTR and forward check; no lookup timed out or failed "
        "(after c-ares' own retries)",
    ]
    if stalled:
        lines.append(
            f"note      UDP answers were dropped during {', '.join(stalled)}: c-ares asks "
            f"those again only after dns.timeout, so such a cycle stalls ~{mtarep.timeout:g} s"
        )
    return "\n".join(lines), met


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_dns_cycle",
        description="Benchmark one mtarep DNS collection cycle against a local nsd.",
    )
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--ips-per-host", type=int, default=10)
    parser.add_argument("--zones", type=int, default=25, help="DNSBL zones")
    parser.add_argument(
        "--listed", type=float, default=0.03, help="fraction of the IPs listed on each zone"
    )
    parser.add_argument("--repeats", type=int, default=3, help="cold cycles (fresh resolver)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="dns.concurrency [the config default]"
    )
    parser.add_argument(
        "--baseline-sample", type=int, default=5000, help="queries timed for the baseline"
    )
    parser.add_argument(
        "--dnsperf",
        type=DnsperfSetting.parse,
        action="append",
        metavar="CLIENTS,THREADS,QUERIES",
        help="dnsperf -c/-T/-q (repeatable; the best rate is the ceiling) "
        f"[{' and '.join(DEFAULT_DNSPERF)}]",
    )
    parser.add_argument("--dnsperf-runs", type=int, default=2, help="dnsperf -n")
    parser.add_argument("--seed", type=int, default=5782)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile a cold cycle: top N"
    )
    parser.add_argument(
        "--require-target", action="store_true", help="exit 2 when the target is not met"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    nsd_binary = find_binary("nsd")
    dnsperf_binary = find_binary("dnsperf")
    if nsd_binary is None or dnsperf_binary is None:
        print("needs nsd and dnsperf: apt-get install nsd dnsperf", file=sys.stderr)
        return 1
    settings: list[DnsperfSetting] = args.dnsperf or [
        DnsperfSetting.parse(text) for text in DEFAULT_DNSPERF
    ]
    workload = build_workload(args.hosts, args.ips_per_host, args.zones, args.listed, args.seed)
    info = machine_info(nsd_binary, dnsperf_binary)
    try:
        with tempfile.TemporaryDirectory(prefix="mtarep-bench-") as tmp:
            base = Path(tmp)
            setup = time.perf_counter()
            with NsdServer(base / "nsd", zone_files(workload)) as nsd:
                setup_seconds = time.perf_counter() - setup
                config = write_config(base, workload, nsd.port, args.concurrency)
                mtarep = asyncio.run(measure_mtarep(config, workload, args.repeats, args.profile))
                baseline = measure_baseline(
                    mtarep.queries, mtarep.answers, nsd.port, args.baseline_sample, args.seed
                )
                data = base / "queries.txt"
                data.write_text("".join(f"{name} {kind}\n" for name, kind in mtarep.queries))
                dnsperf = [
                    measure_dnsperf(dnsperf_binary, data, nsd.port, setting, args.dnsperf_runs)
                    for setting in settings
                ]
    except BenchmarkError as error:
        print(f"BENCHMARK INVALID: {error}", file=sys.stderr)
        return 1
    text, met = report(
        workload, mtarep, baseline=baseline, dnsperf=dnsperf, info=info, setup_seconds=setup_seconds
    )
    print(text)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"bench wall time {time.perf_counter() - started:.1f} s (setup, nsd, every "
        f"measurement); load average now {load}"
    )
    if mtarep.profile:
        print("\n" + mtarep.profile)
    return 2 if args.require_target and not met else 0


if __name__ == "__main__":
    sys.exit(main())
