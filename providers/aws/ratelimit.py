"""Client-side token buckets per class of AWS call (pure: the clock is injected).

AWS throttles per account and region with token buckets; lbctl keeps its own calls
under those limits instead of discovering them through ``ThrottlingException``.
:meth:`TokenBucket.reserve` never blocks: it takes a token now (the balance may go
negative, which queues the caller behind earlier ones) and says how long to wait before
making the call, so concurrent callers are spread out at the bucket's rate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_LIMITS", "CallClass", "RateLimiter", "TokenBucket", "call_class"]


class CallClass(StrEnum):
    DESCRIBE = "describe"
    REGISTER = "register"
    MODIFY = "modify"
    OTHER = "other"


DEFAULT_LIMITS: Final[Mapping[CallClass, tuple[float, int]]] = MappingProxyType(
    {
        CallClass.DESCRIBE: (50.0, 200),
        CallClass.REGISTER: (4.0, 20),
        CallClass.MODIFY: (3.0, 20),
        CallClass.OTHER: (10.0, 50),
    }
)
"""``(rate per second, burst)`` per class: the AWS Load Balancer Controller's limits."""

_MODIFY_OPERATIONS: Final = frozenset(
    {"AddTags", "RemoveTags", "SetSubnets", "SetSecurityGroups", "SetIpAddressType"}
)
_WORD_RE: Final = re.compile(r"[a-z0-9]+")


def _camel(operation: str) -> str:
    """``describe_target_health`` -> ``DescribeTargetHealth``; CamelCase is kept."""
    if "_" not in operation and operation[:1].isupper():
        return operation
    return "".join(w.capitalize() for w in _WORD_RE.findall(operation.lower()))


def call_class(operation: str) -> CallClass:
    """The bucket an operation (CamelCase API name or boto3 snake_case) draws from."""
    name = _camel(operation)
    if name.startswith("Describe"):
        return CallClass.DESCRIBE
    if name.startswith(("Register", "Deregister")):
        return CallClass.REGISTER
    if name.startswith("Modify") or name in _MODIFY_OPERATIONS:
        return CallClass.MODIFY
    return CallClass.OTHER


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second of ``clock`` (seconds)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)  # a clock that steps back adds nothing
        self._last = max(self._last, now)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    @property
    def tokens(self) -> float:
        """Tokens available now (negative: callers are queued)."""
        self._refill()
        return self._tokens

    def reserve(self) -> float:
        """Take one token now; the seconds to wait before the call (0.0 if available)."""
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class RateLimiter:
    """One :class:`TokenBucket` per :class:`CallClass`; classes missing from ``limits``
    take :data:`DEFAULT_LIMITS`."""

    def __init__(
        self,
        clock: Callable[[], float],
        limits: Mapping[CallClass, tuple[float, int]] = DEFAULT_LIMITS,
    ) -> None:
        self.buckets: dict[CallClass, TokenBucket] = {
            cls: TokenBucket(*limits.get(cls, DEFAULT_LIMITS[cls]), clock=clock)
            for cls in CallClass
        }

    def reserve(self, operation: str) -> float:
        """Reserve a token for ``operation``; the seconds to wait before calling it."""
        return self.buckets[call_class(operation)].reserve()
