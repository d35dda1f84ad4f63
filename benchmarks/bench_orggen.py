"""Benchmark the synthetic organisation generator.

Usage: ``python benchmarks/bench_orggen.py [PEOPLE=100000] [SEED=1] [--tracemalloc]``

Prints the generation time, people per second, record counts per system, drift and noise entries per field, and
peak memory: the process's peak RSS (``ru_maxrss``, includes the interpreter) and, with ``--tracemalloc``, the
peak of Python allocations during generation (tracing makes the run about twice as slow, so the time printed in
that mode is not the one to quote).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime

from nexus.sim.orggen import generate_org


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("people", nargs="?", type=int, default=100_000)
    parser.add_argument("seed", nargs="?", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true", help="also report the traced allocation peak")
    args = parser.parse_args(argv)

    now = datetime.now(UTC).replace(microsecond=0)
    if args.tracemalloc:
        tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    org = generate_org(args.people, args.seed, now)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    traced_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
    if args.tracemalloc:
        tracemalloc.stop()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    print(f"people={args.people} seed={args.seed}")
    print(f"seconds={wall:.2f} (cpu {cpu:.2f})  people/s={args.people / wall:,.0f}")
    records = {
        "workday": len(org.workday),
        "ad": len(org.ad),
        "entra": len(org.entra),
        "intune": len(org.intune),
        "lansweeper": len(org.lansweeper),
        "helix_assets": len(org.helix_assets),
        "helix_tickets": len(org.helix_tickets),
        "fedex": len(org.fedex),
    }
    print("records:", " ".join(f"{k}={v}" for k, v in records.items()))
    drift, noise = org.truth["drift"], org.truth["noise"]
    print(f"drift={len(drift)}:", " ".join(f"{k}={v}" for k, v in sorted(Counter(e["field"] for e in drift).items())))
    kinds = Counter(e["note"].split(":", 1)[0] for e in noise)
    print(f"noise={len(noise)}:", " ".join(f"{k!r}={v}" for k, v in sorted(kinds.items())))
    print(f"peak_rss_mib={rss_kib / 1024:.0f}", end="")
    print(f" traced_peak_mib={traced_peak / 2**20:.0f}" if traced_peak is not None else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
