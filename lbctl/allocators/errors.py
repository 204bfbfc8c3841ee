"""The allocators' error tree.

::

    AllocationError                      anything an allocator refuses
    ├── RangeFullError                   "range is full"
    ├── AlreadyAllocatedError            "provided IP is already allocated" / "... port ..."
    ├── NotInRangeError                  "the provided IP (X) is not in the valid range. ..."
    └── ServiceAllocationError           a whole Service's allocation failed
        ├── InvalidAllocationError       a value the client asked for -> HTTP 422 with causes
        └── InternalAllocationError      nothing left to give -> HTTP 500 InternalError

The texts of the first three are kube-apiserver's, word for word, because clients
and people match on them.
"""

from __future__ import annotations

from lbctl.domain.fielderrors import FieldErrors

__all__ = [
    "AllocationError",
    "AlreadyAllocatedError",
    "InternalAllocationError",
    "InvalidAllocationError",
    "NotInRangeError",
    "RangeFullError",
    "ServiceAllocationError",
]


class AllocationError(Exception):
    """Base of everything an allocator refuses."""


class RangeFullError(AllocationError):
    def __init__(self) -> None:
        super().__init__("range is full")


class AlreadyAllocatedError(AllocationError):
    def __init__(self, what: str) -> None:
        super().__init__(f"provided {what} is already allocated")


class NotInRangeError(AllocationError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class ServiceAllocationError(AllocationError):
    """A Service's allocations failed; nothing of them was kept."""


class InvalidAllocationError(ServiceAllocationError):
    """A requested value cannot be had (kube-apiserver: 422 Invalid)."""

    def __init__(self, errors: FieldErrors) -> None:
        super().__init__(errors.summary())
        self.errors = errors


class InternalAllocationError(ServiceAllocationError):
    """No value could be allocated (kube-apiserver: 500 InternalError)."""
