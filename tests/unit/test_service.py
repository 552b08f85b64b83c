"""``/healthz``'s view of the cycles: ok, stale, failed."""

from __future__ import annotations

import pytest

from exporter.scheduler import Scheduler
from exporter.service import cycle_health

pytestmark = pytest.mark.anyio

INTERVAL = 60.0


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def scheduler_after(clock: Clock, *outcomes: Exception | None) -> Scheduler:
    """A scheduler on ``clock`` that has run one cycle per outcome (None: success)."""
    pending = list(outcomes)

    async def cycle() -> None:
        error = pending.pop(0)
        if error is not None:
            raise error

    return Scheduler(cycle, INTERVAL, clock=clock)


async def run_cycles(scheduler: Scheduler, count: int) -> None:
    for _ in range(count):
        await scheduler._run_once()


async def test_healthy_after_a_recent_cycle() -> None:
    clock = Clock()
    scheduler = scheduler_after(clock, None)
    await run_cycles(scheduler, 1)

    ok, detail = cycle_health(scheduler, started=0.0, now=clock.now + 30)

    assert ok is True
    assert detail["cycles"] == 1
    assert detail["seconds_since_last_cycle"] == 30
    assert "error" not in detail


async def test_a_failed_last_cycle_is_unhealthy_until_one_succeeds() -> None:
    clock = Clock()
    scheduler = scheduler_after(clock, RuntimeError("resolver gone"), None)
    await run_cycles(scheduler, 1)

    ok, detail = cycle_health(scheduler, started=0.0, now=clock.now)
    assert (ok, detail["error"]) == (False, "the last cycle failed: resolver gone")

    await run_cycles(scheduler, 1)
    assert cycle_health(scheduler, started=0.0, now=clock.now)[0] is True


async def test_no_cycle_for_three_intervals_is_stale() -> None:
    clock = Clock()
    scheduler = scheduler_after(clock, None)
    await run_cycles(scheduler, 1)

    assert cycle_health(scheduler, started=0.0, now=clock.now + 3 * INTERVAL)[0] is True
    ok, detail = cycle_health(scheduler, started=0.0, now=clock.now + 3 * INTERVAL + 1)
    assert (ok, detail["error"]) == (False, "no cycle finished in the last 181s")


def test_a_first_cycle_that_never_ends_goes_stale() -> None:
    scheduler = scheduler_after(Clock())
    assert cycle_health(scheduler, started=0.0, now=100.0)[0] is True
    ok, detail = cycle_health(scheduler, started=0.0, now=3 * INTERVAL + 1)
    assert (ok, detail["seconds_since_last_cycle"]) == (False, None)
