"""Isolation: AD and Entra result latency while Workday is slow past its HTTP timeout (issue 10, item 7).

    .venv/bin/python benchmarks/bench_isolation.py [--audits 10] [--concurrency 2]

For each worker layout, on a fresh rig (simulators, slapd, a private Redis, the production retry and breaker
policy with a 3 s HTTP timeout so a run takes about two minutes):

- ``default``: ``nexus worker`` as shipped: one worker per system queue plus one for compare/audit.
- ``shared``: the old default, ``nexus worker --queues <every queue>`` (one pool for everything; compose's
  ``worker-directory`` grouped workday, ad and entra the same way), with twice the concurrency.

``--audits`` user audits are submitted at once, first undisturbed, then with Workday answering after 4 s (past the
3 s timeout; every attempt times out). The latency of AD's and of Entra's result is the time their fetch's progress
turned ``ok`` (its own timestamp) minus the audit's submission. Printed: p50 and p90 of both phases, and the ratio
slow / undisturbed of the p50 (target for ``default``: <= 2x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rig import production_policy_env

from nexus.audits.store import epoch_of
from nexus.testing.cluster import ROOT, Cluster, WorkerProcess
from workers.routing import ALL_QUEUES, default_layout

HTTP_TIMEOUT_S = 3.0
WORKDAY_DELAY_MS = 4000
MEASURED = ("ad", "entra")
TARGET = 2.0


def spawn(cluster: Cluster, layout: str, concurrency: int) -> int:
    """Start the layout's `nexus worker`; returns how many Celery workers answer once it is up."""
    cmd = [sys.executable, "-m", "nexus.cli", "--log-level", "WARNING", "worker", "--loglevel=WARNING",
           f"--hostname={layout}@%h"]
    if layout == "shared":
        cmd += [f"--queues={','.join(ALL_QUEUES)}", f"--concurrency={concurrency * 2}"]
        nodes = 1
    else:
        cmd += [f"--concurrency={concurrency}"]
        nodes = len(default_layout())
    log_path = cluster.workdir / f"{layout}.log"
    env = {**os.environ, **cluster.env, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.workers.append(WorkerProcess(layout, proc, log_path))
    return nodes


def wave(cluster: Cluster, emails: list[str], timeout_s: float = 120.0) -> list[float]:
    """Submit one user audit per email at once; AD's and Entra's result latencies (s)."""
    nx = cluster.nexus()
    submitted = {}
    for email in emails:
        started = time.time()
        submitted[nx.submit(nx.request_for(email=email))] = started
    latencies: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + timeout_s
    while len(latencies) < len(submitted) * len(MEASURED) and time.monotonic() < deadline:
        for audit_id, started in submitted.items():
            systems: dict[str, Any] = nx.get(audit_id)["progress"]["systems"]
            for system in MEASURED:
                info = systems.get(system) or {}
                if (audit_id, system) not in latencies and info.get("status") in ("ok", "failed"):
                    latencies[(audit_id, system)] = epoch_of(info["at"]) - started
        time.sleep(0.05)
    missing = len(submitted) * len(MEASURED) - len(latencies)
    if missing:
        print(f"  ({missing} AD/Entra results still missing after {timeout_s:.0f} s: counted as {timeout_s:.0f} s)")
    return [*latencies.values(), *([timeout_s] * missing)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_layout(layout: str, audits: int, concurrency: int) -> tuple[float, float]:
    env = {**production_policy_env(), "NEXUS_HTTP_TIMEOUT_S": str(HTTP_TIMEOUT_S)}
    with Cluster.start(people=200, seed=23, workers=0, extra_env=env) as cluster:
        cluster.wait_ready(spawn(cluster, layout, concurrency), timeout=120)
        assert cluster.stack.org is not None
        people = [w.email for w in cluster.stack.org.workday]
        wave(cluster, people[:2])  # warm-up: connections, tokens
        calm = wave(cluster, people[2:2 + audits])
        cluster.fault("workday", "slow", delay_ms=WORKDAY_DELAY_MS)
        slow = wave(cluster, people[2 + audits:2 + 2 * audits])
        cluster.clear_faults()
    calm_p50, slow_p50 = statistics.median(calm), statistics.median(slow)
    print(f"{layout:8s} undisturbed p50 {calm_p50:6.2f} s  p90 {pct(calm, 0.9):6.2f} s | Workday slow p50 "
          f"{slow_p50:6.2f} s  p90 {pct(slow, 0.9):6.2f} s | ratio {slow_p50 / calm_p50:5.2f}x")
    return calm_p50, slow_p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audits", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--layouts", default="default,shared")
    args = parser.parse_args()
    print(f"{args.audits} user audits at once; Workday {WORKDAY_DELAY_MS} ms late vs a {HTTP_TIMEOUT_S:g} s HTTP "
          f"timeout; AD/Entra result latency (submit -> fetch ok)")
    ratios = {}
    for layout in args.layouts.split(","):
        calm, slow = run_layout(layout, args.audits, args.concurrency)
        ratios[layout] = slow / calm
    if "default" in ratios:
        verdict = "PASS" if ratios["default"] <= TARGET else "FAIL"
        print(f"default layout: slow/undisturbed p50 = {ratios['default']:.2f}x (target <= {TARGET:g}x): {verdict}")
        return 0 if verdict == "PASS" else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
