"""deploy/ on the real kube-apiserver: every kustomization applies (server-side dry run,
then for real); the controller runs as its ServiceAccount, bound only by deploy/'s RBAC,
completes its flows and is denied what it must not do; two controllers elect one
leader, and after kill -9 the other takes over within the lease duration. The L2
speaker's DaemonSet is locked down, admitted by Pod Security and Priority admission,
holds exactly its RBAC rights, and runs as its ServiceAccount with CAP_NET_RAW alone:
its Lease appears, a Service gets L2Announced and a neighbour's ARP request is answered."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
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


def service_account_kubeconfig(
    kube: RealKube, name: str, where: Path, namespace: str = NAMESPACE
) -> Path:
    """A kubeconfig holding a real ServiceAccount token (TokenRequest API)."""
    token = kubectl(kube, "create", "token", name, "-n", namespace, "--duration", "1h").strip()
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


class LoggedProcess:
    """A child process writing stdout and stderr to ``log``; SIGTERM, then SIGKILL, to stop."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT)

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


class Controller(LoggedProcess):
    """``lbctl controller`` as a process, logging to a file."""

    def __init__(self, kubeconfig: Path, log: Path, **settings: str) -> None:
        self.port = free_port()
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
        super().__init__(
            [sys.executable, "-m", "lbctl", "controller", "--kubeconfig", str(kubeconfig)],
            env,
            log,
        )

    def provider_calls(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return -1.0
        return sum(float(v) for v in PROVIDER_CALLS.findall(text))


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

    async def pool_annotation() -> str | None:  # written just after the status
        svc = await admin.get(SERVICES, "vip", namespace)
        annotations = svc["metadata"].get("annotations") or {}
        return annotations.get("lbctl.io/ip-allocated-from-pool")

    assert await wait_for_async(pool_annotation, what="the pool annotation") == pool

    async def status_written() -> dict[str, Any] | None:
        status = (await admin.get(pools, pool)).get("status") or {}
        return status if status.get("assignedIPv4") == 1 else None

    status = await wait_for_async(status_written, what="IPPool status", timeout=30)
    assert status["availableIPv4"] == 7
    assert "forbidden" not in controller.logs().lower(), controller.logs()[-3000:]


# --- the L2 speaker (deploy/overlays/baremetal) -------------------------------------

BAREMETAL = DEPLOY / "overlays" / "baremetal"
SPEAKER_NAMESPACE = "lbctl-speaker"
SPEAKER = f"system:serviceaccount:{SPEAKER_NAMESPACE}:lbctl-speaker"


def apply_baremetal(kube: RealKube) -> None:
    """The baremetal overlay applied for real (its CRDs established first)."""
    kubectl(kube, "apply", "-k", str(DEPLOY / "crds"))
    kubectl(kube, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kubectl(kube, "apply", "-k", str(BAREMETAL))


def kubectl_run(kube: RealKube, *args: str) -> subprocess.CompletedProcess[str]:
    """A kubectl command that may fail, as admin."""
    assert kube.kubectl is not None
    return subprocess.run(
        [str(kube.kubectl), "--kubeconfig", str(kube.kubeconfig), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def speaker_daemonset(kube: RealKube) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(kubectl(kube, "kustomize", str(BAREMETAL))) if d]
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    return dict(daemonset)


def speaker_pod(daemonset: dict[str, Any], namespace: str, node: str) -> dict[str, Any]:
    """The Pod the DaemonSet controller would make on ``node`` (no controller runs here)."""
    template = daemonset["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"lbctl-speaker-{node}",
            "namespace": namespace,
            **template["metadata"],
        },
        "spec": {**template["spec"], "nodeName": node},
    }


def test_the_speaker_daemonset_is_locked_down(real_kube: RealKube) -> None:
    ds = speaker_daemonset(real_kube)
    assert ds["metadata"]["namespace"] == SPEAKER_NAMESPACE
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == "lbctl-speaker"
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["terminationGracePeriodSeconds"] <= 10, "its Lease is deleted on SIGTERM"
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1},
    }
    # Least privilege: NET_RAW and nothing else; no escalation; nothing writable.
    sc = container["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert not sc.get("privileged")
    assert not any(p.get("hostPath") for p in pod.get("volumes", []))
    assert not (pod.get("hostPID") or pod.get("hostIPC"))
    # Control-plane nodes, and no blanket toleration of NoExecute (or of everything).
    tolerations = {(t["key"], t["operator"], t["effect"]) for t in pod["tolerations"]}
    assert ("node-role.kubernetes.io/control-plane", "Exists", "NoSchedule") in tolerations
    assert ("node-role.kubernetes.io/master", "Exists", "NoSchedule") in tolerations
    assert all(t.get("key") and t.get("effect") != "NoExecute" for t in pod["tolerations"])
    # The same image as the controller, run as `lbctl speaker --node-name <node>`.
    base = list(yaml.safe_load_all(kubectl(real_kube, "kustomize", str(DEPLOY / "base"))))
    (deployment,) = [d for d in base if d and d["kind"] == "Deployment"]
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert [*container.get("command", []), *container["args"]] == [
        "lbctl", "speaker", "--node-name", "$(NODE_NAME)"
    ]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    namespace_ref = env["LBCTL_SPEAKER_NAMESPACE"]["valueFrom"]["fieldRef"]
    assert namespace_ref["fieldPath"] == "metadata.namespace"
    assert env["LBCTL_SPEAKER_HEARTBEAT_LISTEN"]["value"] == "$(NODE_IP):7946"
    assert env["LBCTL_METRICS_LISTEN"]["value"] == "$(NODE_IP):7473"
    assert env["LBCTL_LOG_FORMAT"]["value"] == "json"
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    names = [e["name"] for e in container["env"]]
    assert names.index("NODE_IP") < names.index("LBCTL_SPEAKER_HEARTBEAT_LISTEN")
    ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]}
    assert ports == {"heartbeat": (7946, "UDP"), "metrics": (7473, "TCP")}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]


