"""The AWS Network Load Balancer provider (edge): :class:`AWSProvider`.

``ensure`` validates everything first (ports, annotations, subnets, the plan,
certificates, SSL policy, EIP allocations), so a bad Service creates nothing; then
each step is idempotent and finds its resources again by their tags, so a crash
between two calls is resumed by the next ``ensure`` or ``delete``.

Security groups (:mod:`.securitygroups`): every NLB has its Service's frontend group
(the listeners' ports from the source ranges) and the cluster's backend group; the node
groups let the backend group in over the NodePort range (two cluster rules, whatever
the number of Services) plus any port a Service needs outside it. An owned NLB without
security groups (made by an older lbctl; AWS cannot add any) is replaced.

An idle resync costs two describes per Service and no change: the provider remembers
what its last ``ensure`` of each Service applied, and when the new plan, targets and
security groups equal it, only checks that the load balancer and its listeners are
still there (:meth:`AWSProvider.ensure`). A fresh process has no memory and runs the
full path once; so does a Service remembered for longer than ``full_reconcile_seconds``
(an hour), which repairs drift the cheap check cannot see (targets, rules, attributes).

Errors: AWS faults a changed Service can fix (unknown certificate, invalid
configuration, a name taken by a resource that is not ours) are
:class:`~providers.base.UnsupportedError`; everything else is
:class:`~providers.base.TransientError` (or :class:`~providers.base.RetryAfterError`
while a target group or frontend security group is still in use). No botocore
exception escapes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError

from lbctl.domain.capabilities import Capabilities
from lbctl.domain.service import Service
from providers.aws.annotations import AnnotationError, NLBConfig, Scheme
from providers.aws.annotations import parse as parse_annotations
from providers.aws.client import AWSClient
from providers.aws.common import is_mutation, provider_errors
from providers.aws.desired import Desired, desired_state, preflight
from providers.aws.environment import Environment
from providers.aws.inventory import InventoryCache, LoadBalancerRecord
from providers.aws.loadbalancers import (
    ListenerState,
    delete_load_balancer,
    describe_listeners,
    describe_load_balancer,
    ensure_load_balancer,
    find_load_balancer,
    sync_listeners,
)
from providers.aws.securitygroups import (
    Groups,
    add_cluster_rules,
    create_backend,
    delete_group,
    describe_groups,
    ensure_frontend,
    missing_rules,
    reconcile,
    release,
)
from providers.aws.sgrules import (
    DEFAULT_NODE_PORT_RANGE,
    Permission,
    Rule,
    backend_group,
    cluster_node_rules,
    node_rules,
)
from providers.aws.targetgroups import (
    IN_USE_RETRY_SECONDS,
    delete_target_group,
    ensure_target_group,
    find_target_group,
    sync_targets,
)
from providers.base import (
    ConfigError,
    IngressPoint,
    LoadBalancerRequest,
    LoadBalancerStatus,
    RetryAfterError,
    TransientError,
    UnsupportedError,
    require_supported,
)

__all__ = ["CAPABILITIES", "LOAD_BALANCER_CLASS", "AWSProvider"]

log = logging.getLogger(__name__)

LOAD_BALANCER_CLASS: Final = "lbctl.io/aws-nlb"
MAX_RECORDED: Final = 10_000
"""At most this many entries in :attr:`AWSProvider.mutations`."""
CAPABILITIES: Final = Capabilities(
    protocols=frozenset({"TCP", "UDP"}),
    mixed_protocols=True,
    tcp_udp_same_port=True,
    dual_stack=False,
    source_ranges=True,
    external_traffic_policy_local=True,
    ip_mode=None,
    hostname=True,
)


@dataclass(frozen=True, slots=True)
class _Applied:
    """What the last successful ``ensure`` of a Service applied."""

    desired: Desired
    lb_arn: str
    listeners: frozenset[ListenerState]
    at: float
    """When (provider clock): after ``full_reconcile_seconds`` the full path runs again."""
    node_rules: frozenset[Rule] = frozenset()
    """The Service's own rules in the node groups (from the backend group)."""


