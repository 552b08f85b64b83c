"""What the pages and the API share: issue addresses, reading the fleet, acknowledging.

Issue pages live at ``/issues/{ip}/{kind}/{subject}`` with every part
percent-encoded (an IPv6 address keeps its ``:`` encoded as ``%3A``; both spellings
work). Acknowledging stores who, when and the note through the store, which refuses
an issue that is not open; the silence and the metrics follow at once.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from ackservice.csrf import CsrfGuard
from ackservice.overview import Overview, build_overview, issue_severity_of
from ackservice.refresher import Refresher
from ackservice.silences import Silencer, SilenceState
from exporter.config import Config
from exporter.remote_text import printable
from exporter.store import (
    ISSUE_KINDS,
    IssueKey,
    IssueKind,
    IssueNotOpen,
    IssueRecord,
    Store,
    StoreError,
)

__all__ = [
    "MAX_NOTE_CHARS",
    "AckService",
    "BadNote",
    "clean_note",
    "format_time",
    "issue_key_from_path",
    "issue_path",
    "issue_url",
    "parse_target",
    "public_url",
]

MAX_NOTE_CHARS = 1000


class BadNote(ValueError):
    """A note that cannot be stored as given."""


def clean_note(note: object) -> str:
    """The note as stored: control characters dropped, at most :data:`MAX_NOTE_CHARS`."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise BadNote("the note must be text")
    cleaned = printable(note, limit=MAX_NOTE_CHARS + 1).strip()
    if len(cleaned) > MAX_NOTE_CHARS:
        raise BadNote(f"the note is too long (at most {MAX_NOTE_CHARS} characters)")
    return cleaned


def issue_path(key: IssueKey) -> str:
    """``/issues/{ip}/{kind}/{subject}``, each part percent-encoded."""
    return "/issues/" + "/".join(quote(part, safe="") for part in (key.ip, key.kind, key.subject))


def issue_key_from_path(ip: str, kind: str, subject: str) -> IssueKey:
    """The issue a path names; ``ValueError`` (with the reason) when it names none."""
    if kind not in ISSUE_KINDS:
        raise ValueError(f"unknown kind {kind!r} (one of {', '.join(sorted(ISSUE_KINDS))})")
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"{ip!r} is not an IP address") from None
    return IssueKey(ip, cast(IssueKind, kind), subject)


def parse_target(ip_or_host: str) -> str | None:
    """The normalised IP when ``ip_or_host`` is one, else None (a host name)."""
    try:
        return str(ipaddress.ip_address(ip_or_host))
    except ValueError:
        return None


def public_url(config: Config) -> str:
    """How people reach this service (``ackservice.url``, else its listen address)."""
    configured = config.ackservice.url
    return (configured or f"http://{config.ackservice.listen}").rstrip("/")


def issue_url(config: Config, key: IssueKey) -> str:
    """The issue's page as an absolute URL (for silences and alerts)."""
    return public_url(config) + issue_path(key)


def format_time(timestamp: float | None) -> str:
    """``2024-05-01 03:12:45 UTC`` (pages and notes speak UTC: one clock for a team)."""
    if timestamp is None:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class AckSavedUnread(Exception):
    """The acknowledgement was stored; reading the issue back (to show it) failed."""


@dataclass
class AckService:
    store: Store
    config: Config
    csrf: CsrfGuard
    refresher: Refresher
    silencer: Silencer | None
    clock: Callable[[], float] = time.time

    def issue_url(self, key: IssueKey) -> str:
        return issue_url(self.config, key)

    async def overview(self, host: str | None = None) -> Overview:
        """Every host's rows, or only ``host``'s (a lower-case FQDN)."""
        if host is None:
            documents = await self.store.all_host_results()
            issues = await self.store.open_issues()
        else:
            document = await self.store.host_results(host)
            documents = {} if document is None else {host: document}
            issues = await self.store.open_issues(host=host)
        return build_overview(documents, issues, self.config, self.clock())

    def silence_of(self, key: IssueKey) -> SilenceState | None:
        return self.silencer.states.get(key.id) if self.silencer is not None else None

    async def acknowledge(
        self, key: IssueKey, user: str, note: str
    ) -> tuple[IssueRecord, SilenceState | None]:
        """Store the ack (raises ``IssueNotOpen``/``StoreError``), then silence the alerts.

        :class:`AckSavedUnread`: the ack was stored, but the issue could not be read back.
        """
        await self.store.acknowledge(key, user, note)
        try:
            record = await self.store.issue(key)
        except StoreError as error:
            self.refresher.poke()
            raise AckSavedUnread(str(error)) from error
        silence = None
        if record is not None and record.ack is not None and self.silencer is not None:
            silence = await self.silencer.sync_issue(key, record)
        self.refresher.poke()
        if record is None:  # cleared in between: the ack ended with it
            raise IssueNotOpen(f"issue {key} cleared while it was acknowledged")
        return record, silence

    async def withdraw(self, key: IssueKey, user: str) -> bool:
        """Remove the ack (raises ``StoreError``); expire the silence. True when there was one."""
        removed = await self.store.unacknowledge(key, user)
        if self.silencer is not None:
            await self.silencer.sync_issue(key, None)
        self.refresher.poke()
        return removed

    def issue_json(self, record: IssueRecord) -> dict[str, Any]:
        """An open issue for the API: what, where, since when, its detail and its ack."""
        key = record.key
        ack = record.ack
        silence = self.silence_of(key)
        return {
            "id": key.id,
            "url": issue_path(key),
            "host": record.host,
            "ip": key.ip,
            "kind": key.kind,
            "subject": key.subject,
            "severity": issue_severity_of(record, self.config),
            "summary": str(record.detail.get("summary", "")),
            "first_seen": record.first_seen,
            "last_seen": record.last_seen,
            "detail": record.detail,
            "ack": None if ack is None else {"user": ack.user, "at": ack.at, "note": ack.note},
            "silence": None
            if silence is None
            else {"id": silence.silence_id, "ends_at": silence.ends_at, "error": silence.error},
        }
