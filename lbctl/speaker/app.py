"""``lbctl speaker``'s wiring: informers -> election -> announcer -> Service status.

One asyncio task group per process:

- informers on Services, Nodes, EndpointSlices, L2Advertisements, IPPools and the
  speakers' Leases (one namespace, label ``app.kubernetes.io/name=lbctl-speaker``);
- this speaker's own Lease ``lbctl-speaker-<node>``, renewed every third of its
  duration, publishing where its heartbeats are heard; deleted on a clean stop;
- UDP heartbeats to every peer every ``heartbeat_interval`` (:mod:`.membership`
  decides liveness from them);
- the planner: whenever an input or the live set changes, :func:`.election.plan`
  gives every IP's node; this node's IPs go to the :class:`.announcer.Announcer`;
- the status writer: for the Services this node announces, conditions ``L2Announced``
  (which node, which interfaces) and ``IPConflict`` (the probe found the IP in use),
  written by merge patch on ``services/status`` with the resourceVersion as
  precondition, plus the Events ``NodeAssigned`` and ``IPConflict`` (Warning).

The API server carries no per-Service load for failure detection: only the Leases
(one write per speaker per ``lease_duration/3``) and status writes when an
announcement changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from lbctl.domain.lbstatus import condition, merge_conditions
from lbctl.domain.service import Condition, DecodeError, Service
from lbctl.kube.client import (
    ENDPOINTSLICES,
    IPPOOLS,
    L2ADVERTISEMENTS,
    LEASES,
    NODES,
    SERVICES,
    KubeClient,
)
from lbctl.kube.errors import Conflict, KubeError, NotFound
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer, all_synced
from lbctl.kube.lease import KubeLeaseStore, parse_micro_time
from lbctl.runtime.leaderelection import LeaseConflict, LeaseRecord
from lbctl.speaker.announcer import Announcer, AnnouncerConfig, OpenSocket, Want
from lbctl.speaker.election import Announcement, plan
from lbctl.speaker.membership import Heartbeat, Membership, decode_heartbeat, encode_heartbeat
from lbctl.speaker.metrics import SpeakerMetrics
from lbctl.speaker.model import (
    ANNOUNCED,
    CONFLICT,
    SERVICE_NAME_LABEL,
    Advertisement,
    NodeView,
    ServiceView,
    announced_message,
    ready_nodes,
)
from lbctl.speaker.rawsock import PacketSocket
from lbctl.telemetry import Metrics

__all__ = ["LEASE_LABEL", "SpeakerOptions", "lease_name", "run_speaker"]

log = logging.getLogger("lbctl.speaker")

Wanted = tuple[bool, str, str]
"""A condition this node owes a Service: (status, reason, message)."""

LEASE_LABEL: Final = ("app.kubernetes.io/name", "lbctl-speaker")
ADDRESS_ANNOTATION: Final = "lbctl.io/heartbeat-address"


def lease_name(node: str) -> str:
    return f"lbctl-speaker-{node}"


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    node: str
    namespace: str = "lbctl-speaker"
    default_class: bool = False
    heartbeat_host: str = "0.0.0.0"
    heartbeat_port: int = 7946
    heartbeat_address: str = ""
    heartbeat_interval: float = 0.1
    dead_after: float = 0.5
    lease_duration: float = 10.0
    announcer: AnnouncerConfig = field(default_factory=AnnouncerConfig)


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class _Heartbeats(asyncio.DatagramProtocol):
    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        hb = decode_heartbeat(data)
        if hb is not None and hb.node != self.speaker.node:
            self.speaker.heard(hb)

    def error_received(self, exc: Exception) -> None:
        log.debug("heartbeat socket: %s", exc)


class Speaker:
    def __init__(
        self,
        client: KubeClient,
        options: SpeakerOptions,
        metrics: SpeakerMetrics,
        *,
        open_socket: OpenSocket = PacketSocket.open,
    ) -> None:
        self.client = client
        self.options = options
        self.node = options.node
        self.metrics = metrics
        self.membership = Membership(
            options.node, dead_after=options.dead_after, now=time.monotonic()
        )
        self.recorder = EventRecorder(client, component="lbctl-speaker", host=options.node)
        self.dirty = asyncio.Event()
        self.status_dirty = asyncio.Event()
        self.announcer = Announcer(
            options.announcer, metrics, on_change=self.status_dirty.set, open_socket=open_socket
        )
        selector = f"{LEASE_LABEL[0]}={LEASE_LABEL[1]}"
        self.services = Informer(client, SERVICES)
        self.nodes = Informer(client, NODES)
        self.slices = Informer(client, ENDPOINTSLICES)
        self.ads = Informer(client, L2ADVERTISEMENTS)
        self.pools = Informer(client, IPPOOLS)
        self.leases = Informer(client, LEASES, namespace=options.namespace, label_selector=selector)
        self.slices.add_index("service", _slice_service)
        for inf in (self.services, self.nodes, self.slices, self.ads, self.pools):
            inf.add_handler(self._changed, lambda o, n: self._changed(n), self._changed)
        self.services.add_handler(on_delete=self._service_gone)
        self.leases.add_handler(
            self._lease_seen, lambda o, n: self._lease_seen(n), self._lease_gone
        )
        self.plan: dict[str, Announcement] = {}
        self._views: dict[str, ServiceView] = {}
        self._decoded: dict[str, tuple[str, Service, ServiceView | None]] = {}
        """Service key -> (resourceVersion, the Service, its view) as last decoded."""
        self._live: frozenset[str] = frozenset()
        self._transport: asyncio.DatagramTransport | None = None
        self._written: dict[str, tuple[str, tuple[Condition, ...]]] = {}
        """Service key -> (resourceVersion written against, conditions written)."""
        self._announced_to: dict[str, str] = {}
        """Service key -> the message of the last NodeAssigned Event sent."""
        self._seq = 0
        metrics.observe(
            lambda: {
                ip: self.plan[ip].services for ip in self.announcer.announced() if ip in self.plan
            }
        )

    # -- informer callbacks ----------------------------------------------------------
    def _changed(self, _obj: Mapping[str, Any]) -> None:
        self.dirty.set()

    def _service_gone(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        for cache in (self._decoded, self._written, self._announced_to):
            cache.pop(key, None)

    def _lease_seen(self, obj: Mapping[str, Any]) -> None:
        spec = obj.get("spec") or {}
        node = str(spec.get("holderIdentity") or "")
        if not node:
            return
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        address = _address(str(annotations.get(ADDRESS_ANNOTATION) or ""))
        fresh = True
        renew, duration = spec.get("renewTime"), spec.get("leaseDurationSeconds")
        if isinstance(renew, str) and isinstance(duration, int):
            with contextlib.suppress(ValueError):
                fresh = parse_micro_time(renew) + duration > time.time()
        self.membership.lease(node, address, time.monotonic(), fresh=fresh)
        self.dirty.set()

    def _lease_gone(self, obj: Mapping[str, Any]) -> None:
        node = str((obj.get("spec") or {}).get("holderIdentity") or "")
        if node and node != self.node:
            self.membership.lease_gone(node)
            self.dirty.set()

    def heard(self, hb: Heartbeat) -> None:
        now = time.monotonic()
        was = self.membership.is_live(hb.node, now)
        if self.membership.heard(hb.node, now, bye=hb.bye) and (
            was != self.membership.is_live(hb.node, now)
        ):
            self.dirty.set()

    # -- run ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        informers = (self.services, self.nodes, self.slices, self.ads, self.pools, self.leases)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Heartbeats(self),
            local_addr=(self.options.heartbeat_host, self.options.heartbeat_port),
        )
        self._transport = transport
        try:
            async with asyncio.TaskGroup() as tg:
                for inf in informers:
                    tg.create_task(inf.run(stop))
                tg.create_task(self.announcer.run(stop))
                synced = tg.create_task(all_synced(*informers))
                stopped = tg.create_task(stop.wait())
                await asyncio.wait((synced, stopped), return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    synced.cancel()
                    return
                tg.create_task(self._keep_lease(stop))
                tg.create_task(self._send_heartbeats(stop))
                tg.create_task(self._write_statuses(stop))
                self._replan()
                ready.set()
                log.info("speaker ready on node %s", self.node)
                await self._plan_loop(stop)
        finally:
            self._say_bye()
            transport.close()

    async def _plan_loop(self, stop: asyncio.Event) -> None:
        """Plan again when an input changes (``dirty``) or when a peer dies: the loop
        sleeps until the first live peer's heartbeat deadline, not on a fixed tick."""
        stopped = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                now = time.monotonic()
                death = self.membership.next_death(now)
                dirty = asyncio.create_task(self.dirty.wait())
                await asyncio.wait(
                    (dirty, stopped),
                    timeout=None if death is None else max(0.0, death - now),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                dirty.cancel()
                live = self.membership.live(time.monotonic())
                if self.dirty.is_set() or live != self._live:
                    self.dirty.clear()
                    self._replan()
        finally:
            stopped.cancel()

    def _replan(self) -> None:
        now = time.monotonic()
        self._live = self.membership.live(now)
        nodes = {}
        for obj in self.nodes.list():
            n = NodeView.from_object(obj)
            nodes[n.name] = n
        ads = []
        for obj in self.ads.list():
            try:
                ads.append(Advertisement.from_object(obj))
            except ValueError as e:
                log.warning(
                    "L2Advertisement %s ignored: %s", (obj.get("metadata") or {}).get("name"), e
                )
        views = [v for obj in self.services.list() if (v := self._view(obj)) is not None]
        ready = {v.key: ready_nodes(self.slices.by_index("service", v.key)) for v in views}
        pool_labels = {
            str((p.get("metadata") or {}).get("name")): dict(
                (p.get("metadata") or {}).get("labels") or {}
            )
            for p in self.pools.list()
        }
        self.plan = plan(
            views, ads=ads, nodes=nodes, live=self._live, ready=ready, pool_labels=pool_labels
        )
        by_key = {v.key: v for v in views}
        self._views = by_key
        wants = {}
        for ip, a in self.plan.items():
            if a.node != self.node:
                continue
            never = all(by_key[k].announced_by is None for k in a.services)
            wants[ip] = Want(ip, a.interfaces, probe=never)
        self.announcer.update(wants)
        self.status_dirty.set()

    def _service(self, obj: Mapping[str, Any]) -> Service | None:
        """The cached object as a :class:`Service`, decoded once per resourceVersion."""
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        rv = str(meta.get("resourceVersion") or "")
        cached = self._decoded.get(key)
        if cached is None or cached[0] != rv:
            try:
                svc = Service.from_dict(obj)
            except DecodeError as e:
                log.warning("%s: not a Service: %s", key, e)
                return None
            view = ServiceView.from_service(svc, default_class=self.options.default_class)
            cached = self._decoded[key] = (rv, svc, view)
        return cached[1]

    def _view(self, obj: Mapping[str, Any]) -> ServiceView | None:
        if self._service(obj) is None:
            return None
        meta = obj.get("metadata") or {}
        return self._decoded[f"{meta.get('namespace')}/{meta.get('name')}"][2]

    # -- the Lease ---------------------------------------------------------------------
    def _advertised(self) -> str:
        o = self.options
        if o.heartbeat_address:
            host = o.heartbeat_address
        elif o.heartbeat_host not in ("0.0.0.0", "::", ""):
            host = o.heartbeat_host
        else:
            obj = self.nodes.get(self.node)
            host = (NodeView.from_object(obj).internal_ip if obj else None) or ""
        if not host:
            return ""
        return f"[{host}]:{o.heartbeat_port}" if ":" in host else f"{host}:{o.heartbeat_port}"

    async def _keep_lease(self, stop: asyncio.Event) -> None:
        """Hold this speaker's Lease (:class:`KubeLeaseStore`), renewed every third of its
        duration with the heartbeat address in an annotation; deleted on the way out."""
        name, ns = lease_name(self.node), self.options.namespace
        duration = self.options.lease_duration
        store = KubeLeaseStore(
            self.client, namespace=ns, name=name, labels={LEASE_LABEL[0]: LEASE_LABEL[1]}
        )
        rec: LeaseRecord | None = None
        acquired = False  # a Lease left by an earlier process: this one acquires it anew
        try:
            while not stop.is_set():
                address = self._advertised()
                if not address:
                    log.warning(
                        "node %s has no InternalIP and speaker_heartbeat_address is not set: "
                        "peers cannot hear this speaker",
                        self.node,
                    )
                store.annotations = {ADDRESS_ANNOTATION: address}
                now = time.time()
                wait = duration / 3
                try:
                    if rec is None:
                        rec = await store.get()
                    if rec is None:
                        rec = await store.create(
                            LeaseRecord(self.node, duration, now, now, transitions=0)
                        )
                    else:
                        rec = await store.update(
                            dataclasses.replace(
                                rec,
                                holder=self.node,
                                lease_duration_seconds=duration,
                                acquire_time=rec.acquire_time if acquired else now,
                                renew_time=now,
                            )
                        )
                    acquired = True
                except LeaseConflict:
                    rec = None  # changed or gone meanwhile: read it again, soon
                    wait = min(1.0, wait)
                except KubeError as e:
                    log.warning("cannot renew Lease %s/%s: %s", ns, name, e)
                    wait = min(1.0, wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            with contextlib.suppress(KubeError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.client.delete(LEASES, name, ns)), 2.0)

    # -- heartbeats ----------------------------------------------------------------------
    def _send(self, hb: Heartbeat) -> None:
        if self._transport is None:
            return
        data = encode_heartbeat(hb)
        for _node, addr in self.membership.peers():
            try:
                self._transport.sendto(data, addr)
            except OSError as e:
                log.debug("heartbeat to %s: %s", addr, e)

    async def _send_heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._seq += 1
            self._send(Heartbeat(self.node, self._seq))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.heartbeat_interval)

    def _say_bye(self) -> None:
        self._seq += 1
        self._send(Heartbeat(self.node, self._seq, bye=True))

    # -- Service status ----------------------------------------------------------------
    def _wanted_conditions(self) -> dict[str, dict[str, Wanted]]:
        """Service key -> condition type -> (status, reason, message) this node owes."""
        announced = self.announcer.announced()
        conflicts = self.announcer.conflicts()
        out: dict[str, dict[str, Wanted]] = {}
        for ip, a in self.plan.items():
            if a.node != self.node:
                continue
            for key in a.services:
                want = out.setdefault(key, {})
                if ip in announced:
                    want.setdefault(
                        ANNOUNCED,
                        (True, "Announcing", announced_message(self.node, announced[ip])),
                    )
                elif ip in conflicts:
                    mac, iface = conflicts[ip]
                    want[CONFLICT] = (
                        True,
                        "AddressInUse",
                        f"{ip} is in use by another host ({mac} answered the probe on "
                        f"{iface}, node {self.node}): not announced",
                    )
                    want.pop(ANNOUNCED, None)
        for key, view in self._views.items():
            # Announced by this node before, by nobody now: say so (the next owner, if
            # any, writes its own name instead).
            if view.announced_by == self.node and not any(ip in self.plan for ip in view.ips):
                out.setdefault(key, {})[ANNOUNCED] = (
                    False,
                    "NotAnnounced",
                    f"no node announces {', '.join(view.ips)}: no ready endpoint, no live "
                    "eligible speaker or no L2Advertisement covers it",
                )
        return out

    async def _write_statuses(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiter = asyncio.create_task(self.status_dirty.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait((waiter, stopped), return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopped.cancel()
            if stop.is_set():
                return
            self.status_dirty.clear()
            again = False
            for key, want in self._wanted_conditions().items():
                obj = self.services.get(key)
                if obj is None:
                    continue
                try:
                    again |= await self._write_one(obj, want)
                except KubeError as e:
                    log.warning("%s: cannot write status: %s", key, e)
                    again = True
            if again:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                self.status_dirty.set()

    async def _write_one(self, obj: Mapping[str, Any], want: Mapping[str, Wanted]) -> bool:
        """Write ``want`` into ``obj``'s conditions if they differ; True to try again."""
        svc = self._service(obj)
        if svc is None:
            return False
        existing = svc.status.conditions
        by_type = {c.type: c for c in existing}
        changed: list[Condition] = []
        for typ in (ANNOUNCED, CONFLICT):
            old = by_type.get(typ)
            if typ in want:
                status, reason, message = want[typ]
            elif typ == CONFLICT and old is not None and old.status == "True":
                status, reason = False, "NoConflict"
                message = f"no other host answered the probe (node {self.node})"
            else:
                continue
            if old is None or (old.status == "True", old.reason, old.message) != (
                status,
                reason,
                message,
            ):
                changed.append(
                    condition(
                        existing,
                        type_=typ,
                        status=status,
                        reason=reason,
                        message=message,
                        generation=svc.metadata.generation,
                        now=_now_rfc3339(),
                    )
                )
        if not changed:
            return False
        conditions = merge_conditions(existing, changed)
        rv = svc.metadata.resource_version
        written = self._written.get(svc.key)
        if written is not None and written == (rv, conditions):
            return False  # written already; the cache has not caught up
        try:
            await self.client.patch(
                SERVICES,
                svc.metadata.name,
                {
                    "metadata": {"resourceVersion": rv},
                    "status": {"conditions": [c.to_dict() for c in conditions]},
                },
                svc.metadata.namespace,
                kind="merge",
                subresource="status",
            )
        except Conflict:
            return True
        except NotFound:
            return False
        self._written[svc.key] = (rv, tuple(conditions))
        for c in changed:
            if c.type == ANNOUNCED and c.status == "True":
                if self._announced_to.get(svc.key) != c.message:
                    self._announced_to[svc.key] = c.message
                    await self.recorder.emit(obj, "Normal", "NodeAssigned", c.message)
            elif c.type == CONFLICT and c.status == "True":
                await self.recorder.emit(obj, "Warning", "IPConflict", c.message)
        return False


def _slice_service(obj: Mapping[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace')}/{svc}"] if svc else []


async def run_speaker(
    client: KubeClient,
    options: SpeakerOptions,
    *,
    metrics: Metrics,
    stop: asyncio.Event,
    ready: asyncio.Event,
    open_socket: OpenSocket = PacketSocket.open,
) -> None:
    """Run one speaker until ``stop``; ``ready`` is set once its caches are synced.
    ``open_socket``: how an interface is opened (tests pass a stand-in)."""
    speaker = Speaker(
        client, options, SpeakerMetrics(metrics, options.node), open_socket=open_socket
    )
    await speaker.run(stop, ready)
