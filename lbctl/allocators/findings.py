"""Typed findings of a rebuild / repair pass.

A rebuild walks the existing objects, re-marks what they hold (already-assigned values
first, so nothing they hold can be handed to another) and reports what does not add
up. The ``kind`` values are kube-apiserver's repair Event reasons where one exists
(``ClusterIPNotAllocated``, ``PortAlreadyAllocated`` ...), so a caller can emit them
as Warning Events unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Finding", "FindingKind"]


class FindingKind(StrEnum):
    # An object holds a value the allocator did not have marked (repaired by marking it).
    CLUSTER_IP_NOT_ALLOCATED = "ClusterIPNotAllocated"
    PORT_NOT_ALLOCATED = "PortNotAllocated"
    # Two objects hold the same value (reported, never auto-fixed).
    CLUSTER_IP_ALREADY_ALLOCATED = "ClusterIPAlreadyAllocated"
    PORT_ALREADY_ALLOCATED = "PortAlreadyAllocated"
    LB_IP_ALREADY_ALLOCATED = "LoadBalancerIPAlreadyAllocated"
    # An object holds a value outside every configured range / pool.
    CLUSTER_IP_OUT_OF_RANGE = "ClusterIPOutOfRange"
    PORT_OUT_OF_RANGE = "PortOutOfRange"
    LB_IP_OUT_OF_RANGE = "LoadBalancerIPOutOfRange"
    # A value is not valid at all (unparseable IP, port 0...).
    CLUSTER_IP_NOT_VALID = "ClusterIPNotValid"
    # The allocator had a value marked that no object holds (freed by the caller after
    # it was seen on enough consecutive passes).
    CLUSTER_IP_LEAK = "ClusterIPLeak"
    PORT_LEAK = "PortLeak"
    LB_IP_LEAK = "LoadBalancerIPLeak"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a rebuild found: what, which value, and which object(s)."""

    kind: FindingKind
    value: str
    owner: str = ""
    """``namespace/name`` of the object holding the value ("" for a leak)."""
    other: str = ""
    """For duplicates: the object that got the value first."""
    message: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" if self.message else f"{self.kind}: {self.value}"
