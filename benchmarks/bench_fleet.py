"""Benchmark fleet audits on snapshots against the physical limit, and against the per-person path.

Usage: ``python benchmarks/bench_fleet.py [PEOPLE ...] [--latency-ms 30] [--workers 2] [--concurrency 4]
[--per-person 500] [--runs 2]``  (default: 10000; run ``100000`` as its own invocation: about 6 minutes, most of
it Lansweeper's published budget of 150 requests a minute).

For each size: a private Redis, every simulator at ``--latency-ms`` per request (HTTP systems through the
simulators' latency, AD through the LDAP proxy's ``slow`` fault), the clients' real page sizes, the published
request budgets ON (``NEXUS_RATE_BUDGETS`` defaults), and ``--workers`` Celery worker processes. It measures:

1. the per-person path: a bulk audit of ``--per-person`` people, run before any fleet audit (so no snapshot size is
   known and the bulk audit stays per person), with the production chunk size and window;
2. ``--runs`` fleet audits (the first cold; later ones start from the last good sizes, which let Helix's offset
   listing stop exactly at its end), each against its lower bound:

   lower bound = the longest chain that cannot be parallelised + the comparison, where a system's chain is
     cursor listings (Graph, Lansweeper, LDAP):  pages x latency, or (requests - burst) / rate under a budget
     Workday's RaaS report:                      ONE request x latency (its chunks are stored, not fetched)
     offset listings (Helix):                    ceil(pages / page concurrency) x latency, or its budget
     Helix, then FedEx:                          the two chains one after the other
   and the comparison is the final compare task's own measured time (the device rules and the report: the people
   rules run earlier, while the device systems are still paging, so they are off the critical path);

3. requests sent (listing requests from the simulators' request log; tokens, logins and LDAP binds excluded)
   against the minimum number of pages (records / page size per listing, 1 for Workday's report, numbers / 30 for
   FedEx);
4. peak RSS of every worker process (``VmHWM`` of each Celery process, pool children included).

Targets: wall <= 1.3 x lower bound, requests <= 1.05 x minimum, peak RSS <= 500 MB per worker process.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

from nexus.budgets import parse_budgets
from nexus.settings import DEFAULT_RATE_BUDGETS
from nexus.systems import System
from nexus.testing.cluster import Cluster

#: entra: Graph's page cap for listings with $expand (100 users a page; clients/_graph.py); Workday's listing is one
#: report request whatever its size (no page size: see ONE_REQUEST)
ONE_REQUEST = ("workday",)
PAGE_SIZES = {"ad": 1000, "entra": 100, "intune": 999, "lansweeper": 500, "helix": 500,
              "helix_tickets": 500, "fedex": 30}
CURSOR = ("ad", "entra", "intune", "lansweeper")
AUTH_PATHS = ("token", "login", "logout", "bind", "unbind")
TARGET_WALL, TARGET_REQUESTS, TARGET_RSS_MB = 1.3, 1.05, 500.0


def bench_env(concurrency: int) -> dict[str, str]:
    return {
        "NEXUS_RATE_BUDGETS": DEFAULT_RATE_BUDGETS,  # the published limits, as in production
        "NEXUS_BULK_CHUNK_SIZE": "25",  # production's per-person path, not the test rig's small chunks
        "NEXUS_BULK_WINDOW": "8",
        "NEXUS_HTTP_TIMEOUT_S": "60",
        "NEXUS_FLEET_PAGE_CONCURRENCY": str(concurrency),
    }


# -- measurements ----------------------------------------------------------------------------------------------------
def vm_hwm_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def worker_pids(cluster: Cluster) -> dict[int, str]:
    """Every Celery process: each worker's main process and its pool children."""
    out: dict[int, str] = {}
    mains = {w.proc.pid: w.name for w in cluster.workers}
    out.update({pid: f"{name} main" for pid, name in mains.items()})
    for worker in cluster.workers:
        out.update({pid: f"{worker.name} child" for pid in worker.children()})
    return out


