"""Forward-confirmed reverse DNS: does the IP's PTR name the host, and the host the IP?

No I/O here: the DNS source looks the names up, these functions judge the answers.
``ok`` is None when a lookup failed, so the check's state is unknown, never a pass
or a fail.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from exporter.config_types import dns_name_key
from exporter.remote_text import printable
from exporter.resolver import Answer

__all__ = ["CheckVerdict", "forward_check", "ptr_check", "same_name"]


@dataclass(frozen=True)
class CheckVerdict:
    ok: bool | None
    detail: str


def same_name(left: str, right: str) -> bool:
    """DNS names are equal ignoring case and a trailing dot."""
    return dns_name_key(left) == dns_name_key(right)


def ptr_check(fqdn: str, answer: Answer) -> CheckVerdict:
    """The PTR of the IP names ``fqdn``."""
    if answer.empty:
        return CheckVerdict(False, "the IP has no PTR record")
    if not answer.trustworthy:
        return CheckVerdict(None, f"PTR lookup failed: {answer.describe}")
    if any(same_name(name, fqdn) for name in answer.records):
        return CheckVerdict(True, f"PTR names {fqdn}")
    names = printable(", ".join(answer.records))  # remote text
    return CheckVerdict(False, f"PTR names {names}, expected {fqdn}")


def forward_check(fqdn: str, ip: str, answer: Answer) -> CheckVerdict:
    """``fqdn`` resolves to ``ip`` (``answer``: its A lookup for IPv4, AAAA for IPv6)."""
    if answer.empty:
        kind = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
        return CheckVerdict(False, f"{fqdn} has no {kind} record")
    if not answer.trustworthy:
        return CheckVerdict(None, f"lookup of {fqdn} failed: {answer.describe}")
    # Most answers spell the address as ``ip`` does; parse only when they do not.
    wanted = ipaddress.ip_address(ip)
    if ip in answer.records or any(
        ipaddress.ip_address(address) == wanted for address in answer.records
    ):
        return CheckVerdict(True, f"{fqdn} resolves to {ip}")
    return CheckVerdict(False, f"{fqdn} resolves to {answer.describe}, not {ip}")
