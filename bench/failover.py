"""Speaker failover benchmark (not a test): kill -9 the announcing speaker, time the move.

    sudo .venv/bin/python bench/failover.py                  # 20 kills, then 1,000 IPs
    sudo .venv/bin/python bench/failover.py --kills 50 --announce 0
    sudo .venv/bin/python bench/failover.py --kills 0 --announce 1000 --idle 30 [--json]

Needs root, iproute2 and iputils ``arping`` (Linux network namespaces; nothing leaves
them). The bed is the end-to-end test's (:class:`lbctl.speaker.testbed.SpeakerLab`):
``api`` (``lbctl apiserver`` + ``lbctl controller --provider baremetal``), ``n1``..``n3``
(``lbctl speaker`` with its default timings, an identity server on TCP 8080 answering
with the node's name, the VIP routed locally) and ``client``.

Failover (``--kills N``, default 20): one TCP Service with a ready endpoint on every
node. In ``client`` a loop connects to VIP:8080 every 20 ms (200 ms timeout) and prints
``time.monotonic()`` and who answered (CLOCK_MONOTONIC is shared by all namespaces, so
its times compare with this process's). Each round: every speaker up and the VIP stable
(the hash winner announces it and the client's last answers come from it); SIGKILL that
speaker; the figure is the time from the kill to the client's first connection answered
by the new owner (the runner-up by the sha256 rule). Also: time until its
``L2Announced`` condition names the new node, and connects that failed meanwhile. Then
the speaker is restarted and takes its VIP back before the next round. Peak RSS (VmHWM)
of the speakers, API server and controller at the end.

Announce (``--announce N``, default 1000; 0 skips): only ``n1``'s speaker runs; N
Services (IPv4 while the pool lasts -- 198.51.100.0/24 has ~245 -- then IPv6 from
2001:db8:1::/64), each with a ready endpoint on n1, created by 16 parallel clients. The
figures: time until the speaker reports N announced IPs, its VmRSS/VmHWM then, and its
CPU use over ``--idle`` seconds (default 30) of quiet (utime+stime from /proc), next to
the same over up to 10 s before any Service existed.

The whole run stays under ~10 minutes with the defaults (about 5 s per kill).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstats import cpu_seconds, peak_rss_mib
from lbctl.speaker import testbed
from lbctl.speaker.testbed import SpeakerLab, connect_loop_cmd, owner_of
from lbctl.testing import wait_for

NODES = ("n1", "n2", "n3")
PORT = SpeakerLab.IDENTITY_PORT


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class ClientLoop:
    """The client's connect loop, its output gathered by a thread: ``(time, answer)``."""

    def __init__(self, lab: SpeakerLab, vip: str) -> None:
        self.proc = lab.client.popen(
            connect_loop_cmd(vip, PORT, every=0.02, timeout=0.2), stdout=subprocess.PIPE
        )
        self.samples: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            stamp, _, answer = raw.decode(errors="replace").strip().partition(" ")
            with contextlib.suppress(ValueError), self._lock:
                self.samples.append((float(stamp), answer))

    def since(self, t: float) -> list[tuple[float, str]]:
        with self._lock:
            return [s for s in self.samples if s[0] >= t]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def failover(lab: SpeakerLab, kills: int) -> dict[str, Any]:
    lab.create_service("bench", endpoints_on=list(NODES))
    vip = lab.wait_vip("bench", timeout=30)
    lab.route_vip(vip)
    owner = owner_of(vip, NODES)
    runner_up = owner_of(vip, [n for n in NODES if n != owner])
    assert owner is not None and runner_up is not None
    loop = ClientLoop(lab, vip)
    rounds: list[dict[str, Any]] = []
    peak: dict[str, float] = {}
    try:
        for k in range(1, kills + 1):
            # Stable: all three up, the owner announcing, the client reaching it.
            for node in NODES:
                if lab.speakers[node].poll() is not None:
                    lab.start_speaker(node, timeout=60)
            lab.wait_announcer("bench", want=lambda n: n == owner, timeout=30)
            settle = time.monotonic()
            wait_for(
                lambda settle=settle: [a for _, a in loop.since(settle)][-5:] == [owner] * 5,
                timeout=30,
                what=f"the client reaching {owner} steadily",
            )
            for node in NODES:
                pid = lab.speakers[node].pid
                peak[f"speaker {node}"] = max(peak.get(f"speaker {node}", 0), peak_rss_mib(pid))
            killed_at = lab.kill_speaker(owner)
            reached = wait_for(
                lambda at=killed_at: next((t for t, a in loop.since(at) if a == runner_up), None),
                timeout=30,
                every=0.01,
                what=f"the client reaching {runner_up}",
            )
            announced_at = wait_for(
                lambda: time.monotonic() if lab.announcer("bench") == runner_up else None,
                timeout=30,
                every=0.02,
                what=f"L2Announced naming {runner_up}",
            )
            window = [a for t, a in loop.since(killed_at) if t <= reached]
            rounds.append(
                {
                    "kill": k,
                    "from": owner,
                    "to": runner_up,
                    "tcp_seconds": round(reached - killed_at, 3),
                    "condition_seconds": round(announced_at - killed_at, 3),
                    "failed_connects": sum(1 for a in window if a.startswith("!")),
                    "old_node_answers": sum(1 for a in window if a == owner),
                }
            )
            r = rounds[-1]
            print(
                f"  kill {k:>3}: {owner} -> {runner_up}  TCP {r['tcp_seconds']:6.3f} s  "
                f"condition {r['condition_seconds']:6.3f} s  "
                f"failed connects {r['failed_connects']:>3}  old-node answers "
                f"{r['old_node_answers']:>3}",
                flush=True,
            )
            lab.start_speaker(owner, timeout=60)
        for node in NODES:
            if lab.speakers[node].poll() is None:
                pid = lab.speakers[node].pid
                peak[f"speaker {node}"] = max(peak.get(f"speaker {node}", 0), peak_rss_mib(pid))
        for name, proc in (("apiserver", lab.apiserver), ("controller", lab.controller)):
            if proc is not None and proc.poll() is None:
                peak[name] = peak_rss_mib(proc.pid)
    finally:
        loop.stop()
        with contextlib.suppress(Exception):
            lab.delete_service("bench")
    tcp = [r["tcp_seconds"] for r in rounds]
    cond = [r["condition_seconds"] for r in rounds]
    summary: dict[str, Any] = {"kills": len(rounds), "vip": vip, "rounds": rounds}
    if rounds:
        summary.update(
            tcp_median=round(statistics.median(tcp), 3),
            tcp_p95=round(_percentile(tcp, 95), 3),
            tcp_min=min(tcp),
            tcp_max=max(tcp),
            condition_median=round(statistics.median(cond), 3),
            condition_p95=round(_percentile(cond, 95), 3),
        )
    summary["peak_rss_mib"] = {k: round(v, 1) for k, v in sorted(peak.items())}
    return summary


