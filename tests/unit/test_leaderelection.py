"""Leader election over InMemoryLeaseStore on a FakeClock: who leads, when, and never two.

Lease settings are client-go's defaults: lease 15 s, renew deadline 10 s, retry 2 s
(acquire retries are jittered by up to 20 %, so 2.4 s at most).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from lbctl.runtime.clock import FakeClock
from lbctl.runtime.leaderelection import (
    InMemoryLeaseStore,
    LeaderElector,
    LeaseConflict,
    LeaseRecord,
)

LD, RD, RP = 15.0, 10.0, 2.0
MAX_RETRY = RP * 1.2
DEADLINE = 2.0  # real seconds before a test counts as hung


class FaultyStore:
    """Delegates to a shared store; ``mode`` breaks this candidate's connection.

    ok: pass through; error: raise at once; hang: never answer (nothing written);
    slow: the write lands but the answer never comes back.
    """

    def __init__(self, inner: InMemoryLeaseStore) -> None:
        self.inner = inner
        self.mode = "ok"

    async def _gate(self) -> None:
        if self.mode == "error":
            raise ConnectionError("connection refused")
        if self.mode == "hang":
            await asyncio.Event().wait()

    async def _after(self) -> None:
        if self.mode == "slow":
            await asyncio.Event().wait()

    async def get(self) -> LeaseRecord | None:
        await self._gate()
        rec = await self.inner.get()
        await self._after()
        return rec

    async def create(self, rec: LeaseRecord) -> LeaseRecord:
        await self._gate()
        out = await self.inner.create(rec)
        await self._after()
        return out

    async def update(self, rec: LeaseRecord) -> LeaseRecord:
        await self._gate()
        out = await self.inner.update(rec)
        await self._after()
        return out


class Candidate:
    """One elector plus a record of when it started and stopped leading."""

    def __init__(
        self,
        name: str,
        store: InMemoryLeaseStore | FaultyStore,
        clock: FakeClock,
        everyone: list[Candidate],
        seed: int = 0,
    ) -> None:
        self.name = name
        self.clock = clock
        self.store = store
        self.everyone = everyone
        self.elector = LeaderElector(
            store,
            name,
            lease_duration=LD,
            renew_deadline=RD,
            retry_period=RP,
            clock=clock,
            wall_time=clock.now,
            rng=random.Random(seed),
        )
        self.stop = asyncio.Event()
        self.started: list[float] = []
        self.stopped: list[float] = []
        self.violations: list[str] = []
        self.task: asyncio.Task[None] | None = None
        everyone.append(self)

    def start(self) -> Candidate:
        self.task = asyncio.create_task(
            self.elector.run(self.stop, self._on_started, self._on_stopped), name=self.name
        )
        return self

    @property
    def leading(self) -> bool:
        return self.elector.is_leader

    async def _on_started(self) -> None:
        others = [c.name for c in self.everyone if c is not self and c.leading]
        if others:
            self.violations.append(f"{self.name} started leading while {others} lead")
        self.started.append(self.clock.now())

    async def _on_stopped(self) -> None:
        self.stopped.append(self.clock.now())


def _check_one_leader(everyone: list[Candidate]) -> None:
    leaders = [c.name for c in everyone if c.leading]
    assert len(leaders) <= 1, f"two leaders at t={everyone[0].clock.now()}: {leaders}"
    for c in everyone:
        assert not c.violations, c.violations


async def advance_until(
    clock: FakeClock,
    cond: Callable[[], bool],
    everyone: list[Candidate],
    *,
    step: float = 0.5,
    limit: float = 300.0,
) -> float:
    """Advance fake time in steps (checking safety at each) until ``cond``; return the time."""
    end = clock.now() + limit
    await clock.settle()
    while not cond():
        _check_one_leader(everyone)
        assert clock.now() < end, "condition never became true"
        await clock.advance(step)
    _check_one_leader(everyone)
    return clock.now()


async def shutdown(clock: FakeClock, everyone: list[Candidate]) -> None:
    for c in everyone:
        c.stop.set()
    tasks = [c.task for c in everyone if c.task is not None]
    await advance_until(clock, lambda: all(t.done() for t in tasks), everyone, limit=60)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lease", "renew", "retry", "message"),
    [
        (10.0, 10.0, 2.0, "lease_duration .* must be greater than renew_deadline"),
        (10.0, 12.0, 2.0, "lease_duration .* must be greater than renew_deadline"),
        (15.0, 2.0, 2.0, "renew_deadline .* must be greater than retry_period"),
        (15.0, 10.0, 0.0, "retry_period must be > 0"),
    ],
)
def test_timings_are_validated(lease: float, renew: float, retry: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaderElector(
            InMemoryLeaseStore(),
            "a",
            lease_duration=lease,
            renew_deadline=renew,
            retry_period=retry,
        )
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(InMemoryLeaseStore(), "")


async def test_in_memory_store_is_compare_and_swap() -> None:
    store = InMemoryLeaseStore()
    assert await store.get() is None
    rec = await store.create(LeaseRecord("a", 15.0, 0.0, 0.0, 0))
    with pytest.raises(LeaseConflict):
        await store.create(rec)
    newer = await store.update(LeaseRecord("b", 15.0, 1.0, 1.0, 1, rec.resource_version))
    assert newer.resource_version != rec.resource_version
    with pytest.raises(LeaseConflict, match="stale"):
        await store.update(LeaseRecord("c", 15.0, 2.0, 2.0, 2, rec.resource_version))
    assert (await store.get()) == newer


# -- behaviour -----------------------------------------------------------------------------
async def test_one_of_two_candidates_leads_and_keeps_renewing() -> None:
    clock = FakeClock()
    store = InMemoryLeaseStore()
    everyone: list[Candidate] = []
    a = Candidate("a", store, clock, everyone).start()
    b = Candidate("b", store, clock, everyone, seed=1).start()
    await advance_until(clock, lambda: a.leading or b.leading, everyone)
    assert clock.now() == 0.0  # the first try of the first candidate creates the lease
    leader, other = (a, b) if a.leading else (b, a)
    for _ in range(120):  # a minute of fake time
        await clock.advance(0.5)
        _check_one_leader(everyone)
        assert leader.leading and not other.leading
    rec = store.record
    assert rec is not None
    assert rec.holder == leader.name
    assert rec.transitions == 0
    assert rec.renew_time is not None and clock.now() - rec.renew_time <= RP
    assert other.elector.observed_leader == leader.name
    await shutdown(clock, everyone)


async def test_when_the_leader_dies_the_other_takes_over_after_the_lease_duration() -> None:
    clock = FakeClock()
    store = InMemoryLeaseStore()
    everyone: list[Candidate] = []
    a = Candidate("a", store, clock, everyone).start()
    await advance_until(clock, lambda: a.leading, everyone)
    b = Candidate("b", store, clock, everyone).start()
    await clock.advance(30)
    assert a.leading and not b.leading
    assert a.task is not None
    a.task.cancel()  # killed: no release, no more renewals
    await asyncio.gather(a.task, return_exceptions=True)
    last = store.record
    assert last is not None and last.holder == "a" and last.renew_time is not None
    took_over = await advance_until(clock, lambda: b.leading, everyone, step=0.1)
    # b sees a's last renewal on its next try (<= one retry later), waits a lease
    # duration from then, and takes over on the try after that.
    assert last.renew_time + LD <= took_over <= last.renew_time + LD + 2 * MAX_RETRY + 0.1
    rec = store.record
    assert rec is not None and rec.holder == "b" and rec.transitions == 1
    await shutdown(clock, [b])


@pytest.mark.parametrize("fault", ["error", "hang", "slow"])
async def test_a_leader_that_cannot_renew_stops_leading_within_the_renew_deadline(
    fault: str,
) -> None:
    clock = FakeClock()
    shared = InMemoryLeaseStore()
    a_store = FaultyStore(shared)
    everyone: list[Candidate] = []
    a = Candidate("a", a_store, clock, everyone).start()
    await advance_until(clock, lambda: a.leading, everyone)
    b = Candidate("b", shared, clock, everyone).start()
    await clock.advance(7)
    a_store.mode = fault
    last_ok = [w for w in shared.writes if w.holder == "a"][-1].renew_time
    assert last_ok is not None  # the last renewal a saw confirmed
    gave_up = await advance_until(clock, lambda: not a.leading, everyone, step=0.25)
    assert gave_up - last_ok <= RD
    assert gave_up - last_ok >= RD - 0.25  # it kept trying until the deadline
    assert a.stopped == [gave_up]
    assert a.task is not None
    await asyncio.wait_for(a.task, DEADLINE)  # run returns after losing; no new campaign
    took_over = await advance_until(clock, lambda: b.leading, everyone)
    # the last renewal that reached the store ("slow": it landed, a never heard back)
    last_write = [w for w in shared.writes if w.holder == "a"][-1].renew_time
    assert last_write is not None
    assert took_over >= last_write + LD
    assert took_over - gave_up >= LD - RD  # the old leader was gone well before
    await shutdown(clock, [b])


async def test_release_on_stop_lets_the_other_take_over_at_once() -> None:
    clock = FakeClock()
    store = InMemoryLeaseStore()
    everyone: list[Candidate] = []
    a = Candidate("a", store, clock, everyone).start()
    await advance_until(clock, lambda: a.leading, everyone)
    b = Candidate("b", store, clock, everyone).start()
    await clock.advance(20)
    stopped_at = clock.now()
    a.stop.set()
    assert a.task is not None
    await clock.settle()
    await asyncio.wait_for(a.task, DEADLINE)
    assert a.stopped == [stopped_at]
    rec = store.record
    assert rec is not None and rec.holder is None  # released
    took_over = await advance_until(clock, lambda: b.leading, everyone, step=0.1)
    assert took_over - stopped_at <= MAX_RETRY  # not a whole lease duration
    await shutdown(clock, [b])


async def test_expiry_is_judged_by_when_the_candidate_saw_the_record_change() -> None:
    # A lease written long ago by someone else: its timestamps say "expired", but this
    # candidate has only just seen it, so it waits a full lease duration from now.
    clock = FakeClock(start=1000.0)
    store = InMemoryLeaseStore()
    await store.create(LeaseRecord("ghost", 40.0, acquire_time=0.0, renew_time=0.0, transitions=3))
    everyone: list[Candidate] = []
    c = Candidate("c", store, clock, everyone).start()
    took = await advance_until(clock, lambda: c.leading, everyone, step=0.25)
    assert 1040.0 <= took <= 1040.0 + MAX_RETRY  # the holder's 40 s, not our own 15 s
    rec = store.record
    assert rec is not None and rec.holder == "c" and rec.transitions == 4
    await shutdown(clock, everyone)


@pytest.mark.parametrize("empty", [None, ""])
async def test_an_empty_holder_is_a_released_lease_taken_at_once(empty: str | None) -> None:
    clock = FakeClock(start=50.0)
    store = InMemoryLeaseStore()
    await store.create(LeaseRecord(empty, 1.0, 0.0, 0.0, transitions=7))
    everyone: list[Candidate] = []
    c = Candidate("c", store, clock, everyone).start()
    took = await advance_until(clock, lambda: c.leading, everyone)
    assert took == 50.0
    rec = store.record
    assert rec is not None and rec.holder == "c" and rec.transitions == 8
    await shutdown(clock, everyone)


async def test_a_holder_that_keeps_renewing_keeps_the_lease() -> None:
    clock = FakeClock()
    store = InMemoryLeaseStore()
    ghost = await store.create(LeaseRecord("ghost", LD, 0.0, 0.0, 0))
    everyone: list[Candidate] = []
    c = Candidate("c", store, clock, everyone).start()
    for _ in range(20):  # 100 s, the ghost renewing every 5 s with stale wall times
        await clock.advance(5)
        ghost = await store.update(ghost)
        assert not c.leading
    took = await advance_until(clock, lambda: c.leading, everyone)
    assert 100.0 + LD <= took <= 100.0 + LD + MAX_RETRY
    await shutdown(clock, everyone)


@pytest.mark.parametrize("seed", range(6))
async def test_never_two_leaders_at_the_same_instant_under_random_faults(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    shared = InMemoryLeaseStore()
    everyone: list[Candidate] = []
    stores: dict[str, FaultyStore] = {}
    generation = 0

    def spawn(slot: str) -> None:
        nonlocal generation
        generation += 1
        stores[slot] = store = FaultyStore(shared)
        Candidate(f"{slot}-{generation}", store, clock, everyone, seed=generation).start()

    for slot in "xyz":
        spawn(slot)
    for _ in range(600):  # 300 s of fake time
        if rng.random() < 0.1:
            slot = rng.choice("xyz")
            stores[slot].mode = rng.choice(["ok", "ok", "error", "hang", "slow"])
        await clock.advance(0.5)
        _check_one_leader(everyone)
        for c in list(everyone):
            if c.task is not None and c.task.done() and not c.stop.is_set():
                c.stop.set()  # lost leadership and returned: replace it
                slot = c.name.split("-")[0]
                if stores[slot].mode in ("hang", "slow"):
                    stores[slot].mode = "ok"
                spawn(slot)
    terms = sum(len(c.started) for c in everyone)
    assert terms >= 3  # leadership really moved around (4 to 10 terms for these seeds)
    for store in stores.values():
        store.mode = "ok"
    await shutdown(clock, everyone)
    assert shared.record is not None and shared.record.holder is None  # released at the end
