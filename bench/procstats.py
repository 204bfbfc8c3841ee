"""What the benchmarks share: reading a process from /proc (Linux), starting the
controller as a benchmark runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cpu_seconds", "peak_rss_mib", "start_controller"]


def start_controller(
    kubeconfig: Path,
    port: int,
    workers: int,
    *,
    drop: tuple[str, ...] = (),
    env_extra: Mapping[str, str] | None = None,
    **settings: str,
) -> subprocess.Popen[bytes]:
    """``lbctl controller`` as the benchmarks run it: no leader election, no resync during
    the run, no client rate limit, warnings only; ``settings`` (``LBCTL_*`` names without
    the prefix) on top; environment variables starting with ``drop`` removed and
    ``env_extra`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LBCTL_", *drop))}
    env.update(env_extra or {})
    env.update(
        LBCTL_METRICS_LISTEN=f"127.0.0.1:{port}",
        LBCTL_WORKERS=str(workers),
        LBCTL_LEADER_ELECT="false",
        LBCTL_RESYNC_SECONDS="3600",
        LBCTL_LOG_LEVEL="WARNING",
        LBCTL_API_QPS="0",
    )
    env.update({f"LBCTL_{k.upper()}": v for k, v in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "lbctl", "controller", "--kubeconfig", str(kubeconfig)],
        env=env,
    )


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
