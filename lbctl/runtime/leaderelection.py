"""Lease-based leader election with client-go's semantics, over a pluggable store.

A candidate never trusts the timestamps in the lease record (they come from another
machine's clock). It only notes, on its own monotonic clock, *when it last saw the record
change*; a lease held by someone else counts as expired once the record has not changed
for the holder's ``lease_duration_seconds``. An empty holder means released: take it.

Leading: renew every ``retry_period``. If no renewal has succeeded for ``renew_deadline``
(measured from the start of the last successful attempt, and enforced with a timeout on
the store call), stop leading. Because ``renew_deadline < lease_duration``, the old
leader has stopped before any other candidate can see the lease as expired.

On ``stop`` while leading: ``on_stopped_leading`` is awaited first (stop the guarded
work), then the lease is released (holder emptied) so another candidate takes over on
its next try instead of waiting out the lease. ``run`` returns after leadership ends,
either way; it does not campaign again (like client-go: a process that lost the lease
should exit).

``LeaseStore`` is the seam: ``InMemoryLeaseStore`` here, a coordination.k8s.io/v1 Lease
at the Kubernetes edge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lbctl.runtime.clock import Clock, RealClock

__all__ = [
    "InMemoryLeaseStore",
    "LeaderElector",
    "LeaseConflict",
    "LeaseRecord",
    "LeaseStore",
]

T = TypeVar("T")
Callback = Callable[[], Awaitable[None]]


class LeaseConflict(Exception):
    """The lease changed since it was read (stale ``resource_version``), or already exists."""


@dataclass(slots=True)
class LeaseRecord:
    """The election state. Times are wall-clock epoch seconds, for humans only."""

    holder: str | None
    lease_duration_seconds: float
    acquire_time: float | None
    renew_time: float | None
    transitions: int
    resource_version: str = ""


class LeaseStore(Protocol):
    """Where the lease lives. ``update`` is a compare-and-swap on ``resource_version``."""

    async def get(self) -> LeaseRecord | None:
        """The current record, or ``None`` if there is no lease yet."""
        ...

    async def create(self, rec: LeaseRecord) -> LeaseRecord:
        """Create the lease; raises ``LeaseConflict`` if it exists."""
        ...

    async def update(self, rec: LeaseRecord) -> LeaseRecord:
        """Replace the lease; raises ``LeaseConflict`` if ``rec.resource_version`` is stale."""
        ...


class InMemoryLeaseStore:
    """A ``LeaseStore`` in a dict-like cell, for tests; shared by all candidates."""

    def __init__(self) -> None:
        self._rec: LeaseRecord | None = None
        self._version = 0
        #: Every successful write, in order (for assertions).
        self.writes: list[LeaseRecord] = []

    @property
    def record(self) -> LeaseRecord | None:
        return dataclasses.replace(self._rec) if self._rec is not None else None

    async def get(self) -> LeaseRecord | None:
        return self.record

    async def create(self, rec: LeaseRecord) -> LeaseRecord:
        if self._rec is not None:
            raise LeaseConflict("lease already exists")
        return self._store(rec)

    async def update(self, rec: LeaseRecord) -> LeaseRecord:
        if self._rec is None:
            raise LeaseConflict("lease does not exist")
        if rec.resource_version != self._rec.resource_version:
            raise LeaseConflict(
                f"stale resource_version {rec.resource_version!r} "
                f"(current {self._rec.resource_version!r})"
            )
        return self._store(rec)

    def _store(self, rec: LeaseRecord) -> LeaseRecord:
        self._version += 1
        self._rec = dataclasses.replace(rec, resource_version=str(self._version))
        self.writes.append(dataclasses.replace(self._rec))
        return dataclasses.replace(self._rec)


class LeaderElector:
    """One candidate. ``run`` campaigns, leads while it can, and returns when it stops."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Clock | None = None,
        jitter: float = 0.2,
        wall_time: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not identity:
            raise ValueError("leader election identity must not be empty")
        if not retry_period > 0:
            raise ValueError(f"retry_period must be > 0 seconds, got {retry_period}")
        if not renew_deadline > retry_period:
            raise ValueError(
                f"renew_deadline ({renew_deadline}s) must be greater than "
                f"retry_period ({retry_period}s)"
            )
        if not lease_duration > renew_deadline:
            raise ValueError(
                f"lease_duration ({lease_duration}s) must be greater than "
                f"renew_deadline ({renew_deadline}s)"
            )
        if jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.store = store
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock: Clock = clock if clock is not None else RealClock()
        self.jitter = jitter
        self._wall = wall_time
        self._rng = rng if rng is not None else random.Random()
        self.log = logger if logger is not None else logging.getLogger("lbctl.leaderelection")
        self._observed: LeaseRecord | None = None
        self._observed_time = 0.0
        self._last_renew = 0.0  # clock time at the start of the last successful attempt
        self._leading = False

    @property
    def is_leader(self) -> bool:
        """True between ``on_started_leading`` and ``on_stopped_leading``."""
        return self._leading

    @property
    def observed_leader(self) -> str | None:
        """The holder in the last record this candidate saw."""
        return self._observed.holder if self._observed is not None else None

    async def run(
        self,
        stop: asyncio.Event,
        on_started_leading: Callback,
        on_stopped_leading: Callback,
    ) -> None:
        """Campaign until leading or ``stop``; lead until ``stop`` or a failed renewal.

        Both callbacks are awaited in this task and should return promptly;
        ``on_stopped_leading`` should return once the guarded work has stopped.
        """
        if not await self._acquire(stop):
            return
        if stop.is_set():
            await self._release()
            return
        self._leading = True
        self.log.info("%s: became leader", self.identity)
        stopped = False
        try:
            await on_started_leading()
            stopped = await self._renew(stop)
        finally:
            self._leading = False
            if stopped:
                self.log.info("%s: stopping; giving up leadership", self.identity)
            else:
                self.log.warning("%s: lost leadership", self.identity)
            await on_stopped_leading()
        if stopped:
            await self._release()

    # -- phases ------------------------------------------------------------------------
    async def _acquire(self, stop: asyncio.Event) -> bool:
        """Try every retry_period (jittered) until acquired (True) or stopped (False)."""
        self.log.info("%s: attempting to acquire the lease", self.identity)
        while not stop.is_set():
            if await self._attempt(timeout=self.renew_deadline):
                return True
            delay = self.retry_period * (1.0 + self.jitter * self._rng.random())
            if await self._sleep_or_stop(stop, delay):
                return False
        return False

    async def _renew(self, stop: asyncio.Event) -> bool:
        """Renew until ``stop`` (True) or the renew deadline passes (False)."""
        next_try = self._last_renew + self.retry_period
        while True:
            if await self._sleep_or_stop(stop, next_try - self.clock.now()):
                return True
            deadline = self._last_renew + self.renew_deadline
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                self.log.warning(
                    "%s: could not renew the lease within %gs", self.identity, self.renew_deadline
                )
                return False
            if await self._attempt(timeout=remaining):
                next_try = self._last_renew + self.retry_period
            else:
                next_try = min(self.clock.now() + self.retry_period, deadline)

    async def _release(self) -> None:
        """Empty the holder if the lease is (still) ours, so others need not wait."""
        try:
            current = await self._with_timeout(self.store.get(), self.renew_deadline)
            if current is None or current.holder != self.identity:
                return
            wall = self._wall()
            released = dataclasses.replace(
                current, holder=None, lease_duration_seconds=1.0, renew_time=wall
            )
            self._observe(
                await self._with_timeout(self.store.update(released), self.renew_deadline)
            )
            self.log.info("%s: released the lease", self.identity)
        except Exception as exc:
            self.log.warning("%s: could not release the lease: %s", self.identity, exc)

    # -- one try -----------------------------------------------------------------------
    async def _attempt(self, *, timeout: float) -> bool:
        """One acquire-or-renew, bounded by ``timeout``; failures are logged, not raised."""
        started = self.clock.now()
        try:
            ok = await self._with_timeout(self._try_acquire_or_renew(), timeout)
        except TimeoutError:
            self.log.warning("%s: lease request timed out after %gs", self.identity, timeout)
            return False
        except LeaseConflict as exc:
            self.log.debug("%s: lease conflict: %s", self.identity, exc)
            return False
        except Exception as exc:
            self.log.warning("%s: lease request failed: %s", self.identity, exc)
            return False
        if ok:
            self._last_renew = started
        return ok

    async def _try_acquire_or_renew(self) -> bool:
        wall = self._wall()
        current = await self.store.get()
        if current is None:
            mine = LeaseRecord(
                holder=self.identity,
                lease_duration_seconds=self.lease_duration,
                acquire_time=wall,
                renew_time=wall,
                transitions=0,
            )
            self._observe(await self.store.create(mine))
            return True
        if current != self._observed:
            self._observe(current)
        ours = current.holder == self.identity
        if current.holder and not ours:
            expires = self._observed_time + current.lease_duration_seconds
            if expires > self.clock.now():
                self.log.debug("%s: lease held by %s", self.identity, current.holder)
                return False
        if ours:
            new = dataclasses.replace(
                current, lease_duration_seconds=self.lease_duration, renew_time=wall
            )
        else:
            new = LeaseRecord(
                holder=self.identity,
                lease_duration_seconds=self.lease_duration,
                acquire_time=wall,
                renew_time=wall,
                transitions=current.transitions + 1,
                resource_version=current.resource_version,
            )
        self._observe(await self.store.update(new))
        return True

    def _observe(self, rec: LeaseRecord) -> None:
        if self._observed is None or rec.holder != self._observed.holder:
            self.log.info("%s: observed leader %s", self.identity, rec.holder or "<none>")
        self._observed = rec
        self._observed_time = self.clock.now()

    # -- waiting -----------------------------------------------------------------------
    async def _sleep_or_stop(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep on the clock; True if ``stop`` was set (before or during)."""
        if stop.is_set():
            return True
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return stop.is_set()

    async def _with_timeout(self, aw: Awaitable[T], seconds: float) -> T:
        """Await ``aw``, giving up (``TimeoutError``) after ``seconds`` on the clock."""
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, timer, return_exceptions=True)
        if task.cancelled():
            raise TimeoutError(f"no answer within {seconds:g}s")
        return task.result()
