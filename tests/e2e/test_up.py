"""`lbctl up --once`: embedded API server + controller + provider, the examples converge,
the table is printed."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lbctl",
            "up",
            "--once",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "data"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


def test_up_once_converges_and_prints_the_table(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--provider", "memory")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NAMESPACE"))
    assert lines[header].split() == [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "STATUS",
    ]
    rows = {tuple(line.split()[:2]): line.split() for line in lines[header + 1 :] if line}
    web = rows[("default", "web")]
    assert web[2] == "LoadBalancer" and web[4].startswith("198.51.100.") and web[-1] == "Ready"
    assert rows[("default", "cache")][4] == "<none>"
    assert rows[("default", "kubernetes")][3] == "10.96.0.1"
    # Run again on the same data: idempotent, same addresses.
    again = _up(tmp_path, "--provider", "memory")
    assert again.returncode == 0, again.stderr
    assert web[4] in again.stdout


def test_unknown_provider_is_a_one_line_error(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--provider", "nope")
    assert proc.returncode == 2
    assert proc.stderr.startswith("lbctl: --provider nope:")
    assert "memory" in proc.stderr and "Traceback" not in proc.stderr


def test_up_defaults_to_aws_on_a_local_moto_server(tmp_path: Path) -> None:
    proc = _up(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "local cloud: moto on http://127.0.0.1:" in proc.stdout
    assert "provider aws" in proc.stdout
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NAMESPACE"))
    rows = {tuple(line.split()[:2]): line.split() for line in lines[header + 1 :] if line}
    web = rows[("default", "web")]
    assert web[4].startswith("k8s-default-web-") and web[4].endswith(".elb.amazonaws.com")
    assert web[-1] == "Ready"
    # SCTP is refused per port; the TCP port is still served.
    signaling = " ".join(rows[("default", "signaling")])
    assert "Ready (port errors: port 9999/SCTP" in signaling
    assert rows[("default", "syslog")][4] == "<none>"


def test_up_with_the_baremetal_provider_assigns_pool_addresses(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--provider", "baremetal")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NAMESPACE"))
    rows = {tuple(line.split()[:2]): line.split() for line in lines[header + 1 :] if line}
    web = rows[("default", "web")]
    assert ipaddress.ip_address(web[4]) in ipaddress.ip_network("192.0.2.0/28"), web
    assert web[-1] == "Ready"
    # The requested address, from the pool kept for the shop namespace.
    assert rows[("shop", "storefront")][4] == "198.51.100.66"
    # TCP/53 and UDP/53 share one address (allow-shared-ip).
    assert rows[("default", "dns-tcp")][4] == rows[("default", "dns-udp")][4]
    assert "speaker" in proc.stdout.lower(), "says the speaker is not running"
