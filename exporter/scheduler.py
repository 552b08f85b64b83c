"""Run a collection cycle every ``interval`` seconds; cycles never overlap.

The first cycle starts at once. The next one starts ``interval`` seconds after the
previous one *started*; a cycle that takes longer than the interval is an overrun:
the next cycle starts as soon as it finishes, and only one (no burst of catch-up
cycles). A cycle that raises is logged and counted, and the schedule goes on.
Cancelling :meth:`Scheduler.run` stops it at once, also in the middle of a cycle.

The clock and the sleep are parameters so that tests move time themselves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from exporter.logs import event

_LOG = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
"""How long :meth:`Scheduler.stop` waits for a cycle in progress to end."""
_CANCEL_AGAIN_AFTER = 0.05


class Scheduler:
    """Calls ``run_cycle`` every ``interval`` seconds of ``clock`` until cancelled.

    The counters and timestamps (``clock`` values) are read-only state for
    ``/healthz`` and logs.
    """

    def __init__(
        self,
        run_cycle: Callable[[], Awaitable[object]],
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        log: logging.Logger | None = None,
        cycle_timeout: float | None = None,
    ) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        self._run_cycle = run_cycle
        self._cycle_timeout = cycle_timeout
        self._interval = float(interval)
        self._clock = clock
        self._sleep = sleep
        self._log = log if log is not None else _LOG
        self._active = False
        self._cycles = 0
        self._failures = 0
        self._overruns = 0
        self._last_started: float | None = None
        self._last_finished: float | None = None
        self._last_duration: float | None = None
        self._last_error: str | None = None
        self._running = False
        self._stopping = False

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def cycles(self) -> int:
        """Completed cycles, successful or not (a cancelled cycle does not count)."""
        return self._cycles

    @property
    def failures(self) -> int:
        """Cycles that raised an exception."""
        return self._failures

    @property
    def overruns(self) -> int:
        """Cycles that took longer than the interval."""
        return self._overruns

    @property
    def last_started(self) -> float | None:
        return self._last_started

    @property
    def last_finished(self) -> float | None:
        return self._last_finished

    @property
    def last_duration(self) -> float | None:
        return self._last_duration

    @property
    def last_error(self) -> str | None:
        """The error of the last completed cycle; ``None`` when it succeeded."""
        return self._last_error

    @property
    def running(self) -> bool:
        """A cycle is in progress now."""
        return self._running

    async def run(self) -> None:
        """Run cycles until cancelled (or, after :meth:`stop`, until the cycle ends)."""
        if self._active:
            raise RuntimeError("Scheduler.run() is already running")
        self._active = True
        self._stopping = False
        try:
            next_start = self._clock()
            while not self._stopping:
                # A loop, not one sleep: a sleep may wake a little early.
                while (delay := next_start - self._clock()) > 0:
                    await self._sleep(delay)
                started = await self._run_once()
                # After an overrun this is already past: the next cycle starts at once.
                next_start = started + self._interval
        finally:
            self._active = False

    async def stop(self, task: asyncio.Task[None], timeout: float = STOP_TIMEOUT) -> bool:
        """End ``task`` (running :meth:`run`); False if it still runs after ``timeout``.

        A cancellation can be lost inside a library call (redis-py's asyncio client
        absorbs one that arrives in the middle of a command, and the command goes
        on): so no new cycle starts once ``stop`` is called, and the task is
        cancelled again until it ends.
        """
        self._stopping = True
        deadline = time.monotonic() + timeout
        while not task.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                event(self._log, "scheduler.stop_timed_out", logging.ERROR, seconds=timeout)
                return False
            task.cancel()
            await asyncio.wait({task}, timeout=min(_CANCEL_AGAIN_AFTER, remaining))
        return True

    async def _run_once(self) -> float:
        """Run one cycle, record its outcome and return its start time."""
        started = self._clock()
        self._last_started = started
        self._running = True
        error: Exception | None = None
        # A deadline for the whole cycle: every check has its own timeout, but a hang
        # nobody foresaw must not stop the schedule for good.
        deadline = asyncio.timeout(self._cycle_timeout)
        try:
            async with deadline:
                await self._run_cycle()
        except Exception as exc:  # any failure of one cycle; CancelledError passes
            error = exc
            if deadline.expired():
                error = TimeoutError(f"the cycle did not end within {self._cycle_timeout:g}s")
        finally:
            self._running = False
        finished = self._clock()
        duration = finished - started
        self._cycles += 1
        self._last_finished = finished
        self._last_duration = duration
        if error is None:
            self._last_error = None
            event(
                self._log,
                "cycle.finished",
                cycle=self._cycles,
                duration_seconds=round(duration, 3),
            )
        else:
            self._failures += 1
            self._last_error = str(error) or type(error).__name__
            event(
                self._log,
                "cycle.failed",
                logging.ERROR,
                cycle=self._cycles,
                duration_seconds=round(duration, 3),
                error_type=type(error).__name__,
                error=self._last_error,
            )
        if duration > self._interval:
            self._overruns += 1
            event(
                self._log,
                "cycle.overrun",
                logging.WARNING,
                cycle=self._cycles,
                duration_seconds=round(duration, 3),
                interval_seconds=self._interval,
            )
        return started