class AWSProvider:
    """The ``aws`` provider (class ``lbctl.io/aws-nlb``): one NLB per Service.

    ``mutations`` records every attempted mutating AWS call as ``(operation, outcome)``
    (the conformance suite compares it); ``client`` is the :class:`AWSClient`.
    """

    name: Final = "aws"
    load_balancer_class: Final = LOAD_BALANCER_CLASS
    capabilities: Final = CAPABILITIES

    def __init__(
        self,
        *,
        cluster_name: str = "lbctl",
        region: str | None = None,
        endpoint_url: str | None = None,
        session: Any = None,
        default_scheme: Scheme = Scheme.INTERNET_FACING,
        orphan_sweep: bool = True,
        node_security_group_id: str | None = None,
        vpc_id: str | None = None,
        provisioning_requeue_seconds: float = 15.0,
        node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE,
        client_options: Mapping[str, Any] | None = None,
        full_reconcile_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``session``: a boto3 Session (credentials); ``client_options``: more
        :class:`AWSClient` arguments (``max_backoff``, ``limits``...);
        ``node_port_range``: the cluster's NodePort range, opened in the node groups
        from the backend group by two rules every Service shares;
        ``full_reconcile_seconds``: how long an idle Service is trusted to its memory
        before a full reconcile repairs drift the cheap check cannot see (targets,
        rules, attributes changed by hand)."""
        self.cluster_name = cluster_name
        self.default_scheme = default_scheme
        self.orphan_sweep = orphan_sweep
        self.node_security_group_id = node_security_group_id
        self.node_port_range = node_port_range
        self.provisioning_requeue_seconds = provisioning_requeue_seconds
        self.full_reconcile_seconds = full_reconcile_seconds
        self._clock = clock
        self.mutations: list[tuple[str, str]] = []
        self._observers: list[Callable[[str, str], None]] = []
        try:
            self.client = AWSClient(
                region=region,
                endpoint_url=endpoint_url,
                session=session,
                on_call=self._on_call,
                **dict(client_options or {}),
            )
        except BotoCoreError as e:  # e.g. AWS_PROFILE names no profile
            raise ConfigError("aws_credentials", f"cannot set up AWS: {e}") from e
        self.inventory = InventoryCache(self.client, cluster_name, clock=clock)
        self.environment = Environment(self.client, cluster_name, vpc_id=vpc_id, clock=clock)
        self._applied: dict[str, _Applied] = {}
        # Cluster infrastructure (the backend group, the node groups' cluster rules)
        # this process made, and when (an epoch: what a describe started before it may
        # not show), so that concurrent ensures make it once.
        self._infra_lock = asyncio.Lock()
        self._epoch = 0
        self._backends: dict[str, tuple[str, int]] = {}
        """VPC id -> (backend group id, epoch it was made or seen)."""
        self._cluster_rules_at: dict[tuple[str, str], int] = {}
        """(node group, backend group) -> epoch the cluster rules were added."""

    # --- calls and errors ---------------------------------------------------------------

    def observe_calls(self, fn: Callable[[str, str], None]) -> None:
        """Call ``fn(operation, outcome)`` after every AWS call attempt."""
        self._observers.append(fn)

    def _on_call(self, operation: str, outcome: str) -> None:
        if is_mutation(operation):
            self.mutations.append((operation, outcome))
            if len(self.mutations) > MAX_RECORDED:  # a long-running process: keep it bounded
                del self.mutations[: MAX_RECORDED // 2]
        for fn in self._observers:
            try:
                fn(operation, outcome)
            except Exception:  # a metrics hook must never break a call
                log.exception("call observer %r failed", fn)

    def _mapped(self, uid: str | None, what: str) -> AbstractContextManager[None]:
        """Provider errors only (:func:`common.provider_errors`); after a failure forget
        what was applied for ``uid`` (and the caches, if AWS said something unexpected)."""
        return provider_errors(what, lambda caches: self._forget(uid, caches=caches))

    def _forget(self, uid: str | None, *, caches: bool) -> None:
        if uid is not None:
            self._applied.pop(uid, None)
        if caches:
            self.inventory.invalidate()
            self.environment.invalidate()

    # --- ensure -------------------------------------------------------------------------

    def _config(self, service: Service) -> NLBConfig:
        try:
            config = parse_annotations(service, default_scheme=self.default_scheme)
        except AnnotationError as e:
            raise UnsupportedError(AnnotationError.reason, e.message) from e
        if config.ignored:
            log.debug("%s: annotations not implemented: %s", service.key, config.ignored)
        return config

    @staticmethod
    def _uid(service: Service) -> str:
        uid = service.metadata.uid
        if not uid:
            raise UnsupportedError("MissingUID", f"Service {service.key} has no metadata.uid")
        return uid

    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        """Create or update the Service's NLB; see the module docstring."""
        require_supported(req, self)
        service = req.service
        uid = self._uid(service)
        config = self._config(service)
        with self._mapped(uid, f"ensure {service.key}"):
            desired = await self._desired(req, config)
            applied = self._remembered(uid)
            if applied is not None and applied.desired == desired:
                status = await self._idle(uid, applied)
                if status is not None:
                    return status
            return await self._full(uid, desired)

    def _remembered(self, uid: str) -> _Applied | None:
        """What was applied, unless it is too old to be trusted without a full check."""
        applied = self._applied.get(uid)
        if applied is not None and self._clock() - applied.at >= self.full_reconcile_seconds:
            del self._applied[uid]
            return None
        return applied

    async def _desired(self, req: LoadBalancerRequest, config: NLBConfig) -> Desired:
        return await desired_state(
            self.environment,
            req,
            config,
            cluster_id=self.cluster_name,
            node_security_group=self.node_security_group_id,
        )

    async def _idle(self, uid: str, applied: _Applied) -> LoadBalancerStatus | None:
        """Nothing changed on our side: check the load balancer and its listeners are as
        applied (two describes). None: they are not, run the full path."""
        item = await describe_load_balancer(self.client, applied.lb_arn)
        if item is not None:
            listeners = await describe_listeners(self.client, applied.lb_arn)
            if frozenset(ListenerState.from_aws(i) for i in listeners) == applied.listeners:
                state = str((item.get("State") or {}).get("Code", ""))
                return self._status(state, str(item.get("DNSName", "")), applied.lb_arn)
            log.info("%s: listeners changed behind lbctl's back, reconciling", uid)
        else:
            log.info("%s: load balancer %s is gone, re-creating", uid, applied.lb_arn)
            self.inventory.invalidate()
        self._applied.pop(uid, None)
        return None

    async def _full(self, uid: str, desired: Desired) -> LoadBalancerStatus:
        """Converge every resource of the Service (module docstring), then remember."""
        self._applied.pop(uid, None)
        plan = desired.plan
        await preflight(self.client, plan)
        inventory = await self.inventory.get()
        owned_lbs = inventory.load_balancers_of(uid)
        owned_tgs = inventory.target_groups_of(uid)
        # Names taken by resources that are not ours are refused before any change.
        found_lb = await find_load_balancer(
            self.client, plan.lb.name, owned=owned_lbs, cluster_id=self.cluster_name, uid=uid
        )
        found_tgs = {
            spec.key: await find_target_group(
                self.client, spec.name, owned=owned_tgs, cluster_id=self.cluster_name, uid=uid
            )
            for spec in plan.target_groups
        }
        groups = await self._describe_groups(desired.groups)
        frontend = await ensure_frontend(
            self.client,
            desired.frontend,
            groups.frontend(uid, desired.vpc_id, desired.frontend.name),
            vpc_id=desired.vpc_id,
            rules=desired.frontend_rules,
            uid=uid,
        )
        backend = await self._backend(groups, desired.vpc_id)
        rules = await self._sync_node_rules(uid, desired, groups, backend)
        lb_name = plan.lb.name
        if found_lb is not None and not found_lb.security_groups:
            # AWS cannot add security groups to an NLB made without: replace it.
            log.info("%s: load balancer %s has no security groups: replacing it", uid, lb_name)
            await self._delete_load_balancer(found_lb)
            found_lb = None
        lb = await ensure_load_balancer(
            self.client, plan.lb, found_lb, uid=uid, security_groups=(frontend, backend)
        )
        self.inventory.put_load_balancer(lb)
        for old in owned_lbs:
            if old.arn != lb.arn:  # the scheme changed, or made without security groups
                await self._delete_load_balancer(old)
        arns: dict[str, str] = {}
        for spec in plan.target_groups:
            tg = await ensure_target_group(
                self.client, spec, found_tgs[spec.key], vpc_id=desired.vpc_id, uid=uid
            )
            self.inventory.put_target_group(tg)
            await sync_targets(self.client, tg.arn, desired.targets[spec.key])
            arns[spec.key] = tg.arn
        listeners = await sync_listeners(self.client, lb.arn, plan.listeners, arns)
        settled = True
        wanted = {g.name for g in plan.target_groups}
        for tg in owned_tgs:
            if tg.name in wanted:
                continue
            try:
                await delete_target_group(self.client, tg)
                self.inventory.drop_target_group(tg.arn)
            except RetryAfterError as e:
                log.info("%s: old target group %s not deleted yet: %s", uid, tg.name, e)
                settled = False
        status = self._status(lb.state, lb.dns_name, lb.arn)
        if settled:
            self._applied[uid] = _Applied(desired, lb.arn, listeners, self._clock(), rules)
        elif not status.provisioning:
            status = dataclasses.replace(status, requeue_after=IN_USE_RETRY_SECONDS)
        return status

    async def _describe_groups(self, known: Collection[str]) -> Groups:
        return await describe_groups(self.client, self.cluster_name, known, epoch=self._epoch)

    def _tick(self) -> int:
        self._epoch += 1
        return self._epoch

    async def _backend(self, groups: Groups, vpc_id: str) -> str:
        """The cluster's backend security group in ``vpc_id``: found in ``groups``; else
        the one this process made since they were described; else a new one (or one
        another lbctl just made under its name, found by its tags)."""
        found = groups.backend(vpc_id)
        if found is not None:
            return found.id
        async with self._infra_lock:
            made = self._backends.get(vpc_id)
            if made is not None and made[1] > groups.epoch:
                return made[0]
            gid = await create_backend(self.client, backend_group(self.cluster_name), vpc_id)
            self._backends[vpc_id] = (gid, self._tick())
            return gid

    async def _cluster_rules(
        self, groups: Groups, node_groups: Sequence[str], backend: str
    ) -> None:
        """The two cluster rules in each node group, added where ``groups`` lacks them
        (unless this process added them since they were described)."""
        wanted = cluster_node_rules(
            cluster_id=self.cluster_name, source_group=backend, node_port_range=self.node_port_range
        )
        current = groups.node_rules()
        todo = [g for g in sorted(node_groups) if missing_rules(current.get(g, ()), wanted)]
        if not todo:
            return
        async with self._infra_lock:
            for gid in todo:
                if self._cluster_rules_at.get((gid, backend), -1) > groups.epoch:
                    continue
                await add_cluster_rules(
                    self.client, gid, missing_rules(current.get(gid, ()), wanted)
                )
                self._cluster_rules_at[(gid, backend)] = self._tick()

    async def _sync_node_rules(
        self, uid: str, desired: Desired, groups: Groups, backend: str
    ) -> frozenset[Rule]:
        """The node groups' cluster rules (added if missing) and the Service's own rules
        (reconciled); the latter."""
        rules = node_rules(
            cluster_id=self.cluster_name,
            service_uid=uid,
            plan=desired.plan,
            source_group=backend,
            node_port_range=self.node_port_range,
            target_ports=desired.target_ports,
        )
        current = groups.node_rules()
        if not desired.groups:
            log.warning(
                "%s: no node security group found (set node_security_group_id, or tag one "
                "kubernetes.io/cluster/%s): the nodes are not opened to the load balancer",
                uid,
                self.cluster_name,
            )
        await self._cluster_rules(groups, desired.groups, backend)
        await reconcile(
            self.client,
            self.cluster_name,
            uid,
            desired=rules,
            groups=desired.groups,
            current=current,
        )
        return rules

    def _status(self, state: str, dns_name: str, arn: str) -> LoadBalancerStatus:
        ingress = (IngressPoint(hostname=dns_name.lower()),) if dns_name else ()
        if state == "failed":
            raise TransientError(f"load balancer {arn} is in state failed")
        if state == "provisioning":
            return LoadBalancerStatus(
                ingress, provisioning=True, requeue_after=self.provisioning_requeue_seconds
            )
        return LoadBalancerStatus(ingress)

    # --- update_hosts, get --------------------------------------------------------------

    async def update_hosts(self, req: LoadBalancerRequest) -> None:
        """The nodes (or endpoints) changed: sync the targets and the node security
        groups' rules of an existing NLB; an absent one stays absent."""
        require_supported(req, self)
        service = req.service
        uid = self._uid(service)
        config = self._config(service)
        with self._mapped(uid, f"update hosts of {service.key}"):
            desired = await self._desired(req, config)
            applied = self._remembered(uid)
            if applied is not None and applied.desired == desired:
                return
            inventory = await self.inventory.get()
            if not inventory.load_balancers_of(uid):
                return
            owned = {tg.name: tg for tg in inventory.target_groups_of(uid)}
            for spec in desired.plan.target_groups:
                tg = owned.get(spec.name)
                if tg is not None:
                    await sync_targets(self.client, tg.arn, desired.targets[spec.key])
            groups = await self._describe_groups(desired.groups)
            backend = await self._backend(groups, desired.vpc_id)
            rules = await self._sync_node_rules(uid, desired, groups, backend)
            if applied is not None and applied.desired.plan == desired.plan:
                self._applied[uid] = dataclasses.replace(applied, desired=desired, node_rules=rules)
            else:
                self._applied.pop(uid, None)

    async def get(self, service: Service) -> LoadBalancerStatus | None:
        """The status of the Service's NLB, or None; changes nothing."""
        uid = service.metadata.uid
        if not uid:
            return None
        with self._mapped(uid, f"get {service.key}"):
            lbs = (await self.inventory.get()).load_balancers_of(uid)
            if not lbs:
                return None
            applied = self._applied.get(uid)
            lb = next((r for r in lbs if applied is not None and r.arn == applied.lb_arn), lbs[0])
            item = await describe_load_balancer(self.client, lb.arn)
            if item is None:
                self.inventory.drop_load_balancer(lb.arn)
                return None
            state = str((item.get("State") or {}).get("Code", ""))
            return self._status(state, str(item.get("DNSName", "")), lb.arn)

    # --- delete, sweep ------------------------------------------------------------------

    async def _delete_load_balancer(self, record: LoadBalancerRecord) -> None:
        await delete_load_balancer(self.client, record)
        self.inventory.drop_load_balancer(record.arn)

    def _heirs(self, gone: Callable[[str], bool]) -> dict[str, dict[Permission, str]]:
        """Per security group, the permissions remaining Services want (from memory)."""
        heirs: dict[str, dict[Permission, str]] = {}
        for uid, applied in self._applied.items():
            if gone(uid):
                continue
            for group in applied.desired.groups:
                for rule in applied.node_rules:
                    heirs.setdefault(group, {}).setdefault(rule.permission, rule.description)
        return heirs

    def _known_groups(self, *uids: str) -> set[str]:
        groups = {self.node_security_group_id} if self.node_security_group_id else set()
        for uid in uids or tuple(self._applied):
            applied = self._applied.get(uid)
            if applied is not None:
                groups.update(applied.desired.groups)
        return groups

    async def delete(self, service: Service) -> None:
        """Delete the Service's listeners, NLBs, target groups, then its node rules and
        its frontend security group; absent is success. A target group or the frontend
        group still in use: :class:`RetryAfterError` (the next delete resumes)."""
        uid = service.metadata.uid
        if not uid:
            return
        with self._mapped(uid, f"delete {service.key}"):
            known = self._known_groups(uid)
            self._applied.pop(uid, None)
            inventory = await self.inventory.get(fresh=True)
            for lb in inventory.load_balancers_of(uid):
                await self._delete_load_balancer(lb)
            retry: RetryAfterError | None = None
            for tg in inventory.target_groups_of(uid):
                try:
                    await delete_target_group(self.client, tg)
                    self.inventory.drop_target_group(tg.arn)
                except RetryAfterError as e:
                    retry = e
            groups = await self._describe_groups(known)
            gone = uid.__eq__
            await release(
                self.client, self.cluster_name, groups.node_rules(), gone, self._heirs(gone)
            )
            for group in groups.frontends(uid):
                try:
                    await delete_group(self.client, group)
                except RetryAfterError as e:
                    retry = e
            if retry is not None:
                raise retry

    async def sweep(self, live_uids: Callable[[], Collection[str]]) -> int:
        """Delete what lbctl of this cluster owns for Services not in ``live_uids()``
        (called after listing, so a Service created meanwhile is safe); how many
        resources (load balancers, target groups, node rules, frontend security groups)
        were deleted. The backend security group is the cluster's: never deleted."""
        if not self.orphan_sweep:
            return 0
        with self._mapped(None, "orphan sweep"):
            inventory = await self.inventory.get(fresh=True)
            groups = await self._describe_groups(self._known_groups())
            live = set(live_uids())

            def gone(uid: str) -> bool:
                return uid not in live

            count = 0
            for lb in list(inventory.load_balancers.values()):
                if lb.uid is not None and gone(lb.uid):
                    await self._delete_load_balancer(lb)
                    count += 1
            for tg in list(inventory.target_groups.values()):
                if tg.uid is None or not gone(tg.uid):
                    continue
                try:
                    await delete_target_group(self.client, tg)
                    self.inventory.drop_target_group(tg.arn)
                    count += 1
                except RetryAfterError as e:
                    log.info("orphan sweep: %s; next sweep", e)
            count += await release(
                self.client, self.cluster_name, groups.node_rules(), gone, self._heirs(gone)
            )
            for group in groups.frontends():
                if group.uid is None or not gone(group.uid):
                    continue
                try:
                    await delete_group(self.client, group)
                    count += 1
                except RetryAfterError as e:
                    log.info("orphan sweep: %s; next sweep", e)
            for uid in [u for u in self._applied if gone(u)]:
                del self._applied[uid]
        if count:
            log.info("orphan sweep: deleted %d resources of Services that are gone", count)
        return count

    async def close(self) -> None:
        """Stop the client's threads and close its connections."""
        await self.client.close()
