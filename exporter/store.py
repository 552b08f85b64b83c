"""The Redis store: the one place that knows mtarep's key schema.

Both the exporter and the ackservice go through :class:`Store`; Redis is the only
state they share. Every key starts with ``mtarep:``. Parts written ``{...}`` are
percent-encoded (``urllib.parse.quote(part, safe="")``), so a ``:`` inside a part
(IPv6 addresses) is ``%3A`` and a key can always be split back unambiguously.
``{id}`` is the issue id ``{ip}:{kind}:{subject}``.

| key | type | content |
|---|---|---|
| `mtarep:hosts` | SET | hosts (FQDNs) that have stored results |
| `mtarep:host:{host}` | STRING | JSON `{"host", "updated_at", "results"}`: latest results |
| `mtarep:issues` | ZSET | ids of the open issues, score = `first_seen` |
| `mtarep:issue:{id}` | HASH | `ip kind subject host first_seen last_seen detail` (1) |
| `mtarep:ack:{id}` | HASH | `user at note`: the acknowledgement of an open issue |
| `mtarep:events` | STREAM | `at type host ip kind subject [user note] [detail]`, MAXLEN (2) |
| `mtarep:snapshot:{name}` | STRING | JSON: the exporter's last cycle (name = its shard, ``1of1``) |
| `mtarep:secret:{name}` | STRING | a random secret the processes share (3) |

Keys other tools write, which mtarep only reads (the old tool's mail flow counters):

| key | type | content |
|---|---|---|
| `{prefix}:{YYYYMMDD}:{status}` | HASH | domain -> count; status: sent bounced expired fbl |

(1) ``first_seen``/``last_seen`` are Unix seconds; ``detail`` is a JSON object.
(2) The stream is trimmed to exactly ``history_limit`` entries on every XADD;
``user`` and ``note`` are present on acknowledgement events only, ``detail`` (what
changed, e.g. ``senderscore 85 (good) -> 62 (poor)``) on ``changed`` events only.
(3) 64 hex digits, made by the first process that asks (:meth:`Store.shared_secret`) and
never changed, so every replica derives the same values from it; ``csrf`` keys the
ackservice's form tokens. Never logged, never shown.

Event types: ``rbl`` issues open/clear as ``listed``/``delisted``, ``provider`` as
``block_seen``/``block_cleared``, the other kinds as ``issue_opened``/``issue_cleared``;
acknowledgements add ``ack``, ``unack`` and ``ack_ended`` (the issue cleared while
acknowledged: an acknowledgement ends with its issue). ``changed`` records a state
change that is not an issue opening or clearing (a Sender Score crossing a band).

Text from remote parties (SMTP replies, TXT records) is stored as-is inside the JSON
``detail``; escaping is the renderer's job. It never becomes part of a key name.
Timestamps come from the injected clock, not from Redis.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, cast, get_args
from urllib.parse import quote, unquote

import redis.asyncio
import redis.exceptions
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

__all__ = [
    "EVENTS_KEY",
    "EVENT_TYPES",
    "HOSTS_KEY",
    "ISSUE_KINDS",
    "KEY_PREFIX",
    "OPEN_ISSUES_KEY",
    "Ack",
    "Event",
    "EventType",
    "IssueKey",
    "IssueKind",
    "IssueNotOpen",
    "IssueRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "mailflow_key",
    "redis_error_reason",
]

IssueKind = Literal["rbl", "provider", "snds", "senderscore", "reputation", "dns"]
EventType = Literal[
    "listed",
    "delisted",
    "block_seen",
    "block_cleared",
    "issue_opened",
    "issue_cleared",
    "ack",
    "unack",
    "ack_ended",
    "changed",
]

ISSUE_KINDS: frozenset[str] = frozenset(get_args(IssueKind))
EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))

KEY_PREFIX = "mtarep:"
HOSTS_KEY = f"{KEY_PREFIX}hosts"
OPEN_ISSUES_KEY = f"{KEY_PREFIX}issues"
EVENTS_KEY = f"{KEY_PREFIX}events"
_HOST_PREFIX = f"{KEY_PREFIX}host:"
_ISSUE_PREFIX = f"{KEY_PREFIX}issue:"
_ACK_PREFIX = f"{KEY_PREFIX}ack:"
_SNAPSHOT_PREFIX = f"{KEY_PREFIX}snapshot:"
_SECRET_PREFIX = f"{KEY_PREFIX}secret:"

_OPEN_EVENT: dict[str, EventType] = {"rbl": "listed", "provider": "block_seen"}
_CLEAR_EVENT: dict[str, EventType] = {"rbl": "delisted", "provider": "block_cleared"}

_MAX_TRANSACTION_ATTEMPTS = 20
_EVENT_SCAN_CHUNK = 500


class StoreError(Exception):
    """Redis answered with an error, or holds data mtarep cannot read."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached (refused, timed out, connection lost)."""


