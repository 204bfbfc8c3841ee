"""The bare-metal provider: LoadBalancer IPs from IPPools (``lbctl.io/v1alpha1``).

``create`` is the ``lbctl.providers`` entry point ``baremetal``; see
:mod:`providers.baremetal.provider` for the behaviour and
:mod:`providers.baremetal.pools` for the pure IPPool -> Pool conversion and status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lbctl.allocators.lbpools import Pool
from providers.baremetal.provider import (
    CAPABILITIES,
    IPPOOLS,
    POOL_ANNOTATION,
    BareMetalProvider,
)
from providers.base import ConfigError

__all__ = ["CAPABILITIES", "IPPOOLS", "POOL_ANNOTATION", "BareMetalProvider", "create"]


def create(
    *, pools: Sequence[Mapping[str, Any]] = (), status_debounce: float = 0.5
) -> BareMetalProvider:
    """The ``lbctl.providers`` entry point ``baremetal``.

    ``pools``: pools besides the IPPools, each ``{"name", "addresses", "autoAssign",
    "avoidBuggyIPs", "priority", "namespaces", "namespaceSelectors",
    "serviceSelectors"}`` (only name and addresses required); ``status_debounce``:
    seconds IPPool status changes are gathered before one write.
    """
    if (
        isinstance(status_debounce, bool)
        or not isinstance(status_debounce, int | float)
        or status_debounce < 0
    ):
        raise ConfigError("status_debounce", f"must be seconds >= 0, got {status_debounce!r}")
    try:
        parsed = [Pool.from_json(p) for p in pools]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError("pools", f"invalid pool: {e}") from None
    return BareMetalProvider(pools=parsed, status_debounce=float(status_debounce))
