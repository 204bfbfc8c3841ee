"""A real kubectl against the embedded API server (a child `lbctl apiserver` process)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lbctl.testing import APIServerProcess, wait_for

KUBECTLS = [k for k in ("kubectl.1.27", "kubectl.1.33", "kubectl") if shutil.which(k)]
pytestmark = pytest.mark.skipif(not KUBECTLS, reason="no kubectl on PATH")

MANIFEST = """
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: 8080}
    - {name: https, port: 443, targetPort: 8443}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    with APIServerProcess(
        tmp_path_factory.mktemp("kubectl"), "--service-cidrs", "10.96.0.0/16"
    ) as proc:
        yield proc


@pytest.fixture(params=KUBECTLS)
def kubectl(request: pytest.FixtureRequest, server: APIServerProcess, tmp_path: Path):  # type: ignore[no-untyped-def]
    binary = request.param

    def run(*args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [
                binary,
                "--kubeconfig",
                str(server.kubeconfig),
                "--cache-dir",
                str(tmp_path / "c"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout + (proc.stderr if not check else "")

    run("delete", "service", "web", "--ignore-not-found")
    return run


def test_apply_get_describe_patch_label_delete(kubectl) -> None:  # type: ignore[no-untyped-def]
    out = kubectl("apply", "-f", "-", stdin=MANIFEST)
    assert out.strip() == "service/web created"
    assert kubectl("apply", "-f", "-", stdin=MANIFEST).strip() == "service/web unchanged"

    table = kubectl("get", "services").splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    row = next(line.split() for line in table if line.startswith("web "))
    assert row[1] == "NodePort" and row[3] == "<none>"
    assert row[4].startswith("80:3") and ",443:3" in row[4]

    wide = kubectl("get", "svc", "web", "-o", "wide").splitlines()
    assert wide[0].split()[-1] == "SELECTOR" and wide[1].split()[-1] == "app=web"

    obj = yaml.safe_load(kubectl("get", "svc", "web", "-o", "yaml"))
    assert obj["spec"]["ports"][0]["targetPort"] == 8080
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    node_port = obj["spec"]["ports"][0]["nodePort"]

    described = kubectl("describe", "service", "web")
    assert "Name:" in described and "web" in described
    assert f"NodePort:                 http  {node_port}/TCP" in described

    changed = MANIFEST.replace("    - {name: https, port: 443, targetPort: 8443}\n", "")
    assert kubectl("apply", "-f", "-", stdin=changed).strip() == "service/web configured"
    obj = yaml.safe_load(kubectl("get", "svc", "web", "-o", "yaml"))
    assert [p["port"] for p in obj["spec"]["ports"]] == [80]
    assert obj["spec"]["ports"][0]["nodePort"] == node_port, "apply kept the allocated port"

    kubectl("patch", "service", "web", "-p", '{"spec":{"ports":[{"port":80,"targetPort":9090}]}}')
    kubectl("label", "service", "web", "tier=front")
    obj = yaml.safe_load(kubectl("get", "svc", "web", "-o", "yaml"))
    assert obj["spec"]["ports"][0]["targetPort"] == 9090
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert kubectl("get", "svc", "-l", "tier=front", "-o", "name").strip() == "service/web"

    assert kubectl("delete", "service", "web").strip() == 'service "web" deleted'
    assert "NotFound" in kubectl("get", "svc", "web", check=False)


def test_get_watch_sees_changes(kubectl, server: APIServerProcess, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    binary = KUBECTLS[-1]
    out = tmp_path / "watch.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                binary,
                "--kubeconfig",
                str(server.kubeconfig),
                "--cache-dir",
                str(tmp_path / "w"),
                "get",
                "services",
                "-w",
                "--request-timeout",
                "0",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: "kubernetes" in out.read_text(), what="initial list")
            kubectl("apply", "-f", "-", stdin=MANIFEST)
            wait_for(lambda: "web" in out.read_text(), what="watch event for web")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    lines = out.read_text().splitlines()
    assert lines[0].split()[:2] == ["NAME", "TYPE"]
    assert any(line.startswith("web ") and "NodePort" in line for line in lines)