def listing_requests(log: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for system, info in log.items():
        out[system] = sum(n for path, n in info["paths"].items() if not any(a in path for a in AUTH_PATHS))
    return out


def minimum_pages(report: dict[str, Any], numbers: int) -> dict[str, int]:
    rows = report["systems"]
    per = {
        "ad": rows["ActiveDirectory"]["records"],
        "entra": rows["Entra"]["records"], "intune": rows["Intune"]["records"],
        "lansweeper": rows["Lansweeper"]["records"],
    }
    out = {s: max(1, math.ceil(n / PAGE_SIZES[s])) for s, n in per.items()}
    out.update({s: 1 for s in ONE_REQUEST})
    out["helix"] = max(1, math.ceil(rows["Helix"]["records"] / 500)) + max(1, math.ceil(rows["Helix"]["tickets"] / 500))
    out["fedex"] = math.ceil(numbers / 30)
    return out


def lower_bound(report: dict[str, Any], latency_s: float, concurrency: int) -> tuple[float, str]:
    """The longest chain that cannot be parallelised, plus the comparison (see the module docstring)."""
    budgets = parse_budgets(DEFAULT_RATE_BUDGETS)
    rows = report["systems"]
    pages = {"workday": 1, "ad": rows["ActiveDirectory"]["pages"],  # Workday: one report request
             "entra": rows["Entra"]["pages"], "intune": rows["Intune"]["pages"],
             "lansweeper": rows["Lansweeper"]["pages"], "fedex": rows["FedEx"]["pages"]}
    helix_assets = math.ceil(rows["Helix"]["records"] / 500)
    helix_tickets = max(1, math.ceil(rows["Helix"]["tickets"] / 500))

    def chain(system: str, n: int, parallel: bool) -> float:
        latency = math.ceil(n / concurrency) * latency_s if parallel else n * latency_s
        budget = budgets.get(system)
        paced = max(0, n - budget.burst) / budget.rate if budget is not None else 0.0
        return max(latency, paced)

    chains = {s: chain(s, pages[s], s not in CURSOR and s not in ONE_REQUEST)
              for s in ("workday", "ad", "entra", "intune", "lansweeper")}
    chains["helix+fedex"] = (chain("helix", helix_assets, True) + chain("helix", helix_tickets, True)
                             + chain("fedex", pages["fedex"], True))
    longest = max(chains, key=lambda k: chains[k])
    timings = report["stats"]["timings"]
    compare_s = float(timings.get("final_s", timings.get("compare_s", 0.0)))
    return chains[longest] + compare_s, f"{longest} {chains[longest]:.1f}s + final comparison {compare_s:.1f}s"


# -- the runs --------------------------------------------------------------------------------------------------------
def per_person(cluster: Cluster, people: int) -> float:
    assert cluster.stack.org is not None
    emails = [w.email for w in cluster.stack.org.workday[:people]]
    nx = cluster.nexus()
    started = time.monotonic()
    view = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=3600, poll_s=0.1)
    elapsed = time.monotonic() - started
    if view["status"] != "done" or view["report"].get("path") == "snapshot":
        raise RuntimeError(f"the per-person bulk audit did not run per person: {view.get('error')}")
    return elapsed


