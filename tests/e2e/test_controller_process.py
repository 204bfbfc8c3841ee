"""`lbctl controller` as a process against `lbctl apiserver`: it reconciles, serves
/metrics, /healthz and /readyz, and on SIGTERM exits 0 having released its Lease."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from lbctl.testing import APIServerProcess, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def _api(server: APIServerProcess, path: str, body: Any = None, method: str = "GET") -> Any:
    req = urllib.request.Request(
        server.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def test_controller_process(tmp_path: Path) -> None:
    port = _free_port()
    with APIServerProcess(tmp_path / "api") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
        env.update(
            LBCTL_METRICS_LISTEN=f"127.0.0.1:{port}",
            LBCTL_LOG_FORMAT="json",
            LBCTL_LEASE_DURATION_SECONDS="6",
            LBCTL_RENEW_DEADLINE_SECONDS="4",
            LBCTL_RETRY_PERIOD_SECONDS="1",
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lbctl",
                "controller",
                "--kubeconfig",
                str(server.kubeconfig),
                "--provider",
                "memory",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
                what="healthz",
                timeout=30,
            )
            _api(
                server,
                "/api/v1/namespaces/default/services",
                {
                    "metadata": {"name": "web"},
                    "spec": {
                        "type": "LoadBalancer",
                        "loadBalancerClass": "lbctl.io/memory",
                        "ports": [{"port": 80}],
                    },
                },
                "POST",
            )

            def ready() -> bool:
                svc = _api(server, "/api/v1/namespaces/default/services/web")
                return bool(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"))

            wait_for(ready, what="web ready", timeout=30)
            assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
            status, text = _get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            assert 'lbctl_reconcile_total{controller="service-lb",result="success"}' in text
            assert "lbctl_provider_calls_total{" in text and 'operation="ensure"' in text
            lease = _api(
                server,
                "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lbctl-controller",
            )
            assert lease["spec"]["holderIdentity"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            lease = _api(
                server,
                "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lbctl-controller",
            )
            assert not lease["spec"].get("holderIdentity"), "lease not released on SIGTERM"
            logs = proc.stderr.read() if proc.stderr else ""
            lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
            assert lines, logs
            assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
