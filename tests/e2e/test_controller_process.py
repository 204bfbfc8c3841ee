"""`lbctl controller` as a process against `lbctl apiserver`: it reconciles, serves
/metrics, /healthz and /readyz, and on SIGTERM exits 0 having released its Lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from lbctl.testing import APIServerProcess, free_port, wait_for


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


def _controller(server: APIServerProcess, port: int, **settings: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
    env.update(
        LBCTL_METRICS_LISTEN=f"127.0.0.1:{port}",
        LBCTL_LOG_FORMAT="json",
        LBCTL_LEASE_DURATION_SECONDS="6",
        LBCTL_RENEW_DEADLINE_SECONDS="4",
        LBCTL_RETRY_PERIOD_SECONDS="1",
    )
    env.update({f"LBCTL_{k.upper()}": v for k, v in settings.items()})
    return subprocess.Popen(
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


def _create_web(server: APIServerProcess) -> None:
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


def _ingress(server: APIServerProcess) -> list[Any]:
    svc = _api(server, "/api/v1/namespaces/default/services/web")
    return list(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


def _event_reasons(server: APIServerProcess) -> list[str]:
    events = _api(server, "/api/v1/namespaces/default/events")["items"]
    return [e["reason"] for e in events if e["involvedObject"]["name"] == "web"]


def _lease_holder(server: APIServerProcess) -> str:
    try:
        lease = _api(
            server, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lbctl-controller"
        )
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return ""
        raise
    return str(lease["spec"].get("holderIdentity") or "")


def test_sigterm_lets_the_reconcile_in_flight_finish(tmp_path: Path) -> None:
    """SIGTERM while the provider is mid-ensure: the process waits for that reconcile,
    writes its status, releases the Lease and exits 0."""
    port = free_port()
    with APIServerProcess(tmp_path / "api") as server:
        proc = _controller(server, port, provider_options='{"latency": 3}')
        try:
            wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200,
                what="readyz",
                timeout=30,
            )
            wait_for(lambda: bool(_lease_holder(server)), what="leader", timeout=30)
            _create_web(server)
            # EnsuringLoadBalancer is recorded just before the (3 s) ensure starts.
            wait_for(
                lambda: "EnsuringLoadBalancer" in _event_reasons(server),
                what="ensure in flight",
                timeout=30,
            )
            assert not _ingress(server)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
            assert _ingress(server), "the in-flight reconcile did not finish before exit"
            assert "EnsuredLoadBalancer" in _event_reasons(server)
            assert not _lease_holder(server), "lease not released on SIGTERM"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_a_bad_provider_option_names_the_setting(tmp_path: Path) -> None:
    with APIServerProcess(tmp_path / "api") as server:
        proc = _controller(server, free_port(), provider_options='{"network_v4": "nope"}')
        try:
            assert proc.wait(timeout=30) == 2
            err = proc.stderr.read() if proc.stderr else ""
            assert "invalid setting provider_options.network_v4 (LBCTL_PROVIDER_OPTIONS)" in err, (
                err
            )
            assert "Traceback" not in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_controller_process(tmp_path: Path) -> None:
    port = free_port()
    with APIServerProcess(tmp_path / "api") as server:
        proc = _controller(server, port)
        try:
            wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
                what="healthz",
                timeout=30,
            )
            _create_web(server)
            wait_for(lambda: bool(_ingress(server)), what="web ready", timeout=30)
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
