"""`lbctl apiserver` as a process: kill -9 loses no acknowledged write and no allocation."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lbctl.testing import APIServerProcess

SVC = "/api/v1/namespaces/default/services"


def request(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_kill_9_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--service-cidrs", "10.96.0.0/26", "--node-port-range", "30000-30039")
    acked: dict[str, tuple[str, int]] = {}
    with APIServerProcess(data, *args) as first:
        for i in range(20):
            status, svc = request(
                first.url + SVC,
                "POST",
                {
                    "metadata": {"name": f"s{i}"},
                    "spec": {"type": "NodePort", "ports": [{"port": 80}]},
                },
            )
            assert status == 201, svc
            acked[f"s{i}"] = (svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"])
        first.kill()  # kill -9 right after the last acknowledgement
    with APIServerProcess(data, *args) as second:
        status, listed = request(second.url + SVC)
        assert status == 200
        found = {
            i["metadata"]["name"]: (i["spec"]["clusterIP"], i["spec"]["ports"][0]["nodePort"])
            for i in listed["items"]
            if i["metadata"]["name"] != "kubernetes"
        }
        assert found == acked
        # The rebuilt allocators hand out only what nobody holds.
        new_ips, new_ports = set(), set()
        for i in range(10):
            status, svc = request(
                second.url + SVC,
                "POST",
                {
                    "metadata": {"name": f"after{i}"},
                    "spec": {"type": "NodePort", "ports": [{"port": 80}]},
                },
            )
            assert status == 201, svc
            new_ips.add(svc["spec"]["clusterIP"])
            new_ports.add(svc["spec"]["ports"][0]["nodePort"])
        assert not new_ips & {ip for ip, _ in acked.values()}
        assert not new_ports & {p for _, p in acked.values()}
        # The resourceVersion sequence went on where it was.
        assert int(listed["metadata"]["resourceVersion"]) > 20


def test_bad_listen_and_token_file_are_one_line_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbctl",
            "apiserver",
            "--listen",
            "nowhere",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("lbctl: invalid setting listen (LBCTL_LISTEN):")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbctl",
            "apiserver",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            str(tmp_path / "missing"),
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("lbctl: token_file (LBCTL_TOKEN_FILE):")
    assert "Traceback" not in proc.stderr


def test_log_format_json_gives_one_json_object_per_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lbctl",
            "apiserver",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path),
            "--log-format",
            "json",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first log line: where it listens
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    record = json.loads(line)
    assert record["logger"] == "lbctl.apiserver"
    assert record["level"] == "INFO"
    assert "listening on http://127.0.0.1:" in record["message"]
