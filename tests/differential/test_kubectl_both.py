"""kubectl built from source drives both servers; the outputs must match (modulo ages,
allocated addresses and ports)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbctl.realkube import RealKube
from lbctl.testing import APIServerProcess

MANIFEST = """
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
    - {{name: http, port: 80, targetPort: 8080}}
    - {{name: https, port: 443, targetPort: 8443}}
"""

SCRIPT: list[tuple[str, ...]] = [
    ("apply", "-f", "-"),
    ("apply", "-f", "-"),
    ("get", "services", "-n", "{ns}"),
    ("get", "services", "-n", "{ns}", "-o", "wide"),
    ("get", "service", "web", "-n", "{ns}", "-o", "jsonpath={.spec.ports[*].targetPort}"),
    ("describe", "service", "web", "-n", "{ns}"),
    (
        "patch",
        "service",
        "web",
        "-n",
        "{ns}",
        "-p",
        '{"spec":{"ports":[{"port":80,"targetPort":9090}]}}',
    ),
    ("label", "service", "web", "-n", "{ns}", "tier=front"),
    ("get", "services", "-n", "{ns}", "-l", "tier=front", "-o", "name"),
    ("delete", "service", "web", "-n", "{ns}"),
    ("get", "service", "web", "-n", "{ns}"),
]


def _normalise(text: str) -> str:
    text = re.sub(r"\b10\.96\.\d+\.\d+\b", "<ip>", text)
    text = re.sub(r"\b3[0-2]\d{3}\b", "<port>", text)
    text = re.sub(r"\b\d+(s|m|h|d)\d*[smhd]?\b", "<age>", text)
    text = re.sub(r"(Events:\s+)<none>", r"\1<none>", text)
    # Column widths follow the (random) lengths of allocated values: compare cells only.
    return "\n".join(re.sub(r" {2,}", "  ", line.rstrip()) for line in text.splitlines())


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    with APIServerProcess(
        tmp_path_factory.mktemp("emb"), "--service-cidrs", "10.96.0.0/16"
    ) as proc:
        yield proc


def _run(kubectl: Path, kubeconfig: Path, cache: Path, ns: str) -> list[str]:
    out = []
    for args in SCRIPT:
        argv = [
            str(kubectl),
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(cache),
            *(a.replace("{ns}", ns) for a in args),
        ]
        stdin = MANIFEST.format(ns=ns) if args[0] == "apply" else None
        p = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
        out.append(
            _normalise((p.stdout + p.stderr).replace(ns, "<ns>")) + f"\n[exit {p.returncode}]"
        )
    return out


def test_kubectl_output_is_the_same(
    real_kube: RealKube, embedded: APIServerProcess, tmp_path: Path
) -> None:
    kubectl = real_kube.kubectl
    if kubectl is None:
        pytest.skip("kubectl was not built next to kube-apiserver")
    ns = "kubectl-diff"
    # `kubectl create namespace` would send protobuf, which the embedded server does not
    # read (docs/compatibility.md); apply sends JSON.
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
    for kc in (embedded.kubeconfig, real_kube.kubeconfig):
        subprocess.run(
            [str(kubectl), "--kubeconfig", str(kc), "apply", "-f", "-"],
            input=namespace,
            text=True,
            capture_output=True,
            check=True,
            timeout=60,
        )
    ours = _run(kubectl, embedded.kubeconfig, tmp_path / "c1", ns)
    theirs = _run(kubectl, real_kube.kubeconfig, tmp_path / "c2", ns)
    for args, a, b in zip(SCRIPT, ours, theirs, strict=True):
        assert a == b, f"kubectl {' '.join(args)}\n--- embedded\n{a}\n--- kube-apiserver\n{b}"
