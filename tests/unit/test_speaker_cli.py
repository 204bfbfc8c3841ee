"""``lbctl speaker``'s command line: a missing or bad setting is one line naming it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lbctl.settings import load_settings
from lbctl.speaker.main import options_from_settings


def _lbctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "lbctl", "speaker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )


def test_the_node_name_is_required() -> None:
    proc = _lbctl("--kubeconfig", "/nonexistent")
    assert proc.returncode == 2
    assert proc.stderr.startswith("lbctl: node_name (LBCTL_NODE_NAME, --node-name): ")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (("--heartbeat-listen", "nowhere"), {}, "speaker_heartbeat_listen"),
        ((), {"LBCTL_SPEAKER_DEAD_AFTER_SECONDS": "0"}, "speaker_dead_after_seconds"),
        ((), {"LBCTL_SPEAKER_PROBE_COUNT": "-1"}, "speaker_probe_count"),
        (("--node-name", "Not_A_Node"), {}, "node_name"),
    ],
)
def test_bad_settings_exit_2_naming_them(
    args: tuple[str, ...], env: dict[str, str], names: str
) -> None:
    proc = _lbctl("--node-name", "n1", *args, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert names in proc.stderr


def test_an_unusable_kubeconfig_is_one_line(tmp_path: Path) -> None:
    proc = _lbctl("--node-name", "n1", "--kubeconfig", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert proc.stderr == f"lbctl: --kubeconfig: {tmp_path / 'missing'}: no such file\n"
    bad = tmp_path / "bad"
    bad.write_text("apiVersion: v1\nkind: Config\n")
    proc = _lbctl("--node-name", "n1", "--kubeconfig", str(bad), "--metrics-listen", "127.0.0.1:0")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("lbctl: API error: ")


def test_a_taken_metrics_port_names_the_setting() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _lbctl("--node-name", "n1", "--metrics-listen", f"127.0.0.1:{port}")
    assert proc.returncode == 1
    assert proc.stderr.startswith("lbctl: metrics_listen (LBCTL_METRICS_LISTEN): ")


def test_settings_become_speaker_options() -> None:
    s = load_settings(
        node_name="n1",
        speaker_interfaces="eth1,eth0",
        speaker_heartbeat_listen="192.0.2.11:7000",
        speaker_probe_count=0,
    )
    o = options_from_settings(s)
    assert (o.node, o.heartbeat_host, o.heartbeat_port) == ("n1", "192.0.2.11", 7000)
    assert o.announcer.interfaces == ("eth1", "eth0")
    assert o.announcer.probe_count == 0
    assert (o.dead_after, o.heartbeat_interval, o.lease_duration) == (0.5, 0.1, 10.0)
