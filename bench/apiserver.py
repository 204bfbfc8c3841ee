"""Embedded API server benchmark (not a test): prints throughput, latency and memory.

    .venv/bin/python bench/apiserver.py [--services 2000] [--clients 8] [--watchers 50] [--json]

- Creates: ``--services`` Services (type NodePort, so each takes a ClusterIP, a
  NodePort and an IPAddress object) from ``--clients`` concurrent HTTP clients;
  creates/s and p50/p99 latency per request.
- Watch fan-out: ``--watchers`` watches open, then 200 more Services are created;
  time until every watcher has seen every event, and events delivered per second.
- Peak RSS of the server process (VmHWM).
The server runs as its own process (``lbctl apiserver``) on 127.0.0.1, as a user
would run it; the load comes from this process over loopback. When the real
kube-apiserver + etcd are built (scripts/k8s-binaries.sh), the same workload runs
against them too (TLS + token, as they require) and the ratios embedded / real are
printed. Goal: embedded >= 1.0x on creates/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lbctl.realkube import RealKube, binaries_dir
from lbctl.testing import APIServerProcess

SVC = "/api/v1/namespaces/default/services"


def _svc(name: str) -> bytes:
    return json.dumps(
        {
            "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]},
        }
    ).encode()


HEADERS: dict[str, str] = {"Content-Type": "application/json"}
TLS: dict[str, ssl.SSLContext | bool] = {"ssl": True}


BENCH_TOKEN = "bench-token-not-a-secret"


def _token_file(d: Path) -> Path:
    path = d / "bench.token"
    path.write_text(BENCH_TOKEN)
    return path


def _connector(limit: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=limit, ssl=TLS["ssl"])


async def creates(url: str, total: int, clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    names = iter(range(total))

    async def client(s: aiohttp.ClientSession) -> None:
        for i in names:
            t0 = time.perf_counter()
            async with s.post(url + SVC, data=_svc(f"b{i}"), headers=HEADERS) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"create failed: {r.status} {await r.text()}")
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=_connector(clients)) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(s) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "services": total,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "creates_per_second": round(total / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


async def fanout(url: str, watchers: int, events: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=_connector(0), headers=HEADERS) as s:
        async with s.get(url + SVC + "?limit=1") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        seen = [0] * watchers
        done = asyncio.Event()
        ready = 0

        async def watch(k: int) -> None:
            nonlocal ready
            async with s.get(
                url + SVC, params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "120"}
            ) as r:
                ready += 1
                async for line in r.content:
                    if line.strip() and b'"ADDED"' in line[:20]:
                        seen[k] += 1
                        if all(n >= events for n in seen):
                            done.set()
                        if seen[k] >= events:
                            return

        tasks = [asyncio.create_task(watch(k)) for k in range(watchers)]
        while ready < watchers:
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        async with aiohttp.ClientSession(connector=_connector(1)) as w:
            for i in range(events):
                async with w.post(url + SVC, data=_svc(f"f{i}"), headers=HEADERS) as r:
                    await r.read()
        created = time.perf_counter() - t0
        await asyncio.wait_for(done.wait(), timeout=120)
        elapsed = time.perf_counter() - t0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "watchers": watchers,
        "events": events,
        "seconds_to_create": round(created, 3),
        "seconds_until_all_delivered": round(elapsed, 3),
        "events_delivered_per_second": round(watchers * events / elapsed),
    }


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def workload(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["create"] = await creates(url, args.services, args.clients)
    out["watch_fanout"] = await fanout(url, args.watchers, 200)
    out["peak_rss_kib"] = peak_rss_kib(pid)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as d,
        APIServerProcess(
            Path(d),
            "--service-cidrs",
            "10.96.0.0/16",
            "--node-port-range",
            "30000-39999",
            "--log-level",
            "WARNING",
            "--tls",
            "--token-file",
            str(_token_file(Path(d))),
        ) as server,
    ):
        # TLS and a bearer token, like the real server: the comparison is like for like.
        assert server.proc is not None
        TLS["ssl"] = ssl.create_default_context(cafile=str(Path(d) / "apiserver.crt"))
        HEADERS["Authorization"] = f"Bearer {BENCH_TOKEN}"
        out["embedded"] = await workload(server.url, server.proc.pid, args)
    bins = binaries_dir()
    if bins is None or args.embedded_only:
        return out
    with tempfile.TemporaryDirectory() as d:
        kube = RealKube(
            Path(d), bins, service_cidr="10.96.0.0/16", node_port_range="30000-39999"
        ).start()
        try:
            TLS["ssl"] = ssl.create_default_context(cafile=str(Path(d) / "ca.crt"))
            HEADERS["Authorization"] = f"Bearer {kube.admin_token}"
            apiserver = kube._procs[-1].pid
            real = await workload(kube.url, apiserver, args)
            real["etcd_peak_rss_kib"] = peak_rss_kib(kube._procs[0].pid)
            out["real"] = real
        finally:
            kube.cleanup()
    e, r = out["embedded"], out["real"]
    out["ratio_embedded_over_real"] = {
        "creates_per_second": round(
            e["create"]["creates_per_second"] / r["create"]["creates_per_second"], 2
        ),
        "p99_latency": round(e["create"]["p99_ms"] / r["create"]["p99_ms"], 2),
    }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=2000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--watchers", type=int, default=50)
    p.add_argument("--embedded-only", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for name in ("embedded", "real"):
        if name not in out:
            continue
        c, f = out[name]["create"], out[name]["watch_fanout"]
        print(
            f"{name}: {c['services']} Service creates from {c['clients']} clients "
            f"in {c['seconds']} s = {c['creates_per_second']}/s; "
            f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms"
        )
        print(
            f"  watch fan-out: {f['watchers']} watchers x {f['events']} events delivered in "
            f"{f['seconds_until_all_delivered']} s "
            f"({f['events_delivered_per_second']:,} events/s)"
        )
        extra = out[name].get("etcd_peak_rss_kib")
        print(
            f"  server peak RSS: {out[name]['peak_rss_kib']:,} KiB"
            + (f" (+ etcd {extra:,} KiB)" if extra else "")
        )
    if "ratio_embedded_over_real" in out:
        ratio = out["ratio_embedded_over_real"]
        print(
            f"embedded / real: creates/s {ratio['creates_per_second']}x, "
            f"p99 latency {ratio['p99_latency']}x (lower is better)"
        )
    elif "real" not in out:
        print("real kube-apiserver: not built (scripts/k8s-binaries.sh), not measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
