"""A real authoritative ``nsd`` on a free loopback port, serving test zones."""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.harness.binaries import require_binary
from tests.harness.ports import HOST, free_port
from tests.harness.process import (
    CommandFailedError,
    LoopbackServer,
    ManagedProcess,
    run_checked,
)
from tests.harness.wait import DEFAULT_TIMEOUT

NS_HOST = "ns.mtarep-test.invalid."
"""Out-of-zone name server of every generated zone (so it adds no name to the zone)."""


def _absolute(name: str) -> str:
    name = name.strip()
    return name if name.endswith(".") else name + "."


def zone_text(origin: str, records: list[str], ttl: int = 300, serial: int = 1) -> str:
    """The full text of a valid zone: $ORIGIN, $TTL, SOA, NS, then ``records`` as given.

    Records are zone-file lines relative to ``origin``, e.g. ``"2.0.0.127 IN A 127.0.0.2"``
    or ``'2.0.0.127 IN TXT "listed"'``.
    """
    origin = _absolute(origin)
    lines = [
        f"$ORIGIN {origin}",
        f"$TTL {ttl}",
        f"@ IN SOA {NS_HOST} hostmaster.mtarep-test.invalid. ( {serial} 3600 900 604800 {ttl} )",
        f"@ IN NS {NS_HOST}",
        *records,
    ]
    return "\n".join(lines) + "\n"


IPV6_HOST = "::1"


class NsdServer(LoopbackServer):
    """``nsd -d`` serving ``zones`` (zone name -> full zone file text) on 127.0.0.1.

    Zone files and config are checked with ``nsd-checkzone``/``nsd-checkconf`` before
    it starts (a :class:`CommandFailedError` carries their output). Readiness is a real
    UDP query for the SOA of the first zone. Rate limiting (RRL) is off.

    ``servfail_zones`` are configured as secondary zones whose primary (a port nobody
    listens on) never gives them: nsd answers SERVFAIL for every name in them.
    ``ipv6=True`` also serves on ``::1`` (same port; the caller checks ``::1`` exists).
    """

    def __init__(
        self,
        base_dir: Path,
        zones: Mapping[str, str],
        port: int | None = None,
        *,
        servfail_zones: Sequence[str] = (),
        ipv6: bool = False,
    ) -> None:
        if not zones:
            raise ValueError("NsdServer needs at least one zone")
        self.servfail_zones = tuple(_absolute(zone).lower() for zone in servfail_zones)
        self.ipv6 = ipv6
        self._nsd = require_binary("nsd", "nsd")
        self._checkconf = require_binary("nsd-checkconf", "nsd")
        self._checkzone = require_binary("nsd-checkzone", "nsd")
        self.base_dir = base_dir
        self._port = port if port is not None else free_port()
        self._zones = self._normalise(zones)
        self.zones_dir = base_dir / "zones"
        self.config_path = base_dir / "nsd.conf"
        self.log_path = base_dir / "nsd.log"
        self._process = ManagedProcess(
            "nsd",
            [self._nsd, "-d", "-c", str(self.config_path)],
            base_dir / "nsd.stderr.log",
            extra_logs=[self.log_path],
            cwd=base_dir,
        )

    @staticmethod
    def _normalise(zones: Mapping[str, str]) -> dict[str, str]:
        result: dict[str, str] = {}
        for name, text in zones.items():
            key = _absolute(name).lower()
            if key in result:
                raise ValueError(f"zone {name!r} given twice")
            result[key] = text
        return result

    @property
    def zones(self) -> dict[str, str]:
        return dict(self._zones)

    def _zone_file(self, zone: str) -> Path:
        return self.zones_dir / f"{zone.rstrip('.') or 'root'}.zone"

    def _write_and_check(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.zones_dir.mkdir(exist_ok=True)
        (self.base_dir / "xfr").mkdir(exist_ok=True)
        for old in self.zones_dir.glob("*.zone"):
            old.unlink()
        for zone, text in self._zones.items():
            path = self._zone_file(zone)
            path.write_text(text)
            run_checked([self._checkzone, zone, str(path)], f"nsd-checkzone of zone {zone}")
        self.config_path.write_text(self._config())
        run_checked([self._checkconf, str(self.config_path)], "nsd-checkconf")

    def _config(self) -> str:
        base = self.base_dir
        lines = [
            "server:",
            f"    ip-address: {HOST}@{self._port}",
            *([f"    ip-address: {IPV6_HOST}@{self._port}"] if self.ipv6 else []),
            f"    port: {self._port}",
            f"    do-ip6: {'yes' if self.ipv6 else 'no'}",
            '    username: ""',
            '    chroot: ""',
            f'    zonesdir: "{self.zones_dir}"',
            f'    pidfile: "{base / "nsd.pid"}"',
            f'    logfile: "{self.log_path}"',
            '    database: ""',
            f'    xfrdfile: "{base / "xfrd.state"}"',
            f'    xfrdir: "{base / "xfr"}"',
            f'    zonelistfile: "{base / "zone.list"}"',
            "    server-count: 1",
            "    verbosity: 1",
            "    rrl-ratelimit: 0",
            "    rrl-whitelist-ratelimit: 0",
            "remote-control:",
            "    control-enable: no",
        ]
        for zone in self._zones:
            lines += ["zone:", f"    name: {zone}", f'    zonefile: "{self._zone_file(zone)}"']
        if self.servfail_zones:
            dead_primary = f"{HOST}@{free_port()}"  # nothing listens there: never loaded
            for zone in self.servfail_zones:
                lines += [
                    "zone:",
                    f"    name: {zone}",
                    f"    request-xfr: {dead_primary} NOKEY",
                    f"    allow-notify: {HOST} NOKEY",
                ]
        return "\n".join(lines) + "\n"

    def _soa_answered(self, zone: str) -> Callable[[], bool]:
        # nsd drops a query that arrives while it is still starting, so each probe waits
        # only briefly; the wait grows (50 ms .. 0.5 s) in case the machine is just slow.
        attempts = 0

        def probe() -> bool:
            nonlocal attempts
            attempts += 1
            query = dns.message.make_query(zone, dns.rdatatype.SOA)
            wait = min(0.05 * attempts, 0.5)
            response = dns.query.udp(query, HOST, port=self._port, timeout=wait)
            return response.rcode() == dns.rcode.NOERROR and any(
                rrset.rdtype == dns.rdatatype.SOA for rrset in response.answer
            )

        return probe

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Check zones and config, start nsd, wait until it answers the first zone's SOA."""
        self._write_and_check()
        first_zone = next(iter(self._zones))
        self._launch(
            self._soa_answered(first_zone),
            f"nsd on {HOST}:{self._port} (SOA of {first_zone})",
            timeout,
            ignore=(OSError, dns.exception.Timeout),
        )

    def replace_zones(self, zones: Mapping[str, str], timeout: float = DEFAULT_TIMEOUT) -> None:
        """Serve ``zones`` instead: rewrite the zone files and restart on the same port."""
        new = self._normalise(zones)
        if not new:
            raise ValueError("NsdServer needs at least one zone")
        self._process.stop()
        self._zones = new
        self.start(timeout=timeout)


class NsdFactory(Protocol):
    """Type of the ``nsd_factory`` fixture: starts an :class:`NsdServer` for the given zones."""

    def __call__(
        self, zones: Mapping[str, str], *, servfail_zones: Sequence[str] = (), ipv6: bool = False
    ) -> NsdServer: ...


__all__ = ["IPV6_HOST", "NS_HOST", "CommandFailedError", "NsdFactory", "NsdServer", "zone_text"]
