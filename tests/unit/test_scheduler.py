"""The cycle scheduler on a fake clock: tests move time themselves and never sleep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import pytest

from exporter.scheduler import Scheduler

pytestmark = pytest.mark.anyio

START = 1000.0
LOGGER = "mtarep.test.scheduler"


class FakeTime:
    """A frozen clock that only moves when someone sleeps on it.

    ``sleep(seconds)`` advances the clock and yields once to the event loop; a fake
    cycle "takes" some time by sleeping on it too.
    """

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


@pytest.fixture
def advance_time() -> FakeTime:
    return FakeTime()


class FakeCycle:
    """A cycle that takes ``durations[n]`` seconds of fake time (the last one repeats).

    Records when each cycle started and how many ran at the same time; raises
    ``errors[n]`` at the end of cycle ``n`` when given.
    """

    def __init__(
        self,
        fake: FakeTime,
        durations: list[float],
        errors: dict[int, Exception] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        self.fake = fake
        self.durations = durations
        self.errors = errors or {}
        self.on_start = on_start
        self.starts: list[float] = []
        self.active = 0
        self.max_active = 0

    async def __call__(self) -> None:
        index = len(self.starts)
        self.starts.append(self.fake.now)
        if self.on_start is not None:
            self.on_start(index)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.fake.sleep(self.durations[min(index, len(self.durations) - 1)])
            if index in self.errors:
                raise self.errors[index]
        finally:
            self.active -= 1

    def relative_starts(self) -> list[float]:
        return [start - START for start in self.starts]


def make(fake: FakeTime, cycle: Callable[[], Awaitable[object]], interval: float = 60) -> Scheduler:
    return Scheduler(
        cycle, interval, clock=fake.clock, sleep=fake.sleep, log=logging.getLogger(LOGGER)
    )


async def until(condition: Callable[[], bool], limit: int = 1000) -> None:
    """Yield to the event loop until ``condition`` holds (a bounded number of times)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"condition not reached after {limit} event loop turns")


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and check that it ends, cancelled, within a few loop turns."""
    task.cancel()
    await until(task.done, limit=5)
    assert task.cancelled()
    with pytest.raises(asyncio.CancelledError):
        await task


async def run_until(scheduler: Scheduler, condition: Callable[[], bool]) -> None:
    task = asyncio.create_task(scheduler.run())
    try:
        await until(condition)
    finally:
        await cancel(task)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == LOGGER and record.getMessage().split(" ", 1)[0] == name
    ]


async def test_first_cycle_starts_at_once(advance_time: FakeTime) -> None:
    cycle = FakeCycle(advance_time, [5])
    await run_until(make(advance_time, cycle), lambda: len(cycle.starts) == 1)
    assert cycle.starts == [START]
    assert advance_time.sleeps == [5]  # only the cycle's own time: no sleep before it


async def test_cycles_are_spaced_by_the_interval(advance_time: FakeTime) -> None:
    cycle = FakeCycle(advance_time, [5, 20, 0])
    scheduler = make(advance_time, cycle)
    await run_until(scheduler, lambda: scheduler.cycles == 4)
    assert cycle.relative_starts() == [0, 60, 120, 180]
    assert scheduler.overruns == 0
    assert scheduler.failures == 0


@pytest.mark.parametrize("duration", [60, 59.999])
async def test_cycle_as_long_as_the_interval_is_not_an_overrun(
    advance_time: FakeTime, duration: float, caplog: pytest.LogCaptureFixture
) -> None:
    cycle = FakeCycle(advance_time, [duration])
    scheduler = make(advance_time, cycle)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await run_until(scheduler, lambda: scheduler.cycles == 3)
    # A cycle that needs no sleep after it may already have started the next one.
    assert cycle.relative_starts()[:3] == [0, 60, 120]
    assert scheduler.overruns == 0
    assert events(caplog, "cycle.overrun") == []


async def test_slow_cycle_delays_the_next_without_catch_up_burst(
    advance_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    cycle = FakeCycle(advance_time, [150, 10])
    scheduler = make(advance_time, cycle)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await run_until(scheduler, lambda: scheduler.cycles == 4)
    # Not 60 or 120 (overlap), and only one cycle at 150 (no catch-up for 60 and 120).
    assert cycle.relative_starts() == [0, 150, 210, 270]
    assert cycle.max_active == 1
    assert scheduler.overruns == 1
    [record] = events(caplog, "cycle.overrun")
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "cycle.overrun cycle=1 duration_seconds=150.0 interval_seconds=60.0"
    )


async def test_every_cycle_overrunning_runs_back_to_back(advance_time: FakeTime) -> None:
    cycle = FakeCycle(advance_time, [90])
    scheduler = make(advance_time, cycle)
    await run_until(scheduler, lambda: scheduler.cycles == 3)
    assert cycle.relative_starts()[:3] == [0, 90, 180]
    assert cycle.max_active == 1
    assert scheduler.overruns == 3


async def test_failing_cycle_is_counted_and_the_schedule_goes_on(
    advance_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    seen_errors: list[str | None] = []
    cycle = FakeCycle(
        advance_time,
        [5],
        errors={1: RuntimeError('boom: "x"\nforged=1')},
        on_start=lambda _index: seen_errors.append(scheduler.last_error),
    )
    scheduler = make(advance_time, cycle)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await run_until(scheduler, lambda: scheduler.cycles == 3)
    assert cycle.relative_starts() == [0, 60, 120]
    assert (scheduler.cycles, scheduler.failures) == (3, 1)
    # Each cycle saw the error of the one before; the third succeeded again.
    assert seen_errors == [None, None, 'boom: "x"\nforged=1']
    assert scheduler.last_error is None
    [record] = events(caplog, "cycle.failed")
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "cycle.failed cycle=2 duration_seconds=5.0 error_type=RuntimeError "
        'error="boom: \\"x\\"\\nforged=1"'
    )
    assert [r.getMessage() for r in events(caplog, "cycle.finished")] == [
        "cycle.finished cycle=1 duration_seconds=5.0",
        "cycle.finished cycle=3 duration_seconds=5.0",
    ]


async def test_error_without_message_is_named_by_its_type(advance_time: FakeTime) -> None:
    cycle = FakeCycle(advance_time, [1], errors={0: TimeoutError()})
    scheduler = make(advance_time, cycle)
    await run_until(scheduler, lambda: scheduler.cycles == 1)
    assert scheduler.last_error == "TimeoutError"


async def test_state_fields(advance_time: FakeTime) -> None:
    during: list[tuple[bool, float | None, float | None, int]] = []
    scheduler: Scheduler

    def snapshot(_index: int) -> None:
        during.append(
            (scheduler.running, scheduler.last_started, scheduler.last_finished, scheduler.cycles)
        )

    cycle = FakeCycle(advance_time, [12, 7], errors={1: ValueError("bad")}, on_start=snapshot)
    scheduler = make(advance_time, cycle)
    assert scheduler.interval == 60.0
    assert (scheduler.cycles, scheduler.failures, scheduler.overruns) == (0, 0, 0)
    assert scheduler.last_started is None
    assert scheduler.last_finished is None
    assert scheduler.last_duration is None
    assert scheduler.last_error is None
    assert scheduler.running is False

    task = asyncio.create_task(scheduler.run())
    try:
        await until(lambda: scheduler.cycles == 1)
        assert scheduler.running is False
        assert scheduler.last_started == START
        assert scheduler.last_finished == START + 12
        assert scheduler.last_duration == 12
        assert scheduler.last_error is None

        await until(lambda: scheduler.cycles == 2)
        assert scheduler.last_started == START + 60
        assert scheduler.last_finished == START + 67
        assert scheduler.last_duration == 7
        assert scheduler.last_error == "bad"
        assert (scheduler.cycles, scheduler.failures, scheduler.overruns) == (2, 1, 0)
    finally:
        await cancel(task)
    assert during[:2] == [(True, START, None, 0), (True, START + 60, START + 12, 1)]


async def test_cancel_during_a_cycle(advance_time: FakeTime) -> None:
    never = asyncio.Event()
    calls = 0

    async def stuck() -> None:
        nonlocal calls
        calls += 1
        await never.wait()

    scheduler = make(advance_time, stuck)
    task = asyncio.create_task(scheduler.run())
    await until(lambda: scheduler.running)
    await cancel(task)
    assert scheduler.running is False
    assert (calls, scheduler.cycles, scheduler.failures) == (1, 0, 0)
    assert scheduler.last_started == START
    assert scheduler.last_finished is None
    assert advance_time.now == START  # no fake time passed either


async def test_cancel_during_the_sleep(advance_time: FakeTime) -> None:
    cycle = FakeCycle(advance_time, [10])
    scheduler = make(advance_time, cycle)
    task = asyncio.create_task(scheduler.run())
    # The scheduler is suspended in its sleep (50 s) until the next cycle.
    await until(lambda: advance_time.sleeps == [10, 50])
    await cancel(task)
    assert scheduler.running is False
    assert cycle.starts == [START]
    assert scheduler.cycles == 1


async def test_cancel_during_a_real_sleep_is_prompt() -> None:
    """With the default clock and ``asyncio.sleep``: a one-hour sleep is cut short."""
    calls = 0

    async def quick() -> None:
        nonlocal calls
        calls += 1

    scheduler = Scheduler(quick, 3600)
    task = asyncio.create_task(scheduler.run())
    await until(lambda: scheduler.cycles == 1)
    await cancel(task)
    assert calls == 1
    assert scheduler.running is False


async def test_stop_ends_a_cycle_that_absorbs_one_cancellation() -> None:
    """Like redis-py's client: the cancel lands inside a command, which goes on."""
    release = asyncio.Event()
    absorbed = 0

    async def absorbing() -> None:
        nonlocal absorbed
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                absorbed += 1
                if absorbed == 1:
                    continue  # swallowed: the "command" goes on
                raise

    scheduler = Scheduler(absorbing, 3600)
    task = asyncio.create_task(scheduler.run())
    await until(lambda: scheduler.running)

    assert await scheduler.stop(task, timeout=5) is True
    assert task.done()
    assert absorbed == 2  # cancelled again after the first was lost
    assert scheduler.running is False