async def test_the_speaker_pods_are_admitted_only_where_pod_security_allows_them(
    real_kube: RealKube, admin: KubeClient, tmp_path: Path
) -> None:
    """No DaemonSet controller runs here, so a server-side dry run of the Pod it would
    create puts the pod template through Pod admission: Pod Security (the overlay labels
    lbctl-speaker, and only it, privileged: hostNetwork and NET_RAW are beyond "baseline")
    and Priority (system-node-critical outside kube-system)."""
    apply_baremetal(real_kube)
    namespaces = Resource("", "v1", "namespaces", False, "Namespace")
    ns = await admin.get(namespaces, SPEAKER_NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    controller_ns = await admin.get(namespaces, NAMESPACE)
    labels = controller_ns["metadata"].get("labels") or {}
    assert "pod-security.kubernetes.io/enforce" not in labels  # the controller's: untouched
    ds = speaker_daemonset(real_kube)
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(yaml.safe_dump(speaker_pod(ds, SPEAKER_NAMESPACE, "node-a")))
    created = json.loads(
        kubectl(real_kube, "create", "--dry-run=server", "-f", str(pod_file), "-o", "json")
    )
    assert created["spec"]["priorityClassName"] == "system-node-critical"
    assert created["spec"]["priority"] == 2000001000
    assert created["spec"]["containers"][0]["ports"][0]["hostPort"] == 7946

    # Where the level is "baseline" (a common cluster default) the same Pod is refused.
    baseline = f"baseline-{secrets.token_hex(4)}"
    await admin.create(
        Resource("", "v1", "namespaces", False, "Namespace"),
        {"metadata": {"name": baseline, "labels": {
            "pod-security.kubernetes.io/enforce": "baseline"}}},
    )  # fmt: skip
    pod_file.write_text(yaml.safe_dump(speaker_pod(ds, baseline, "node-a")))
    refused = kubectl_run(real_kube, "create", "--dry-run=server", "-f", str(pod_file))
    assert refused.returncode != 0
    assert 'violates PodSecurity "baseline:latest"' in refused.stderr, refused.stderr
    assert "hostNetwork=true" in refused.stderr and "NET_RAW" in refused.stderr, refused.stderr


def can_i(kube: RealKube, verb: str, resource: str, *where: str) -> bool:
    """``kubectl auth can-i`` as the speaker's ServiceAccount: yes or no, nothing else."""
    done = kubectl_run(kube, "auth", "can-i", verb, resource, f"--as={SPEAKER}", *where)
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource} {where}: {done.stderr}"
    assert (answer == "yes") == (done.returncode == 0), done
    return answer == "yes"


SPEAKER_MAY = [
    ("list", "services", "-A"),
    ("watch", "services", "-A"),
    ("patch", "services", "--subresource=status", "-n", "default"),
    ("list", "endpointslices.discovery.k8s.io", "-A"),
    ("watch", "endpointslices.discovery.k8s.io", "-A"),
    ("list", "nodes"),
    ("watch", "nodes"),
    ("list", "ippools.lbctl.io"),
    ("watch", "ippools.lbctl.io"),
    ("list", "l2advertisements.lbctl.io"),
    ("watch", "l2advertisements.lbctl.io"),
    ("create", "events", "-n", "default"),
    ("patch", "events", "-n", "default"),
    *[(verb, "leases.coordination.k8s.io", "-n", SPEAKER_NAMESPACE) for verb in
      ("get", "list", "watch", "create", "update", "delete")],
]  # fmt: skip

