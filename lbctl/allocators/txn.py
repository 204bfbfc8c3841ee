"""All-or-nothing allocation of one object's values.

A :class:`Transaction` takes values at once (so no one else can get them meanwhile),
but gives values back only on :meth:`~Transaction.commit`; :meth:`~Transaction.rollback`
returns what it took. That is kube-apiserver's allocation operation: a Service's
values are taken before the Service is written, and given back if the write fails.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

__all__ = ["Transaction", "Transactional"]

V = TypeVar("V")
T = TypeVar("T", bound="Transaction[Any]")


class Transaction(ABC, Generic[V]):
    __slots__ = ("_done", "_released", "_taken")

    def __init__(self) -> None:
        self._taken: list[V] = []
        self._released: list[V] = []
        self._done = False

    @abstractmethod
    def _free(self, value: V) -> None:
        """Give ``value`` back to the allocator now."""

    def _took(self, value: V) -> V:
        self._taken.append(value)
        return value

    def release_deferred(self, value: V) -> None:
        """Give ``value`` back when (and only if) the transaction commits."""
        self._released.append(value)

    def commit(self) -> None:
        if not self._done:
            self._done = True
            for value in self._released:
                self._free(value)

    def rollback(self) -> None:
        if not self._done:
            self._done = True
            for value in self._taken:
                self._free(value)


class Transactional(ABC, Generic[T]):
    """An allocator whose changes go through transactions."""

    __slots__ = ()

    @abstractmethod
    def begin(self) -> T: ...

    @contextmanager
    def transaction(self) -> Iterator[T]:
        """Commit on a clean exit, roll back on an exception."""
        txn = self.begin()
        try:
            yield txn
        except BaseException:
            txn.rollback()
            raise
        txn.commit()