async def test_stop_after_a_swallowed_cancellation_starts_no_new_cycle() -> None:
    started = 0

    async def swallowing() -> None:
        nonlocal started
        started += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()

    scheduler = Scheduler(swallowing, 3600)
    task = asyncio.create_task(scheduler.run())
    await until(lambda: scheduler.running)

    assert await scheduler.stop(task, timeout=5) is True
    assert started == 1
    assert not task.cancelled()  # it ended on its own, after its cycle


async def test_stop_gives_up_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    give_up = False

    async def unstoppable() -> None:
        while not give_up:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    scheduler = Scheduler(unstoppable, 3600, log=logging.getLogger(LOGGER))
    task = asyncio.create_task(scheduler.run())
    await until(lambda: scheduler.running)

    assert await scheduler.stop(task, timeout=0.2) is False
    assert len(events(caplog, "scheduler.stop_timed_out")) == 1
    give_up = True  # clean up: the next (swallowed) cancel now ends the cycle and run()
    task.cancel()
    await until(task.done)


async def test_cancelled_error_from_the_cycle_is_not_swallowed(advance_time: FakeTime) -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    scheduler = make(advance_time, cancelled)
    with pytest.raises(asyncio.CancelledError):
        await scheduler.run()
    assert (scheduler.cycles, scheduler.failures) == (0, 0)
    assert scheduler.running is False


