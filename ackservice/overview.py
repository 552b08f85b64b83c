"""The fleet at a glance: one row per (host, ip), built from the store. No I/O here.

Input is what the exporter stored: every host's latest results
(``Store.all_host_results()``: per IP a :class:`~exporter.snapshot.TargetState`, per
host a :class:`~exporter.snapshot.MaillogState`) and the open issues with their
acknowledgements. Output is :class:`Row` objects whose cells the page renders and
whose :meth:`Row.legacy_fields` the JSON API serves with the old tool's conventions.

Rules:

- Every open issue shows up: an issue whose (host, ip) has no stored results gets a
  row of its own (its other cells unknown), so nothing the exporter opened is hidden.
- Unknown is never good: a check that gave no trustworthy answer shows ``unknown``
  (tone ``unknown``, the reason as the title); a value kept from an earlier cycle
  while this one failed is shown with that said. "No score" (Sender Score has none)
  and "no data" (SNDS knows nothing of the IP, no source configured) are facts, as
  in the old tool, not failures.
- A row is as bad as its worst open issue (:func:`exporter.severity.row_severity`);
  a row without issues but with unknown cells is ``unknown``, not ``ok``.
- Stored results that do not parse make that host's cells unknown (logged), never
  the page fail.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from exporter.config import Config
from exporter.logs import event
from exporter.severity import Severity, issue_severity, row_severity
from exporter.snapshot import MaillogState, TargetState
from exporter.store import IssueRecord

__all__ = [
    "COLUMNS",
    "STALE_AFTER_INTERVALS",
    "Cell",
    "Item",
    "Overview",
    "Row",
    "Tone",
    "build_overview",
    "issue_severity_of",
]

_LOG = logging.getLogger("mtarep.ackservice.overview")

STALE_AFTER_INTERVALS = 3
"""Host results older than this many exporter intervals are stale (the page warns)."""

Tone = Literal["ok", "neutral", "unknown", "warning", "error"]
Status = Literal["ok", "unknown", "warning", "error"]
STATUS_ORDER: dict[Status, int] = {"ok": 0, "unknown": 1, "warning": 2, "error": 3}

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("status", "Status", "number"),
    ("host", "Public DNS hostname", "text"),
    ("ip", "IP", "text"),
    ("dns", "Matched DNS", "number"),
    ("senderscore", "Sender Score", "number"),
    ("snds_filter", "SNDS filter", "number"),
    ("snds_traps", "SNDS traps", "number"),
    ("reputation", "Reputation", "number"),
    ("provider", "Provider blocks", "number"),
    ("rbl", "RBL listings", "number"),
)
"""(key, heading, how the page's script sorts it) of every column, in order."""

DNS_CHECKS = ("ptr", "forward", "helo")
_RATING_TONES: dict[str, Tone] = {"good": "ok", "neutral": "neutral", "bad": "error"}
_NO_RESULTS = "the exporter has stored no results for this IP"


def issue_severity_of(record: IssueRecord, config: Config) -> Severity:
    """The severity the exporter stored, or the rules' when the detail has none."""
    stored = record.detail.get("severity")
    if stored in ("warning", "error"):
        return "warning" if stored == "warning" else "error"
    return issue_severity(record.key.kind, record.key.subject, config.thresholds)


_MARKS: dict[Tone, str] = {"error": "✗", "warning": "!", "unknown": "?", "ok": "", "neutral": ""}


@dataclass(frozen=True)
class Item:
    """One value in a cell; with ``issue`` it links to the issue's page."""

    text: str
    tone: Tone
    title: str = ""
    """Said on hover: the reason for an unknown, the detail of a value."""
    issue: IssueRecord | None = None

    @property
    def mark(self) -> str:
        """A sign that says the tone without colour (``✗`` error, ``!`` warning, ``?``)."""
        return _MARKS[self.tone]


@dataclass(frozen=True)
class Cell:
    items: tuple[Item, ...]
    sort: float | str
    """What the page's script sorts the column by."""

    @property
    def unknown(self) -> bool:
        return any(item.tone == "unknown" for item in self.items)


def _cell(items: Iterable[Item], sort: float | str) -> Cell:
    return Cell(tuple(items), sort)


def _unknown(reason: str) -> Item:
    return Item("unknown", "unknown", reason)


@dataclass
class Row:
    """One monitored (host, ip), with its stored state and open issues."""

    host: str
    ip: str
    config: Config
    alias: str = ""
    updated_at: float | None = None
    stale: bool = False
    target: TargetState | None = None
    stored: dict[str, Any] | None = None
    """The per-IP state exactly as stored (what the API returns as ``state``)."""
    maillog: MaillogState | None = None
    maillog_known: bool = False
    """Whether the host's results said anything about its maillog (False: unreadable)."""
    unreadable: str = ""
    """Why the stored results of the host could not be read ("" when they could)."""
    issues: list[IssueRecord] = field(default_factory=list)
    _values: dict[str, Cell] | None = field(default=None, repr=False, compare=False)

    # -- what the row is ---------------------------------------------------------------

    @property
    def anchor(self) -> str:
        """An HTML id for the row (host and ip, with ``:`` and ``.`` made ``-``)."""
        return "row-" + "".join(c if c.isalnum() else "-" for c in f"{self.host}-{self.ip}")

    def severity(self) -> Severity:
        return row_severity(issue_severity_of(record, self.config) for record in self.issues)

    def status(self) -> Status:
        return self._status(self.value_cells())

    def _status(self, value_cells: Mapping[str, Cell]) -> Status:
        severity = self.severity()
        if severity != "ok":
            return severity
        if self.stale or any(cell.unknown for cell in value_cells.values()):
            return "unknown"
        return "ok"

    def _issue(self, kind: str, subject: str) -> IssueRecord | None:
        return next(
            (r for r in self.issues if r.key.kind == kind and r.key.subject == subject), None
        )

    def _issues_of(self, kind: str) -> list[IssueRecord]:
        return [r for r in self.issues if r.key.kind == kind]

    def _issue_item(self, text: str, record: IssueRecord) -> Item:
        return Item(
            text,
            issue_severity_of(record, self.config),
            str(record.detail.get("summary", "")),
            record,
        )

    @property
    def _no_target_reason(self) -> str:
        return self.unreadable or _NO_RESULTS

    # -- cells ---------------------------------------------------------------------------

    def value_cells(self) -> dict[str, Cell]:
        """Every column but the status, by column key (made once: rows are built first)."""
        if self._values is None:
            self._values = self._make_value_cells()
        return self._values

    def _make_value_cells(self) -> dict[str, Cell]:
        return {
            "host": _cell([Item(self.host, "neutral", self.alias)], self.host),
            "ip": _cell([Item(self.ip, "neutral")], _ip_sort_key(self.ip)),
            "dns": self.dns_cell(),
            "senderscore": self.senderscore_cell(),
            "snds_filter": self.snds_filter_cell(),
            "snds_traps": self.snds_traps_cell(),
            "reputation": self.reputation_cell(),
            "provider": self.provider_cell(),
            "rbl": self.rbl_cell(),
        }

    def cells(self) -> dict[str, Cell]:
        """Every column, by column key (in :data:`COLUMNS` order)."""
        values = self.value_cells()
        status = self._status(values)
        title = {
            "ok": "no open issue",
            "unknown": "some values are unknown: hover over the grey ones for why",
            "warning": "the worst open issue is a warning",
            "error": "the worst open issue is an error",
        }[status]
        items = [Item(status, "unknown" if status == "unknown" else status, title)]
        if self.stale:
            items.append(Item("stale", "unknown", "these results are older than 3 intervals"))
        return {"status": _cell(items, STATUS_ORDER[status]), **values}

    def dns_cell(self) -> Cell:
        target = self.target
        items: list[Item] = []
        failing = unknown = 0
        for check in DNS_CHECKS:
            record = self._issue("dns", check)
            state = target.checks.get(check) if target else None
            if record is not None:
                items.append(self._issue_item(check, record))
                failing += 1
            elif state is None:
                continue
            elif state.ok is None:
                items.append(Item(check, "unknown", state.problem or "not checked yet"))
                unknown += 1
            elif state.problem:
                last = "passed" if state.ok else "failed"
                items.append(
                    Item(check, "unknown", f"{last} last time; this cycle: {state.problem}")
                )
                unknown += 1
            elif state.ok:
                items.append(Item(check, "ok", state.detail))
            else:
                items.append(Item(check, "error", state.detail))
                failing += 1
        if not items:
            items.append(_unknown(self._no_target_reason if target is None else "no DNS check yet"))
            unknown += 1
        return _cell(items, failing * 10 + unknown)

    def senderscore_cell(self) -> Cell:
        record = self._issue("senderscore", "senderscore")
        target = self.target
        if record is not None:
            score = record.detail.get("score", target.senderscore if target else "?")
            return _cell([self._issue_item(str(score), record)], _number(score, -2))
        if target is None:
            return _cell([_unknown(self._no_target_reason)], -3)
        score, problem = target.senderscore, target.senderscore_problem
        if score is None and problem:
            return _cell([_unknown(problem)], -3)
        if score is None:
            return _cell([Item("no score", "neutral", "Sender Score has no score for it")], -1)
        if problem:
            return _cell([Item(str(score), "unknown", f"last score; this cycle: {problem}")], score)
        return _cell([Item(str(score), "ok")], score)

    def snds_filter_cell(self) -> Cell:
        blocked = self._issue("snds", "blocked")
        record = self._issue("snds", "filter")
        items: list[Item] = []
        if blocked is not None:
            items.append(self._issue_item("blocked", blocked))
        target = self.target
        snds = target.snds if target else None
        if record is not None:
            items.append(self._issue_item(str(record.detail.get("color", "?")), record))
            sort = 2 if record.detail.get("color") == "red" else 1
        elif target is None:
            items.append(_unknown(self._no_target_reason))
            sort = -2
        elif snds is None or snds.data is None:
            why = "SNDS is off or not fetched yet" if snds is None else "SNDS has no data for it"
            items.append(Item("no data", "neutral", why))
            sort = -1
        else:
            items.append(Item(snds.data.color, "ok", snds.data.complaint_rate_text))
            sort = {"green": 0, "yellow": 1, "red": 2}[snds.data.color]
        return _cell(items, 3 if blocked is not None else sort)

    def snds_traps_cell(self) -> Cell:
        record = self._issue("snds", "traps")
        if record is not None:
            hits = record.detail.get("trap_hits", "?")
            return _cell([self._issue_item(str(hits), record)], _number(hits, -1))
        target = self.target
        if target is None:
            return _cell([_unknown(self._no_target_reason)], -2)
        data = target.snds.data if target.snds else None
        if data is None:
            return _cell([Item("no data", "neutral", "SNDS has no data for it")], -1)
        return _cell([Item(str(data.trap_hits), "ok")], data.trap_hits)

    def _reputation_sources(self) -> list[str]:
        names = [source.name for source in self.config.reputation]
        if self.target:
            names += [name for name in self.target.reputation if name not in names]
        names += [
            r.key.subject for r in self._issues_of("reputation") if r.key.subject not in names
        ]
        return names

    def reputation_cell(self) -> Cell:
        names = self._reputation_sources()
        if not names:
            return _cell([Item("no data", "neutral", "no reputation source is configured")], -1)
        items: list[Item] = []
        worst = -1
        for name in names:
            record = self._issue("reputation", name)
            state = self.target.reputation.get(name) if self.target else None
            if record is not None:
                rating = record.detail.get("rating", "bad")
                items.append(self._issue_item(f"{name}: {rating}", record))
                worst = max(worst, 2)
            elif self.target is None:
                items.append(Item(f"{name}: unknown", "unknown", self._no_target_reason))
            elif state is None or state.rating is None:
                why = state.problem if state and state.problem else "no rating yet"
                items.append(Item(f"{name}: unknown", "unknown", why))
            elif not state.lookup_ok:
                why = f"last rating; this cycle: {state.problem or 'no answer'}"
                items.append(Item(f"{name}: {state.rating}", "unknown", why))
            else:
                tone = _RATING_TONES[state.rating]
                items.append(Item(f"{name}: {state.rating}", tone, state.value))
                worst = max(worst, {"good": 0, "neutral": 1, "bad": 2}[state.rating])
        return _cell(items, worst)

    def provider_cell(self) -> Cell:
        records = self._issues_of("provider")
        items = [self._issue_item(r.key.subject, r) for r in records]
        log = self.maillog
        if log is not None and not log.read_ok:
            items.append(_unknown(f"the maillog was not read: {log.problem or 'no reason given'}"))
        elif not records:
            if log is None and not self.maillog_known:
                items.append(_unknown(self._no_target_reason))
            elif log is None:
                items.append(Item("no data", "neutral", "this host's maillog is not read"))
            else:
                items.append(Item("no blocks", "ok"))
        return _cell(items, len(records))

    def rbl_cell(self) -> Cell:
        target = self.target
        items: list[Item] = []
        listed = 0
        shown: set[str] = set()
        for record in self._issues_of("rbl"):
            shown.add(record.key.subject)
            item = self._issue_item(record.key.subject, record)
            state = target.rbl.get(record.key.subject) if target else None
            if state is not None and not state.lookup_ok and state.problem:
                item = Item(
                    item.text, item.tone, f"{item.title} (this cycle: {state.problem})", item.issue
                )
            items.append(item)
            listed += 10 if item.tone == "error" else 1
        if target is None:
            if not items:
                items.append(_unknown(self._no_target_reason))
            return _cell(items, listed)
        unknown = []
        for zone, state in sorted(target.rbl.items()):
            if zone in shown:
                continue
            if state.listed:
                items.append(Item(zone, "warning", state.meaning or "listed"))
                listed += 1
            elif state.listed is None or not state.lookup_ok:
                unknown.append(f"{zone}: {state.problem or 'no answer yet'}")
        if unknown:
            items.append(Item(f"{len(unknown)} unknown", "unknown", "; ".join(unknown)))
        if not items:
            if target.rbl:
                items.append(Item("unlisted", "ok"))
            else:
                items.append(_unknown("no blocklist has answered yet"))
        return _cell(items, listed)

    # -- the old tool's API fields -----------------------------------------------------------

    def legacy_fields(self) -> dict[str, Any]:
        """``hostname dns senderscore sndscolor sndstraps brightmail provblocks listings``
        with the old tool's value conventions (``no score``, ``no data``, ``no blocks``,
        ``unlisted``); ``unknown`` (or ``dns: null``) where mtarep has no trustworthy answer."""
        return {
            "hostname": self.host,
            "dns": self._legacy_dns(),
            "senderscore": self._legacy_score(),
            "sndscolor": self._legacy_snds_color(),
            "sndstraps": self._legacy_traps(),
            "brightmail": self._legacy_reputation(),
            "provblocks": self._legacy_blocks(),
            "listings": self._legacy_listings(),
        }

    def _legacy_dns(self) -> bool | None:
        if self._issues_of("dns"):
            return False
        if self.target is None:
            return None
        states = [self.target.checks.get(check) for check in DNS_CHECKS]
        known = [s for s in states if s is not None]
        if any(s.ok is False for s in known):
            return False
        if known and all(s.ok is True and not s.problem for s in known):
            return True
        return None

    def _legacy_score(self) -> int | str:
        record = self._issue("senderscore", "senderscore")
        if record is not None and isinstance(record.detail.get("score"), int):
            return int(record.detail["score"])
        if self.target is None:
            return "unknown"
        if self.target.senderscore is not None:
            return self.target.senderscore
        return "unknown" if self.target.senderscore_problem else "no score"

    def _snds_data(self) -> Any:
        return self.target.snds.data if self.target and self.target.snds else None

    def _legacy_snds_color(self) -> str:
        record = self._issue("snds", "filter")
        if record is not None:
            return str(record.detail.get("color", "unknown"))
        if self.target is None:
            return "unknown"
        data = self._snds_data()
        return str(data.color) if data is not None else "no data"

    def _legacy_traps(self) -> int | str:
        record = self._issue("snds", "traps")
        if record is not None and isinstance(record.detail.get("trap_hits"), int):
            return int(record.detail["trap_hits"])
        if self.target is None:
            return "unknown"
        data = self._snds_data()
        return int(data.trap_hits) if data is not None else "no data"

    def _legacy_reputation(self) -> str:
        names = self._reputation_sources()
        if not names:
            return "no data"
        first = names[0]
        if self._issue("reputation", first) is not None:
            return "bad"
        state = self.target.reputation.get(first) if self.target else None
        if state is None or state.rating is None:
            return "unknown"
        return state.rating

    def _legacy_blocks(self) -> str:
        providers = [r.key.subject for r in self._issues_of("provider")]
        if providers:
            return ",".join(providers)
        if self.maillog is None:
            return "no data" if self.maillog_known else "unknown"
        return "no blocks" if self.maillog.read_ok else "unknown"

    def _legacy_listings(self) -> str:
        zones = [r.key.subject for r in self._issues_of("rbl")]
        if self.target is not None:
            zones += [z for z, s in sorted(self.target.rbl.items()) if s.listed and z not in zones]
        if zones:
            return ",".join(zones)
        if self.target is None or not self.target.rbl:
            return "unknown"
        if any(s.listed is None or not s.lookup_ok for s in self.target.rbl.values()):
            return "unknown"
        return "unlisted"


def _number(value: object, default: float) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def _ip_sort_key(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"9-{ip}"
    return f"{address.version}-{address.packed.hex()}"


@dataclass(frozen=True)
class Overview:
    rows: tuple[Row, ...]
    newest_update: float | None
    """When the most recently updated host's results were written."""
    stale_hosts: tuple[str, ...]
    unreadable_hosts: tuple[str, ...]


def _results_of(document: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    results = document.get("results")
    if not isinstance(results, dict):
        return {}, "the stored results have no 'results' object"
    return results, ""


def build_overview(
    host_documents: Mapping[str, Mapping[str, Any]],
    issues: Sequence[IssueRecord],
    config: Config,
    now: float,
) -> Overview:
    """Rows for every stored (host, ip) and every open issue, sorted by host then IP."""
    rows: dict[tuple[str, str], Row] = {}
    stale_hosts: list[str] = []
    unreadable: list[str] = []
    newest: float | None = None
    stale_after = STALE_AFTER_INTERVALS * config.interval
    for host, document in sorted(host_documents.items()):
        updated = document.get("updated_at")
        updated_at = float(updated) if isinstance(updated, int | float) else None
        stale = updated_at is None or now - updated_at > stale_after
        if updated_at is not None:
            newest = updated_at if newest is None else max(newest, updated_at)
        if stale:
            stale_hosts.append(host)
        results, problem = _results_of(document)
        maillog: MaillogState | None = None
        maillog_known = "maillog" in results
        try:
            if results.get("maillog") is not None:
                maillog = MaillogState.model_validate(results["maillog"])
        except ValidationError as error:
            problem = (
                problem or f"the stored maillog state does not parse ({error.error_count()} errors)"
            )
            maillog_known = False
        ips = results.get("ips")
        if not isinstance(ips, dict):
            ips = {}
            problem = problem or "the stored results have no 'ips' object"
        for ip, raw in ips.items():
            target: TargetState | None = None
            try:
                target = TargetState.model_validate(raw)
            except ValidationError as error:
                problem = (
                    problem or f"the stored results do not parse ({error.error_count()} errors)"
                )
            rows[(host, str(ip))] = Row(
                host=host,
                ip=str(ip),
                config=config,
                alias=str(results.get("alias") or ""),
                updated_at=updated_at,
                stale=stale,
                target=target,
                stored=raw if target is not None and isinstance(raw, dict) else None,
                maillog=maillog,
                maillog_known=maillog_known,
                unreadable=problem,
            )
        if problem:
            unreadable.append(host)
            event(_LOG, "host_results.unreadable", logging.WARNING, host=host, problem=problem)
    for record in issues:
        row = rows.get((record.host, record.key.ip))
        if row is None:
            sibling = next((r for (h, _), r in rows.items() if h == record.host), None)
            row = rows[(record.host, record.key.ip)] = Row(
                host=record.host,
                ip=record.key.ip,
                config=config,
                alias=sibling.alias if sibling else "",
                updated_at=sibling.updated_at if sibling else None,
                stale=sibling.stale if sibling else False,
                maillog=sibling.maillog if sibling else None,
                maillog_known=sibling.maillog_known if sibling else False,
            )
        row.issues.append(record)
    ordered = sorted(rows.values(), key=lambda r: (r.host, _ip_sort_key(r.ip)))
    return Overview(tuple(ordered), newest, tuple(stale_hosts), tuple(unreadable))
