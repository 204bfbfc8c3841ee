"""Allocator benchmark (not a test): prints throughput and memory figures.

    .venv/bin/python bench/allocators.py [--seed N] [--json]

- ClusterIP in a /12 (1,048,574 usable IPs) at 0 %, 50 % and 99 % full: the range is
  filled to the level with random allocations, then batches of allocate_next are timed
  (each batch released again, untimed) so the level holds while measuring.
- NodePort: the whole default range 30000-32767, one allocation after another.
- LB pool: every address of a /16 pool, one Service after another.
- Memory: the /12 bitmap's size, tracemalloc peaks, and the process's peak RSS.
Targets (issue 2): >= 100,000 ClusterIP allocations/s at 99 % full; /12 bitmap <= 1 MiB.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lbctl.allocators.clusterip import IPRange
from lbctl.allocators.lbpool import LBPoolAllocator, LBRequest, Pool
from lbctl.allocators.nodeport import NodePortAllocator

BATCH = 2000


def clusterip_at(level: float, seed: int) -> dict[str, Any]:
    r = IPRange("10.0.0.0/12", rng=random.Random(seed))
    target = int(r.size * level)
    for _ in range(target):
        r.allocate_next()
    timed = 0
    elapsed = 0.0
    rounds = max(1, 100_000 // BATCH)
    for _ in range(rounds):
        t0 = time.perf_counter()
        got = [r.allocate_next() for _ in range(BATCH)]
        elapsed += time.perf_counter() - t0
        timed += len(got)
        for ip in got:
            r.release(ip)
    return {
        "fill": f"{level:.0%}",
        "used": r.used,
        "size": r.size,
        "allocations": timed,
        "per_second": round(timed / elapsed),
    }


def bitmap_memory() -> dict[str, Any]:
    tracemalloc.start()
    r = IPRange("10.0.0.0/12")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"bitmap_bytes": len(r.snapshot().data), "tracemalloc_peak_bytes": peak}


def nodeport_whole_range(seed: int) -> dict[str, Any]:
    a = NodePortAllocator(rng=random.Random(seed))
    t0 = time.perf_counter()
    for _ in range(a.size):
        a.allocate_next()
    elapsed = time.perf_counter() - t0
    return {"ports": a.size, "seconds": round(elapsed, 4), "per_second": round(a.size / elapsed)}


def _fill_pool(n: int) -> LBPoolAllocator:
    alloc = LBPoolAllocator()
    alloc.set_pools([Pool(name="big", addresses=("10.64.0.0/16",))])
    for i in range(n):
        alloc.assign(LBRequest(key=f"default/s{i}", namespace="default"))
    return alloc


def lb_pool_slash16() -> dict[str, Any]:
    n = 65536
    t0 = time.perf_counter()
    _fill_pool(n)
    elapsed = time.perf_counter() - t0
    # Memory in a second, untimed pass: tracemalloc slows every allocation down.
    tracemalloc.start()
    _fill_pool(n)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "addresses": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed),
        "tracemalloc_peak_bytes": peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "clusterip_slash12": [clusterip_at(level, args.seed) for level in (0.0, 0.5, 0.99)],
        "clusterip_memory": bitmap_memory(),
        "nodeport_whole_range": nodeport_whole_range(args.seed),
        "lb_pool_slash16": lb_pool_slash16(),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"python {out['python']} on {out['machine']}")
    print("ClusterIP /12 (allocate_next, batches of 2000 released between batches)")
    for row in out["clusterip_slash12"]:
        print(f"  {row['fill']:>4} full: {row['per_second']:>10,} allocations/s")
    mem = out["clusterip_memory"]
    print(
        f"  /12 bitmap: {mem['bitmap_bytes']:,} bytes "
        f"(tracemalloc peak building the range: {mem['tracemalloc_peak_bytes']:,} bytes)"
    )
    np_ = out["nodeport_whole_range"]
    print(
        f"NodePort 30000-32767: {np_['ports']} ports in {np_['seconds']} s "
        f"= {np_['per_second']:,} allocations/s"
    )
    lb = out["lb_pool_slash16"]
    print(
        f"LB pool /16: {lb['addresses']:,} Services in {lb['seconds']} s "
        f"= {lb['per_second']:,} assignments/s "
        f"(tracemalloc peak {lb['tracemalloc_peak_bytes']:,} bytes)"
    )
    print(f"peak RSS: {out['peak_rss_kib']:,} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
