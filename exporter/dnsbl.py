"""What a DNSBL answer means: listed, not listed, or unknown (../shared/REFERENCE.md).

No I/O here: the DNS source asks, this module judges. The rules:

- NXDOMAIN or an empty answer: not listed.
- A records all in 127.0.0.0/8: listed, unless one of them is a known code that is
  not a listing (:data:`NOT_LISTINGS`: Spamhaus' refusal codes, Validity's "query
  blocked", DBL's "IP queries not supported", 127.0.0.1): then unknown, and why.
- An address outside 127/8 (a hijacked or parked zone), a timeout, SERVFAIL,
  REFUSED or any other failure: unknown.

A zone passes the RFC 5782 self-test when it lists 127.0.0.2 and does not list
127.0.0.1; a zone that fails it (a dead list answering "listed" for everything,
a zone that refuses us) gives no verdict that cycle.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from exporter.resolver import Answer

__all__ = [
    "LISTED_TEST_IP",
    "LOOPBACK",
    "NOT_LISTED_TEST_IP",
    "NOT_LISTINGS",
    "SPAMHAUS_ZEN_CODES",
    "RblVerdict",
    "State",
    "ZoneHealth",
    "classify",
    "code_meanings",
    "query_name",
    "reverse_name",
    "reverse_names",
    "self_test",
    "zone_label",
]

State = Literal["listed", "not_listed", "unknown"]

LISTED_TEST_IP: Final = "127.0.0.2"
NOT_LISTED_TEST_IP: Final = "127.0.0.1"

NOT_LISTINGS: Final[Mapping[str, str]] = {
    "127.255.255.252": "Spamhaus: the query used a mistyped DNSBL name",
    "127.255.255.254": "Spamhaus: query refused because it came through a public or open "
    "resolver; use your own recursive resolver",
    "127.255.255.255": "query refused: too many queries (Spamhaus) or query blocked (Validity)",
    "127.0.1.255": "Spamhaus DBL: a domain list, it does not answer IP queries",
    "127.0.0.1": "127.0.0.1 is not a listing (some lists answer it for 'no match')",
}
"""Answers in 127/8 that never mean "listed"."""

SPAMHAUS_ZEN_CODES: Final[Mapping[str, str]] = {
    "127.0.0.2": "SBL: Spamhaus Block List (spam sources and operations)",
    "127.0.0.3": "CSS: Spamhaus snowshoe/low-reputation sending",
    "127.0.0.4": "XBL: exploited or infected host",
    "127.0.0.9": "DROP: hijacked or rogue network",
    "127.0.0.10": "PBL (ISP): dynamic/end-user range that should not send directly",
    "127.0.0.11": "PBL (Spamhaus): range that should not send directly",
    "127.0.0.30": "BCL: botnet command and control",
}

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
"""Where DNSBL (and Sender Score) answers live."""


def _is_spamhaus_zen(zone: str) -> bool:
    zone = zone.lower().rstrip(".")
    return zone == "zen.spamhaus.org" or zone.endswith(".zen.dq.spamhaus.net")


_DQS_ZONE = re.compile(r"[^.]+\.([a-z0-9-]+\.dq\.spamhaus\.net)\.?", re.IGNORECASE)


def zone_label(zone: str) -> str:
    """How a zone is named outside the query: a Spamhaus DQS key is left out.

    ``KEY.zen.dq.spamhaus.net`` carries the customer's secret key; labels, logs,
    issue ids and pages name it ``zen.dq.spamhaus.net``.
    """
    match = _DQS_ZONE.fullmatch(zone)
    return match.group(1).lower() if match else zone


def code_meanings(zone: str, configured: Mapping[str, str]) -> dict[str, str]:
    """Return code -> meaning for ``zone``: built-in (Spamhaus ZEN), then the configured."""
    meanings = dict(SPAMHAUS_ZEN_CODES) if _is_spamhaus_zen(zone) else {}
    meanings.update(configured)
    return meanings


def reverse_names(ip: str) -> tuple[str, str]:
    """``ip`` reversed for DNSBL queries (octets, or 32 nibbles for IPv6) and its PTR name."""
    pointer = ipaddress.ip_address(ip).reverse_pointer  # ...in-addr.arpa / ...ip6.arpa
    return pointer.rsplit(".", 2)[0], pointer + "."


def reverse_name(ip: str) -> str:
    """The DNSBL form of ``ip``: reversed octets, or all 32 nibbles reversed for IPv6."""
    return reverse_names(ip)[0]


def query_name(reversed_ip: str, zone: str) -> str:
    """``<reversed ip>.<zone>`` (``reversed_ip`` from :func:`reverse_name`)."""
    return f"{reversed_ip}.{zone.rstrip('.')}"


@dataclass(frozen=True)
class RblVerdict:
    """One zone's answer for one IP, judged."""

    state: State
    codes: tuple[str, ...] = ()
    meaning: str = ""
    problem: str = ""
    """Why the verdict is unknown (empty otherwise)."""


_NOT_LISTED = RblVerdict("not_listed")


def classify(answer: Answer, meanings: Mapping[str, str]) -> RblVerdict:
    """Judge a DNSBL A answer; ``meanings`` names the listing codes (see ``code_meanings``)."""
    if answer.empty:
        return _NOT_LISTED
    if not answer.trustworthy:
        return RblVerdict("unknown", problem=f"lookup failed: {answer.describe}")
    codes = tuple(sorted(set(answer.records), key=_address_key))
    outside = [code for code in codes if not _in_loopback(code)]
    if outside:
        return RblVerdict(
            "unknown",
            codes,
            problem=f"answer outside 127.0.0.0/8 ({', '.join(outside)}): the zone is broken "
            "or hijacked",
        )
    refusals = [f"{code} ({NOT_LISTINGS[code]})" for code in codes if code in NOT_LISTINGS]
    if refusals:
        return RblVerdict("unknown", codes, problem="not a listing: " + "; ".join(refusals))
    meaning = "; ".join(meanings.get(code, f"listed ({code})") for code in codes)
    return RblVerdict("listed", codes, meaning)


def _in_loopback(address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address) in LOOPBACK
    except ValueError:
        return False


def _address_key(address: str) -> tuple[int, str]:
    try:
        return int(ipaddress.ip_address(address)), address
    except ValueError:
        return -1, address


@dataclass(frozen=True)
class ZoneHealth:
    healthy: bool
    problem: str = ""


def self_test(zone: str, listed_probe: Answer, clean_probe: Answer) -> ZoneHealth:
    """Judge the zone by its answers for 127.0.0.2 (must be listed) and 127.0.0.1 (must not)."""
    must_list = classify(listed_probe, {})
    if must_list.state != "listed":
        why = must_list.problem or "it does not list it"
        return ZoneHealth(False, f"{zone} fails the self-test for {LISTED_TEST_IP}: {why}")
    must_not = classify(clean_probe, {})
    if must_not.state == "not_listed":
        return ZoneHealth(True)
    if must_not.state == "listed":
        why = f"it lists it ({', '.join(must_not.codes)}): the list answers for everything"
    else:
        why = must_not.problem
    return ZoneHealth(False, f"{zone} fails the self-test for {NOT_LISTED_TEST_IP}: {why}")
