"""Time sources: the real monotonic clock, and a fake one tests move by hand.

Everything in ``lbctl.runtime`` that waits or measures takes a ``Clock``, so a test can
drive a 300-second backoff or a 15-second lease expiry in zero real time::

    clock = FakeClock()
    ...
    await clock.advance(15.0)   # wakes every sleeper due by then, earliest first

``FakeClock.advance`` moves time to each due deadline in turn and lets the event loop run
the woken tasks before moving on, so what a task does when woken at t=5 happens before
anything due at t=6 is woken.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "RealClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic time source (seconds) and a way to wait on it."""

    def now(self) -> float:
        """Monotonic seconds; only differences between two readings mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``seconds`` have passed on this clock (cancellable)."""
        ...


class RealClock:
    """``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when a test says so.

    ``sleep`` parks the caller until ``advance``/``tick`` moves time past its deadline.
    A sleep of zero or less only yields to the event loop once.
    """

    def __init__(self, start: float = 0.0, *, settle_rounds: int = 50) -> None:
        self._now = start
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        #: How many times ``settle`` yields to the event loop: enough for a woken task to
        #: run through a few awaits of futures and short-lived helper tasks.
        self.settle_rounds = settle_rounds

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut  # cancelling the caller cancels fut; _prune drops it later

    @property
    def sleepers(self) -> int:
        """How many tasks are parked in ``sleep`` right now."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline of a parked sleeper, if any."""
        self._prune()
        return self._sleepers[0][0] if self._sleepers else None

    def tick(self, seconds: float) -> None:
        """Move time forward at once and wake every sleeper now due.

        Synchronous: the woken tasks run when the caller next yields. Use ``advance``
        when the order in which they act matters.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        self._wake_due(self._now)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, stopping at every sleeper's deadline in order.

        At each deadline the sleepers due then are woken and the event loop is given
        ``settle_rounds`` turns, so they act (and may sleep again, possibly with a
        deadline still inside this advance) before later sleepers are woken.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        target = self._now + seconds
        await self.settle()
        while True:
            deadline = self.next_deadline
            if deadline is None or deadline > target:
                break
            self._now = max(self._now, deadline)
            self._wake_due(self._now)
            await self.settle()
        self._now = target
        await self.settle()

    async def settle(self) -> None:
        """Let ready tasks run: yield to the event loop ``settle_rounds`` times."""
        for _ in range(self.settle_rounds):
            await asyncio.sleep(0)

    def _wake_due(self, now: float) -> None:
        while self._sleepers and self._sleepers[0][0] <= now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def _prune(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