SPEAKER_MAY_NOT = [
    ("get", "secrets", "-n", SPEAKER_NAMESPACE),
    ("get", "secrets", "-n", NAMESPACE),
    ("list", "secrets", "-A"),
    ("delete", "services", "-n", "default"),
    ("patch", "services", "-n", "default"),
    ("update", "services", "-n", "default"),
    ("create", "services", "-n", "default"),
    ("update", "services", "--subresource=status", "-n", "default"),
    ("update", "nodes"),
    ("patch", "nodes"),
    ("delete", "nodes"),
    ("create", "endpointslices.discovery.k8s.io", "-n", "default"),
    ("patch", "ippools.lbctl.io"),
    ("patch", "ippools.lbctl.io", "--subresource=status"),
    ("create", "l2advertisements.lbctl.io"),
    ("delete", "events", "-n", "default"),
    ("create", "leases.coordination.k8s.io", "-n", "kube-system"),
    ("create", "leases.coordination.k8s.io", "-n", "default"),
    ("update", "leases.coordination.k8s.io", "-n", "kube-system"),
    ("delete", "leases.coordination.k8s.io", "-n", "default"),
    # The controller's leader-election Lease lives in lbctl-system: out of reach.
    ("update", "leases.coordination.k8s.io", "-n", NAMESPACE),
    ("delete", "leases.coordination.k8s.io", "-n", NAMESPACE),
    ("create", "pods", "-n", SPEAKER_NAMESPACE),
    ("create", "pods", "-n", NAMESPACE),
    ("create", "serviceaccounts", "--subresource=token", "-n", NAMESPACE),
    ("create", "serviceaccounts", "--subresource=token", "-n", SPEAKER_NAMESPACE),
]


def test_the_speaker_service_account_may_do_what_it_needs_and_no_more(
    real_kube: RealKube,
) -> None:
    apply_baremetal(real_kube)
    denied = [" ".join(c) for c in SPEAKER_MAY if not can_i(real_kube, *c)]
    allowed = [" ".join(c) for c in SPEAKER_MAY_NOT if can_i(real_kube, *c)]
    assert denied == [], f"the speaker needs: {denied}"
    assert allowed == [], f"the speaker must not: {allowed}"


# --- the speaker as its ServiceAccount, on a real link ------------------------------

IPPOOLS = Resource("lbctl.io", "v1alpha1", "ippools", False, "IPPool")
L2ADS = Resource("lbctl.io", "v1alpha1", "l2advertisements", False, "L2Advertisement")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", True, "EndpointSlice")
CAP_NET_RAW = 13
VIP = "203.0.113.10"
"""TEST-NET-3: the link below lives in a network namespace of its own, so nothing of it
can clash with the host's networks (192.0.2.0/24 may be the host's own, as in CI)."""


