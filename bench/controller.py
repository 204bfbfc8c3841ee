"""Controller benchmark (not a test): convergence time, reconciles/s, RSS, node sync.

    .venv/bin/python bench/controller.py [--services 1000 10000] [--workers 4] [--json]

For each count N: the embedded API server runs as its own process; N LoadBalancer
Services (``allocateLoadBalancerNodePorts: false``) are created first, then the
controller (this process, in-memory provider) starts, and the time until every Service
has its ingress status is measured. Reconciles/s counts provider ensures. Then one Node
is added and the time until every load balancer has that node is measured.
Targets (issue 5): 10,000 converge in <= 60 s on 2 cores, RSS <= 200 MB, node add <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.kube.client import NODES, SERVICES, KubeClient, connect
from lbctl.testing import APIServerProcess
from providers.memory import InMemoryProvider

CLASS = "lbctl.io/memory"


async def _create(client: KubeClient, n: int, clients: int = 8) -> None:
    names = iter(range(n))

    async def worker() -> None:
        for i in names:
            await client.create(
                SERVICES,
                {
                    "metadata": {"name": f"lb{i}"},
                    "spec": {
                        "type": "LoadBalancer",
                        "loadBalancerClass": CLASS,
                        "allocateLoadBalancerNodePorts": False,
                        "ports": [{"port": 80}],
                    },
                },
                "default",
            )

    await asyncio.gather(*(worker() for _ in range(clients)))


async def _count_ready(client: KubeClient) -> int:
    items, _ = await client.list(SERVICES, "default")
    return sum(
        1 for s in items if ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    )


async def one(n: int, workers: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as d,
        APIServerProcess(
            Path(d),
            "--service-cidrs",
            "10.96.0.0/12",
            "--log-level",
            "WARNING",
        ) as server,
    ):
        async with await connect(kubeconfig=server.kubeconfig, qps=None) as client:
            t0 = time.perf_counter()
            await _create(client, n)
            created = time.perf_counter() - t0
            # Addresses are only strings here (never contacted); a /16 holds 10,000.
            provider = InMemoryProvider(network_v4="100.64.0.0/16")
            stop = asyncio.Event()
            opts = ControllerOptions(
                class_name=CLASS, workers=workers, leader_election=False, resync_seconds=3600
            )
            t0 = time.perf_counter()
            task = asyncio.create_task(
                run_controller(client=client, provider=provider, options=opts, stop=stop)
            )
            # Poll every 2 s: listing 10,000 Services costs the server real CPU time.
            while await _count_ready(client) < n:
                await asyncio.sleep(2.0)
            converge = time.perf_counter() - t0
            ensures = sum(1 for op, _ in provider.calls if op == "ensure")
            t0 = time.perf_counter()
            await client.create(NODES, {"metadata": {"name": "bench-node"}})
            while not all(lb.nodes == ("bench-node",) for lb in provider.state.values()):
                await asyncio.sleep(0.05)
            node_sync = time.perf_counter() - t0
            stop.set()
            await asyncio.wait_for(task, timeout=60)
    return {
        "services": n,
        "workers": workers,
        "create_seconds": round(created, 2),
        "converge_seconds": round(converge, 2),
        "reconciles_per_second": round(ensures / converge, 1),
        "node_add_seconds": round(node_sync, 2),
        "controller_process_peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = [asyncio.run(one(n, args.workers)) for n in args.services]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(
            f"{r['services']:>6} LoadBalancer Services: converged in {r['converge_seconds']} s "
            f"({r['reconciles_per_second']} ensures/s, {r['workers']} workers); "
            f"node add re-ensured all in {r['node_add_seconds']} s; "
            f"peak RSS of the controller process {r['controller_process_peak_rss_mib']} MiB "
            f"(created in {r['create_seconds']} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