class IssueNotOpen(StoreError):
    """The issue is not open (never opened, or cleared): it cannot be acknowledged."""


def os_error_behind(exc: BaseException) -> OSError | None:
    """The first ``OSError`` with an errno in the cause chain of a redis-py error."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno:
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def redis_error_reason(exc: BaseException) -> str:
    """A short, human reason for a redis-py error: ``Connection refused``, ``Timeout ...``.

    redis-py wraps socket errors (``Error 111 connecting to host:port. Connect call
    failed (...)``); the operating system's own wording of the errno is clearer. A
    name resolution failure (``socket.gaierror``, whose errno is an ``EAI_*`` code, not
    an errno) gives the resolver's wording: ``Name or service not known``.
    """
    cause = os_error_behind(exc)
    if isinstance(cause, socket.gaierror):
        return cause.strerror or str(cause)
    if cause is not None and cause.errno:
        return os.strerror(cause.errno)
    text = str(exc).strip().rstrip(".")
    return text or type(exc).__name__


def mailflow_key(prefix: str, day: str, status: str) -> str:
    """``{prefix}:{YYYYMMDD}:{status}``: the mail flow hash other tools HINCRBY into."""
    return f"{prefix}:{day}:{status}"


def _encode_part(part: str) -> str:
    return quote(part, safe="")


@dataclass(frozen=True)
class IssueKey:
    """What identifies an issue: the IP, the kind of check, and the zone/provider/check.

    An IP address is normalised (``2001:DB8:0::1`` -> ``2001:db8::1``) so that every
    spelling of it names the same issue.
    """

    ip: str
    kind: IssueKind
    subject: str

    def __post_init__(self) -> None:
        if self.kind not in ISSUE_KINDS:
            raise ValueError(
                f"unknown issue kind {self.kind!r} (expected one of {sorted(ISSUE_KINDS)})"
            )
        if not self.ip:
            raise ValueError("issue ip must not be empty")
        if not self.subject:
            raise ValueError("issue subject must not be empty")
        try:
            normalised = str(ipaddress.ip_address(self.ip))
        except ValueError:
            return
        object.__setattr__(self, "ip", normalised)

    @property
    def id(self) -> str:
        """``{ip}:{kind}:{subject}``, each part percent-encoded: safe in keys and URLs."""
        return ":".join(_encode_part(part) for part in (self.ip, self.kind, self.subject))

    @classmethod
    def from_id(cls, issue_id: str) -> IssueKey:
        """The inverse of :attr:`id`; ``ValueError`` when ``issue_id`` is not one."""
        parts = issue_id.split(":")
        try:
            if len(parts) != 3:
                raise ValueError("expected three parts")
            ip, kind, subject = (unquote(part, errors="strict") for part in parts)
            if kind not in ISSUE_KINDS:
                raise ValueError(f"unknown kind {kind!r}")
            return cls(ip, cast(IssueKind, kind), subject)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ValueError(f"not an issue id ({exc}): {issue_id!r}") from None

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} for {self.ip}"


@dataclass(frozen=True)
class Ack:
    """An acknowledgement: who is working on the issue, since when, and a note."""

    user: str
    at: float
    note: str = ""


@dataclass(frozen=True)
class IssueRecord:
    """An open issue with its detail and acknowledgement (if any)."""

    key: IssueKey
    host: str
    first_seen: float
    last_seen: float
    detail: dict[str, Any]
    ack: Ack | None


@dataclass(frozen=True)
class Event:
    """One entry of the bounded history (``id`` is the Redis stream entry id)."""

    id: str
    at: float
    type: EventType
    host: str
    key: IssueKey
    user: str | None = None
    note: str | None = None
    detail: str | None = None

    @property
    def ip(self) -> str:
        return self.key.ip

    @property
    def kind(self) -> IssueKind:
        return self.key.kind

    @property
    def subject(self) -> str:
        return self.key.subject


P = ParamSpec("P")
T = TypeVar("T")


def _mapped_errors(
    method: Callable[Concatenate[Store, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Store, P], Coroutine[Any, Any, T]]:
    """Turn redis-py errors into :class:`StoreUnavailable` / :class:`StoreError`."""

    async def wrapper(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailable(
                self._scrub(f"Redis unavailable ({self.description}): {redis_error_reason(exc)}")
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(
                self._scrub(f"Redis error ({self.description}): {redis_error_reason(exc)}")
            ) from exc

    functools.update_wrapper(wrapper, method)
    return wrapper


def _dumps(value: Any) -> str:
    # ensure_ascii: any str (even a lone surrogate from a badly decoded log line)
    # is stored and read back exactly.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


# redis-py types replies as ``bytes | str`` and leaves some pipeline methods untyped.
# The Store's client always has decode_responses=True (checked in Store.__init__),
# so these helpers only narrow the types.


def _text(reply: Any) -> str | None:
    return None if reply is None else str(reply)


def _text_map(reply: Any) -> dict[str, str]:
    return {str(name): str(value) for name, value in (reply or {}).items()}


def _begin_writes(pipe: Pipeline) -> None:
    """End the WATCH-and-read phase: the following commands are queued in MULTI."""
    pipe.multi()  # type: ignore[no-untyped-call]


async def _unwatch(pipe: Pipeline) -> None:
    await pipe.unwatch()  # type: ignore[no-untyped-call]


class Store:
    """Typed access to mtarep's data in Redis (see the module docstring for the keys)."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        clock: Callable[[], float] = time.time,
        history_limit: int = 10_000,
        description: str = "redis",
    ) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1, got {history_limit}")
        connection_kwargs = client.connection_pool.connection_kwargs
        if not connection_kwargs.get("decode_responses"):
            raise ValueError("the Store needs a client created with decode_responses=True")
        self._client = client
        self._clock = clock
        self.history_limit = history_limit
        self.description = description
        password = connection_kwargs.get("password")
        self._secrets = [password] if isinstance(password, str) and password else []

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- keys ---------------------------------------------------------------

    @staticmethod
    def _host_key(host: str) -> str:
        return _HOST_PREFIX + _encode_part(host)

    @staticmethod
    def _issue_key(key: IssueKey) -> str:
        return _ISSUE_PREFIX + key.id

    @staticmethod
    def _ack_key(key: IssueKey) -> str:
        return _ACK_PREFIX + key.id

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _loads_object(raw: str, where: str) -> dict[str, Any]:
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"unreadable JSON at {where}: {exc}") from None
        if not isinstance(value, dict):
            raise StoreError(f"unreadable JSON at {where}: not an object")
        return value

    @staticmethod
    def _float(raw: str | None, where: str) -> float:
        try:
            return float(raw if raw is not None else "")
        except ValueError:
            raise StoreError(f"unreadable timestamp at {where}: {raw!r}") from None

    async def _transaction(self, body: Callable[[Pipeline], Awaitable[T]], *watch: str) -> T:
        """WATCH ``watch``, run ``body`` (reads, then ``_begin_writes`` and queued writes),
        EXEC; start again when a watched key changed meanwhile."""
        async with self._client.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_TRANSACTION_ATTEMPTS):
                try:
                    await pipe.watch(*watch)
                    result = await body(pipe)
                    await pipe.execute()
                except redis.exceptions.WatchError:
                    continue
                return result
        raise StoreError(f"too much contention on {', '.join(watch)}; gave up")

    def _add_event(
        self,
        pipe: Pipeline,
        event_type: EventType,
        at: float,
        host: str,
        key: IssueKey,
        *,
        user: str | None = None,
        note: str | None = None,
        detail: str | None = None,
    ) -> None:
        fields: dict[FieldT, EncodableT] = {
            "at": repr(at),
            "type": event_type,
            "host": host,
            "ip": key.ip,
            "kind": key.kind,
            "subject": key.subject,
        }
        if user is not None:
            fields["user"] = user
        if note is not None:
            fields["note"] = note
        if detail is not None:
            fields["detail"] = detail
        pipe.xadd(EVENTS_KEY, fields, maxlen=self.history_limit, approximate=False)

    def _ack_from(self, raw: Mapping[str, str], where: str) -> Ack | None:
        if not raw:
            return None
        return Ack(
            user=raw.get("user", ""),
            at=self._float(raw.get("at"), where),
            note=raw.get("note", ""),
        )

    def _record_from(
        self, key: IssueKey, raw: Mapping[str, str], raw_ack: Mapping[str, str]
    ) -> IssueRecord | None:
        if not raw:
            return None
        where = self._issue_key(key)
        return IssueRecord(
            key=key,
            host=raw.get("host", ""),
            first_seen=self._float(raw.get("first_seen"), where),
            last_seen=self._float(raw.get("last_seen"), where),
            detail=self._loads_object(raw.get("detail", "{}"), where),
            ack=self._ack_from(raw_ack, self._ack_key(key)),
        )

    def _event_from(self, entry_id: str, fields: Mapping[str, str]) -> Event:
        where = f"{EVENTS_KEY} {entry_id}"
        event_type = fields.get("type", "")
        kind = fields.get("kind", "")
        if event_type not in EVENT_TYPES or kind not in ISSUE_KINDS:
            raise StoreError(f"unreadable event at {where}: type={event_type!r} kind={kind!r}")
        try:
            key = IssueKey(fields.get("ip", ""), cast(IssueKind, kind), fields.get("subject", ""))
        except ValueError as exc:
            raise StoreError(f"unreadable event at {where}: {exc}") from None
        return Event(
            id=entry_id,
            at=self._float(fields.get("at"), where),
            type=cast(EventType, event_type),
            host=fields.get("host", ""),
            key=key,
            user=fields.get("user"),
            note=fields.get("note"),
            detail=fields.get("detail"),
        )

    async def _stream_page(self, newest: str, count: int) -> list[tuple[str, dict[str, str]]]:
        """Up to ``count`` events from ``newest`` (inclusive, or exclusive with ``(``) back."""
        entries = await self._client.xrevrange(EVENTS_KEY, max=newest, count=count)
        return [(str(entry_id), _text_map(fields)) for entry_id, fields in entries or []]

    # -- public API --------------------------------------------------------

    @_mapped_errors
    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless Redis answers."""
        await self._client.ping()

    @_mapped_errors
    async def save_host_results(self, host: str, results: Mapping[str, Any]) -> None:
        """Replace the latest results of ``host`` (stamped ``updated_at`` = now)."""
        document = {"host": host, "updated_at": self._clock(), "results": dict(results)}
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._host_key(host), _dumps(document))
            pipe.sadd(HOSTS_KEY, host)
            await pipe.execute()

    @_mapped_errors
    async def save_snapshot(self, name: str, document: Mapping[str, Any]) -> None:
        """Replace the snapshot ``name`` (one per exporter shard)."""
        await self._client.set(_SNAPSHOT_PREFIX + _encode_part(name), _dumps(dict(document)))

    @_mapped_errors
    async def snapshot(self, name: str) -> dict[str, Any] | None:
        """The snapshot ``name`` as last saved, or None."""
        key = _SNAPSHOT_PREFIX + _encode_part(name)
        raw = _text(await self._client.get(key))
        return None if raw is None else self._loads_object(raw, key)

    @_mapped_errors
    async def shared_secret(self, name: str) -> str:
        """The random secret ``name`` that every process on this Redis shares.

        The first caller makes it (``SET NX``: of several replicas asking at once, one
        wins and all read its value); it never changes afterwards.
        """
        key = _SECRET_PREFIX + _encode_part(name)
        await self._client.set(key, secrets.token_hex(32), nx=True)
        value = _text(await self._client.get(key))
        if not value:
            raise StoreError(f"the secret at {key} is empty")
        return value

    @_mapped_errors
    async def record_change(self, key: IssueKey, host: str, detail: str) -> None:
        """Append a ``changed`` event: ``detail`` says what changed."""
        async with self._client.pipeline(transaction=True) as pipe:
            self._add_event(pipe, "changed", self._clock(), host, key, detail=detail)
            await pipe.execute()

    @_mapped_errors
    async def host_results(self, host: str) -> dict[str, Any] | None:
        """``{"host", "updated_at", "results"}`` as last saved, or None."""
        key = self._host_key(host)
        raw = _text(await self._client.get(key))
        return None if raw is None else self._loads_object(raw, key)

    @_mapped_errors
    async def all_host_results(self) -> dict[str, dict[str, Any]]:
        """Every host's latest results, by host."""
        hosts = sorted(str(host) for host in await self._client.smembers(HOSTS_KEY))
        if not hosts:
            return {}
        keys = [self._host_key(host) for host in hosts]
        values = [_text(value) for value in await self._client.mget(keys)]
        return {
            host: self._loads_object(raw, key)
            for host, key, raw in zip(hosts, keys, values, strict=True)
            if raw is not None  # forgotten meanwhile
        }

    @_mapped_errors
    async def mailflow_prefixes(self, day: str, statuses: Sequence[str]) -> list[str]:
        """Prefixes that have mail flow hashes for ``day`` (found with SCAN, never KEYS)."""
        found: set[str] = set()
        async for key in self._client.scan_iter(match=f"*:{day}:*", count=1000):
            parts = str(key).rsplit(":", 2)
            if len(parts) == 3 and parts[0] and parts[1] == day and parts[2] in statuses:
                found.add(parts[0])
        return sorted(found)

    @_mapped_errors
    async def mailflow_counts(
        self, prefixes: Sequence[str], day: str, statuses: Sequence[str]
    ) -> dict[tuple[str, str], dict[str, str] | StoreError]:
        """The hash of every (prefix, status) for ``day``: field -> value as stored.

        A missing hash is ``{}``; a key that is not a hash is a :class:`StoreError` in
        its place (another tool's key that only looks like a counter).
        """
        pairs = [(prefix, status) for prefix in prefixes for status in statuses]
        async with self._client.pipeline(transaction=False) as pipe:
            for prefix, status in pairs:
                pipe.hgetall(mailflow_key(prefix, day, status))
            replies = await pipe.execute(raise_on_error=False)
        counts: dict[tuple[str, str], dict[str, str] | StoreError] = {}
        for (prefix, status), reply in zip(pairs, replies, strict=True):
            if isinstance(reply, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
                raise reply
            if isinstance(reply, Exception):
                where = mailflow_key(prefix, day, status)
                counts[(prefix, status)] = StoreError(f"{where}: {redis_error_reason(reply)}")
            else:
                counts[(prefix, status)] = _text_map(reply)
        return counts

    @_mapped_errors
    async def forget_host(self, host: str) -> None:
        """Drop the stored results of ``host`` (its issues are left alone)."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(self._host_key(host))
            pipe.srem(HOSTS_KEY, host)
            await pipe.execute()

    @_mapped_errors
    async def open_issue(self, key: IssueKey, host: str, detail: Mapping[str, Any]) -> bool:
        """Open the issue or refresh it (``last_seen``, host, detail).

        Returns True when it was not open before; only then is an event recorded.
        ``first_seen`` stays the time it opened.
        """
        issue_key = self._issue_key(key)
        detail_json = _dumps(dict(detail))

        async def body(pipe: Pipeline) -> bool:
            is_new = _text(await pipe.hget(issue_key, "first_seen")) is None
            now = self._clock()
            fields: dict[FieldT, EncodableT] = {
                "ip": key.ip,
                "kind": key.kind,
                "subject": key.subject,
                "host": host,
                "last_seen": repr(now),
                "detail": detail_json,
            }
            if is_new:
                fields["first_seen"] = repr(now)
            _begin_writes(pipe)
            pipe.hset(issue_key, mapping=fields)
            if is_new:
                pipe.zadd(OPEN_ISSUES_KEY, {key.id: now})
                event = _OPEN_EVENT.get(key.kind, "issue_opened")
                self._add_event(pipe, event, now, host, key)
            return is_new

        return await self._transaction(body, issue_key)

    @_mapped_errors
    async def clear_issue(self, key: IssueKey) -> bool:
        """Close the issue; its acknowledgement ends with it (``ack_ended`` event).

        Returns True when it was open.
        """
        issue_key = self._issue_key(key)
        ack_key = self._ack_key(key)

        async def body(pipe: Pipeline) -> bool:
            host = _text(await pipe.hget(issue_key, "host"))
            if host is None:
                await _unwatch(pipe)  # nothing queued: EXEC sends nothing
                return False
            ack = self._ack_from(_text_map(await pipe.hgetall(ack_key)), ack_key)
            now = self._clock()
            _begin_writes(pipe)
            pipe.delete(issue_key, ack_key)
            pipe.zrem(OPEN_ISSUES_KEY, key.id)
            self._add_event(pipe, _CLEAR_EVENT.get(key.kind, "issue_cleared"), now, host, key)
            if ack is not None:
                self._add_event(pipe, "ack_ended", now, host, key, user=ack.user, note=ack.note)
            return True

        return await self._transaction(body, issue_key, ack_key)

    @_mapped_errors
    async def issue(self, key: IssueKey) -> IssueRecord | None:
        """The open issue ``key`` with its acknowledgement, or None when not open."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._issue_key(key))
            pipe.hgetall(self._ack_key(key))
            raw, raw_ack = await pipe.execute()
        return self._record_from(key, _text_map(raw), _text_map(raw_ack))

    @_mapped_errors
    async def open_issues(self, host: str | None = None) -> list[IssueRecord]:
        """Open issues (of ``host`` only, when given), oldest ``first_seen`` first."""
        keys: list[IssueKey] = []
        for issue_id in await self._client.zrange(OPEN_ISSUES_KEY, 0, -1):
            try:
                keys.append(IssueKey.from_id(str(issue_id)))
            except ValueError:
                raise StoreError(
                    f"unreadable issue id in {OPEN_ISSUES_KEY}: {issue_id!r}"
                ) from None
        if not keys:
            return []
        async with self._client.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.hgetall(self._issue_key(key))
                pipe.hgetall(self._ack_key(key))
            replies = await pipe.execute()
        records = []
        for index, key in enumerate(keys):
            raw, raw_ack = replies[2 * index], replies[2 * index + 1]
            record = self._record_from(key, _text_map(raw), _text_map(raw_ack))
            # None: cleared between ZRANGE and the reads.
            if record is not None and (host is None or record.host == host):
                records.append(record)
        return records

    @_mapped_errors
    async def acknowledge(self, key: IssueKey, user: str, note: str = "") -> Ack:
        """Record that ``user`` works on the open issue ``key`` (replacing an earlier ack).

        Raises :class:`IssueNotOpen` when the issue is not open.
        """
        if not user:
            raise ValueError("an acknowledgement needs a user")
        issue_key = self._issue_key(key)

        async def body(pipe: Pipeline) -> Ack:
            host = _text(await pipe.hget(issue_key, "host"))
            if host is None:
                await _unwatch(pipe)
                raise IssueNotOpen(f"issue {key} is not open")
            ack = Ack(user=user, at=self._clock(), note=note)
            _begin_writes(pipe)
            pipe.hset(
                self._ack_key(key),
                mapping={"user": ack.user, "at": repr(ack.at), "note": ack.note},
            )
            self._add_event(pipe, "ack", ack.at, host, key, user=user, note=note)
            return ack

        return await self._transaction(body, issue_key)

    @_mapped_errors
    async def unacknowledge(self, key: IssueKey, user: str) -> bool:
        """Remove the acknowledgement of ``key`` (``user`` removed it).

        Returns True when there was one.
        """
        issue_key = self._issue_key(key)
        ack_key = self._ack_key(key)

        async def body(pipe: Pipeline) -> bool:
            if not await pipe.exists(ack_key):
                await _unwatch(pipe)
                return False
            host = _text(await pipe.hget(issue_key, "host")) or ""
            now = self._clock()
            _begin_writes(pipe)
            pipe.delete(ack_key)
            self._add_event(pipe, "unack", now, host, key, user=user)
            return True

        return await self._transaction(body, ack_key, issue_key)

    @_mapped_errors
    async def ack(self, key: IssueKey) -> Ack | None:
        """The acknowledgement of ``key``, or None."""
        ack_key = self._ack_key(key)
        return self._ack_from(_text_map(await self._client.hgetall(ack_key)), ack_key)

    @_mapped_errors
    async def events(self, limit: int = 100, key: IssueKey | None = None) -> list[Event]:
        """The newest ``limit`` events (of issue ``key`` only, when given), newest first."""
        if limit < 1:
            return []
        if key is None:
            return [self._event_from(*entry) for entry in await self._stream_page("+", limit)]
        # Scan back through the (bounded) stream in pages until enough events matched.
        found: list[Event] = []
        chunk = max(limit * 4, _EVENT_SCAN_CHUNK)
        newest = "+"
        while len(found) < limit:
            page = await self._stream_page(newest, chunk)
            for entry_id, fields in page:
                if (fields.get("ip"), fields.get("kind"), fields.get("subject")) == (
                    key.ip,
                    key.kind,
                    key.subject,
                ):
                    found.append(self._event_from(entry_id, fields))
                    if len(found) == limit:
                        break
            if len(page) < chunk:
                break
            newest = "(" + page[-1][0]
        return found
