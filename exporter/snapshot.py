"""The result of a collection cycle: what ``/metrics`` renders and what is kept in Redis.

A :class:`Snapshot` is built once per cycle and never changed afterwards; the scrape
only reads the latest one. It round-trips through JSON so an exporter that restarts
serves the last cycle's metrics at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAILFLOW_STATUSES",
    "OTHER_DOMAIN",
    "SOURCES",
    "CheckState",
    "Color",
    "DeliveryStatus",
    "MailflowState",
    "MaillogState",
    "ProviderBlock",
    "Rating",
    "RblState",
    "ReputationState",
    "Snapshot",
    "SndsData",
    "SndsFeed",
    "SndsState",
    "SourceReport",
    "SourceState",
    "TargetState",
    "ZoneState",
]

SOURCES: tuple[str, ...] = (
    "hosts",
    "rbl",
    "senderscore",
    "fcrdns",
    "helo",
    "snds",
    "reputation",
    "maillog",
    "mailflow",
    "store",
)
"""Every source this exporter reports on (``mtarep_collection_*{source}``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RblState(_Frozen):
    """One IP on one zone: the last trustworthy verdict and this cycle's lookup."""

    listed: bool | None = None
    """Last trustworthy verdict; None until the zone has given one."""
    lookup_ok: bool = False
    """Whether this cycle's lookup gave a trustworthy verdict."""
    codes: tuple[str, ...] = ()
    meaning: str = ""
    reason: str = ""
    """The zone's TXT text for a listing."""
    problem: str = ""
    """Why this cycle's lookup gave no verdict."""
    since: float | None = None
    """When ``listed`` last changed (or was first known)."""


class CheckState(_Frozen):
    ok: bool | None = None
    """Last known pass/fail; None until the check has passed or failed once."""
    detail: str = ""
    """What the last pass or fail found."""
    problem: str = ""
    """Why this cycle's check gave no result (empty when it did)."""


Color = Literal["green", "yellow", "red"]
"""SNDS filter result: spam verdict on <=10% (green), 10-90% (yellow), >90% (red)."""
Rating = Literal["good", "neutral", "bad"]
DeliveryStatus = Literal["sent", "deferred", "bounced", "expired"]
MAILFLOW_STATUSES: tuple[str, ...] = ("sent", "bounced", "expired", "fbl")
OTHER_DOMAIN = "other"
"""The domain label of every recipient domain not shown on its own."""


class SndsData(_Frozen):
    """One IP's row of the SNDS data feed (rows of one IP on one day are summed)."""

    activity_start: float
    """Unix seconds; SNDS gives ``M/D/YYYY h:mm AM/PM`` without a zone: read as UTC."""
    activity_end: float
    rcpt_commands: int
    data_commands: int
    message_recipients: int
    color: Color
    complaint_rate: float | None
    """A ratio 0-1 (``< 0.1%`` is 0.001); None when SNDS gives none."""
    complaint_rate_text: str
    """As SNDS wrote it (``< 0.1%``)."""
    trap_start: float | None
    trap_end: float | None
    trap_hits: int
    sample_helo: str
    sample_mail_from: str
    comments: str


class SndsState(_Frozen):
    """What Microsoft SNDS says about one IP."""

    data: SndsData | None = None
    """The IP's activity on ``SndsFeed.day``; None: SNDS has no data for it (not green)."""
    blocked: bool | None = None
    """IP status: True when a blocked range holds the IP; None until the status is known."""
    block_range: str = ""
    """``firstIP-lastIP`` of the blocked range."""
    block_reason: str = ""


class SndsFeed(_Frozen):
    """The SNDS feed as a whole (one fetch serves every IP)."""

    key_id: str = ""
    """Which key the feed was fetched with (a hash, never the key): another key starts
    afresh."""
    day: str | None = None
    """``YYYY-MM-DD`` of the activity in the last good data (SNDS gives yesterday's)."""
    data_fetched_at: float | None = None
    """When the data feed was last fetched and read without error."""
    status_fetched_at: float | None = None
    data_tried_at: float | None = None
    """When the data feed was last asked for, whatever came of it (what the next
    fetch waits on: at most one a ``snds.refresh``)."""
    status_tried_at: float | None = None
    rows: int = 0
    """Rows in the last good data."""
    data_rows_skipped: int = 0
    """Rows of the last good data that did not parse."""
    status_rows_skipped: int = 0
    """Rows of the last good IP status that did not parse."""


class ReputationState(_Frozen):
    """One IP on one HTTP reputation source."""

    rating: Rating | None = None
    """The last trustworthy rating; None until the source has given one."""
    value: str = ""
    """The raw value the source gave for it."""
    lookup_ok: bool = False
    problem: str = ""
    """Why this cycle gave no rating."""
    since: float | None = None
    """When ``rating`` last changed (or was first known)."""


class TargetState(_Frozen):
    """One monitored (host, ip)."""

    host: str
    ip: str
    ssh_host: str
    senderscore: int | None = None
    senderscore_problem: str = ""
    rbl: dict[str, RblState] = Field(default_factory=dict)
    checks: dict[str, CheckState] = Field(default_factory=dict)
    snds: SndsState | None = None
    """None while SNDS is off or has not been fetched."""
    reputation: dict[str, ReputationState] = Field(default_factory=dict)

    @property
    def listings(self) -> list[str]:
        return [zone for zone, state in self.rbl.items() if state.listed]


class ProviderBlock(_Frozen):
    """The newest rejection of one host's mail, from one IP, matching a provider's pattern."""

    provider: str
    ip: str
    """The blocked sending IP: named in the reply, else the host's primary IP."""
    ip_named: bool
    """Whether the reply named ``ip`` (False: the host's primary IP was assumed)."""
    first_seen: float
    """When the first matching line of this run of blocks was logged."""
    last_seen: float
    """When the newest matching line was logged."""
    count: int
    """Matching lines since ``first_seen``."""
    line: str
    """The newest matching line, as logged (control characters dropped, length bounded)."""
    domain: str
    """Recipient domain of that line ("" when it names none)."""
    dsn: str
    relay: str
    status: str
    """``deferred``, ``bounced``, ... or ``reply`` for a ``host X said:`` line."""
    blocked: bool
    """Whether ``last_seen`` is within ``block_window`` of the cycle that made the snapshot."""


class MaillogState(_Frozen):
    """One host's Postfix log: where reading stopped, what it counted, what blocks it saw."""

    file_id: str = ""
    """Identity (``device:inode``) of the file read last; "" before the first read."""
    offset: int = 0
    """Bytes of that file consumed (up to the last complete line)."""
    read_ok: bool = False
    """Whether this cycle's read worked."""
    caught_up: bool = True
    """Whether this cycle's read reached the end of the log (False: a backlog is left for
    the next cycles, so a block may still be in what was not read)."""
    problem: str = ""
    read_at: float | None = None
    """When the log was last read without error."""
    bytes_read_total: int = 0
    lines_skipped_total: int = 0
    """Lines that were not Postfix lines mtarep reads, or did not parse."""
    deliveries: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Recipient domain (a ``graph_domains`` entry or ``other``) -> status -> count."""
    blocks: dict[str, dict[str, ProviderBlock]] = Field(default_factory=dict)
    """Provider -> blocked IP -> the newest matching rejection."""


class MailflowState(_Frozen):
    """Today's counters that other tools HINCRBY into ``{prefix}:{YYYYMMDD}:{status}``."""

    day: str = ""
    """``YYYYMMDD`` of the counters, in the configured time zone."""
    counts: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    """Prefix -> domain -> status (sent, bounced, expired, fbl) -> count."""
    skipped: int = 0
    """Fields of today's hashes that were skipped (not a count, or not a domain name)."""


class ZoneState(_Frozen):
    healthy: bool
    problem: str = ""


class SourceState(_Frozen):
    success: bool = False
    duration_seconds: float = 0.0
    last_success: float | None = None
    errors_total: int = 0
    error: str = ""
    """What went wrong in the last cycle (a summary; the log has every failure)."""


@dataclass
class SourceReport:
    """What one source did this cycle."""

    duration: float = 0.0
    errors: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.errors += 1
        if len(self.problems) < 5:  # a summary; every failure is logged
            self.problems.append(problem)

    def state(self, previous: SourceState | None, now: float) -> SourceState:
        ok = self.errors == 0
        before = previous or SourceState()
        return SourceState(
            success=ok,
            duration_seconds=self.duration,
            last_success=now if ok else before.last_success,
            errors_total=before.errors_total + self.errors,
            error="; ".join(self.problems) + (" ..." if self.errors > len(self.problems) else ""),
        )


class Snapshot(_Frozen):
    taken_at: float | None = None
    """When the cycle that made it finished (None: no cycle yet)."""
    targets: tuple[TargetState, ...] = ()
    zones: dict[str, ZoneState] = Field(default_factory=dict)
    sources: dict[str, SourceState] = Field(default_factory=dict)
    dns_lookups: dict[str, int] = Field(default_factory=dict)
    """Lookups by result since the exporter first ran (a counter)."""
    snds: SndsFeed = SndsFeed()
    maillog: dict[str, MaillogState] = Field(default_factory=dict)
    """Host FQDN -> its log (hosts with a ``maillog_path`` only)."""
    mailflow: MailflowState = MailflowState()

    def target(self, host: str, ip: str) -> TargetState | None:
        return next((t for t in self.targets if t.host == host and t.ip == ip), None)
