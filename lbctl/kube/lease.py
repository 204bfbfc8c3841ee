"""The leader-election ``LeaseStore`` backed by a ``coordination.k8s.io/v1`` Lease.

Record field <-> Lease ``spec``:

- ``holder`` <-> ``holderIdentity`` (absent or "" reads as None; None is written absent)
- ``lease_duration_seconds`` <-> ``leaseDurationSeconds`` (an integer: rounded up)
- ``acquire_time`` / ``renew_time`` <-> ``acquireTime`` / ``renewTime``: MicroTime,
  RFC 3339 in UTC with exactly 6 fractional digits (``2024-05-01T10:00:00.123456Z``)
- ``transitions`` <-> ``leaseTransitions``
- ``resource_version`` <-> ``metadata.resourceVersion``: ``update`` is a compare-and-swap
  on it (409 -> :class:`~lbctl.runtime.leaderelection.LeaseConflict`)

Fields of the Lease this store does not manage (labels, other spec fields) are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lbctl.kube import errors
from lbctl.kube.client import LEASES, JSONDict, KubeClient
from lbctl.runtime.leaderelection import LeaseConflict, LeaseRecord

__all__ = ["KubeLeaseStore", "format_micro_time", "parse_micro_time"]

_MANAGED = (
    "holderIdentity",
    "leaseDurationSeconds",
    "acquireTime",
    "renewTime",
    "leaseTransitions",
)


def format_micro_time(t: float) -> str:
    """Epoch seconds as a Kubernetes MicroTime: UTC, exactly 6 fractional digits."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(s: str) -> float:
    """A MicroTime (or any RFC 3339 time; no offset means UTC) as epoch seconds."""
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _optional_time(value: Any) -> float | None:
    return parse_micro_time(value) if isinstance(value, str) and value else None


def _record(lease: Mapping[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        lease_duration_seconds=float(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_optional_time(spec.get("acquireTime")),
        renew_time=_optional_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
    )


def _spec_fields(rec: LeaseRecord) -> JSONDict:
    out: JSONDict = {
        "leaseDurationSeconds": math.ceil(rec.lease_duration_seconds),
        "leaseTransitions": rec.transitions,
    }
    if rec.holder:
        out["holderIdentity"] = rec.holder
    if rec.acquire_time is not None:
        out["acquireTime"] = format_micro_time(rec.acquire_time)
    if rec.renew_time is not None:
        out["renewTime"] = format_micro_time(rec.renew_time)
    return out


class KubeLeaseStore:
    """``get`` / ``create`` / ``update`` of one Lease (``namespace``/``name``)."""

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """``labels``: set on the Lease by every ``create`` and ``update``."""
        self._client = client
        self._namespace = namespace
        self._name = name
        self._labels = dict(labels or {})
        self.annotations: dict[str, str] = {}
        """Set on the Lease by the next ``create`` or ``update`` (the others are kept)."""
        self._last: JSONDict | None = None
        """The Lease as last read or written: what ``update`` keeps besides our fields."""

    def _ours(self, meta: Mapping[str, Any]) -> JSONDict:
        """``meta`` with our labels and annotations on top."""
        out: JSONDict = dict(meta)
        for field, ours in (("labels", self._labels), ("annotations", self.annotations)):
            if ours:
                out[field] = {**(meta.get(field) or {}), **ours}
        return out

    async def get(self) -> LeaseRecord | None:
        try:
            lease = await self._client.get(LEASES, self._name, self._namespace)
        except errors.NotFound:
            self._last = None
            return None
        self._last = lease
        return _record(lease)

    async def create(self, rec: LeaseRecord) -> LeaseRecord:
        body: JSONDict = {
            "metadata": self._ours({"name": self._name, "namespace": self._namespace}),
            "spec": _spec_fields(rec),
        }
        try:
            lease = await self._client.create(LEASES, body, self._namespace)
        except errors.AlreadyExists as e:
            raise LeaseConflict(f"lease {self._namespace}/{self._name} already exists") from e
        self._last = lease
        return _record(lease)

    async def update(self, rec: LeaseRecord) -> LeaseRecord:
        if not rec.resource_version:
            raise LeaseConflict("an update needs the resource_version it was read at")
        base = self._last or {}
        meta = self._ours(
            {
                **(base.get("metadata") or {}),
                "name": self._name,
                "namespace": self._namespace,
                "resourceVersion": rec.resource_version,
            }
        )
        spec = {k: v for k, v in (base.get("spec") or {}).items() if k not in _MANAGED}
        body: JSONDict = {"metadata": meta, "spec": {**spec, **_spec_fields(rec)}}
        try:
            lease = await self._client.replace(LEASES, body)
        except (errors.Conflict, errors.NotFound) as e:
            raise LeaseConflict(
                f"lease {self._namespace}/{self._name} changed since resourceVersion "
                f"{rec.resource_version}: {e.message}"
            ) from e
        self._last = lease
        return _record(lease)
