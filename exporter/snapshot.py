"""The result of a collection cycle: what ``/metrics`` renders and what is kept in Redis.

A :class:`Snapshot` is built once per cycle and never changed afterwards; the scrape
only reads the latest one. It round-trips through JSON so an exporter that restarts
serves the last cycle's metrics at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SOURCES",
    "CheckState",
    "RblState",
    "Snapshot",
    "SourceReport",
    "SourceState",
    "TargetState",
    "ZoneState",
]

SOURCES: tuple[str, ...] = ("hosts", "rbl", "senderscore", "fcrdns", "helo", "store")
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


class TargetState(_Frozen):
    """One monitored (host, ip)."""

    host: str
    ip: str
    ssh_host: str
    senderscore: int | None = None
    senderscore_problem: str = ""
    rbl: dict[str, RblState] = Field(default_factory=dict)
    checks: dict[str, CheckState] = Field(default_factory=dict)

    @property
    def listings(self) -> list[str]:
        return [zone for zone, state in self.rbl.items() if state.listed]


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

    def target(self, host: str, ip: str) -> TargetState | None:
        return next((t for t in self.targets if t.host == host and t.ip == ip), None)
