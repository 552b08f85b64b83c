"""How bad an issue is: the old tool's colouring rules, with configurable thresholds.

The exporter stores each issue's severity in its detail when it opens it; the
ackservice colours rows with :func:`row_severity` and prints :func:`rules` on
``/help``. The rules, with the defaults of ``thresholds:`` in mtarep.yml:

- **error**: a listing on a zone of ``thresholds.error_rbls`` (Spamhaus, SpamCop,
  Barracuda),
  a provider block, a bad HTTP reputation, a failing DNS check (PTR, forward, HELO),
  an IP that SNDS says Microsoft blocks;
- **warning**: a listing on any other zone, a Sender Score below
  ``thresholds.senderscore_below`` (70), an SNDS filter result of yellow or red,
  SNDS trap hits at or above ``thresholds.snds_trap_hits`` (10).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from exporter.config import Thresholds, zone_reason
from exporter.store import IssueKind

__all__ = ["SEVERITY_ORDER", "Severity", "issue_severity", "row_severity", "rules"]

Severity = Literal["ok", "warning", "error"]
SEVERITY_ORDER: dict[Severity, int] = {"ok": 0, "warning": 1, "error": 2}

SNDS_SUBJECTS = ("filter", "traps", "blocked")
"""Subjects of ``snds`` issues: the filter colour, trap hits, Microsoft's IP block."""


def issue_severity(kind: IssueKind, subject: str, thresholds: Thresholds) -> Severity:
    """The severity of an open issue of ``kind`` about ``subject``."""
    if kind == "rbl":
        listed_on = dict.fromkeys(thresholds.error_rbls, "")
        return "error" if zone_reason(subject, listed_on) is not None else "warning"
    if kind == "snds":
        return "error" if subject == "blocked" else "warning"
    if kind == "senderscore":
        return "warning"
    return "error"  # provider, reputation, dns


def row_severity(severities: Iterable[Severity]) -> Severity:
    """A row is as bad as its worst issue."""
    return max(severities, key=SEVERITY_ORDER.__getitem__, default="ok")


def rules(thresholds: Thresholds) -> list[tuple[Severity, str]]:
    """The rules in words, for people (``/help``)."""
    zones = ", ".join(thresholds.error_rbls)
    return [
        ("error", f"listed on {zones} (or a zone below one of them)"),
        ("error", "blocked by a mailbox provider within the block window"),
        ("error", "rated bad by an HTTP reputation source"),
        ("error", "a failing DNS check: PTR, forward (A/AAAA) or HELO does not match"),
        ("error", "Microsoft SNDS lists the IP as blocked"),
        ("warning", "listed on any other blocklist"),
        ("warning", f"Sender Score below {thresholds.senderscore_below}"),
        ("warning", "SNDS filter result yellow or red"),
        ("warning", f"SNDS trap hits of {thresholds.snds_trap_hits} or more"),
    ]
