"""The work queue (client-go semantics), its backoff, and the fake clock it runs on.

All waiting is on ``FakeClock``: a 300 s backoff takes 0 s of real time. Real-time
``asyncio.wait_for`` deadlines only turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.runtime.clock import FakeClock, RealClock
from lbctl.runtime.workqueue import Empty, ExponentialBackoff, ShutDown, WorkQueue

DEADLINE = 2.0  # real seconds before a test counts as hung


def make_queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    return WorkQueue(name="test", clock=clock or FakeClock())


# -- fake clock ------------------------------------------------------------------------
async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2))]
    await clock.settle()
    assert clock.sleepers == 3
    await clock.advance(2.5)
    assert woke == [("a", 1.0), ("b", 2.0)]
    assert clock.now() == 2.5
    await clock.advance(10)
    assert woke[-1] == ("c", 3.0)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_fake_clock_a_sleep_started_while_advancing_is_woken_in_the_same_advance() -> None:
    clock = FakeClock()
    times: list[float] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep(1)
            times.append(clock.now())

    task = asyncio.create_task(ticker())
    await clock.advance(3)
    assert times == [1.0, 2.0, 3.0]
    await asyncio.wait_for(task, DEADLINE)


async def test_fake_clock_cancelled_sleeper_is_not_counted() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5))
    await clock.settle()
    assert clock.sleepers == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.sleepers == 0
    assert clock.next_deadline is None
    with pytest.raises(ValueError, match="backwards"):
        clock.tick(-1)


async def test_real_clock_is_monotonic() -> None:
    clock = RealClock()
    a = clock.now()
    await clock.sleep(0)
    assert clock.now() >= a


# -- backoff ---------------------------------------------------------------------------
def test_backoff_doubles_from_5s_to_a_300s_cap_per_key() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff()
    assert [b.when("a") for _ in range(9)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert b.failures("a") == 9
    assert b.when("b") == 5  # per key
    b.forget("a")
    assert b.failures("a") == 0
    assert b.when("a") == 5


def test_backoff_never_overflows() -> None:
    b: ExponentialBackoff[str] = ExponentialBackoff(base=1.0, cap=60.0)
    for _ in range(3000):
        assert b.when("k") <= 60.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 10.0), (-1.0, 10.0), (10.0, 5.0)])
def test_backoff_rejects_nonsense(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        ExponentialBackoff(base=base, cap=cap)


# -- dedup and processing ----------------------------------------------------------------
def test_a_waiting_key_is_stored_once() -> None:
    q = make_queue()
    for key in ("a", "b", "a", "a", "b", "c"):
        q.add(key)
    assert len(q) == 3
    assert q.adds_total == 3
    assert [q.get_nowait() for _ in range(3)] == ["a", "b", "c"]
    with pytest.raises(Empty):
        q.get_nowait()


def test_a_key_being_processed_is_not_handed_out_again_until_done() -> None:
    q = make_queue()
    q.add("a")
    assert q.get_nowait() == "a"
    assert q.is_processing("a")
    q.add("a")  # dirty while processing
    q.add("a")
    assert len(q) == 0
    with pytest.raises(Empty):
        q.get_nowait()
    q.done("a")
    assert len(q) == 1
    assert q.get_nowait() == "a"
    q.done("a")
    assert len(q) == 0
    assert q.in_flight == 0


def test_done_without_a_new_add_does_not_requeue_and_unknown_done_is_ignored() -> None:
    q = make_queue()
    q.add("a")
    q.get_nowait()
    q.done("a")
    q.done("a")
    q.done("never-seen")
    assert len(q) == 0


async def test_two_workers_never_hold_the_same_key() -> None:
    q = make_queue()
    q.add("a")
    first = await asyncio.wait_for(q.get(), DEADLINE)
    second = asyncio.create_task(q.get())
    q.add("a")  # marked dirty; must wait for done
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not second.done()
    q.done(first)
    assert await asyncio.wait_for(second, DEADLINE) == "a"


async def test_a_waiting_get_is_woken_by_add() -> None:
    q = make_queue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, DEADLINE) == "x"


async def test_a_cancelled_get_loses_no_key() -> None:
    q = make_queue()
    g1 = asyncio.create_task(q.get())
    g2 = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")  # wakes g1 ...
    g1.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(g2, DEADLINE) == "x"
    with pytest.raises(asyncio.CancelledError):
        await g1


# -- delayed adds ------------------------------------------------------------------------
def test_add_after_hands_keys_out_in_deadline_order() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("late", 10)
    q.add_after("early", 5)
    q.add_after("now", 0)
    assert len(q) == 1
    assert q.waiting == 2
    assert q.get_nowait() == "now"
    clock.tick(5)
    assert len(q) == 1
    assert q.get_nowait() == "early"
    clock.tick(4.5)
    assert len(q) == 0
    clock.tick(0.5)
    assert q.get_nowait() == "late"
    assert q.waiting == 0


def test_add_after_the_earliest_deadline_wins_and_fires_once() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("a", 10)
    q.add_after("a", 3)
    q.add_after("a", 7)
    assert q.waiting == 1
    clock.tick(3)
    assert q.get_nowait() == "a"
    q.done("a")
    clock.tick(100)
    assert len(q) == 0
    assert q.waiting == 0


def test_due_keys_are_queued_in_deadline_order_even_when_read_late() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("b", 2)
    q.add_after("a", 1)
    q.add_after("c", 3)
    clock.tick(50)
    assert [q.get_nowait() for _ in range(3)] == ["a", "b", "c"]


def test_a_delayed_key_coming_due_while_processing_is_requeued_after_done() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add("a")
    assert q.get_nowait() == "a"
    q.add_after("a", 1)  # like Result(requeue_after=1) from inside the reconcile
    clock.tick(1)
    assert len(q) == 0
    q.done("a")
    assert q.get_nowait() == "a"


async def test_a_waiting_get_wakes_when_a_delayed_key_comes_due() -> None:
    clock = FakeClock()
    waited: list[tuple[str, float]] = []
    q = WorkQueue[str](clock=clock, on_get=lambda k, w: waited.append((k, w)))
    q.add_after("a", 100)
    getter = asyncio.create_task(q.get())
    await clock.settle()
    q.add_after("b", 5)  # earlier than what the getter sleeps towards: it re-arms
    await clock.advance(5)
    assert await asyncio.wait_for(getter, DEADLINE) == "b"
    assert waited == [("b", 0.0)]
    getter = asyncio.create_task(q.get())
    await clock.advance(95)
    assert await asyncio.wait_for(getter, DEADLINE) == "a"


async def test_add_rate_limited_backs_off_and_forget_resets() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    ready_at: list[float] = []
    for _ in range(4):
        q.add_rate_limited("k")
        key = await asyncio.wait_for(_get_advancing(q, clock), DEADLINE)
        ready_at.append(clock.now())
        q.done(key)
    assert ready_at == [5.0, 15.0, 35.0, 75.0]
    assert q.num_requeues("k") == 4
    assert q.retries_total == 4
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.add_rate_limited("k")
    clock.tick(5)
    assert len(q) == 1


async def _get_advancing(q: WorkQueue[str], clock: FakeClock) -> str:
    """get(), advancing fake time one second at a time until a key is handed out."""
    getter = asyncio.create_task(q.get())
    while not getter.done():
        await clock.advance(1)
    return getter.result()


# -- shutdown ------------------------------------------------------------------------------
async def test_shutdown_hands_out_what_is_queued_then_raises_and_ignores_adds() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add("a")
    q.add_after("later", 1)
    q.shutdown()
    assert q.waiting == 0  # parked keys dropped
    q.add("b")
    q.add_after("c", 0)
    q.add_rate_limited("d")
    clock.tick(10)
    assert q.shutting_down
    assert q.waiting == 0
    assert await q.get() == "a"
    with pytest.raises(ShutDown):
        await q.get()
    with pytest.raises(ShutDown):
        q.get_nowait()


async def test_shutdown_wakes_every_waiting_get() -> None:
    q = make_queue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.shutdown()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), DEADLINE)
    assert all(isinstance(r, ShutDown) for r in results)


async def test_shutdown_with_drain_waits_for_in_flight_keys() -> None:
    q = make_queue()
    q.add("a")
    q.add("b")
    a = q.get_nowait()
    b = q.get_nowait()
    drain = asyncio.create_task(q.shutdown_with_drain())
    await asyncio.sleep(0)
    q.done(a)
    await asyncio.sleep(0)
    assert not drain.done()
    q.done(b)
    await asyncio.wait_for(drain, DEADLINE)
    await asyncio.wait_for(make_queue().shutdown_with_drain(), DEADLINE)  # nothing in flight


# -- metrics hooks ----------------------------------------------------------------------
def test_metric_hooks_report_wait_and_processing_time() -> None:
    clock = FakeClock()
    got: list[tuple[str, float]] = []
    finished: list[tuple[str, float]] = []
    q = WorkQueue[str](
        clock=clock,
        on_get=lambda k, w: got.append((k, w)),
        on_done=lambda k, s: finished.append((k, s)),
    )
    q.add("a")
    q.add("a")
    clock.tick(2)
    q.get_nowait()
    clock.tick(3)
    q.done("a")
    q.add_after("b", 4)
    clock.tick(10)  # due at 9, handed out at 15: it waited 6 s after coming due
    q.get_nowait()
    assert got == [("a", 2.0), ("b", 6.0)]
    assert finished == [("a", 3.0)]
    assert q.adds_total == 2
    assert q.retries_total == 1
    assert "WorkQueue" in repr(q)


# -- property ----------------------------------------------------------------------------
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcd")),
        st.tuples(st.just("add_after"), st.sampled_from("abcd"), st.integers(0, 5)),
        st.tuples(st.just("get")),
        st.tuples(st.just("done"), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_property_no_key_handed_out_twice_concurrently_and_none_lost(
    ops: list[tuple[Any, ...]],
) -> None:
    clock = FakeClock()
    q = make_queue(clock)
    held: list[str] = []  # handed out, not yet done
    owed: set[str] = set()  # added (or due) since their last get: must be handed out again
    pending_after: dict[str, float] = {}

    def take() -> bool:
        try:
            key = q.get_nowait()
        except Empty:
            return False
        assert key not in held, f"{key} handed out while still processing"
        held.append(key)
        owed.discard(key)
        return True

    def settle_due() -> None:
        for key, due in list(pending_after.items()):
            if due <= clock.now():
                owed.add(key)
                del pending_after[key]

    for op in ops:
        if op[0] == "add":
            q.add(op[1])
            owed.add(op[1])
        elif op[0] == "add_after":
            _, key, delay = op
            if delay == 0:
                q.add_after(key, 0)
                owed.add(key)
            else:
                due = clock.now() + delay
                pending_after[key] = min(due, pending_after.get(key, due))
                q.add_after(key, delay)
        elif op[0] == "get":
            take()
        elif op[0] == "done" and held:
            q.done(held.pop(op[1] % len(held)))
        elif op[0] == "tick":
            clock.tick(op[1])
            settle_due()
        assert len(q) <= 4  # dedup: at most one entry per distinct key
        assert len(set(held)) == len(held)

    clock.tick(10)
    settle_due()
    while held or len(q):
        while take():
            pass
        while held:
            q.done(held.pop())
    assert owed == set(), f"keys added after their last get were never handed out: {owed}"
