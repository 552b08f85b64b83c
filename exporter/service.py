"""The exporter process: cycles on a schedule, ``/metrics`` from the snapshot, ``/healthz``.

The app's lifespan owns the resolver, the collection and the scheduler task: the last
snapshot is restored from Redis before the first scrape is answered, the first cycle
starts at once, and shutdown cancels a cycle in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exporter.config import Config, LoadedConfig
from exporter.cycle import Collection
from exporter.metrics import MetricsPage
from exporter.resolver import Resolver
from exporter.scheduler import Scheduler
from exporter.store import Store
from exporter.web import healthz_endpoint

__all__ = ["STALE_AFTER_INTERVALS", "build_app", "cycle_health", "make_resolver"]

STALE_AFTER_INTERVALS = 3
"""``/healthz`` fails when no cycle finished for this many intervals."""
CYCLE_TIMEOUT_INTERVALS = 2
"""A cycle still running after this many intervals is cancelled and counted failed."""


def make_resolver(config: Config) -> Resolver:
    dns = config.dns
    return Resolver(
        dns.nameservers,
        port=dns.port,
        timeout=dns.timeout,
        attempts=dns.attempts,
        concurrency=dns.concurrency,
    )


def cycle_health(
    scheduler: Scheduler, started: float, now: float | None = None
) -> tuple[bool, dict[str, Any]]:
    """Whether cycles run: the last one ended without an exception, and not too long ago."""
    now = time.monotonic() if now is None else now
    finished = scheduler.last_finished
    since = now - (finished if finished is not None else started)
    stale = since > STALE_AFTER_INTERVALS * scheduler.interval
    failed = scheduler.last_error is not None
    detail: dict[str, Any] = {
        "ok": not (stale or failed),
        "cycles": scheduler.cycles,
        "failures": scheduler.failures,
        "running": scheduler.running,
        "seconds_since_last_cycle": None if finished is None else round(now - finished, 3),
        "last_duration_seconds": scheduler.last_duration,
        "last_error": scheduler.last_error,
    }
    if stale:
        detail["error"] = f"no cycle finished in the last {round(since)}s"
    elif failed:
        detail["error"] = f"the last cycle failed: {scheduler.last_error}"
    return detail["ok"], detail


def build_app(store: Store, loaded: LoadedConfig) -> Starlette:
    config = loaded.config
    resolver = make_resolver(config)
    collection = Collection(config, resolver, store, snds_key=loaded.snds_key)
    scheduler = Scheduler(
        collection.run, config.interval, cycle_timeout=CYCLE_TIMEOUT_INTERVALS * config.interval
    )
    page = MetricsPage(lambda: collection.snapshot)
    started = time.monotonic()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await collection.restore()
        task = asyncio.create_task(scheduler.run(), name="mtarep-scheduler")
        try:
            yield
        finally:
            await scheduler.stop(task)
            await resolver.close()
            collection.close()

    async def metrics(request: Request) -> Response:
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = await page.body("gzip")
            headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        else:
            body, headers = await page.body(), {"Vary": "Accept-Encoding"}
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=headers)

    healthz = healthz_endpoint(store, cycle=lambda: cycle_health(scheduler, started))
    return Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", metrics)], lifespan=lifespan
    )
