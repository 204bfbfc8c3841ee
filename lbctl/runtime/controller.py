"""The controller loop: workers taking keys from a work queue and reconciling them.

A reconcile request is only a key; the reconciler re-reads current state (level-based).
``Controller._apply`` is the one place that turns a reconcile's outcome into queue
operations and a result label for metrics:

- returns ``None`` or ``Result()``: ``forget`` -> ``success``
- returns ``Result(requeue_after=s)``: ``forget`` + ``add_after(s)`` -> ``requeue_after``
- raises ``RetryAfter(s)``: ``add_after(s)``, backoff left as is -> ``requeue``
- raises ``TerminalError``: logged, ``forget``, no requeue -> ``terminal``
- raises anything else (a crash): logged with traceback, ``add_rate_limited`` -> ``error``
- ``asyncio.CancelledError``: propagates; the key is still ``done``, nothing requeued

Shutdown: when ``stop`` is set the queue is shut down, idle workers exit, and in-flight
reconciles run to completion; keys still queued are not processed (the next process
re-lists everything anyway).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from lbctl.runtime.clock import Clock, RealClock
from lbctl.runtime.workqueue import ShutDown, WorkQueue

__all__ = [
    "RESULT_LABELS",
    "Controller",
    "ReconcileObserver",
    "Reconciler",
    "Result",
    "RetryAfter",
    "TerminalError",
]

K = TypeVar("K", bound=Hashable)

#: Every ``result_label`` an observer can see (controller-runtime's ``reconcile_total``
#: labels, plus ``terminal``).
RESULT_LABELS = ("success", "requeue", "requeue_after", "error", "terminal")


@dataclass(frozen=True, slots=True)
class Result:
    """What a successful reconcile asks for: nothing, or another look after a while."""

    requeue_after: float | None = None
    """Seconds until the key is reconciled again (0: as soon as possible); ``None``: only
    when something changes."""

    def __post_init__(self) -> None:
        if self.requeue_after is not None and self.requeue_after < 0:
            raise ValueError(f"requeue_after must be >= 0 seconds, got {self.requeue_after}")


class TerminalError(Exception):
    """A failure retrying cannot fix: logged, the backoff forgotten, not requeued.

    The key comes back only when something changes and it is enqueued again.
    """


class RetryAfter(Exception):
    """Retry after exactly ``seconds`` (e.g. a provider asked for it); backoff unchanged."""

    def __init__(self, seconds: float, message: str = "") -> None:
        if seconds < 0:
            raise ValueError(f"RetryAfter seconds must be >= 0, got {seconds}")
        super().__init__(message or f"retry after {seconds:g}s")
        self.seconds = seconds


Reconciler = Callable[[K], Awaitable[Result | None]]


class ReconcileObserver(Protocol):
    """Told about every finished reconcile (for metrics)."""

    def reconciled(self, controller: str, key: object, result_label: str, seconds: float) -> None:
        """``result_label`` is one of ``RESULT_LABELS``; ``seconds`` on the controller's clock."""
        ...


class Controller(Generic[K]):
    """Runs ``workers`` concurrent reconciles; a key is never reconciled twice at once.

    Satisfies ``lbctl.runtime.manager.Runnable`` (``name``, ``needs_leader``, ``run``).
    """

    def __init__(
        self,
        name: str,
        reconcile: Reconciler[K],
        *,
        workers: int = 1,
        queue: WorkQueue[K] | None = None,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        observer: ReconcileObserver | None = None,
        needs_leader: bool = True,
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        if workers < 1:
            raise ValueError(f"a controller needs at least one worker, got {workers}")
        self.name = name
        self.needs_leader = needs_leader
        self.expected = expected
        """Failures that are part of normal operation (a cloud API or the API server said
        no): logged as one warning line with the error, no traceback; retried the same."""
        self.workers = workers
        self.clock: Clock = clock if clock is not None else RealClock()
        self.queue: WorkQueue[K] = (
            queue if queue is not None else WorkQueue(name=name, clock=self.clock)
        )
        self.log = logger if logger is not None else logging.getLogger(f"lbctl.controller.{name}")
        self.observer = observer
        self._reconcile = reconcile
        self._started = False
        self._active = 0

    @property
    def active_workers(self) -> int:
        """Workers reconciling right now."""
        return self._active

    def enqueue(self, key: K) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: K, seconds: float) -> None:
        self.queue.add_after(key, seconds)

    async def run(self, stop: asyncio.Event) -> None:
        """Process keys until ``stop`` is set, then let in-flight reconciles finish."""
        if self._started:
            raise RuntimeError(f"controller {self.name!r} was started more than once")
        self._started = True
        self.log.info("starting %d worker(s)", self.workers)
        async with asyncio.TaskGroup() as tg:
            for i in range(self.workers):
                tg.create_task(self._worker(stop), name=f"{self.name}-worker-{i}")
            await stop.wait()
            self.log.info("stop requested; waiting for in-flight reconciles")
            self.queue.shutdown()  # wakes idle workers; adds are ignored from now on
        self.log.info("all workers finished")

    async def _worker(self, stop: asyncio.Event) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                if stop.is_set():
                    return  # stopping: take no new key
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: K) -> None:
        self._active += 1
        start = self.clock.now()
        try:
            try:
                result = await self._reconcile(key)
                if result is not None and not isinstance(result, Result):
                    raise TypeError(f"reconcile returned {result!r}, not a Result or None")
            except Exception as exc:
                label = self._apply(key, None, exc)
            else:
                label = self._apply(key, result, None)
        finally:
            self._active -= 1
        self._observe(key, label, self.clock.now() - start)

    def _apply(self, key: K, result: Result | None, exc: Exception | None) -> str:
        """Turn one reconcile's outcome into queue operations; return its result label."""
        q = self.queue
        if exc is None:
            q.forget(key)
            if result is None or result.requeue_after is None:
                return "success"
            q.add_after(key, result.requeue_after)
            return "requeue_after"
        if isinstance(exc, TerminalError):
            q.forget(key)
            self.log.error("%s: terminal error, not retrying: %s", key, exc)
            return "terminal"
        if isinstance(exc, RetryAfter):
            q.add_after(key, exc.seconds)
            self.log.info("%s: retrying in %gs: %s", key, exc.seconds, exc)
            return "requeue"
        q.add_rate_limited(key)
        if isinstance(exc, self.expected):
            self.log.warning("%s: reconcile failed (retry %d): %s", key, q.num_requeues(key), exc)
            return "error"
        self.log.error(
            "%s: reconcile failed (retry %d)",
            key,
            q.num_requeues(key),
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return "error"

    def _observe(self, key: K, label: str, seconds: float) -> None:
        if self.observer is None:
            return
        try:
            self.observer.reconciled(self.name, key, label, seconds)
        except Exception:
            self.log.exception("reconcile observer failed")
