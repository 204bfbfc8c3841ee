"""deploy/ on the real kube-apiserver: every kustomization applies (server-side dry run,
then for real); the controller runs as its ServiceAccount, bound only by deploy/'s RBAC,
completes its flows and is denied what it must not do; two controllers elect one
leader, and after kill -9 the other takes over within the lease duration."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from lbctl.kube.client import LEASES, NODES, SERVICES, KubeClient, Resource, connect
from lbctl.kube.errors import Forbidden, NotFound
from lbctl.realkube import RealKube
from lbctl.testing import free_port, wait_for, wait_for_async
from providers.aws.localaws import DUMMY_CREDENTIALS, MotoServer, seed

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAMESPACE = "lbctl-system"
SECRETS = Resource("", "v1", "secrets", True, "Secret")
PROVIDER_CALLS = re.compile(r"^lbctl_provider_calls_total\{[^}]*\} (\S+)$", re.M)


def kustomizations() -> list[Path]:
    return sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))


def kubectl(kube: RealKube, *args: str, kubeconfig: Path | None = None) -> str:
    assert kube.kubectl is not None, "the real kube-apiserver build ships kubectl"
    done = subprocess.run(
        [str(kube.kubectl), "--kubeconfig", str(kubeconfig or kube.kubeconfig), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def deployed(real_kube: RealKube) -> RealKube:
    """deploy/base applied (namespace, ServiceAccount, RBAC, Deployment, PDB)."""
    kubectl(real_kube, "apply", "-k", str(DEPLOY / "base"))
    return real_kube


def service_account_kubeconfig(kube: RealKube, name: str, where: Path) -> Path:
    """A kubeconfig holding a real ServiceAccount token (TokenRequest API)."""
    token = kubectl(kube, "create", "token", name, "-n", NAMESPACE, "--duration", "1h").strip()
    return kube.kubeconfig_for(token, where / f"{name}.kubeconfig")


@pytest.fixture
async def admin(real_kube: RealKube) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=real_kube.kubeconfig) as client:
        yield client


@pytest.fixture
async def namespace(admin: KubeClient) -> str:
    """A fresh namespace (the real server has no namespace controller: never deleted)."""
    name = f"deploy-{secrets.token_hex(4)}"
    await admin.create(
        Resource("", "v1", "namespaces", False, "Namespace"), {"metadata": {"name": name}}
    )
    return name


class Controller:
    """``lbctl controller`` as a process, logging to a file."""

    def __init__(self, kubeconfig: Path, log: Path, **settings: str) -> None:
        self.port = free_port()
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LBCTL_", "AWS_"))}
        env.update(
            LBCTL_METRICS_LISTEN=f"127.0.0.1:{self.port}",
            LBCTL_LEASE_NAMESPACE=NAMESPACE,
            LBCTL_LEASE_DURATION_SECONDS="4",
            LBCTL_RENEW_DEADLINE_SECONDS="3",
            LBCTL_RETRY_PERIOD_SECONDS="0.5",
            LBCTL_PROVIDER="memory",
        )
        env.update(
            {k if k.startswith("AWS_") else f"LBCTL_{k.upper()}": v for k, v in settings.items()}
        )
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lbctl", "controller", "--kubeconfig", str(kubeconfig)],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def provider_calls(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return -1.0
        return sum(float(v) for v in PROVIDER_CALLS.findall(text))

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@pytest.fixture
def controllers(tmp_path: Path) -> Iterator[list[Controller]]:
    started: list[Controller] = []
    yield started
    for c in started:
        c.stop()


def lb_service(name: str, cls: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": cls, "ports": [{"port": 80}]},
    }


async def ingress(admin: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        svc = await admin.get(SERVICES, name, namespace)
    except NotFound:
        return None
    found = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return found[0] if found else None


async def gone(admin: KubeClient, namespace: str, name: str) -> bool:
    try:
        await admin.get(SERVICES, name, namespace)
    except NotFound:
        return True
    return False


# --- every kustomization applies ----------------------------------------------------


@pytest.mark.parametrize("where", kustomizations(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_the_kustomization_applies_to_the_real_apiserver(
    real_kube: RealKube, where: Path, tmp_path: Path
) -> None:
    docs = [d for d in yaml.safe_load_all(kubectl(real_kube, "kustomize", str(where))) if d]
    assert docs, f"{where} renders nothing"
    # What other objects live in must exist before a server-side dry run can judge them,
    # as with any kubectl apply of a fresh install: namespaces and CRDs first, for real.
    first = [d for d in docs if d["kind"] in ("Namespace", "CustomResourceDefinition")]
    if first:
        (tmp_path / "first.yaml").write_text(yaml.safe_dump_all(first))
        kubectl(real_kube, "apply", "-f", str(tmp_path / "first.yaml"))
    if any(d["kind"] == "CustomResourceDefinition" for d in first):
        kubectl(real_kube, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    dry = kubectl(real_kube, "apply", "--dry-run=server", "-k", str(where))
    assert dry.count("(server dry run)") == len(docs), dry
    applied = kubectl(real_kube, "apply", "-k", str(where))
    assert len(applied.strip().splitlines()) == len(docs), applied


def test_the_controller_deployment_is_locked_down(real_kube: RealKube) -> None:
    rendered = json.loads(
        kubectl(real_kube, "apply", "--dry-run=server", "-k", str(DEPLOY / "base"), "-o", "json")
    )
    items = rendered.get("items", [rendered])
    (deployment,) = [i for i in items if i["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] >= 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]
    assert any(i["kind"] == "PodDisruptionBudget" for i in items)


# --- RBAC: the controller as its ServiceAccount -------------------------------------


async def test_the_controller_works_as_its_service_account_and_no_more(
    deployed: RealKube,
    admin: KubeClient,
    namespace: str,
    controllers: list[Controller],
    tmp_path: Path,
) -> None:
    kubeconfig = service_account_kubeconfig(deployed, "lbctl-controller", tmp_path)
    controller = Controller(kubeconfig, tmp_path / "controller.log", leader_elect="true")
    controllers.append(controller)

    await admin.create(SERVICES, lb_service("web", "lbctl.io/memory"), namespace)
    got = await wait_for_async(
        lambda: ingress(admin, namespace, "web"), what="an ingress IP", timeout=60
    )
    assert got.get("ip")
    events, _ = await admin.list(Resource("", "v1", "events", True, "Event"), namespace)
    assert any(e["involvedObject"]["name"] == "web" for e in events), "Events are allowed"

    await admin.delete(SERVICES, "web", namespace)
    await wait_for_async(
        lambda: gone(admin, namespace, "web"), what="finalizer removed", timeout=60
    )
    assert "forbidden" not in controller.logs().lower(), controller.logs()[-3000:]

    async with await connect(kubeconfig=kubeconfig) as sa:
        await admin.create(SERVICES, lb_service("other", "example.com/other"), namespace)
        with pytest.raises(Forbidden):
            await sa.list(SECRETS, namespace)
        with pytest.raises(Forbidden):
            await sa.delete(SERVICES, "other", namespace)
        await admin.create(NODES, {"metadata": {"name": f"node-{namespace}"}})
        with pytest.raises(Forbidden):
            await sa.patch(NODES, f"node-{namespace}", {"metadata": {"labels": {"x": "y"}}})
        with pytest.raises(Forbidden):
            await sa.create(LEASES, {"metadata": {"name": "lbctl-controller"}}, "kube-system")


async def test_the_controller_with_the_aws_provider_on_moto_as_its_service_account(
    deployed: RealKube,
    admin: KubeClient,
    namespace: str,
    controllers: list[Controller],
    tmp_path: Path,
) -> None:

    with MotoServer() as url:
        local = seed(url, cluster_id="deploy")
        for n in local.nodes:
            name = f"{n.name}-{namespace}"
            await admin.create(
                NODES, {"metadata": {"name": name}, "spec": {"providerID": n.provider_id}}
            )
        kubeconfig = service_account_kubeconfig(deployed, "lbctl-controller", tmp_path)
        options = json.dumps({"endpoint_url": url, "region": local.region})
        creds = {k.upper(): v for k, v in DUMMY_CREDENTIALS.items()}
        controller = Controller(
            kubeconfig,
            tmp_path / "controller.log",
            provider="aws",
            provider_options=options,
            cluster_name="deploy",
            leader_elect="false",
            **creds,
        )
        controllers.append(controller)
        await admin.create(SERVICES, lb_service("nlb", "lbctl.io/aws-nlb"), namespace)
        got = await wait_for_async(
            lambda: ingress(admin, namespace, "nlb"), what="an NLB hostname", timeout=90
        )
        assert got["hostname"].endswith(".elb.amazonaws.com")
        await admin.delete(SERVICES, "nlb", namespace)
        await wait_for_async(lambda: gone(admin, namespace, "nlb"), what="NLB deleted", timeout=90)
        controller.stop()
        elbv2 = boto3.Session(region_name=local.region, **DUMMY_CREDENTIALS).client(
            "elbv2", endpoint_url=url
        )
        assert elbv2.describe_load_balancers()["LoadBalancers"] == []
        assert "forbidden" not in controller.logs().lower(), controller.logs()[-3000:]


# --- leader election on the real apiserver ------------------------------------------


async def test_one_leader_and_kill_9_hands_over_within_the_lease(
    deployed: RealKube,
    admin: KubeClient,
    namespace: str,
    controllers: list[Controller],
    tmp_path: Path,
) -> None:
    with contextlib.suppress(NotFound):
        await admin.delete(LEASES, "lbctl-controller", NAMESPACE)
    kubeconfig = service_account_kubeconfig(deployed, "lbctl-controller", tmp_path)
    a = Controller(kubeconfig, tmp_path / "a.log", leader_elect="true")
    b = Controller(kubeconfig, tmp_path / "b.log", leader_elect="true")
    controllers += [a, b]
    await admin.create(SERVICES, lb_service("first", "lbctl.io/memory"), namespace)
    await wait_for_async(lambda: ingress(admin, namespace, "first"), what="first", timeout=60)

    for c in (a, b):
        wait_for(lambda c=c: c.provider_calls() >= 0, what="/metrics answers", timeout=30)
    lease = await admin.get(LEASES, "lbctl-controller", NAMESPACE)
    holder = lease["spec"]["holderIdentity"]
    transitions = lease["spec"].get("leaseTransitions", 0)
    calls = {c: c.provider_calls() for c in (a, b)}
    active = [c for c, n in calls.items() if n > 0]
    assert len(active) == 1, f"exactly one controller calls the provider: {calls}"
    (leader,) = active
    (standby,) = [c for c in (a, b) if c is not leader]
    assert standby.provider_calls() == 0

    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait()
    killed_at = time.monotonic()

    async def new_holder() -> str | None:
        spec = (await admin.get(LEASES, "lbctl-controller", NAMESPACE))["spec"]
        return spec["holderIdentity"] if spec.get("holderIdentity") not in (None, holder) else None

    await wait_for_async(new_holder, what="a new leader", timeout=30)
    took = time.monotonic() - killed_at
    lease = await admin.get(LEASES, "lbctl-controller", NAMESPACE)
    assert lease["spec"]["leaseTransitions"] == transitions + 1
    # The lease expires at most 4 s (its duration) after the kill; the standby tries
    # every 0.5 s (retry period); this test polls every few ms.
    assert took <= 4 + 0.5 + 0.5, f"takeover took {took:.1f}s, lease duration 4s"

    await admin.create(SERVICES, lb_service("second", "lbctl.io/memory"), namespace)
    await wait_for_async(lambda: ingress(admin, namespace, "second"), what="second", timeout=60)
    wait_for(lambda: standby.provider_calls() > 0, what="the new leader works", timeout=10)


async def test_the_baremetal_controller_works_as_its_service_account(
    real_kube: RealKube,
    admin: KubeClient,
    namespace: str,
    controllers: list[Controller],
    tmp_path: Path,
) -> None:
    overlay = DEPLOY / "overlays" / "baremetal"
    kubectl(real_kube, "apply", "-k", str(DEPLOY / "crds"))
    kubectl(real_kube, "wait", "--for=condition=Established", "crd/ippools.lbctl.io")
    kubectl(real_kube, "apply", "-k", str(overlay))
    pools = Resource("lbctl.io", "v1alpha1", "ippools", False, "IPPool")
    pool = f"pool-{namespace}"
    await admin.create(
        pools,
        {
            "metadata": {"name": pool},
            "spec": {"addresses": ["198.51.100.0/29"], "serviceAllocation": {
                "priority": 1, "namespaces": [namespace]}},
        },
    )  # fmt: skip
    kubeconfig = service_account_kubeconfig(real_kube, "lbctl-controller", tmp_path)
    controller = Controller(
        kubeconfig, tmp_path / "controller.log", provider="baremetal", leader_elect="false"
    )
    controllers.append(controller)
    await admin.create(SERVICES, lb_service("vip", "lbctl.io/baremetal"), namespace)
    got = await wait_for_async(lambda: ingress(admin, namespace, "vip"), what="a VIP", timeout=60)
    assert got["ip"].startswith("198.51.100.") and got.get("ipMode") == "VIP"
    svc = await admin.get(SERVICES, "vip", namespace)
    assert svc["metadata"]["annotations"]["lbctl.io/ip-allocated-from-pool"] == pool

    async def status_written() -> dict[str, Any] | None:
        status = (await admin.get(pools, pool)).get("status") or {}
        return status if status.get("assignedIPv4") == 1 else None

    status = await wait_for_async(status_written, what="IPPool status", timeout=30)
    assert status["availableIPv4"] == 7
    assert "forbidden" not in controller.logs().lower(), controller.logs()[-3000:]