def fleet_run(cluster: Cluster) -> tuple[float, dict[str, Any], dict[str, Any]]:
    cluster.reset_requests()
    nx = cluster.nexus()
    started = time.monotonic()
    view = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=3600, poll_s=0.1)
    elapsed = time.monotonic() - started
    if view["status"] != "done":
        raise RuntimeError(f"fleet audit failed: {view.get('error')}\n{cluster.worker_logs()[-3000:]}")
    report = view["report"]
    if report["systems_failed"]:
        raise RuntimeError(f"systems failed: {report['errors']}")
    return elapsed, report, cluster.requests()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench(people: int, args: argparse.Namespace) -> bool:
    print(f"\n=== {people:,} people: {args.workers} workers x {args.concurrency} processes, "
          f"{args.latency_ms} ms per request, published budgets on ===", flush=True)
    t0 = time.monotonic()
    with Cluster.start(people=people, seed=7, workers=args.workers, concurrency=args.concurrency,
                       extra_env=bench_env(args.page_concurrency)) as cluster:
        assert cluster.stack.ctx is not None and cluster.stack.org is not None
        cluster.stack.ctx.latency_ms.update({s.value: args.latency_ms for s in System})
        cluster.fault("ad", "slow", delay_ms=args.latency_ms)  # LDAP: the proxy holds each operation
        print(f"setup (org, simulators, slapd, workers): {time.monotonic() - t0:.1f}s", flush=True)
        org = cluster.stack.org
        numbers = len({t.tracking_number for t in org.helix_tickets})
        t_person = per_person(cluster, args.per_person)
        print(f"per-person path, {args.per_person} people: {t_person:.1f}s", flush=True)
        cluster.fault("ad", "slow", delay_ms=args.latency_ms)
        all_ok = True
        rows: list[tuple[str, str, str, str]] = []
        for run in range(1, args.runs + 1):
            wall, report, log = fleet_run(cluster)
            lb, why = lower_bound(report, args.latency_ms / 1000, args.page_concurrency)
            sent = listing_requests(log)
            minimum = minimum_pages(report, numbers)
            req_ratio = sum(sent.values()) / sum(minimum.values())
            label = "cold" if run == 1 else "warm"
            print(f"\nfleet run {run} ({label}): {wall:.1f}s, {report['discrepancy_count']} discrepancies, "
                  f"{report['people']:,} people, {report['devices']:,} devices", flush=True)
            print(f"  lower bound {lb:.1f}s = {why}")
            print("  system        records   pages  requests  minimum  duration")
            names = {"workday": "Workday", "ad": "ActiveDirectory", "entra": "Entra", "intune": "Intune",
                     "lansweeper": "Lansweeper", "helix": "Helix", "fedex": "FedEx"}
            for sid, name in names.items():
                row = report["systems"][name]
                print(f"  {name:<13} {row['records']:>7}  {row['pages']:>6}  {sent.get(sid, 0):>8}  "
                      f"{minimum[sid]:>7}  {row.get('duration_s', 0):>7.1f}s")
            print(f"  compare: {report['stats']['timings']}")
            rows.append((f"run {run} ({label}) wall / lower bound", f"{wall:.1f}s / {lb:.1f}s = {wall / lb:.2f}x",
                         f"<= {TARGET_WALL}x", verdict(wall / lb <= TARGET_WALL)))
            rows.append((f"run {run} ({label}) requests / minimum pages",
                         f"{sum(sent.values())} / {sum(minimum.values())} = {req_ratio:.3f}x",
                         f"<= {TARGET_REQUESTS}x", verdict(req_ratio <= TARGET_REQUESTS)))
            all_ok &= wall / lb <= TARGET_WALL and req_ratio <= TARGET_REQUESTS
            if run == 1:
                fleet_wall = wall
        rss = {f"{label} ({pid})": vm_hwm_mb(pid) for pid, label in worker_pids(cluster).items()}
        peak = max(rss.values())
        print("\npeak RSS per worker process (VmHWM, MB): "
              + ", ".join(f"{k} {v:.0f}" for k, v in sorted(rss.items(), key=lambda kv: -kv[1])))
        rows.append(("peak RSS per worker process", f"{peak:.0f} MB", f"<= {TARGET_RSS_MB:.0f} MB",
                     verdict(peak <= TARGET_RSS_MB)))
        all_ok &= peak <= TARGET_RSS_MB
        per_person_all = t_person * people / args.per_person
        rows.append((f"per-person path, {args.per_person} people", f"{t_person:.1f}s", "(reference)", ""))
        rows.append((f"per-person path, all {people:,} (extrapolated)", f"{per_person_all:.0f}s",
                     f"fleet is {per_person_all / fleet_wall:.0f}x faster", ""))
        print(f"\n{'measure':<48} {'value':<34} {'target':<26} result")
        for name, value, target, result in rows:
            print(f"{name:<48} {value:<34} {target:<26} {result}")
        return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("people", nargs="*", type=int, default=[10_000])
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="pool processes per worker")
    parser.add_argument("--page-concurrency", type=int, default=8, help="NEXUS_FLEET_PAGE_CONCURRENCY")
    parser.add_argument("--per-person", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    ok = all([bench(n, args) for n in args.people])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
