"""The controller loop: outcome -> queue operations, crash recovery, concurrency, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from lbctl.runtime.clock import FakeClock
from lbctl.runtime.controller import (
    RESULT_LABELS,
    Controller,
    Result,
    RetryAfter,
    TerminalError,
)
from lbctl.runtime.workqueue import WorkQueue

DEADLINE = 2.0  # real seconds before a test counts as hung


class RecordingQueue(WorkQueue[str]):
    """A real queue that also records the operations the controller asks of it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(name="rec", clock=clock)
        self.ops: list[tuple[str, ...] | tuple[str, float]] = []

    def forget(self, key: str) -> None:
        self.ops.append(("forget",))
        super().forget(key)

    def add_after(self, key: str, seconds: float) -> None:
        self.ops.append(("add_after", seconds))
        super().add_after(key, seconds)

    def add_rate_limited(self, key: str) -> None:
        self.ops.append(("add_rate_limited",))
        super().add_rate_limited(key)


@dataclass
class Observer:
    seen: list[tuple[str, object, str, float]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def reconciled(self, controller: str, key: object, result_label: str, seconds: float) -> None:
        self.seen.append((controller, key, result_label, seconds))
        self.changed.set()

    async def wait_for(self, n: int) -> None:
        async def loop() -> None:
            while len(self.seen) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), DEADLINE)


async def _stop(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, DEADLINE)


def _raise(exc: Exception) -> Callable[[str], Awaitable[Result | None]]:
    async def reconcile(key: str) -> Result | None:
        raise exc

    return reconcile


def _return(value: Result | None) -> Callable[[str], Awaitable[Result | None]]:
    async def reconcile(key: str) -> Result | None:
        return value

    return reconcile


async def _returns_junk(key: str) -> Result | None:
    return "oops"  # type: ignore[return-value]


# The one table: reconcile outcome -> queue operations, label, backoff failures after.
# Every case starts with 2 failures already counted for the key.
OUTCOMES = [
    ("returns None", _return(None), [("forget",)], "success", 0),
    ("returns Result()", _return(Result()), [("forget",)], "success", 0),
    (
        "Result(requeue_after=7)",
        _return(Result(requeue_after=7)),
        [("forget",), ("add_after", 7)],
        "requeue_after",
        0,
    ),
    ("raises RetryAfter(3)", _raise(RetryAfter(3)), [("add_after", 3)], "requeue", 2),
    ("raises TerminalError", _raise(TerminalError("bad spec")), [("forget",)], "terminal", 0),
    (
        "raises ValueError (crash)",
        _raise(ValueError("boom")),
        [("add_rate_limited",), ("add_after", 20.0)],  # 5 * 2**2
        "error",
        3,
    ),
    (
        "returns junk",
        _returns_junk,
        [("add_rate_limited",), ("add_after", 20.0)],
        "error",
        3,
    ),
]


@pytest.mark.parametrize(
    ("reconcile", "ops", "label", "failures"),
    [case[1:] for case in OUTCOMES],
    ids=[case[0] for case in OUTCOMES],
)
async def test_each_outcome_maps_to_exactly_these_queue_operations(
    reconcile: Callable[[str], Awaitable[Result | None]],
    ops: list[tuple[str, ...]],
    label: str,
    failures: int,
) -> None:
    clock = FakeClock()
    queue = RecordingQueue(clock)
    queue.backoff.when("k")
    queue.backoff.when("k")  # two earlier failures
    observer = Observer()
    ctrl = Controller("t", reconcile, queue=queue, clock=clock, observer=observer)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ctrl.enqueue("k")
    await observer.wait_for(1)
    assert queue.ops == ops
    assert observer.seen == [("t", "k", label, 0.0)]
    assert label in RESULT_LABELS
    assert queue.num_requeues("k") == failures
    await _stop(stop, task)