async def test_early_wakeup_does_not_start_a_cycle_early() -> None:
    fake = FakeTime()

    async def early_sleep(seconds: float) -> None:
        await fake.sleep(seconds / 2 if seconds > 1 else seconds)

    cycle = FakeCycle(fake, [0])
    scheduler = Scheduler(cycle, 60, clock=fake.clock, sleep=early_sleep)
    await run_until(scheduler, lambda: scheduler.cycles == 2)
    assert cycle.relative_starts() == [0, 60]


async def test_run_twice_at_once_is_refused(advance_time: FakeTime) -> None:
    cycle = FakeCycle(advance_time, [10])
    scheduler = make(advance_time, cycle)
    task = asyncio.create_task(scheduler.run())
    try:
        await until(lambda: scheduler.cycles == 1)
        with pytest.raises(RuntimeError, match="already running"):
            await scheduler.run()
    finally:
        await cancel(task)
    assert cycle.max_active == 1


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_interval_must_be_positive(interval: float) -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(ValueError, match="interval must be a positive number"):
        Scheduler(nothing, interval)


async def test_a_cycle_past_its_deadline_is_cancelled_and_counted_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hung = asyncio.Event()
    calls = 0

    async def hanging() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await hung.wait()  # a hang nobody foresaw

    scheduler = Scheduler(hanging, 0.01, log=logging.getLogger(LOGGER), cycle_timeout=0.05)
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(_until_cycles(scheduler, 2), timeout=5)
    finally:
        await scheduler.stop(task)
    assert scheduler.failures == 1
    [failed] = events(caplog, "cycle.failed")
    assert "the cycle did not end within 0.05s" in failed.getMessage()


async def _until_cycles(scheduler: Scheduler, count: int) -> None:
    while scheduler.cycles < count:
        await asyncio.sleep(0.01)
