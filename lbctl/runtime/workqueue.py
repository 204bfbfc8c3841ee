"""A rate-limited work queue with client-go's semantics, for one event loop.

The rules (client-go ``util/workqueue``):

- A key waiting in the queue is stored once: adding it again is a no-op (dedup).
- A key handed out by ``get`` is *processing* until ``done``; it is never handed to a
  second worker meanwhile. Adding it while it is processing marks it dirty, and ``done``
  puts it back at the end of the queue.
- ``add_after(key, s)`` parks the key until ``s`` seconds have passed on the clock; for a
  key parked twice the earliest deadline wins. A parked key is independent of the same
  key being queued or processing: when it comes due it is simply ``add``-ed.
- ``add_rate_limited(key)`` is ``add_after(key, backoff.when(key))``; ``forget(key)``
  resets that key's backoff (call it on success).
- After ``shutdown`` adds are ignored, parked keys are dropped, and ``get`` hands out
  what is still queued, then raises ``ShutDown``.

There is no background task: parked keys are moved into the queue when any method looks
at the queue, and a waiting ``get`` sleeps on the clock until the earliest deadline.

Metrics hooks: ``adds_total`` and ``retries_total`` counters (every ``add_after``,
including rate-limited ones, counts as a retry, as upstream), ``on_get(key, waited)`` with
the seconds between the key becoming ready and being handed out, and
``on_done(key, seconds)`` with the processing time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from lbctl.runtime.clock import Clock, RealClock

__all__ = ["Empty", "ExponentialBackoff", "RateLimiter", "ShutDown", "WorkQueue"]

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)

# 2**1023 is the largest power of two a float holds; past it the delay is the cap anyway.
_MAX_EXPONENT = 1023


class ShutDown(Exception):
    """``get`` on a queue that is shut down and has nothing left queued."""


class Empty(Exception):
    """``get_nowait`` found nothing ready."""


class RateLimiter(Protocol[K_contra]):
    """Per-key retry delays: ``when`` records a failure and says how long to wait."""

    def when(self, key: K_contra) -> float: ...

    def forget(self, key: K_contra) -> None: ...

    def failures(self, key: K_contra) -> int: ...


class ExponentialBackoff(Generic[K]):
    """``base * 2**failures`` seconds, capped at ``cap``, counted per key.

    The defaults are the cloud-provider service controller's: 5 s, 10 s, 20 s, ... 300 s.
    ``when`` returns the delay for the current failure count, then increments it.
    """

    def __init__(self, base: float = 5.0, cap: float = 300.0) -> None:
        if base <= 0:
            raise ValueError(f"backoff base must be > 0 seconds, got {base}")
        if cap < base:
            raise ValueError(f"backoff cap ({cap}) must be >= base ({base})")
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.cap, self.base * float(2 ** min(n, _MAX_EXPONENT)))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """Keys to process, each handed to one worker at a time (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str = "",
        clock: Clock | None = None,
        backoff: RateLimiter[K] | None = None,
        on_get: Callable[[K, float], None] | None = None,
        on_done: Callable[[K, float], None] | None = None,
    ) -> None:
        self.name = name
        self.clock: Clock = clock if clock is not None else RealClock()
        self.backoff: RateLimiter[K] = backoff if backoff is not None else ExponentialBackoff()
        self.on_get = on_get
        self.on_done = on_done
        #: Keys newly marked as needing processing (a dedup'ed add does not count).
        self.adds_total = 0
        #: ``add_after`` / ``add_rate_limited`` calls accepted.
        self.retries_total = 0
        self._queue: deque[K] = deque()  # every key here is dirty and not processing
        self._dirty: dict[K, float] = {}  # key -> when it became ready
        self._processing: dict[K, float] = {}  # key -> when it was handed out
        self._delayed: dict[K, float] = {}  # key -> deadline (the earliest requested)
        self._heap: list[tuple[float, int, K]] = []  # may hold stale, superseded entries
        self._seq = itertools.count()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._idle: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"<WorkQueue {self.name!r} queued={len(self._queue)} "
            f"processing={len(self._processing)} waiting={len(self._delayed)}>"
        )

    # -- state -------------------------------------------------------------------------
    def __len__(self) -> int:
        """Depth: keys queued and ready to be handed out."""
        self._promote()
        return len(self._queue)

    @property
    def waiting(self) -> int:
        """Keys parked by ``add_after`` and not yet due."""
        self._promote()
        return len(self._delayed)

    @property
    def in_flight(self) -> int:
        """Keys handed out and not yet ``done``."""
        return len(self._processing)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def num_requeues(self, key: K) -> int:
        """Failures the backoff has counted for ``key`` since it was last forgotten."""
        return self.backoff.failures(key)

    # -- adding ------------------------------------------------------------------------
    def add(self, key: K) -> None:
        """Mark ``key`` as needing processing."""
        self._promote()
        self._add(key, self.clock.now())

    def add_after(self, key: K, seconds: float) -> None:
        """Add ``key`` once ``seconds`` have passed; the earliest pending deadline wins."""
        if self._shutting_down:
            return
        self.retries_total += 1
        if seconds <= 0:
            self.add(key)
            return
        deadline = self.clock.now() + seconds
        current = self._delayed.get(key)
        if current is not None and current <= deadline:
            return
        earliest = self._next_deadline()
        self._delayed[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if earliest is None or deadline < earliest:
            self._wake_one()  # a getter sleeping towards a later deadline re-arms

    def add_rate_limited(self, key: K) -> None:
        """Add ``key`` after its backoff delay (which also counts one more failure)."""
        if self._shutting_down:
            return
        self.add_after(key, self.backoff.when(key))

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff. Does not remove it from the queue."""
        self.backoff.forget(key)

    # -- taking ------------------------------------------------------------------------
    async def get(self) -> K:
        """Wait for a key and mark it processing; call ``done(key)`` when finished.

        Raises ``ShutDown`` once the queue is shut down and nothing is left queued.
        Cancelling a waiting ``get`` loses no key.
        """
        loop = asyncio.get_running_loop()
        while True:
            self._promote()
            if self._queue:
                return self._pop()
            if self._shutting_down:
                raise ShutDown(f"work queue {self.name!r} is shut down")
            fut: asyncio.Future[None] = loop.create_future()
            self._getters.append(fut)
            try:
                deadline = self._next_deadline()
                if deadline is None:
                    await fut
                else:
                    await self._wait_until(fut, deadline)
            except BaseException:
                if fut.done() and not fut.cancelled():
                    self._wake_one()  # we were woken but will not take: pass it on
                raise
            finally:
                if not fut.done():
                    fut.cancel()
                    self._getters.remove(fut)

    def get_nowait(self) -> K:
        """Like ``get`` but raises ``Empty`` instead of waiting."""
        self._promote()
        if self._queue:
            return self._pop()
        if self._shutting_down:
            raise ShutDown(f"work queue {self.name!r} is shut down")
        raise Empty(self.name)

    def done(self, key: K) -> None:
        """Finish processing ``key``; if it was added meanwhile, queue it again.

        A key that is not processing is ignored, as upstream.
        """
        started = self._processing.pop(key, None)
        if started is None:
            return
        if self.on_done is not None:
            self.on_done(key, self.clock.now() - started)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()
        if not self._processing and self._idle is not None:
            self._idle.set()

    # -- shutting down -----------------------------------------------------------------
    def shutdown(self) -> None:
        """Ignore adds from now on, drop parked keys and wake every waiting ``get``."""
        self._shutting_down = True
        self._delayed.clear()
        self._heap.clear()
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)

    async def shutdown_with_drain(self) -> None:
        """``shutdown``, then wait until every key handed out has been ``done``."""
        self.shutdown()
        if not self._processing:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        await self._idle.wait()

    # -- internals ---------------------------------------------------------------------
    def _add(self, key: K, ready_at: float) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self.adds_total += 1
        self._dirty[key] = ready_at
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._wake_one()

    def _pop(self) -> K:
        key = self._queue.popleft()
        now = self.clock.now()
        ready_at = self._dirty.pop(key)
        self._processing[key] = now
        if self.on_get is not None:
            self.on_get(key, max(0.0, now - ready_at))
        return key

    def _promote(self) -> None:
        """Move parked keys whose deadline has passed into the queue, earliest first."""
        if not self._heap:
            return
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            if self._delayed.get(key) != deadline:
                continue  # superseded by an earlier deadline, already promoted
            del self._delayed[key]
            self._add(key, deadline)

    def _next_deadline(self) -> float | None:
        while self._heap:
            deadline, _, key = self._heap[0]
            if self._delayed.get(key) == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    async def _wait_until(self, fut: asyncio.Future[None], deadline: float) -> None:
        timer = asyncio.ensure_future(self.clock.sleep(deadline - self.clock.now()))
        try:
            await asyncio.wait((fut, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
