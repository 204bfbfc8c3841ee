"""providers.aws.ratelimit: call classes and token buckets on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.aws.ratelimit import (
    DEFAULT_LIMITS,
    CallClass,
    RateLimiter,
    TokenBucket,
    call_class,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("DescribeTargetHealth", CallClass.DESCRIBE),
        ("describe_target_health", CallClass.DESCRIBE),
        ("describe_tags", CallClass.DESCRIBE),
        ("DescribeSubnets", CallClass.DESCRIBE),
        ("RegisterTargets", CallClass.REGISTER),
        ("register_targets", CallClass.REGISTER),
        ("deregister_targets", CallClass.REGISTER),
        ("ModifyTargetGroup", CallClass.MODIFY),
        ("modify_load_balancer_attributes", CallClass.MODIFY),
        ("AddTags", CallClass.MODIFY),
        ("add_tags", CallClass.MODIFY),
        ("remove_tags", CallClass.MODIFY),
        ("SetSubnets", CallClass.MODIFY),
        ("set_security_groups", CallClass.MODIFY),
        ("CreateLoadBalancer", CallClass.OTHER),
        ("delete_target_group", CallClass.OTHER),
        ("authorize_security_group_ingress", CallClass.OTHER),
        ("create_tags", CallClass.OTHER),
        ("", CallClass.OTHER),
    ],
)
def test_call_class(operation: str, expected: CallClass) -> None:
    assert call_class(operation) is expected


def test_default_limits() -> None:
    assert dict(DEFAULT_LIMITS) == {
        CallClass.DESCRIBE: (50.0, 200),
        CallClass.REGISTER: (4.0, 20),
        CallClass.MODIFY: (3.0, 20),
        CallClass.OTHER: (10.0, 50),
    }
    with pytest.raises(TypeError):
        DEFAULT_LIMITS[CallClass.OTHER] = (1.0, 1)  # type: ignore[index]


def test_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # no token left: each further caller queues half a second behind the previous one
    assert [bucket.reserve() for _ in range(3)] == [0.5, 1.0, 1.5]
    assert bucket.tokens == -3.0
    clock.advance(1.5)  # the three queued callers have had their turn
    assert bucket.tokens == 0.0
    assert bucket.reserve() == 0.5
    clock.advance(0.5)
    assert bucket.tokens == 0.0


def test_refill_stops_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=5, clock=clock)
    for _ in range(5):
        bucket.reserve()
    clock.advance(3600)
    assert bucket.tokens == 5.0
    assert [bucket.reserve() for _ in range(6)] == [0.0] * 5 + [0.1]


def test_a_clock_stepping_back_adds_no_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.reserve() == 0.0
    clock.advance(-10)
    assert bucket.reserve() == 1.0
    clock.advance(10)  # back where it was: nothing gained
    assert bucket.tokens == -1.0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bad_bucket(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst, FakeClock())


@given(
    rate=st.floats(0.5, 100),
    burst=st.integers(1, 50),
    callers=st.integers(1, 200),
)
def test_simultaneous_callers_are_spread_at_the_rate(rate: float, burst: int, callers: int) -> None:
    bucket = TokenBucket(rate, burst, FakeClock())
    waits = [bucket.reserve() for _ in range(callers)]
    for k, wait in enumerate(waits, start=1):
        assert wait == pytest.approx(max(0.0, (k - burst) / rate))


def test_limiter_keeps_one_bucket_per_class() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.reserve("describe_tags") for _ in range(200)] == [0.0] * 200
    assert limiter.reserve("DescribeTargetHealth") == pytest.approx(1 / 50)
    # other classes are untouched by the describes
    assert [limiter.reserve("register_targets") for _ in range(20)] == [0.0] * 20
    assert limiter.reserve("deregister_targets") == pytest.approx(1 / 4)
    assert limiter.reserve("modify_target_group") == 0.0
    assert limiter.reserve("create_load_balancer") == 0.0
    clock.advance(1.0)
    assert limiter.reserve("describe_tags") == 0.0


def test_limiter_custom_limits_fall_back_to_defaults() -> None:
    limiter = RateLimiter(FakeClock(), {CallClass.MODIFY: (1.0, 1)})
    assert limiter.reserve("add_tags") == 0.0
    assert limiter.reserve("remove_tags") == 1.0
    assert limiter.buckets[CallClass.DESCRIBE].burst == 200
    assert limiter.buckets[CallClass.DESCRIBE].rate == 50.0