def test_result_and_retry_after_reject_negative_delays() -> None:
    with pytest.raises(ValueError, match="requeue_after"):
        Result(requeue_after=-1)
    with pytest.raises(ValueError, match="RetryAfter"):
        RetryAfter(-0.5)
    assert RetryAfter(2).seconds == 2


async def test_requeue_after_brings_the_key_back_at_that_time() -> None:
    clock = FakeClock()
    seen: list[float] = []
    done = asyncio.Event()

    async def reconcile(key: str) -> Result | None:
        seen.append(clock.now())
        if len(seen) == 3:
            done.set()
            return None
        return Result(requeue_after=30)

    ctrl = Controller("t", reconcile, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ctrl.enqueue("k")
    while not done.is_set():
        await clock.advance(1)
    assert seen == [0.0, 30.0, 60.0]
    await _stop(stop, task)


async def test_a_crashing_reconcile_keeps_the_worker_alive_and_retries_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    calls: list[float] = []
    healed = asyncio.Event()

    async def reconcile(key: str) -> Result | None:
        calls.append(clock.now())
        if len(calls) <= 3:
            raise RuntimeError(f"crash {len(calls)}")
        healed.set()
        return None

    ctrl = Controller("t", reconcile, clock=clock, workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    with caplog.at_level(logging.ERROR, logger="lbctl.controller.t"):
        ctrl.enqueue("k")
        while not healed.is_set():
            await clock.advance(1)
    assert calls == [0.0, 5.0, 15.0, 35.0]  # 5, 10, 20 s apart
    assert ctrl.queue.num_requeues("k") == 0  # success forgot the failures
    crashes = [r for r in caplog.records if "reconcile failed" in r.getMessage()]
    assert len(crashes) == 3
    assert all(r.exc_info is not None for r in crashes)  # logged with traceback
    # the worker is still alive and serves new keys
    healed.clear()
    ctrl.enqueue("other")
    await asyncio.wait_for(healed.wait(), DEADLINE)
    await _stop(stop, task)


async def test_an_expected_failure_is_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    calls: list[float] = []
    healed = asyncio.Event()

    class Refused(Exception):
        pass

    async def reconcile(key: str) -> Result | None:
        calls.append(clock.now())
        if len(calls) <= 2:
            raise Refused("quota reached")
        healed.set()
        return None

    ctrl = Controller("t", reconcile, clock=clock, expected=(Refused,))
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    with caplog.at_level(logging.WARNING, logger="lbctl.controller.t"):
        ctrl.enqueue("k")
        while not healed.is_set():
            await clock.advance(1)
    assert calls == [0.0, 5.0, 15.0]  # the same backoff as a crash
    failed = [r for r in caplog.records if "reconcile failed" in r.getMessage()]
    assert [r.getMessage() for r in failed] == [
        "k: reconcile failed (retry 1): quota reached",
        "k: reconcile failed (retry 2): quota reached",
    ]
    assert all(r.exc_info is None and r.levelno == logging.WARNING for r in failed)
    await _stop(stop, task)


async def test_n_workers_reconcile_n_keys_concurrently() -> None:
    n = 4
    barrier = asyncio.Barrier(n)  # passes only when n reconciles run at once

    async def reconcile(key: str) -> Result | None:
        await barrier.wait()
        return None

    observer = Observer()
    ctrl = Controller("t", reconcile, workers=n, clock=FakeClock(), observer=observer)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    for i in range(n):
        ctrl.enqueue(f"k{i}")
    await observer.wait_for(n)
    assert sorted(str(s[1]) for s in observer.seen) == [f"k{i}" for i in range(n)]
    await _stop(stop, task)


async def test_one_key_is_never_reconciled_twice_at_once() -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    release = asyncio.Event()
    calls = 0

    async def reconcile(key: str) -> Result | None:
        nonlocal calls
        calls += 1
        if key in running:
            overlaps.append(key)
        running.add(key)
        await release.wait()
        running.discard(key)
        return None

    observer = Observer()
    ctrl = Controller("t", reconcile, workers=3, clock=FakeClock(), observer=observer)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ctrl.enqueue("k")
    for _ in range(10):
        await asyncio.sleep(0)
    assert ctrl.active_workers == 1
    ctrl.enqueue("k")  # while in flight: dirty, not a second worker
    for _ in range(10):
        await asyncio.sleep(0)
    assert ctrl.active_workers == 1
    release.set()
    await observer.wait_for(2)  # it ran again after the first finished
    assert overlaps == []
    assert calls == 2
    await _stop(stop, task)


async def test_stop_lets_an_in_flight_reconcile_finish_and_takes_no_new_key() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def reconcile(key: str) -> Result | None:
        entered.set()
        await release.wait()
        finished.append(key)
        return Result(requeue_after=1)

    clock = FakeClock()
    queue = RecordingQueue(clock)
    ctrl = Controller("t", reconcile, queue=queue, clock=clock, workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ctrl.enqueue("in-flight")
    await asyncio.wait_for(entered.wait(), DEADLINE)
    ctrl.enqueue("queued")
    stop.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()  # waits for the in-flight reconcile
    release.set()
    await asyncio.wait_for(task, DEADLINE)
    assert finished == ["in-flight"]  # "queued" was not taken after stop
    assert queue.ops == [("forget",), ("add_after", 1)]  # outcome applied, then ignored
    assert queue.shutting_down
    assert queue.in_flight == 0
    ctrl.enqueue("late")  # ignored after shutdown
    assert len(queue) == 0
    assert queue.waiting == 0


async def test_cancellation_propagates_and_the_key_is_still_done() -> None:
    entered = asyncio.Event()

    async def reconcile(key: str) -> Result | None:
        entered.set()
        await asyncio.Event().wait()  # forever
        return None

    clock = FakeClock()
    queue = RecordingQueue(clock)
    ctrl = Controller("t", reconcile, queue=queue, clock=clock)
    task = asyncio.create_task(ctrl.run(asyncio.Event()))
    ctrl.enqueue("k")
    await asyncio.wait_for(entered.wait(), DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, DEADLINE)
    assert queue.in_flight == 0
    assert queue.ops == []  # a cancelled reconcile is neither forgotten nor requeued


async def test_observer_sees_reconcile_time_on_the_controller_clock() -> None:
    clock = FakeClock()

    async def reconcile(key: str) -> Result | None:
        await clock.sleep(3)
        return None

    observer = Observer()
    ctrl = Controller("timed", reconcile, clock=clock, observer=observer)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ctrl.enqueue("k")
    await clock.advance(3)
    await observer.wait_for(1)
    assert observer.seen == [("timed", "k", "success", 3.0)]
    await _stop(stop, task)


async def test_a_failing_observer_does_not_kill_the_worker() -> None:
    class Broken:
        calls = 0

        def reconciled(self, controller: str, key: object, result_label: str, s: float) -> None:
            Broken.calls += 1
            raise RuntimeError("metrics down")

    done = asyncio.Event()
    count = 0

    async def reconcile(key: str) -> Result | None:
        nonlocal count
        count += 1
        if count == 2:
            done.set()
        return None

    ctrl = Controller("t", reconcile, clock=FakeClock(), observer=Broken())
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ctrl.enqueue("a")
    ctrl.enqueue("b")
    await asyncio.wait_for(done.wait(), DEADLINE)
    await _stop(stop, task)
    assert Broken.calls == 2


async def test_a_controller_runs_once_and_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="worker"):
        Controller("t", _return(None), workers=0)
    ctrl = Controller("t", _return(None), clock=FakeClock())
    assert ctrl.needs_leader is True
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(ctrl.run(stop), DEADLINE)
    with pytest.raises(RuntimeError, match="more than once"):
        await ctrl.run(stop)
