"""Which speakers are alive: Leases say who exists, heartbeats say who is up right now.

Every speaker holds a Lease ``lbctl-speaker-<node>`` (renewed every third of its
duration, deleted when it stops) that publishes where its heartbeats are heard. That is
the durable record: a node without a Lease is never a member, and a deleted Lease (a
speaker that stopped cleanly) or a ``bye`` heartbeat ends membership at once.

Liveness is decided by heartbeats, which cost the API server nothing: a member is live
while one of its heartbeats arrived within ``dead_after`` seconds. A member not heard
yet (this speaker just started, or the Lease just appeared) is given ``dead_after``
from that moment before it counts as dead, so a restarting speaker does not grab every
address for an instant.

Partitions: speakers that cannot hear each other each elect without the other (as
MetalLB's memberlist does); when they hear each other again, within one heartbeat both
compute the same answer and the loser stops answering and the winner re-announces --
two nodes never announce one IP for longer than ``dead_after`` after the partition ends.

Times are monotonic seconds, given by the caller. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["Heartbeat", "Member", "Membership", "decode_heartbeat", "encode_heartbeat"]

MAX_HEARTBEAT = 512


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One datagram: ``{"v": 1, "node": ..., "seq": n, "bye": false}`` (JSON)."""

    node: str
    seq: int
    bye: bool = False


def encode_heartbeat(hb: Heartbeat) -> bytes:
    return json.dumps(
        {"v": 1, "node": hb.node, "seq": hb.seq, "bye": hb.bye}, separators=(",", ":")
    ).encode()


def decode_heartbeat(data: bytes) -> Heartbeat | None:
    """The heartbeat in ``data``; None for anything else (never raises)."""
    if len(data) > MAX_HEARTBEAT:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("v") != 1:
        return None
    node, seq, bye = obj.get("node"), obj.get("seq"), obj.get("bye", False)
    if (
        not isinstance(node, str)
        or not node
        or not isinstance(seq, int)
        or not isinstance(bye, bool)
    ):
        return None
    return Heartbeat(node, seq, bye)


@dataclass(slots=True)
class Member:
    node: str
    address: tuple[str, int] | None
    """Where its heartbeats are heard (from its Lease), None if it published none."""
    since: float
    """When this speaker learned of it (monotonic)."""
    heard: float | None = None
    """When its last heartbeat arrived (monotonic)."""


class Membership:
    def __init__(self, me: str, *, dead_after: float, now: float) -> None:
        self.me = me
        self.dead_after = dead_after
        self._members: dict[str, Member] = {}
        self._started = now

    def lease(
        self, node: str, address: tuple[str, int] | None, now: float, *, fresh: bool = True
    ) -> None:
        """``node``'s Lease exists and publishes ``address``; ``fresh``: it was renewed
        within its duration (a stale one, left by a killed speaker, gives no grace)."""
        m = self._members.get(node)
        if m is None:
            since = max(now, self._started) if fresh else now - self.dead_after
            self._members[node] = Member(node, address, since)
        else:
            m.address = address

    def lease_gone(self, node: str) -> None:
        self._members.pop(node, None)

    def heard(self, node: str, now: float, *, bye: bool = False) -> bool:
        """A heartbeat from ``node`` arrived; False when ``node`` is not a member (its
        Lease is unknown: the datagram is ignored)."""
        m = self._members.get(node)
        if m is None:
            return False
        if bye:
            m.heard = None
            m.since = now - self.dead_after  # dead at once, until heard again
            return True
        m.heard = now
        return True

    def is_live(self, node: str, now: float) -> bool:
        if node == self.me:
            return True
        m = self._members.get(node)
        if m is None:
            return False
        last = m.heard if m.heard is not None else m.since
        return now - last < self.dead_after

    def next_death(self, now: float) -> float | None:
        """When the first live member dies if nothing more is heard (None: none live)."""
        ends = [
            (m.heard if m.heard is not None else m.since) + self.dead_after
            for n, m in self._members.items()
            if n != self.me and self.is_live(n, now)
        ]
        return min(ends, default=None)

    def live(self, now: float) -> frozenset[str]:
        """The live members, this speaker included."""
        return frozenset({self.me, *(n for n in self._members if self.is_live(n, now))})

    def peers(self) -> list[tuple[str, tuple[str, int]]]:
        """``(node, address)`` of every other member that published an address."""
        return sorted(
            (n, m.address)
            for n, m in self._members.items()
            if n != self.me and m.address is not None
        )

    def members(self) -> frozenset[str]:
        return frozenset(self._members)