def _bench_pool(n: int) -> tuple[list[str], int]:
    """The pool and how many of the N Services are IPv4."""
    v4 = min(n, 245)
    return ["198.51.100.10-198.51.100.254", "2001:db8:1::1000-2001:db8:1::2fff"], v4


def announce(workdir: Path, n: int, idle: float) -> dict[str, Any]:
    pool, v4 = _bench_pool(n)
    with SpeakerLab(workdir, nodes=NODES, pool=pool, start_speakers=["n1"]) as lab:
        speaker = lab.speakers["n1"]
        base_rss = _rss_mib(speaker.pid)
        base_cpu = _idle_cpu(lab, min(idle, 10.0))
        started = time.monotonic()

        def make(i: int) -> None:
            lab.create_service(f"s{i}", family="IPv4" if i < v4 else "IPv6", endpoints_on=["n1"])

        with ThreadPoolExecutor(16) as pool_:
            list(pool_.map(make, range(n)))
        created = time.monotonic() - started
        print(f"  created {n} Services + EndpointSlices in {created:.1f} s", flush=True)

        wait_for(
            lambda: sum(1 for s in _services(lab) if _ingress(s)) >= n,
            timeout=300,
            every=0.5,
            what=f"{n} VIPs assigned by the controller",
        )
        assigned = time.monotonic() - started
        print(f"  the controller assigned all {n} VIPs {assigned:.1f} s after", flush=True)

        def all_announced() -> float | None:
            got = lab.metrics("n1").get("lbctl_speaker_announced_ips", 0)
            return got if got >= n else None

        wait_for(all_announced, timeout=300, every=0.5, what=f"{n} announced IPs")
        announced = time.monotonic() - started
        print(f"  all {n} announced {announced:.1f} s after the first create", flush=True)
        # Let the status writes and probes finish before the quiet window.
        wait_for(
            lambda: sum(1 for s in _services(lab) if _has_announced(s)) >= n,
            timeout=300,
            every=1.0,
            what="every L2Announced condition written",
        )
        rss_loaded = _rss_mib(speaker.pid)
        cpu, seconds = _idle_cpu(lab, idle), idle
        return {
            "announced_ips": n,
            "ipv4": v4,
            "ipv6": n - v4,
            "create_seconds": round(created, 1),
            "assign_seconds": round(assigned, 1),
            "announce_seconds": round(announced, 1),
            "speaker_rss_mib_before": round(base_rss, 1),
            "speaker_rss_mib": round(rss_loaded, 1),
            "speaker_peak_rss_mib": round(peak_rss_mib(speaker.pid), 1),
            "idle_seconds": round(seconds, 1),
            "idle_cpu_percent": cpu,
            "idle_cpu_percent_without_services": base_cpu,
        }


