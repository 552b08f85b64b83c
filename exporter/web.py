"""What both processes share to run: ``/healthz`` from the store, and a service's life.

``run_service`` sets up logging, opens the store, serves an app with uvicorn
until SIGINT/SIGTERM and closes the store again; the exporter and the
ackservice differ only in the app they serve and where.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from exporter.config import LoadedConfig
from exporter.config_types import ListenAddress
from exporter.logs import configure_logging, event
from exporter.redis_connection import open_redis
from exporter.store import Store, StoreError


async def store_health(store: Store) -> tuple[bool, dict[str, Any]]:
    """Whether the store answers, with the reason when it does not."""
    try:
        await store.ping()
    except StoreError as error:
        return False, {"ok": False, "target": store.description, "error": str(error)}
    return True, {"ok": True, "target": store.description}


def healthz_endpoint(
    store: Store, cycle: Callable[[], tuple[bool, dict[str, Any]]] | None = None
) -> Callable[[Request], Any]:
    """``/healthz``: 200 when the store answers (and cycles run, given ``cycle``), else 503."""

    async def healthz(request: Request) -> JSONResponse:
        ok, detail = await store_health(store)
        body: dict[str, Any] = {"store": detail}
        if cycle is not None:
            cycle_ok, body["cycle"] = cycle()
            ok = ok and cycle_ok
        body = {"status": "ok" if ok else "unavailable", **body}
        return JSONResponse(body, status_code=200 if ok else 503)

    return healthz


class QuietServer(uvicorn.Server):
    """uvicorn, minus its own signal capture: ``run_service`` owns SIGINT/SIGTERM.

    uvicorn re-raises a captured signal after shutting down, so the process would
    die of SIGTERM (or print a KeyboardInterrupt traceback) instead of exiting 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StartupFailed(Exception):
    """The process cannot start; why has been logged."""


@contextlib.asynccontextmanager
async def opened_store(loaded: LoadedConfig, name: str, log_level: str) -> AsyncIterator[Store]:
    """Set up logging, report the config warnings, and open the store for a process."""
    log = logging.getLogger(f"mtarep.{name}")
    config = loaded.config
    try:
        configure_logging(log_level, config.error_log)
    except OSError as error:
        event(log, "error_log.unusable", logging.ERROR, path=config.error_log, error=error)
        raise StartupFailed from error
    for warning in loaded.warnings:
        event(log, "config.warning", logging.WARNING, problem=str(warning))
    try:
        connection = await open_redis(loaded.redis_url, config.data_dir)
    except StoreError as error:
        event(log, "store.unusable", logging.ERROR, error=str(error))
        raise StartupFailed from error
    try:
        yield Store(connection.client, description=connection.description)
    finally:
        await connection.close()


async def run_service(
    loaded: LoadedConfig,
    name: str,
    listen: ListenAddress,
    make_app: Callable[[Store], ASGIApp],
    log_level: str = "INFO",
) -> int:
    """Run one process until it is told to stop; the exit status for ``main``."""
    log = logging.getLogger(f"mtarep.{name}")
    loop = asyncio.get_running_loop()
    try:
        async with opened_store(loaded, name, log_level) as store:
            server = QuietServer(
                uvicorn.Config(
                    make_app(store),
                    host=listen.host,
                    port=listen.port,
                    log_config=None,
                    access_log=False,
                    timeout_graceful_shutdown=5,
                )
            )
            for stop_signal in (signal.SIGINT, signal.SIGTERM):
                # uvicorn's own handler: graceful stop, a second signal forces it.
                loop.add_signal_handler(stop_signal, server.handle_exit, stop_signal, None)
            event(log, f"{name}.starting", url=f"http://{listen}/")
            try:
                await server.serve()
            except SystemExit:  # uvicorn's way of saying it could not start (it logged why)
                event(log, f"{name}.cannot_listen", logging.ERROR, listen=listen)
                return 1
            finally:
                for stop_signal in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(stop_signal)
    except StartupFailed:
        return 1
    event(log, f"{name}.stopped")
    return 0
