"""The manager: start/stop order, crash propagation, leader-only runnables."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from lbctl.runtime.clock import FakeClock
from lbctl.runtime.controller import Controller, Result
from lbctl.runtime.leaderelection import InMemoryLeaseStore, LeaderElector
from lbctl.runtime.manager import LostLeadership, Manager, Runnable

DEADLINE = 2.0  # real seconds before a test counts as hung


class Recorder:
    """A runnable that logs start/stop into a shared journal."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        needs_leader: bool = False,
        crash: asyncio.Event | None = None,
        linger: asyncio.Event | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.needs_leader = needs_leader
        self.journal = journal
        self.crash = crash
        self.linger = linger
        self.on_stop = on_stop
        self.running = asyncio.Event()
        self.stop_seen: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self.stop_seen = stop
        self.journal.append(f"start {self.name}")
        self.running.set()
        waits = [asyncio.ensure_future(stop.wait())]
        if self.crash is not None:
            waits.append(asyncio.ensure_future(self.crash.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self.crash is not None and self.crash.is_set():
            self.journal.append(f"crash {self.name}")
            raise RuntimeError(f"{self.name} blew up")
        if self.linger is not None:
            await self.linger.wait()
        if self.on_stop is not None:
            self.on_stop()
        self.journal.append(f"stop {self.name}")


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def _only_this_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


def test_runnable_protocol_is_met_by_the_controller() -> None:
    async def reconcile(key: str) -> Result | None:
        return None

    r: Runnable = Controller("c", reconcile)  # a static check, really
    assert r.needs_leader
    r = Recorder("x", [])
    assert not r.needs_leader


async def test_starts_in_order_added_and_stops_in_reverse_one_at_a_time() -> None:
    journal: list[str] = []
    linger = asyncio.Event()
    m = Manager()
    a = Recorder("a", journal)
    b = Recorder("b", journal)
    c = Recorder("c", journal, needs_leader=True)  # no elector: started after the others
    d = Recorder("d", journal, linger=linger)
    for r in (c, a, b, d):
        m.add(r)
    stop = asyncio.Event()
    task = asyncio.create_task(m.run(stop))
    await _settle()
    assert journal == ["start a", "start b", "start d", "start c"]
    stop.set()
    await _settle()
    # c stopped first; d lingers and b's stop event is not set until d has gone
    assert journal[4:] == ["stop c"]
    assert d.stop_seen is not None and d.stop_seen.is_set()
    assert b.stop_seen is not None and not b.stop_seen.is_set()
    linger.set()
    await asyncio.wait_for(task, DEADLINE)
    assert journal[4:] == ["stop c", "stop d", "stop b", "stop a"]
    assert _only_this_task_left()


async def test_a_crashing_runnable_stops_the_others_and_is_reraised() -> None:
    journal: list[str] = []
    crash = asyncio.Event()
    m = Manager()
    m.add(Recorder("a", journal))
    m.add(Recorder("b", journal, crash=crash))
    m.add(Recorder("c", journal))
    task = asyncio.create_task(m.run(asyncio.Event()))
    await _settle()
    crash.set()
    with pytest.raises(RuntimeError, match="b blew up"):
        await asyncio.wait_for(task, DEADLINE)
    assert journal == ["start a", "start b", "start c", "crash b", "stop c", "stop a"]
    assert _only_this_task_left()  # no orphan tasks


async def test_a_runnable_that_ignores_stop_is_cancelled_after_the_grace_period() -> None:
    journal: list[str] = []
    clock = FakeClock()
    m = Manager(graceful_shutdown_timeout=30.0, clock=clock)
    stuck = Recorder("stuck", journal, linger=asyncio.Event())  # never set
    m.add(stuck)
    m.add(Recorder("a", journal))
    stop = asyncio.Event()
    task = asyncio.create_task(m.run(stop))
    await _settle()
    stop.set()
    await clock.advance(29.0)
    assert journal[-1] == "stop a"  # stopped first, cleanly
    assert not task.done()  # still giving "stuck" its grace period
    await clock.advance(1.0)
    await asyncio.wait_for(task, DEADLINE)
    assert "stop stuck" not in journal
    assert _only_this_task_left()


async def test_runnables_can_only_be_added_before_run_and_run_once() -> None:
    m = Manager()
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(m.run(stop), DEADLINE)
    with pytest.raises(RuntimeError, match="before"):
        m.add(Recorder("late", []))
    with pytest.raises(RuntimeError, match="once"):
        await m.run(stop)


class ScriptedElector:
    """Leads when ``grant`` is set; loses the lease when ``revoke`` is set."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal
        self.grant = asyncio.Event()
        self.revoke = asyncio.Event()

    async def run(
        self,
        stop: asyncio.Event,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[], Awaitable[None]],
    ) -> None:
        if not await _first(self.grant, stop) or stop.is_set():
            return
        await on_started_leading()
        await _first(self.revoke, stop)
        await on_stopped_leading()
        if stop.is_set():
            self.journal.append("release")


async def _first(*events: asyncio.Event) -> bool:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return True


async def test_leader_runnables_run_only_while_leading_and_losing_the_lease_exits() -> None:
    journal: list[str] = []
    elector = ScriptedElector(journal)
    m = Manager()
    m.add(Recorder("informer", journal))
    m.add(Recorder("ctrl1", journal, needs_leader=True))
    m.add(Recorder("ctrl2", journal, needs_leader=True))
    task = asyncio.create_task(m.run(asyncio.Event(), elector=elector))
    await _settle()
    assert journal == ["start informer"]  # not leading yet
    elector.grant.set()
    await _settle()
    assert journal == ["start informer", "start ctrl1", "start ctrl2"]
    elector.revoke.set()
    with pytest.raises(LostLeadership):
        await asyncio.wait_for(task, DEADLINE)
    assert journal[3:] == ["stop ctrl2", "stop ctrl1", "stop informer"]
    assert _only_this_task_left()


async def test_on_stop_leader_runnables_stop_then_the_lease_is_released_then_the_rest() -> None:
    journal: list[str] = []
    elector = ScriptedElector(journal)
    m = Manager(elector=elector)
    m.add(Recorder("informer", journal))
    m.add(Recorder("ctrl", journal, needs_leader=True))
    stop = asyncio.Event()
    task = asyncio.create_task(m.run(stop))
    elector.grant.set()
    await _settle()
    stop.set()
    await asyncio.wait_for(task, DEADLINE)
    assert journal == ["start informer", "start ctrl", "stop ctrl", "release", "stop informer"]


async def test_stop_before_leading_never_starts_leader_runnables() -> None:
    journal: list[str] = []
    m = Manager(elector=ScriptedElector(journal))
    m.add(Recorder("ctrl", journal, needs_leader=True))
    stop = asyncio.Event()
    task = asyncio.create_task(m.run(stop))
    await _settle()
    stop.set()
    await asyncio.wait_for(task, DEADLINE)
    assert journal == []


async def test_leadership_arriving_during_shutdown_starts_nothing() -> None:
    journal: list[str] = []

    class Late:
        async def run(
            self,
            stop: asyncio.Event,
            on_started_leading: Callable[[], Awaitable[None]],
            on_stopped_leading: Callable[[], Awaitable[None]],
        ) -> None:
            await stop.wait()
            await on_started_leading()  # a race: the lease was won as we were stopping
            await on_stopped_leading()

    m = Manager(elector=Late())
    m.add(Recorder("ctrl", journal, needs_leader=True))
    stop = asyncio.Event()
    task = asyncio.create_task(m.run(stop))
    await _settle()
    stop.set()
    await asyncio.wait_for(task, DEADLINE)
    assert journal == []


async def test_a_crashing_leader_runnable_stops_everything_and_releases_the_lease() -> None:
    journal: list[str] = []
    crash = asyncio.Event()
    elector = ScriptedElector(journal)
    m = Manager(elector=elector)
    m.add(Recorder("informer", journal))
    m.add(Recorder("ctrl1", journal, needs_leader=True))
    m.add(Recorder("ctrl2", journal, needs_leader=True, crash=crash))
    task = asyncio.create_task(m.run(asyncio.Event()))
    elector.grant.set()
    await _settle()
    crash.set()
    with pytest.raises(RuntimeError, match="ctrl2 blew up"):
        await asyncio.wait_for(task, DEADLINE)
    assert journal[3:] == ["crash ctrl2", "stop ctrl1", "release", "stop informer"]


async def test_with_a_real_elector_the_lease_is_held_until_leader_work_has_stopped() -> None:
    clock = FakeClock()
    store = InMemoryLeaseStore()
    journal: list[str] = []
    holder_when_ctrl_stopped: list[str | None] = []

    def note_holder() -> None:
        rec = store.record
        holder_when_ctrl_stopped.append(rec.holder if rec else None)

    elector = LeaderElector(store, "me", clock=clock, wall_time=clock.now)
    m = Manager(elector=elector)
    m.add(Recorder("informer", journal))
    ctrl = Recorder("ctrl", journal, needs_leader=True, on_stop=note_holder)
    m.add(ctrl)
    stop = asyncio.Event()
    task = asyncio.create_task(m.run(stop))
    await asyncio.wait_for(ctrl.running.wait(), DEADLINE)
    assert elector.is_leader
    await clock.advance(60)  # renewing all along
    assert store.record is not None and store.record.holder == "me"
    stop.set()
    await clock.settle()
    await asyncio.wait_for(task, DEADLINE)
    assert holder_when_ctrl_stopped == ["me"]  # still ours while the controller stopped
    assert store.record is not None and store.record.holder is None  # released after
    assert journal == ["start informer", "start ctrl", "stop ctrl", "stop informer"]


async def test_with_a_real_elector_losing_the_lease_raises_lost_leadership() -> None:
    clock = FakeClock()
    store = InMemoryLeaseStore()
    journal: list[str] = []
    elector = LeaderElector(store, "me", clock=clock)
    m = Manager(elector=elector)
    ctrl = Recorder("ctrl", journal, needs_leader=True)
    m.add(ctrl)
    task = asyncio.create_task(m.run(asyncio.Event()))
    await asyncio.wait_for(ctrl.running.wait(), DEADLINE)

    async def refuse(rec: object) -> object:
        raise ConnectionError("API server unreachable")

    store.update = refuse  # type: ignore[method-assign,assignment]
    await clock.advance(30)
    with pytest.raises(LostLeadership):
        await asyncio.wait_for(task, DEADLINE)
    assert journal == ["start ctrl", "stop ctrl"]
    assert not elector.is_leader