def _idle_cpu(lab: SpeakerLab, seconds: float) -> float:
    """n1's speaker CPU use (%) over a quiet window of ``seconds``, watched: it must stay
    alive through it."""
    speaker = lab.speakers["n1"]
    cpu0, t0 = cpu_seconds(speaker.pid), time.monotonic()
    deadline = t0 + seconds
    wait_for(
        lambda: speaker.poll() is not None or time.monotonic() >= deadline,
        timeout=seconds + 5,
        every=1.0,
        what="the idle window",
    )
    if speaker.poll() is not None:
        raise RuntimeError(f"the speaker died:\n{lab.speaker_log('n1')[-3000:]}")
    cpu1, t1 = cpu_seconds(speaker.pid), time.monotonic()
    return round(100 * (cpu1 - cpu0) / (t1 - t0), 2)


def _services(lab: SpeakerLab) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = lab.api.get("/api/v1/namespaces/default/services")["items"]
    return got


def _ingress(svc: dict[str, Any]) -> bool:
    return bool(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


def _has_announced(svc: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "L2Announced" and c.get("status") == "True"
        for c in (svc.get("status") or {}).get("conditions") or []
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="kill -9 rounds (0: skip)")
    p.add_argument("--announce", type=int, default=1000, help="IPs for one speaker (0: skip)")
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()
    reason = testbed.root_and_ip_available()
    if reason is not None:
        print(f"bench/failover.py: {reason}", file=sys.stderr)
        return 2
    testbed.cleanup_leftovers()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lbctl-failover-") as tmp:
        if args.kills > 0:
            print(f"failover: {args.kills} x kill -9 of the announcing speaker", flush=True)
            with SpeakerLab(Path(tmp) / "failover", nodes=NODES) as lab:
                results["failover"] = failover(lab, args.kills)
        if args.announce > 0:
            print(f"announce: {args.announce} IPs on one speaker", flush=True)
            results["announce"] = announce(Path(tmp) / "announce", args.announce, args.idle)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    f = results.get("failover")
    if f and f["kills"]:
        print()
        print(f"Failover over {f['kills']} kills (VIP {f['vip']}), seconds from SIGKILL:")
        print(f"  {'':<34}{'median':>8}{'p95':>8}{'min':>8}{'max':>8}")
        print(
            f"  {'client TCP reaches the new node':<34}{f['tcp_median']:>8.3f}"
            f"{f['tcp_p95']:>8.3f}{f['tcp_min']:>8.3f}{f['tcp_max']:>8.3f}"
        )
        print(
            f"  {'L2Announced names the new node':<34}{f['condition_median']:>8.3f}"
            f"{f['condition_p95']:>8.3f}"
        )
        print("Peak RSS (VmHWM), MiB:")
        for name, mib in f["peak_rss_mib"].items():
            print(f"  {name:<34}{mib:>8.1f}")
    a = results.get("announce")
    if a:
        print()
        print(
            f"One speaker announcing {a['announced_ips']} IPs ({a['ipv4']} IPv4, {a['ipv6']} IPv6):"
        )
        rows = [
            ("Services created in (s)", a["create_seconds"]),
            ("all VIPs assigned after (s)", a["assign_seconds"]),
            ("all announced after (s)", a["announce_seconds"]),
            ("VmRSS before the Services (MiB)", a["speaker_rss_mib_before"]),
            ("VmRSS announcing (MiB)", a["speaker_rss_mib"]),
            ("VmHWM (MiB)", a["speaker_peak_rss_mib"]),
            ("idle CPU, no Services yet (%)", a["idle_cpu_percent_without_services"]),
            (f"idle CPU over {a['idle_seconds']} s (%)", a["idle_cpu_percent"]),
        ]
        for label, value in rows:
            print(f"  {label:<34}{value:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
