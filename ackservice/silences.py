"""Alertmanager silences for acknowledged issues (``ackservice.alertmanager_url``).

While an issue is acknowledged, one silence mutes exactly that issue's alerts. Its
matchers follow the alert label contract: ``kind`` and ``subject``, and ``ip``, or
``host`` for a ``provider`` issue (provider alerts are per host). ``createdBy`` is
the user who acknowledged it; the comment is the note, the issue's page and a marker
``[mtarep-issue {id}]``. mtarep finds its silences again by that marker, so no
silence id is stored anywhere and any replica can take over.

A silence lasts :data:`SILENCE_HOURS` and is extended (:data:`EXTEND_BELOW_HOURS`
before it would end) for as long as the acknowledgement stands; a silence whose issue
is no longer acknowledged (withdrawn, or the issue cleared and its ack ended with
it) is expired. Alertmanager being away never costs an acknowledgement: the failure
is shown on the issue's page and the next sync tries again.

Calls go through ``requests`` in a worker thread with a timeout, one at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from exporter.logs import event
from exporter.store import IssueKey, IssueRecord

__all__ = [
    "EXTEND_BELOW_HOURS",
    "MARKER",
    "SILENCE_HOURS",
    "AlertmanagerError",
    "SilenceState",
    "Silencer",
    "matchers_for",
]

_LOG = logging.getLogger("mtarep.ackservice.silences")

SILENCE_HOURS = 24.0
EXTEND_BELOW_HOURS = 12.0
"""A silence that would end within this many hours is extended to a full day again."""
MARKER = re.compile(r"\[mtarep-issue ([^\]\s]+)\]")
REQUEST_TIMEOUT = 3.0


class AlertmanagerError(Exception):
    """Alertmanager could not be reached, or refused a request."""


@dataclass(frozen=True)
class SilenceState:
    """What this process last knew about the silence of one acknowledged issue."""

    silence_id: str | None = None
    ends_at: float | None = None
    error: str = ""
    """Why there is no silence (Alertmanager down, refused): "" when there is one."""
    checked_at: float | None = None


def matchers_for(record: IssueRecord) -> list[dict[str, Any]]:
    """The silence matchers of an issue, per the alert label contract."""
    key = record.key
    where = ("host", record.host) if key.kind == "provider" else ("ip", key.ip)
    return [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in (("kind", key.kind), ("subject", key.subject), where)
    ]


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _same_matchers(silence: Mapping[str, Any], wanted: list[dict[str, Any]]) -> bool:
    def normal(matchers: Iterable[Mapping[str, Any]]) -> set[tuple[Any, ...]]:
        return {
            (m.get("name"), m.get("value"), bool(m.get("isRegex")), m.get("isEqual", True))
            for m in matchers
        }

    return normal(silence.get("matchers") or []) == normal(wanted)


class Silencer:
    """Keeps Alertmanager's silences in step with the acknowledged open issues."""

    def __init__(
        self,
        alertmanager_url: str,
        issue_url: Callable[[IssueKey], str],
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.base = alertmanager_url.rstrip("/")
        self.issue_url = issue_url
        self.clock = clock
        self.timeout = timeout
        self.states: dict[str, SilenceState] = {}
        """Issue id -> the last known silence state (only acknowledged issues)."""
        self.last_error = ""
        self.last_success: float | None = None
        self._lock = asyncio.Lock()

    # -- HTTP ----------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base}{path}"
        try:
            response = requests.request(method, url, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            raise AlertmanagerError(f"{method} {path}: {_reason(error)}") from None
        if response.status_code >= 400:
            text = response.text.strip().replace("\n", " ")[:200]
            raise AlertmanagerError(f"{method} {path}: HTTP {response.status_code} {text}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerError(f"{method} {path}: the answer is not JSON") from None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self._request, method, path, body)

    async def _mtarep_silences(self) -> dict[str, list[dict[str, Any]]]:
        """mtarep's silences that are not expired, by issue id."""
        listing = await self._call("GET", "/api/v2/silences")
        if not isinstance(listing, list):
            raise AlertmanagerError("GET /api/v2/silences: the answer is not a list")
        found: dict[str, list[dict[str, Any]]] = {}
        for silence in listing:
            if not isinstance(silence, dict):
                continue
            state = (silence.get("status") or {}).get("state")
            match = MARKER.search(str(silence.get("comment", "")))
            if match and state in ("active", "pending"):
                found.setdefault(match.group(1), []).append(silence)
        return found

    async def _expire(self, silence_id: str) -> None:
        await self._call("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")

    # -- what a silence says --------------------------------------------------------

    def comment(self, record: IssueRecord) -> str:
        ack = record.ack
        note = ack.note.strip() if ack and ack.note.strip() else "acknowledged"
        return f"{note} | {self.issue_url(record.key)} [mtarep-issue {record.key.id}]"

    def _wanted(self, record: IssueRecord, silence_id: str | None) -> dict[str, Any]:
        now = self.clock()
        body: dict[str, Any] = {
            "matchers": matchers_for(record),
            "startsAt": _iso(now),
            "endsAt": _iso(now + SILENCE_HOURS * 3600),
            "createdBy": record.ack.user if record.ack else "mtarep",
            "comment": self.comment(record),
        }
        if silence_id is not None:
            body["id"] = silence_id
        return body

    async def _ensure(self, record: IssueRecord, existing: list[dict[str, Any]]) -> SilenceState:
        """Make, keep or extend the one silence of an acknowledged issue."""
        matchers = matchers_for(record)
        usable = [s for s in existing if _same_matchers(s, matchers)]
        usable.sort(key=lambda s: _parse_time(s.get("endsAt")) or 0.0, reverse=True)
        keep = usable[0] if usable else None
        for extra in existing:
            if extra is not keep:
                await self._expire(str(extra.get("id")))
        now = self.clock()
        if keep is not None:
            ends_at: float = _parse_time(keep.get("endsAt")) or 0.0
            current = (
                keep.get("createdBy") == (record.ack.user if record.ack else "mtarep")
                and keep.get("comment") == self.comment(record)
                and ends_at - now > EXTEND_BELOW_HOURS * 3600
                and (keep.get("status") or {}).get("state") == "active"
            )
            if current:
                return SilenceState(str(keep.get("id")), ends_at, "", now)
        body = self._wanted(record, str(keep.get("id")) if keep is not None else None)
        answer = await self._call("POST", "/api/v2/silences", body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError("POST /api/v2/silences: no silenceID in the answer")
        made = "silence.extended" if keep is not None else "silence.created"
        event(_LOG, made, issue=record.key.id, silence=silence_id, user=body["createdBy"])
        return SilenceState(silence_id, now + SILENCE_HOURS * 3600, "", now)

    # -- syncing ----------------------------------------------------------------------------

    async def sync(self, acknowledged: Mapping[str, IssueRecord]) -> bool:
        """Bring every silence in step with ``acknowledged`` (issue id -> open, acked issue).

        True when Alertmanager took every change; on failure the states say why.
        """
        async with self._lock:
            return await self._sync(acknowledged, only=None)

    async def sync_issue(self, key: IssueKey, record: IssueRecord | None) -> SilenceState | None:
        """Sync one issue right after its ack (``record``) or un-ack (None)."""
        async with self._lock:
            await self._sync({key.id: record} if record is not None else {}, only=key.id)
        return self.states.get(key.id)

    async def _sync(self, acknowledged: Mapping[str, IssueRecord], only: str | None) -> bool:
        now = self.clock()
        try:
            ours = await self._mtarep_silences()
        except AlertmanagerError as error:
            self._failed(str(error), acknowledged, now, only)
            return False
        problems: list[str] = []
        for issue_id, record in acknowledged.items():
            try:
                self.states[issue_id] = await self._ensure(record, ours.pop(issue_id, []))
            except AlertmanagerError as error:
                problems.append(str(error))
                self.states[issue_id] = SilenceState(error=str(error), checked_at=now)
                event(_LOG, "silence.failed", logging.WARNING, issue=issue_id, error=str(error))
        for issue_id, silences in ours.items():
            if only is not None and issue_id != only:
                continue
            for silence in silences:
                try:
                    await self._expire(str(silence.get("id")))
                    event(_LOG, "silence.expired", issue=issue_id, silence=silence.get("id"))
                except AlertmanagerError as error:
                    problems.append(str(error))
                    event(_LOG, "silence.failed", logging.WARNING, issue=issue_id, error=str(error))
        if only is None:
            for issue_id in list(self.states):
                if issue_id not in acknowledged:
                    del self.states[issue_id]
        elif only not in acknowledged:
            self.states.pop(only, None)
        self.last_error = "; ".join(problems)
        if not problems:
            self.last_success = now
        return not problems

    def _failed(
        self, error: str, acknowledged: Mapping[str, IssueRecord], now: float, only: str | None
    ) -> None:
        event(_LOG, "alertmanager.unavailable", logging.WARNING, error=error)
        self.last_error = error
        for issue_id in acknowledged:
            previous = self.states.get(issue_id, SilenceState())
            self.states[issue_id] = SilenceState(previous.silence_id, previous.ends_at, error, now)
        if only is not None and only not in acknowledged:
            # The un-acknowledged issue's silence could not be expired: the next sync will.
            self.states.pop(only, None)


def _reason(error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection refused or unreachable"
    return type(error).__name__
