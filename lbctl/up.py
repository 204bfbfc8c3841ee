"""``lbctl up``: the main job on the embedded default.

The embedded API server (data in ``data_dir``), the Service LB controller and a
provider, in one process. The default provider is ``aws`` against a moto server on
127.0.0.1 (seeded with a VPC, subnets, a node security group and three instances, which
become the Nodes), or ``memory`` when moto is not installed. It applies the example
Services, shows progress until they converge, prints a table like ``kubectl get
services -A`` with a STATUS column, then keeps serving the API until Ctrl-C
(``--once``: exits after the table, 0 when every example converged).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from lbctl.apimachinery.lbctl_kinds import LBCTL_TYPES
from lbctl.apimachinery.printers import service_external_ip, service_ports
from lbctl.apiserver.main import config_from_settings
from lbctl.apiserver.server import APIServer
from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.controllers.main import shared_provider_settings
from lbctl.domain.lbstatus import PORTS_ERROR, READY
from lbctl.kube.client import NAMESPACES, NODES, SERVICES, KubeClient, Resource, connect
from lbctl.kube.errors import AlreadyExists, KubeError
from lbctl.kube.informer import object_key
from lbctl.settings import Settings
from providers.base import ConfigError, Provider, available_providers, load_provider

__all__ = ["UpError", "UpOptions", "render_table", "run_up"]

CONVERGE_SECONDS = 60.0


class UpError(Exception):
    """Something the user can fix: the message names it."""


@dataclass(frozen=True, slots=True)
class UpOptions:
    provider: str | None = None
    """None: ``aws`` on a local moto server if moto is installed, else ``memory``."""
    examples: Path = Path("deploy/examples")
    once: bool = False


def default_provider() -> str:
    """``aws`` (on a local moto server) when both are installed, else ``memory``."""
    if "aws" in available_providers() and importlib.util.find_spec("moto") is not None:
        return "aws"
    return "memory"


@dataclass(frozen=True, slots=True)
class LocalCloud:
    """What a provider needs to run on this machine: its options and the Nodes."""

    options: dict[str, Any]
    nodes: list[dict[str, Any]]
    description: str


def _node(name: str, provider_id: str = "", ip: str = "", zone: str = "") -> dict[str, Any]:
    node: dict[str, Any] = {"metadata": {"name": name, "labels": {}}}
    if zone:
        node["metadata"]["labels"]["topology.kubernetes.io/zone"] = zone
    if provider_id:
        node["spec"] = {"providerID": provider_id}
    if ip:
        node["status"] = {"addresses": [{"type": "InternalIP", "address": ip}]}
    return node


@contextlib.asynccontextmanager
async def local_cloud(provider: str, settings: Settings) -> AsyncIterator[LocalCloud]:
    """``aws``: a moto server on 127.0.0.1 seeded with a VPC and three instances, which
    become the Nodes; the provider points at it with dummy credentials. Others: one
    Node with no cloud behind it."""
    if provider != "aws":
        yield LocalCloud({}, [_node("local-node", ip="127.0.0.1")], "")
        return
    try:
        # Imported here: boto3 and moto load only when this provider is chosen.
        from providers.aws.localaws import DUMMY_CREDENTIALS, MotoServer, seed  # noqa: PLC0415
    except ImportError as e:
        raise UpError(f"--provider aws: {e}") from None
    server = MotoServer()
    try:
        url = await asyncio.to_thread(server.start)
    except ConfigError as e:
        raise UpError(f"--provider aws: {e.message}") from None
    try:
        local = await asyncio.to_thread(seed, url, cluster_id=settings.cluster_name)
        # Only this process talks to moto: never sign with the machine's credentials.
        os.environ.update({k.upper(): v for k, v in DUMMY_CREDENTIALS.items()})
        os.environ.pop("AWS_PROFILE", None)
        yield LocalCloud(
            {"endpoint_url": url, "region": local.region, "vpc_id": local.vpc_id},
            [_node(n.name, n.provider_id, n.internal_ip, n.az) for n in local.nodes],
            f"moto on {url} (VPC {local.vpc_id}, {len(local.nodes)} instances)",
        )
    finally:
        await asyncio.to_thread(server.stop)


async def _register_nodes(client: KubeClient, nodes: Sequence[Mapping[str, Any]]) -> None:
    for node in nodes:
        name = node["metadata"]["name"]
        body = {k: v for k, v in node.items() if k != "status"}
        with contextlib.suppress(AlreadyExists):
            await client.create(NODES, body)
        if node.get("status"):
            await client.patch(
                NODES, name, {"status": node["status"]}, kind="merge", subresource="status"
            )


def _load_examples(examples: Path) -> list[dict[str, Any]]:
    if not examples.is_dir():
        raise UpError(f"examples directory {examples} does not exist (--examples)")
    docs: list[dict[str, Any]] = []
    for path in sorted(examples.glob("*.yaml")):
        try:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        except yaml.YAMLError as e:
            raise UpError(f"{path}: {' '.join(str(e).split())}") from None
    return docs


def _services(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("apiVersion") == "v1" and d.get("kind") == "Service"]


async def _apply_lbctl_kinds(client: KubeClient, docs: Sequence[Mapping[str, Any]]) -> int:
    """Create (or replace the spec of) each example of lbctl's own kinds (IPPool,
    L2Advertisement); other kinds are left out. How many were applied."""
    kinds = {(f"{rt.group}/{rt.version}", rt.kind): rt for rt in LBCTL_TYPES}
    applied = 0
    for doc in docs:
        rt = kinds.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
        if rt is None:
            continue
        res = Resource(rt.group, rt.version, rt.plural, rt.namespaced, rt.kind)
        try:
            await client.create(res, doc)
        except AlreadyExists:
            name = (doc.get("metadata") or {})["name"]
            await client.patch(res, name, {"spec": doc.get("spec") or {}}, kind="merge")
        applied += 1
    return applied


async def _apply(client: KubeClient, docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Create each Service, or bring an existing one's spec in line (like apply)."""
    keys = []
    for doc in docs:
        meta = dict(doc.get("metadata") or {})
        ns = meta.get("namespace") or "default"
        await _ensure_namespace(client, ns)
        try:
            await client.create(SERVICES, {**doc, "metadata": {**meta, "namespace": ns}}, ns)
        except AlreadyExists:
            # A merge patch replaces ports whole: a strategic merge keys them by number
            # alone and folds TCP/514 and UDP/514 together (k/k #39188); the server keeps
            # allocated nodePorts of ports it recognises by name.
            await client.patch(
                SERVICES, meta["name"], {"spec": doc.get("spec") or {}}, ns, kind="merge"
            )
        keys.append(f"{ns}/{meta['name']}")
    return keys


