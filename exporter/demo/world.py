"""The demo world: three MTAs, their DNS, blocklists, SNDS, reputation and mail. No I/O.

Everything here is made up and lives on this machine: the names are under
``demo.mtarep.test`` (``.test`` is reserved, RFC 2606), the IPs are documentation
addresses (192.0.2.0/24, 2001:db8::/32) that nothing ever connects to: the demo
only asks its own DNS server about them, and the HELO check is off.

- ``mta1`` (192.0.2.11, 2001:db8::11): clean DNS, Sender Score 91, SNDS green,
  good reputation, but Gmail rate-limits it (421-4.7.28 in its log).
- ``mta2`` (192.0.2.12): listed on ``bl.demo.mtarep.test`` (with a TXT reason),
  SNDS red with 23 trap hits, Yahoo defers it ([TSS04]).
- ``mta3`` (192.0.2.13): its PTR names another host, Sender Score 58, rated bad,
  SNDS yellow and blocked (IP status), Microsoft rejects it (S3150).

Two more blocklists show what mtarep does with lists it cannot trust:
``refusing.demo.mtarep.test`` answers Spamhaus' "public resolver" refusal code
(127.255.255.254) to everything, ``dead.demo.mtarep.test`` lists everything (as
AHBL did after it died). Both fail the RFC 5782 self-test and list nobody.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exporter.dnsbl import reverse_name, reverse_names

__all__ = [
    "DEMO_DOMAIN",
    "HOSTS",
    "LISTING_ZONE",
    "SNDS_KEY",
    "DemoHost",
    "MailMaker",
    "dns_records",
    "dns_zones",
    "reputation_of",
    "snds_data",
    "snds_status",
    "wildcards",
]

DEMO_DOMAIN = "demo.mtarep.test"
LISTING_ZONE = f"bl.{DEMO_DOMAIN}"
REFUSING_ZONE = f"refusing.{DEMO_DOMAIN}"
DEAD_ZONE = f"dead.{DEMO_DOMAIN}"
RBL_ZONES = (LISTING_ZONE, REFUSING_ZONE, DEAD_ZONE)
SENDERSCORE_ZONE = "score.senderscore.com"
SNDS_KEY = "demo-snds-key-0000"
GRAPH_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "aol.com")
MAILFLOW_PREFIX = "demo"


@dataclass(frozen=True)
class DemoHost:
    alias: str
    ips: tuple[str, ...]
    ptr: str
    """What the PTR of its first IP names (another name: a PTR mismatch)."""
    senderscore: int
    reputation: str
    snds_color: str
    snds_traps: int
    snds_blocked: bool
    listed: bool
    blocking_provider: str

    @property
    def fqdn(self) -> str:
        return f"{self.alias}.{DEMO_DOMAIN}"


HOSTS = (
    DemoHost("mta1", ("192.0.2.11", "2001:db8::11"), f"mta1.{DEMO_DOMAIN}", 91, "good",
             "GREEN", 0, False, False, "gmail"),
    DemoHost("mta2", ("192.0.2.12",), f"mta2.{DEMO_DOMAIN}", 74, "neutral",
             "RED", 23, False, True, "yahoo"),
    DemoHost("mta3", ("192.0.2.13",), "static-13.broadband.example.net", 58, "bad",
             "YELLOW", 4, True, False, "microsoft"),
)  # fmt: skip

LISTING_TXT = (
    "Demo listing: spam trap hits from this IP, see https://bl.demo.mtarep.test/lookup?ip={ip}"
)


def dns_zones() -> tuple[str, ...]:
    """Every zone the demo DNS server is authoritative for."""
    return (DEMO_DOMAIN, SENDERSCORE_ZONE, "2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa")


def dns_records() -> dict[tuple[str, str], list[str]]:
    """(name, type) -> record values (names lower-case, no final dot)."""
    records: dict[tuple[str, str], list[str]] = {}

    def add(name: str, kind: str, value: str) -> None:
        records.setdefault((name.lower().rstrip("."), kind), []).append(value)

    for zone in dns_zones():  # negative answers are cached for the SOA minimum: 5s
        add(zone, "SOA", f"ns.{DEMO_DOMAIN}. hostmaster.{DEMO_DOMAIN}. 1 3600 600 86400 5")
    for host in HOSTS:
        for index, ip in enumerate(host.ips):
            family = "AAAA" if ":" in ip else "A"
            add(host.fqdn, family, ip)
            ptr = host.ptr if index == 0 else host.fqdn
            add(reverse_names(ip)[1], "PTR", ptr + ".")
        v4 = [ip for ip in host.ips if ":" not in ip]
        for ip in v4:
            add(f"{reverse_name(ip)}.{SENDERSCORE_ZONE}", "A", f"127.0.4.{host.senderscore}")
            if host.listed:
                add(f"{reverse_name(ip)}.{LISTING_ZONE}", "A", "127.0.0.2")
                add(f"{reverse_name(ip)}.{LISTING_ZONE}", "TXT", f'"{LISTING_TXT.format(ip=ip)}"')
    # RFC 5782 test entry of the healthy list (127.0.0.2 listed, 127.0.0.1 not).
    add(f"2.0.0.127.{LISTING_ZONE}", "A", "127.0.0.2")
    add(f"2.0.0.127.{LISTING_ZONE}", "TXT", '"RFC 5782 test entry"')
    return records


def wildcards() -> dict[str, str]:
    """Zones that answer every A question with one address."""
    return {REFUSING_ZONE: "127.255.255.254", DEAD_ZONE: "127.0.0.2"}


def _snds_date(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d} " + (
        "AM" if moment.hour < 12 else "PM"
    )


def snds_data(now: datetime) -> str:
    """SNDS' data feed for yesterday (UTC), as Microsoft writes it: 14 fields, CRLF."""
    day = (now.astimezone(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0)
    rows = []
    for host in HOSTS:
        for ip in host.ips:
            if ":" in ip:
                continue
            recipients = 4800 if host.snds_color == "GREEN" else 900
            rate = {"GREEN": "< 0.1%", "YELLOW": "0.4%", "RED": "2.5%"}[host.snds_color]
            traps = (
                f"{_snds_date(day + timedelta(hours=2))},{_snds_date(day + timedelta(hours=21))}"
                if host.snds_traps
                else ","
            )
            rows.append(
                f"{ip},{_snds_date(day)},{_snds_date(day + timedelta(hours=23))},{recipients},"
                f"{recipients},{recipients},{host.snds_color},{rate},{traps},{host.snds_traps},"
                f"{host.fqdn},bounce@{DEMO_DOMAIN},"
            )
    return "\r\n".join(rows) + "\r\n"


def snds_status() -> str:
    """SNDS' IP status feed: the blocked ranges."""
    return "".join(
        f"{host.ips[0]},{host.ips[0]},Yes,Blocked due to user complaints or other evidence "
        "of spamming\r\n"
        for host in HOSTS
        if host.snds_blocked
    )


def reputation_of(ip: str) -> str | None:
    """The demo reputation source's rating of ``ip`` (None: it knows nothing of it)."""
    return next((host.reputation for host in HOSTS if ip in host.ips), None)


_PROVIDER_REPLIES = {
    "gmail": (
        "gmail.com",
        "gmail-smtp-in.l.google.com[142.250.102.27]",
        "4.7.28",
        "deferred",
        "421-4.7.28 [{ip} 15] Our system has detected an unusual rate of 421-4.7.28 "
        "unsolicited mail originating from your IP address. To protect our users from spam, "
        "mail sent from your IP address has been temporarily rate limited. (in reply to end "
        "of DATA command)",
    ),
    "yahoo": (
        "yahoo.com",
        "mta6.am0.yahoodns.net[67.195.204.74]",
        "4.7.0",
        "deferred",
        "421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected volume "
        "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in "
        "reply to MAIL FROM command)",
    ),
    "microsoft": (
        "outlook.com",
        "outlook-com.olc.protection.outlook.com[52.101.40.29]",
        "5.7.1",
        "bounced",
        "550 5.7.1 Unfortunately, messages from [{ip}] weren't sent. Please contact your "
        "Internet service provider since part of their network is on our block list (S3150). "
        "(in reply to MAIL FROM command)",
    ),
}


class MailMaker:
    """Realistic Postfix lines (classic syslog stamps, UTC) for the demo hosts."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - made-up mail, not a secret
        self._deferred: dict[str, list[str]] = {host.alias: [] for host in HOSTS}
        self._count = 0

    def _qid(self) -> str:
        return f"{self._random.getrandbits(40):010X}"

    def lines(self, host: DemoHost, at: datetime, messages: int) -> Iterator[str]:
        """About ``messages`` messages' worth of log lines of ``host`` at ``at``."""
        stamp = f"{at.astimezone(UTC):%b %e %H:%M:%S} {host.alias}"
        rng = self._random
        for _ in range(messages):
            self._count += 1
            qid = self._qid()
            pid = rng.randint(2000, 30000)
            domain = rng.choice((*GRAPH_DOMAINS, "example.org", "mail.example.net"))
            client = f"app{self._count % 7}.internal.example[10.1.0.{self._count % 200 + 1}]"
            yield f"{stamp} postfix/smtpd[{pid}]: {qid}: client={client}"
            yield f"{stamp} postfix/cleanup[{pid + 1}]: {qid}: message-id=<{qid}@{DEMO_DOMAIN}>"
            yield (
                f"{stamp} postfix/qmgr[1234]: {qid}: from=<bounce@{DEMO_DOMAIN}>, "
                f"size={rng.randint(3000, 60000)}, nrcpt=1 (queue active)"
            )
            head = f"{stamp} postfix/smtp[{pid + 2}]: {qid}: to=<user{self._count}@"
            roll = rng.random()
            if roll < 0.12:
                domain, relay, dsn, status, reply = _PROVIDER_REPLIES[host.blocking_provider]
                line = (
                    f"{head}{domain}>, relay={relay}:25, delay=1.2, delays=0.1/0/0.5/0.6, "
                    f"dsn={dsn}, status={status} (host {relay} said: "
                    f"{reply.format(ip=host.ips[0])})"
                )
                yield line
                if status == "deferred":
                    self._deferred[host.alias].append(qid)
                    continue
            elif roll < 0.16:
                yield (
                    f"{head}{domain}>, relay=mx.{domain}[198.51.100.25]:25, delay=0.4, "
                    "delays=0.1/0/0.1/0.2, dsn=5.1.1, status=bounced (host "
                    f"mx.{domain}[198.51.100.25] said: 550 5.1.1 <user{self._count}@{domain}>: "
                    "Recipient address rejected: User unknown (in reply to RCPT TO command))"
                )
            else:
                yield (
                    f"{head}{domain}>, relay=mx.{domain}[198.51.100.25]:25, delay=0.3, "
                    f"delays=0.1/0/0.1/0.1, dsn=2.0.0, status=sent (250 2.0.0 OK {qid})"
                )
            yield f"{stamp} postfix/qmgr[1234]: {qid}: removed"
        waiting = self._deferred[host.alias]
        if len(waiting) > 3:  # the oldest deferral gives up: an expiry
            qid = waiting.pop(0)
            yield (
                f"{stamp} postfix/qmgr[1234]: {qid}: from=<bounce@{DEMO_DOMAIN}>, "
                "status=expired, returned to sender"
            )
