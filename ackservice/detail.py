"""An issue's detail in words for its page: labelled fields, links, history. No I/O here.

The fields of each kind are those :mod:`exporter.issues` documents; any field it adds
later is still shown (after the known ones, under its own name), so a new source's
detail is never hidden. Text a remote party wrote (the rejection line, a TXT reason,
a greeting) is marked ``remote``: the page shows it verbatim in a code block,
escaped, with control and bidi characters dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ackservice.service import format_time
from exporter.store import Event, IssueRecord

__all__ = ["EVENT_WORDS", "Field", "describe_event", "fields_of", "safe_link"]

Style = Literal["text", "remote", "code", "time"]
"""``remote``: a block of remote text; ``code``: a short remote value (a DSN, a relay)."""


@dataclass(frozen=True)
class Field:
    label: str
    value: str
    style: Style = "text"


_COMMON = frozenset({"summary", "severity", "removal_link", "assistance_link"})
_TIMES = frozenset({"since", "first_seen", "last_seen", "activity_start", "activity_end"})

# kind -> (field, label, style) in the order a postmaster reads them.
_KNOWN: dict[str, tuple[tuple[str, str, Style], ...]] = {
    "provider": (
        ("line", "Newest rejection, as logged", "remote"),
        ("relay", "Relay", "code"),
        ("dsn", "DSN", "code"),
        ("status", "Status", "text"),
        ("domain", "Recipient domain", "code"),
        ("count", "Rejections since first seen", "text"),
        ("first_seen", "First rejection of this run", "time"),
        ("last_seen", "Newest rejection", "time"),
        ("ip_named", "The reply named the IP", "text"),
    ),
    "rbl": (
        ("zone", "Zone", "text"),
        ("codes", "Return codes", "text"),
        ("meaning", "Meaning", "text"),
        ("reason", "Reason (TXT record)", "remote"),
        ("lookup_ok", "Confirmed this cycle", "text"),
        ("since", "Listed since", "time"),
    ),
    "senderscore": (
        ("score", "Sender Score", "text"),
        ("band", "Band", "text"),
        ("threshold", "Issue below", "text"),
    ),
    "dns": (
        ("check", "Check", "text"),
        ("detail", "What was found", "remote"),
    ),
    "snds": (
        ("day", "SNDS day", "text"),
        ("color", "Filter result", "text"),
        ("complaint_rate_text", "Complaint rate", "text"),
        ("trap_hits", "Trap hits", "text"),
        ("threshold", "Trap hits threshold", "text"),
        ("message_recipients", "Message recipients", "text"),
        ("activity_start", "Activity from", "time"),
        ("activity_end", "Activity until", "time"),
        ("block_range", "Blocked range", "code"),
        ("block_reason", "Block reason", "remote"),
    ),
    "reputation": (
        ("source", "Source", "text"),
        ("rating", "Rating", "text"),
        ("value", "Value the source gave", "remote"),
        ("since", "Rated so since", "time"),
    ),
}
_SKIP = frozenset({"complaint_rate", "provider"})
"""Said already: the ratio (the text as SNDS wrote it is shown), the provider (the subject)."""


def _text(value: Any, style: Style) -> str:
    if style == "time":
        return format_time(float(value)) if isinstance(value, int | float) else str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "none"
    return "" if value is None else str(value)


def fields_of(record: IssueRecord) -> list[Field]:
    """The kind's fields of ``record.detail``, labelled; unknown extra fields at the end."""
    detail: Mapping[str, Any] = record.detail
    known = _KNOWN.get(record.key.kind, ())
    fields = [
        Field(label, _text(detail[name], style), style)
        for name, label, style in known
        if name in detail and detail[name] not in (None, "")
    ]
    named = {name for name, _, _ in known} | _COMMON | _SKIP
    for name in sorted(detail):
        if name in named or detail[name] in (None, ""):
            continue
        style: Style = "time" if name in _TIMES else "remote"
        fields.append(Field(name.replace("_", " "), _text(detail[name], style), style))
    return fields


def safe_link(value: object) -> str | None:
    """``value`` when it is an http(s) URL (never ``javascript:`` or the like), else None."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme in ("http", "https") and parts.netloc else None


EVENT_WORDS: dict[str, str] = {
    "listed": "listed",
    "delisted": "delisted",
    "block_seen": "block seen",
    "block_cleared": "block cleared",
    "issue_opened": "opened",
    "issue_cleared": "cleared",
    "ack": "acknowledged",
    "unack": "acknowledgement withdrawn",
    "ack_ended": "acknowledgement ended (the issue cleared)",
    "changed": "changed",
}


def describe_event(entry: Event) -> dict[str, str]:
    """One history line for the page."""
    return {
        "at": format_time(entry.at),
        "what": EVENT_WORDS.get(entry.type, entry.type),
        "user": entry.user or "",
        "note": entry.note or "",
        "detail": entry.detail or "",
        "host": entry.host,
    }
