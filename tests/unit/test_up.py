"""`lbctl up` (the allocation job, until the API server and controller land)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbctl.demo import DemoError, Row, run_allocations, run_demo
from lbctl.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"


def _rows() -> dict[str, Row]:
    import yaml

    docs = [
        d
        for p in sorted(EXAMPLES.glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if isinstance(d, dict)
    ]
    rows = run_allocations(docs, settings=load_settings(), seed=1)
    return {f"{r.namespace}/{r.name}": r for r in rows}


def test_every_example_is_allocated() -> None:
    rows = _rows()
    assert rows["default/kubernetes"].cluster_ip == "10.96.0.1"
    cluster_ips = [r.cluster_ip for r in rows.values()]
    assert len(set(cluster_ips)) == len(cluster_ips), "a ClusterIP handed out twice"
    for key, row in rows.items():
        assert row.status.startswith("Allocated"), f"{key}: {row.status}"
        assert ipaddress.ip_address(row.cluster_ip) in ipaddress.ip_network("10.96.0.0/12")


def test_examples_show_the_rules() -> None:
    rows = _rows()
    # TCP/53 and UDP/53 share one address through the sharing key.
    assert rows["default/dns-tcp"].external_ip == rows["default/dns-udp"].external_ip
    # A requested address from the pool that serves only the shop namespace.
    assert rows["shop/storefront"].external_ip == "198.51.100.66"
    assert rows["shop/storefront"].status == "Allocated from pool shop"
    # Dual-stack LoadBalancer: one address per family.
    v4, v6 = rows["default/api"].external_ip.split(",")
    assert (ipaddress.ip_address(v4).version, ipaddress.ip_address(v6).version) == (4, 6)
    # avoidBuggyIPs: never the .0 of the pool's /28.
    assert rows["default/web"].external_ip != "192.0.2.0"
    # TCP and UDP 514 share the requested nodePort; the third port gets one of its own.
    ports = rows["default/syslog"].ports.split(",")
    assert ports[:2] == ["514:30514/TCP", "514:30514/UDP"]
    assert ports[2].startswith("9100:3")
    assert rows["default/cache"].external_ip == "<none>"


def test_invalid_service_is_reported_and_takes_nothing() -> None:
    bad = {
        "kind": "Service",
        "metadata": {"name": "bad"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "HTTP"}]},
    }
    rows = run_allocations([bad], settings=load_settings(), seed=1)
    assert rows[-1].status == (
        'Invalid: spec.ports[0].protocol: Unsupported value: "HTTP": '
        'supported values: "SCTP", "TCP", "UDP"'
    )


def test_missing_examples_directory(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="does not exist"):
        run_demo(load_settings(), examples=tmp_path / "nope")


def test_lbctl_up_prints_the_table() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
    proc = subprocess.run(
        [sys.executable, "-m", "lbctl", "up"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("NAMESPACE"))
    assert header.split() == [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "STATUS",
    ]
    assert any(line.split()[:2] == ["shop", "storefront"] for line in lines)
