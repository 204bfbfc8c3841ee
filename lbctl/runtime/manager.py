"""Runs Runnables in a fixed start/stop order; some only while this process leads.

Start: runnables that do not need leadership, in the order added; then, once the elector
says we lead (at once when there is no elector), the leader runnables in the order added.

Stop (``stop`` set, a runnable crashed, or leadership lost): each runnable has its own
stop event and is stopped and awaited one at a time, in reverse start order: the leader
runnables first, then the lease is released (so a standby takes over at once), then the
other runnables. Everything shares one ``graceful_shutdown_timeout``; what is still
running after it is cancelled.

Outcome of ``run``: returns after a requested stop; re-raises the first runnable's crash
(after stopping the others); raises ``LostLeadership`` if the lease was lost -- like
controller-runtime, a process that lost the lease should exit and start over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lbctl.runtime.clock import Clock, RealClock

__all__ = ["Elector", "LostLeadership", "Manager", "Runnable"]


class LostLeadership(Exception):
    """The leader lease was lost while running; the process should exit."""


class Runnable(Protocol):
    """A long-running part of the process. ``run`` returns soon after ``stop`` is set."""

    name: str
    needs_leader: bool

    async def run(self, stop: asyncio.Event) -> None: ...


class Elector(Protocol):
    """What the manager needs of a leader elector (``LeaderElector`` is one).

    ``run`` awaits ``on_started_leading`` once leading and ``on_stopped_leading`` when
    leading ends; it returns after leading ends, or when ``stop`` is set before that.
    On a requested stop it releases the lease after ``on_stopped_leading`` returned.
    """

    async def run(
        self,
        stop: asyncio.Event,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[], Awaitable[None]],
    ) -> None: ...


@dataclass(eq=False)
class _Running:
    runnable: Runnable
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Manager:
    """Owns the runnables' tasks: none outlives ``run`` (structured concurrency)."""

    def __init__(
        self,
        *,
        elector: Elector | None = None,
        graceful_shutdown_timeout: float | None = 30.0,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.elector = elector
        #: Seconds (on ``clock``) that stopping everything may take in total; ``None``:
        #: wait forever. controller-runtime's default is 30 s as well.
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.clock: Clock = clock if clock is not None else RealClock()
        self.log = logger if logger is not None else logging.getLogger("lbctl.manager")
        self._runnables: list[Runnable] = []
        self._started = False
        self._errors: list[BaseException] = []
        self._wake = asyncio.Event()
        self._deadline: float | None = None

    @property
    def runnables(self) -> tuple[Runnable, ...]:
        return tuple(self._runnables)

    def add(self, runnable: Runnable) -> None:
        if self._started:
            raise RuntimeError("runnables must be added before the manager runs")
        self._runnables.append(runnable)

    async def run(self, stop: asyncio.Event, *, elector: Elector | None = None) -> None:
        """Run everything until ``stop``, a crash, or lost leadership (see module doc).

        ``elector`` overrides the one given to the constructor.
        """
        if self._started:
            raise RuntimeError("a manager runs once")
        self._started = True
        elector = elector if elector is not None else self.elector
        others = [r for r in self._runnables if not r.needs_leader]
        leaders = [r for r in self._runnables if r.needs_leader]
        elector_stop = asyncio.Event()
        elector_ended = False
        async with asyncio.TaskGroup() as tg:
            started: list[_Running] = []
            leading: list[_Running] = []

            def start(r: Runnable) -> _Running:
                entry = _Running(r)
                entry.task = tg.create_task(self._guard(r.name, r.run(entry.stop)), name=r.name)
                self.log.info("started %s", r.name)
                return entry

            async def on_started_leading() -> None:
                self.log.info("leading: starting %d runnable(s)", len(leaders))
                if not self._wake.is_set():
                    leading.extend(start(r) for r in leaders)

            async def on_stopped_leading() -> None:
                await self._stop_all(reversed(leading))
                leading.clear()

            started.extend(start(r) for r in others)
            elector_task: asyncio.Task[None] | None = None
            if elector is None:
                started.extend(start(r) for r in leaders)
            else:
                elector_task = tg.create_task(
                    self._guard(
                        "leader-election",
                        elector.run(elector_stop, on_started_leading, on_stopped_leading),
                        wake=True,
                    ),
                    name="leader-election",
                )
            await _first_of(stop.wait(), self._wake.wait())
            self._wake.set()  # no leader runnable starts from now on
            if elector_task is not None:
                elector_ended = elector_task.done()
                elector_stop.set()
                await self._await(elector_task, "leader-election")
            await self._stop_all(reversed(started))
        if self._errors:
            raise self._errors[0]
        if elector_ended and not stop.is_set():
            raise LostLeadership("lost the leader lease")
        self.log.info("all runnables stopped")

    async def _guard(
        self, name: str, coro: Coroutine[Any, Any, None], *, wake: bool = False
    ) -> None:
        """Run one runnable; a crash is recorded and wakes the manager, not the TaskGroup."""
        try:
            await coro
        except Exception as exc:
            self.log.error("%s crashed", name, exc_info=(type(exc), exc, exc.__traceback__))
            self._errors.append(exc)
            self._wake.set()
        else:
            if wake:
                self._wake.set()

    async def _stop_all(self, entries: Iterable[_Running]) -> None:
        for entry in list(entries):
            entry.stop.set()
            if entry.task is not None:
                await self._await(entry.task, entry.runnable.name)

    async def _await(self, task: asyncio.Task[None], name: str) -> None:
        """Wait for ``task`` within the shared shutdown deadline, else cancel it."""
        if self.graceful_shutdown_timeout is None:
            await asyncio.wait((task,))
        else:
            now = self.clock.now()
            if self._deadline is None:  # the first stop arms the shared deadline
                self._deadline = now + self.graceful_shutdown_timeout
            timer = asyncio.ensure_future(self.clock.sleep(self._deadline - now))
            try:
                await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                await asyncio.gather(timer, return_exceptions=True)
        if task.done():
            self.log.info("stopped %s", name)
            return
        self.log.error("%s did not stop in time; cancelling it", name)
        task.cancel()
        await asyncio.wait((task,))


async def _first_of(*aws: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``aws`` finishes; cancel and reap the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
