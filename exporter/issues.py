"""What counts as an issue, and what its detail says. No I/O here.

An issue is identified by (ip, kind, subject) (:class:`~exporter.store.IssueKey`).
:func:`current_issues` reads them off a snapshot; :func:`undetermined_issues` names
those whose check gave no trustworthy answer this cycle, which the cycle must
neither open nor clear. Every detail has the same common fields, so the ackservice
can show any issue:

- ``summary``: one line for people (``listed on zen.spamhaus.org: SBL``),
- ``severity``: ``warning`` or ``error`` (:mod:`exporter.severity`),
- ``removal_link``: where to ask for removal, ``{ip}`` filled in (or null),
- ``assistance_link``: the team's own runbook (or null),

and then the fields of its kind:

- ``rbl`` (subject: the zone): ``zone codes meaning reason lookup_ok since``;
- ``senderscore`` (``senderscore``): ``score band threshold``;
- ``dns`` (``ptr``, ``forward``, ``helo``): ``check detail``;
- ``snds`` (``filter``, ``traps``): ``day color complaint_rate complaint_rate_text
  trap_hits message_recipients activity_start activity_end`` (+ ``threshold`` for
  traps); (``blocked``): ``block_range block_reason``;
- ``reputation`` (the source's name): ``source rating value since``;
- ``provider`` (the provider): ``provider ip_named first_seen last_seen count line
  domain dsn relay status``.

Removal and assistance links are looked up by subject (zone, provider, source,
check), then by kind (``removal_links: {snds: ...}``); a zone's own
``removal_link`` comes first. SNDS issues also take the ``microsoft`` links.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.config import Config, RblSpec
from exporter.senderscore import band
from exporter.severity import issue_severity
from exporter.snapshot import MaillogState, Snapshot, TargetState
from exporter.store import IssueKey, IssueKind

__all__ = ["IssueDetail", "Undetermined", "current_issues", "undetermined_issues"]

IssueDetail = tuple[str, dict[str, Any]]
"""The host (FQDN) an issue belongs to, and its detail."""

_CHECK_NAMES = {
    "ptr": "the PTR record does not name the host",
    "forward": "the host name does not resolve to this IP",
    "helo": "the SMTP greeting does not name the host",
}


def _link(links: Mapping[str, str], names: tuple[str, ...], ip: str) -> str | None:
    for name in names:
        if name in links:
            return links[name].replace("{ip}", ip)
    return None


class _Builder:
    def __init__(self, config: Config, zone_specs: Mapping[str, RblSpec]) -> None:
        self.config = config
        self.zone_specs = zone_specs
        self.found: dict[IssueKey, IssueDetail] = {}

    def add(
        self,
        host: str,
        key: IssueKey,
        summary: str,
        fields: dict[str, Any],
        *,
        removal_link: str | None = None,
    ) -> None:
        names = (key.subject, key.kind, *(("microsoft",) if key.kind == "snds" else ()))
        removal = removal_link.replace("{ip}", key.ip) if removal_link else None
        self.found[key] = (
            host,
            {
                "summary": summary,
                "severity": issue_severity(key.kind, key.subject, self.config.thresholds),
                "removal_link": removal or _link(self.config.removal_links, names, key.ip),
                "assistance_link": _link(self.config.assistance_links, names, key.ip),
                **fields,
            },
        )

    def target(self, target: TargetState) -> None:
        host, ip = target.host, target.ip
        for zone, state in target.rbl.items():
            if not state.listed:
                continue
            spec = self.zone_specs.get(zone)
            meaning = f": {state.meaning}" if state.meaning else ""
            self.add(
                host,
                IssueKey(ip, "rbl", zone),
                f"listed on {zone}{meaning}",
                {
                    "zone": zone,
                    "codes": list(state.codes),
                    "meaning": state.meaning,
                    "reason": state.reason,
                    "lookup_ok": state.lookup_ok,
                    "since": state.since,
                },
                removal_link=spec.removal_link if spec else None,
            )
        threshold = self.config.thresholds.senderscore_below
        if target.senderscore is not None and target.senderscore < threshold:
            self.add(
                host,
                IssueKey(ip, "senderscore", "senderscore"),
                f"Sender Score {target.senderscore} is below {threshold}",
                {
                    "score": target.senderscore,
                    "band": band(target.senderscore),
                    "threshold": threshold,
                },
            )
        for check, check_state in target.checks.items():
            if check_state.ok is False:
                self.add(
                    host,
                    IssueKey(ip, "dns", check),
                    _CHECK_NAMES.get(check, f"the {check} check fails"),
                    {"check": check, "detail": check_state.detail},
                )
        self.snds(target)
        for source, rep in target.reputation.items():
            if rep.rating == "bad":
                self.add(
                    host,
                    IssueKey(ip, "reputation", source),
                    f"{source} rates the IP bad"
                    + (f" ({rep.value})" if rep.value.lower() != "bad" else ""),
                    {
                        "source": source,
                        "rating": rep.rating,
                        "value": rep.value,
                        "since": rep.since,
                    },
                )

    def snds(self, target: TargetState) -> None:
        state = target.snds
        if state is None:
            return
        host, ip = target.host, target.ip
        if state.blocked:
            self.add(
                host,
                IssueKey(ip, "snds", "blocked"),
                "Microsoft blocks the IP (SNDS IP status)",
                {"block_range": state.block_range, "block_reason": state.block_reason},
            )
        data = state.data
        if data is None:
            return
        fields = {
            "color": data.color,
            "complaint_rate": data.complaint_rate,
            "complaint_rate_text": data.complaint_rate_text,
            "trap_hits": data.trap_hits,
            "message_recipients": data.message_recipients,
            "activity_start": data.activity_start,
            "activity_end": data.activity_end,
        }
        if data.color in ("yellow", "red"):
            self.add(
                host,
                IssueKey(ip, "snds", "filter"),
                f"SNDS filter result {data.color}",
                fields,
            )
        traps = self.config.thresholds.snds_trap_hits
        if data.trap_hits >= traps:
            self.add(
                host,
                IssueKey(ip, "snds", "traps"),
                f"{data.trap_hits} SNDS trap hits (threshold {traps})",
                {**fields, "threshold": traps},
            )

    def maillog(self, host: str, state: MaillogState) -> None:
        for provider, by_ip in state.blocks.items():
            for ip, block in by_ip.items():
                if not block.blocked:
                    continue
                self.add(
                    host,
                    IssueKey(ip, "provider", provider),
                    f"{provider} rejects mail from {ip} ({block.count} times since first seen)",
                    block.model_dump(mode="json", exclude={"blocked", "ip"}),
                )


def current_issues(
    snapshot: Snapshot, config: Config, zone_specs: Mapping[str, RblSpec]
) -> dict[IssueKey, IssueDetail]:
    """Every issue ``snapshot`` shows (``zone_specs``: the configured zones by label)."""
    builder = _Builder(config, zone_specs)
    for target in snapshot.targets:
        builder.target(target)
    for host, state in snapshot.maillog.items():
        builder.maillog(host, state)
    if snapshot.snds.day is not None:
        for key, (host, detail) in list(builder.found.items()):
            if key.kind == "snds" and key.subject != "blocked":
                detail["day"] = snapshot.snds.day
                builder.found[key] = (host, detail)
    return builder.found


@dataclass(frozen=True)
class Undetermined:
    """The open issues a cycle must neither open nor clear: their check gave no answer."""

    keys: frozenset[IssueKey] = frozenset()
    subjects: frozenset[tuple[IssueKind, str]] = frozenset()
    """Every issue of this kind and subject, whatever its IP (a feed never read yet)."""
    host_kinds: frozenset[tuple[str, IssueKind]] = frozenset()
    """Every issue of this kind on this host (a log that could not be read)."""

    def covers(self, key: IssueKey, host: str) -> bool:
        return (
            key in self.keys
            or (key.kind, key.subject) in self.subjects
            or (host, key.kind) in self.host_kinds
        )


def undetermined_issues(snapshot: Snapshot, *, snds_on: bool = False) -> Undetermined:
    """What gave no trustworthy answer in the cycle that made ``snapshot``.

    SNDS (``snds_on``): a failed fetch keeps the last good data, whose issues stay; but
    until a feed has been read once (a new exporter with no snapshot, a new key)
    nothing is known, and its issues must not clear.
    """
    keys: set[IssueKey] = set()
    for target in snapshot.targets:
        ip = target.ip
        keys |= {IssueKey(ip, "rbl", zone) for zone, s in target.rbl.items() if not s.lookup_ok}
        keys |= {IssueKey(ip, "dns", check) for check, s in target.checks.items() if s.problem}
        if target.senderscore_problem:
            keys.add(IssueKey(ip, "senderscore", "senderscore"))
        keys |= {
            IssueKey(ip, "reputation", source)
            for source, rep in target.reputation.items()
            if not rep.lookup_ok
        }
    unread: set[tuple[str, IssueKind]] = {
        (host, "provider")
        for host, state in snapshot.maillog.items()
        if not (state.read_ok and state.caught_up)
    }
    subjects: set[tuple[IssueKind, str]] = set()
    if snds_on and snapshot.snds.data_fetched_at is None:
        subjects |= {("snds", "filter"), ("snds", "traps")}
    if snds_on and snapshot.snds.status_fetched_at is None:
        subjects.add(("snds", "blocked"))
    return Undetermined(frozenset(keys), frozenset(subjects), frozenset(unread))
