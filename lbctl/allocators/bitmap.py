"""A bitmap of ``size`` values with kube-apiserver's static/dynamic band split.

Values are offsets ``0 .. size-1``. ``allocate_next`` picks a random start in the
upper ("dynamic") band ``[offset, size)`` and scans forward with wrap-around for a
free bit; only when that band is full does it do the same in the lower ("static")
band ``[0, offset)``. Users who pick values by hand usually pick low ones, so random
and chosen values seldom collide (KEP-3070 for ClusterIPs, KEP-3668 for NodePorts).

The scan runs in C: a compiled regular expression finds the next byte that is not
``0xff``, so a 99 %-full /12 (a million bits) still allocates in microseconds.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Bitmap", "BitmapCounts", "BitmapSnapshot", "band_offset"]

_NOT_FULL: Final = re.compile(rb"[^\xff]")
# Lowest clear bit of a byte, indexed by the byte (bit 0 = lowest value).
_FIRST_CLEAR: Final = tuple(next((b for b in range(8) if not (v >> b) & 1), 8) for v in range(256))


def band_offset(size: int, *, minimum: int, maximum: int, step: int) -> int:
    """Size of the static band: ``min(max(minimum, size // step), maximum)``.

    Ranges of ``minimum`` values or fewer have no static band (upstream's
    ``calculateRangeOffset``; the /28 and /124 edge of kubernetes#115322).
    """
    if size <= minimum:
        return 0
    return min(max(minimum, size // step), maximum)


@dataclass(frozen=True, slots=True)
class BitmapSnapshot:
    """The allocated bits, little-endian by value (bit ``i`` of byte ``i // 8``)."""

    size: int
    data: bytes


class Bitmap:
    """Allocation state of ``size`` values; pure, synchronous, not thread-safe."""

    __slots__ = ("_bits", "_count", "_rng", "offset", "size")

    def __init__(self, size: int, *, offset: int = 0, rng: random.Random | None = None) -> None:
        if size < 0:
            raise ValueError(f"bitmap size must be >= 0, got {size}")
        self.size = size
        # An offset that leaves no dynamic band means "no split" (never an empty band).
        self.offset = offset if 0 < offset < size else 0
        self._bits = bytearray((size + 7) // 8)
        self._count = 0
        self._rng = rng or random.Random()

    @property
    def count(self) -> int:
        """How many values are allocated."""
        return self._count

    @property
    def free(self) -> int:
        return self.size - self._count

    def has(self, value: int) -> bool:
        if not 0 <= value < self.size:
            return False
        return bool(self._bits[value >> 3] & (1 << (value & 7)))

    def allocate(self, value: int) -> bool:
        """Mark ``value``; False if it was already marked. The caller checks the range."""
        if not 0 <= value < self.size:
            raise IndexError(value)
        byte, bit = value >> 3, 1 << (value & 7)
        if self._bits[byte] & bit:
            return False
        self._bits[byte] |= bit
        self._count += 1
        return True

    def release(self, value: int) -> bool:
        """Clear ``value``; False if it was not marked."""
        if not 0 <= value < self.size:
            return False
        byte, bit = value >> 3, 1 << (value & 7)
        if not self._bits[byte] & bit:
            return False
        self._bits[byte] &= ~bit
        self._count -= 1
        return True

    def allocate_next(self) -> int | None:
        """Allocate a free value, preferring the dynamic band; None when full."""
        if self._count >= self.size:
            return None
        for lo, hi in ((self.offset, self.size), (0, self.offset)):
            if hi <= lo:
                continue
            start = lo + self._rng.randrange(hi - lo)
            found = self._find_clear(start, hi)
            if found is None:
                found = self._find_clear(lo, start)
            if found is not None:
                self.allocate(found)
                return found
        return None

    def _find_clear(self, lo: int, hi: int) -> int | None:
        """Lowest clear bit in ``[lo, hi)``."""
        if lo >= hi:
            return None
        bits = self._bits
        pos = lo
        if pos & 7:
            # The partial first byte: treat the bits below ``lo`` as taken.
            byte = bits[pos >> 3] | ((1 << (pos & 7)) - 1)
            if byte != 0xFF:
                found = (pos & ~7) + _FIRST_CLEAR[byte]
                return found if found < hi else None
            pos = (pos | 7) + 1
            if pos >= hi:
                return None
        m = _NOT_FULL.search(bits, pos >> 3, (hi + 7) >> 3)
        if m is None:
            return None
        byte = m.start()
        found = (byte << 3) + _FIRST_CLEAR[bits[byte]]
        return found if found < hi else None

    def values(self) -> list[int]:
        """Every allocated value, ascending."""
        out: list[int] = []
        for i, byte in enumerate(self._bits):
            if byte:
                base = i << 3
                out.extend(base + b for b in range(8) if byte >> b & 1)
        return out

    def snapshot(self) -> BitmapSnapshot:
        return BitmapSnapshot(size=self.size, data=bytes(self._bits))

    def restore(self, snap: BitmapSnapshot) -> None:
        """Replace the state with ``snap`` (which must be of the same size)."""
        if snap.size != self.size or len(snap.data) != len(self._bits):
            raise ValueError(f"snapshot of {snap.size} values does not fit a bitmap of {self.size}")
        if self.size % 8 and snap.data[-1] >> (self.size % 8):
            raise ValueError("snapshot marks values beyond the end of the bitmap")
        self._bits = bytearray(snap.data)
        self._count = sum(v.bit_count() for v in self._bits)


class BitmapCounts:
    """Counts of an allocator kept in one :class:`Bitmap` (``self._bitmap``)."""

    __slots__ = ()
    _bitmap: Bitmap

    @property
    def size(self) -> int:
        """How many values the allocator can hand out."""
        return self._bitmap.size

    @property
    def static_band(self) -> int:
        """How many values at the low end are kept for requested values."""
        return self._bitmap.offset

    @property
    def used(self) -> int:
        return self._bitmap.count

    @property
    def free(self) -> int:
        return self._bitmap.free

    def snapshot(self) -> BitmapSnapshot:
        return self._bitmap.snapshot()

    def restore(self, snap: BitmapSnapshot) -> None:
        self._bitmap.restore(snap)