async def _ensure_namespace(client: KubeClient, ns: str) -> None:
    with contextlib.suppress(AlreadyExists):
        await client.create(NAMESPACES, {"metadata": {"name": ns}})


def _status(svc: Mapping[str, Any]) -> str:
    spec, st = svc.get("spec") or {}, svc.get("status") or {}
    if spec.get("type") != "LoadBalancer":
        return "-"
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    ready = conds.get(READY)
    text = (
        "Pending"
        if ready is None
        else ("Ready" if ready.get("status") == "True" else ready.get("reason") or "NotReady")
    )
    ports = conds.get(PORTS_ERROR)
    if ports is not None and ports.get("status") == "True":
        text += " (port errors: " + ports.get("message", "") + ")"
    return text


def render_table(services: Sequence[Mapping[str, Any]]) -> str:
    header = ("NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "STATUS")
    rows = [header]
    for s in services:
        m, spec = s.get("metadata") or {}, s.get("spec") or {}
        rows.append(
            (
                m.get("namespace", ""),
                m.get("name", ""),
                spec.get("type", ""),
                spec.get("clusterIP") or "<none>",
                service_external_ip(s),
                service_ports(s),
                _status(s),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "   ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows
    )


def _converged(svc: Mapping[str, Any]) -> bool:
    return _status(svc).split(" ")[0] in ("-", "Ready", "Unsupported")


async def _serve(settings: Settings, options: UpOptions, out: TextIO) -> int:
    name = options.provider or default_provider()
    docs = _load_examples(options.examples)
    async with local_cloud(name, settings) as cloud:
        try:
            provider: Provider = load_provider(
                name,
                shared=shared_provider_settings(settings),
                **{**cloud.options, **settings.provider_options},
            )
        except ConfigError as e:
            what = e.message if e.setting == "provider" else str(e)
            raise UpError(f"--provider {name}: {what}") from None
        if cloud.description:
            print(f"lbctl up: local cloud: {cloud.description}", file=out, flush=True)
        return await _serve_with(
            settings=settings, options=options, provider=provider, cloud=cloud, docs=docs, out=out
        )


async def _serve_with(
    *,
    settings: Settings,
    options: UpOptions,
    provider: Provider,
    cloud: LocalCloud,
    docs: list[dict[str, Any]],
    out: TextIO,
) -> int:
    server = APIServer(config_from_settings(settings))
    await server.start()
    stop = asyncio.Event()
    try:
        # The embedded server is in this process: no client-side rate limit.
        async with await connect(kubeconfig=server.kubeconfig_path, qps=None) as client:
            await _register_nodes(client, cloud.nodes)
            pools = await _apply_lbctl_kinds(client, docs)
            if provider.name == "baremetal":
                print(
                    f"lbctl up: {pools} IPPool/L2Advertisement examples applied; the L2 speaker "
                    "is not started (it needs root and an interface): addresses are "
                    "assigned, not announced (run `lbctl speaker` per node, docs/speaker.md)",
                    file=out,
                    flush=True,
                )
            copts = ControllerOptions(
                class_name=provider.load_balancer_class,
                default_class=True,
                cluster_name=settings.cluster_name,
                leader_election=True,
                lease_duration=5,
                renew_deadline=4,
                retry_period=1,
            )
            task = asyncio.create_task(
                run_controller(client=client, provider=provider, options=copts, stop=stop)
            )
            try:
                ok = await _converge(client, server, provider, docs, out)
                if not options.once:
                    print(
                        f"\nServing on {server.url}. Point kubectl at it:\n"
                        f"  kubectl --kubeconfig {server.kubeconfig_path} get services -A\n"
                        "Ctrl-C stops.",
                        file=out,
                        flush=True,
                    )
                    loop = asyncio.get_running_loop()
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.add_signal_handler(sig, stop.set)
                    await stop.wait()
                return 0 if ok else 1
            finally:
                stop.set()  # the controller releases its lease while the client is open
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=30)
    finally:
        stop.set()
        await provider.close()
        await server.stop()


async def _converge(
    client: KubeClient,
    server: APIServer,
    provider: Provider,
    docs: list[dict[str, Any]],
    out: TextIO,
) -> bool:
    """Apply the examples, show progress until they converge, print the table."""
    keys = await _apply(client, _services(docs))
    print(
        f"lbctl up: API server {server.url}, provider {provider.name}, "
        f"{len(keys)} example Services applied",
        file=out,
        flush=True,
    )
    deadline = time.monotonic() + CONVERGE_SECONDS
    while time.monotonic() < deadline:
        items, _ = await client.list(SERVICES)
        left = [object_key(s) for s in items if object_key(s) in keys and not _converged(s)]
        if not left:
            break
        print(f"  waiting for {len(left)}: {', '.join(left)}", file=out, flush=True)
        await asyncio.sleep(0.5)
    items, _ = await client.list(SERVICES)
    print("", file=out)
    print(render_table(sorted(items, key=object_key)), file=out, flush=True)
    return all(_converged(s) for s in items if object_key(s) in keys)


def run_up(settings: Settings, options: UpOptions, out: TextIO = sys.stdout) -> int:
    try:
        return asyncio.run(_serve(settings, options, out))
    except UpError as e:
        print(f"lbctl: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"lbctl: listen (LBCTL_LISTEN): cannot serve on {settings.listen}: {e}", file=sys.stderr
        )
        return 1
    except KubeError as e:
        print(f"lbctl: API error: {e}", file=sys.stderr)
        return 1