def speaker_command_exists() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "lbctl", "speaker", "--help"],
        check=False,
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def l2_link() -> Iterator[tuple[str, str, str]]:
    """A veth pair: one end in this network namespace, no address (where the speaker
    answers, as on a node's NIC); its peer, 203.0.113.2/24, in a new network namespace (a
    neighbour on the same link). Yields (this end, the namespace, the peer)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a network namespace, a veth pair and a packet socket")
    if not (shutil.which("ip") and shutil.which("setpriv") and shutil.which("arping")):
        pytest.skip("needs ip (iproute2), setpriv (util-linux) and arping (iputils)")
    tag = secrets.token_hex(3)
    here, there, netns = f"lbs{tag}", f"lbp{tag}", f"lbctl-test-{tag}"
    ip("netns", "add", netns)
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there, "netns", netns)
        ip("link", "set", here, "up")
        ip("-n", netns, "addr", "add", "203.0.113.2/24", "dev", there)
        ip("-n", netns, "link", "set", there, "up")
        yield here, netns, there
    finally:
        subprocess.run(["ip", "link", "del", here], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)


class Speaker(LoggedProcess):
    """``lbctl speaker`` as a process with what its container has: uid 0, CAP_NET_RAW
    alone (every other capability out of the bounding set), no new privileges."""

    def __init__(self, kubeconfig: Path, node: str, interface: str, log: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
        env.update(
            LBCTL_SPEAKER_NAMESPACE=SPEAKER_NAMESPACE,
            LBCTL_SPEAKER_HEARTBEAT_LISTEN=f"127.0.0.1:{free_port()}",
            LBCTL_METRICS_LISTEN=f"127.0.0.1:{self.port}",
            LBCTL_SPEAKER_INTERFACES=interface,
        )
        super().__init__(
            [
                "setpriv", "--bounding-set=-all,+net_raw", "--inh-caps=-all", "--no-new-privs",
                sys.executable, "-m", "lbctl", "speaker",
                "--kubeconfig", str(kubeconfig), "--node-name", node,
            ],
            env,
            log,
        )  # fmt: skip

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            assert self.proc.poll() is None, self.logs()[-3000:]
            return False

    def capabilities(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        (effective,) = re.findall(r"^CapEff:\s*([0-9a-f]+)$", status, re.M)
        return int(effective, 16)


@pytest.fixture
def speakers() -> Iterator[list[Speaker]]:
    started: list[Speaker] = []
    yield started
    for s in started:
        s.stop()


async def test_the_speaker_announces_as_its_service_account_with_net_raw_alone(
    real_kube: RealKube,
    admin: KubeClient,
    namespace: str,
    l2_link: tuple[str, str, str],
    speakers: list[Speaker],
    tmp_path: Path,
) -> None:
    if not speaker_command_exists():
        pytest.skip("lbctl speaker is not there yet")
    here, netns, there = l2_link
    apply_baremetal(real_kube)
    node, pool = f"speaker-{namespace}", f"l2-{namespace}"
    await admin.create(NODES, {"metadata": {"name": node, "labels": {"lbctl.io/test": node}}})
    await admin.create(
        IPPOOLS,
        {
            "metadata": {"name": pool},
            "spec": {"addresses": ["203.0.113.8/29"], "autoAssign": False},
        },
    )
    await admin.create(
        L2ADS,
        {
            "metadata": {"name": pool},
            "spec": {
                "ipPools": [pool],
                "nodeSelectors": [{"matchLabels": {"lbctl.io/test": node}}],
            },
        },
    )
    # What the baremetal controller would have written: the address, from the pool.
    svc = lb_service("vip", "lbctl.io/baremetal")
    svc["metadata"]["annotations"] = {"lbctl.io/ip-allocated-from-pool": pool}
    await admin.create(SERVICES, svc, namespace)
    await admin.patch(
        SERVICES,
        "vip",
        {"status": {"loadBalancer": {"ingress": [{"ip": VIP, "ipMode": "VIP"}]}}},
        namespace,
        subresource="status",
    )
    await admin.create(ENDPOINTSLICES, {
        "metadata": {"name": "vip-1", "labels": {"kubernetes.io/service-name": "vip"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": True},
                       "nodeName": node}],
        "ports": [{"port": 80, "protocol": "TCP"}],
    }, namespace)  # fmt: skip

    kubeconfig = service_account_kubeconfig(real_kube, "lbctl-speaker", tmp_path, SPEAKER_NAMESPACE)
    speaker = Speaker(kubeconfig, node, here, tmp_path / "speaker.log")
    speakers.append(speaker)
    wait_for(speaker.ready, what="the speaker's /readyz", timeout=60, every=0.2)
    assert speaker.capabilities() == 1 << CAP_NET_RAW, "what the container keeps"

    async def own_lease() -> dict[str, Any] | None:
        try:
            return await admin.get(LEASES, f"lbctl-speaker-{node}", SPEAKER_NAMESPACE)
        except NotFound:
            return None

    lease = await wait_for_async(own_lease, what="the speaker's Lease", timeout=30)
    assert lease["spec"]["holderIdentity"] == node

    async def announced() -> dict[str, Any] | None:
        status = (await admin.get(SERVICES, "vip", namespace)).get("status") or {}
        for c in status.get("conditions") or []:
            if c["type"] == "L2Announced" and c["status"] == "True":
                return dict(c)
        return None

    condition = await wait_for_async(announced, what="L2Announced", timeout=30)
    assert node in condition["message"] and here in condition["message"], condition

    # A neighbour on the link asks who has the VIP: the speaker answers, with its MAC.
    mac = (Path("/sys/class/net") / here / "address").read_text().strip().lower()
    asked = subprocess.run(
        ["ip", "netns", "exec", netns, "arping", "-c", "3", "-w", "5", "-I", there, VIP],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert mac in asked.stdout.lower(), asked.stdout

    events, _ = await admin.list(Resource("", "v1", "events", True, "Event"), namespace)
    assert any(e["reason"] == "NodeAssigned" for e in events), "Events are allowed"

    # SIGTERM: the speaker deletes its Lease on the way out (its peers take over at once).
    speaker.stop()
    assert speaker.proc.returncode == 0, speaker.logs()[-3000:]
    assert await own_lease() is None
    assert "forbidden" not in speaker.logs().lower(), speaker.logs()[-3000:]
