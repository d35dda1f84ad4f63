"""Benchmark distributed audits: latency of a single-user audit, the cost of a fetch behind an OPEN breaker, and
how many requests reach a dead system during a bulk audit.

Usage: ``.venv/bin/python benchmarks/bench_audit.py [--runs 40] [--latency-ms 50] [--bulk 200] [--json F]``

It starts its own redis-server, every simulator (slapd for AD) and 2 ``nexus worker`` processes of 2 pool children,
with the production retry, breaker and bulk policy, then measures:

(a) single-user audit, submit -> report, p50 and p99 over ``--runs`` audits (after warm-up) with simulator latency
    0 and ``--latency-ms`` on every HTTP system (set at runtime; AD's LDAP has no latency knob). Target: p50 at most
    40 ms + ONE latency (the fetches run in parallel). The audit is watched by reading its status every 1 ms (the
    facade's ``wait`` backs off to 100 ms, which would measure the poll interval). Also printed: where the time goes
    (from the audit's own timestamps), worker CPU per audit, and Redis commands per audit.
(b) fetch time with the breaker OPEN: ``get_breaker(system).call(...)`` failing fast in process, and a whole
    fetch task round trip (enqueue -> worker -> failure marker in the result backend). Target: at most 5 ms.
(c) requests that reach a dead system (``/_sim/requests``) during a ``--bulk``-person audit with 2 workers.
    Target: the seed's contract, per request: each of the first fail_max requests is tried max_attempts times
    before the circuit opens ("Requests 1-5: each retries 3 times; request 6: circuit opens"), and each pool child
    may have one request in flight when it opens: (fail_max + pool children) x max_attempts.

Every figure is wall time on this machine: on a loaded machine (see the load average printed) they are higher.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from _rig import bench_cluster, cpu_ms, worker_pids  # benchmarks/ is the script's directory

from nexus.audits.store import epoch_of
from nexus.settings import get_settings
from nexus.systems import System
from nexus.testing.cluster import Cluster

HTTP_SYSTEMS = tuple(s.value for s in System if s is not System.AD)


@dataclass
class Row:
    name: str
    figure: float
    target: float
    unit: str

    @property
    def ratio(self) -> float:
        return self.figure / self.target if self.target else float("inf")

    @property
    def verdict(self) -> str:
        return "PASS" if self.figure <= self.target else "FAIL"


def pct(values: list[float], q: float) -> float:
    """Percentile by linear interpolation (q in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- (a) single-user audit latency ------------------------------------------------------------------------------------
# Redis commands this script sends per audit besides its polls: the store's create (MULTI, 7 writes, EXEC), the
# index trim, the publish of nexus.audit.plan, and the final get (meta, progress, report).
OWN_COMMANDS_PER_AUDIT = 9 + 1 + 1 + 3


def one_audit(r: Any, nx: Any, email: str, timeout: float = 30.0) -> tuple[float, dict[str, Any], int]:
    """Submit -> report in hand, in ms; the view (for the stage breakdown); and how many polls it took (``r``: a
    Redis client of the rig)."""
    started = time.perf_counter()
    audit_id = nx.submit(nx.request_for(email=email))
    key = f"nexus:audit:{audit_id}"
    deadline = started + timeout
    polls = 1
    while r.hget(key, "status") not in (b"done", b"failed"):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"audit {audit_id} not finished after {timeout}s")
        time.sleep(0.001)
        polls += 1
    view = nx.get(audit_id)
    elapsed = (time.perf_counter() - started) * 1000
    if view["status"] != "done" or view["report"]["systems_failed"]:
        raise RuntimeError(f"audit {audit_id} did not succeed: {view.get('error') or view['report']['errors']}")
    return elapsed, view, polls


def stages(view: dict[str, Any]) -> dict[str, float]:
    """ms from the audit's creation to each fetch's success, to the report, as recorded by the tasks."""
    created = epoch_of(view["created_at"])
    out = {f"{name} fetched": (epoch_of(info["at"]) - created) * 1000
           for name, info in view["progress"]["systems"].items()}
    generated = datetime.fromisoformat(view["report"]["generated_at"]).timestamp()
    out["report stored"] = (generated - created) * 1000
    return out


def bench_single_user(cluster: Cluster, runs: int, latency_ms: int, warmup: int = 5) -> dict[str, Any]:
    assert cluster.stack.ctx is not None and cluster.stack.org is not None
    for system in HTTP_SYSTEMS:
        cluster.stack.ctx.latency_ms[system] = latency_ms
    nx = cluster.nexus()
    r = cluster.redis()
    people = [w.email for w in cluster.stack.org.workday]
    for i in range(warmup):  # clients, tokens and connections in every pool child
        one_audit(r, nx, people[i])
    pids = worker_pids(cluster)
    cpu0, cmds0 = cpu_ms(pids), int(r.info("stats")["total_commands_processed"])
    times, breakdown = [], []
    own = 0
    for i in range(runs):
        elapsed, view, polls = one_audit(r, nx, people[(warmup + i) % len(people)])
        times.append(elapsed)
        breakdown.append(stages(view))
        own += polls + OWN_COMMANDS_PER_AUDIT
    cpu1, cmds1 = cpu_ms(pids), int(r.info("stats")["total_commands_processed"])
    keys = sorted(breakdown[0], key=lambda k: statistics.median(b.get(k, 0) for b in breakdown))
    return {
        "latency_ms": latency_ms,
        "p50": pct(times, 50),
        "p99": pct(times, 99),
        "min": min(times),
        "stages": {k: statistics.median(b[k] for b in breakdown if k in b) for k in keys},
        "worker_cpu_ms_per_audit": (cpu1 - cpu0) / runs,
        "redis_cmds_per_audit": max(0.0, (cmds1 - cmds0 - own) / runs),
    }


# -- (b) breaker OPEN --------------------------------------------------------------------------------------------------
def bench_breaker_open(cluster: Cluster, runs: int, system: str = "entra") -> dict[str, float]:
    from celery.exceptions import TimeoutError as CeleryTimeout

    from clients.breaker import get_breaker
    from nexus.errors import BreakerOpenError
    from tasks.fetch import FETCH_TASKS

    assert cluster.stack.org is not None
    email = cluster.stack.org.workday[0].email
    cluster.fault(system, "down")
    breaker = get_breaker(system)
    breaker.open()
    calls, trips = [], []
    logging.disable(logging.WARNING)  # every fast-fail logs a [resilience] warning
    try:
        for _ in range(max(runs * 5, 200)):
            started = time.perf_counter()
            try:
                breaker.call(lambda: None)
            except BreakerOpenError:
                calls.append((time.perf_counter() - started) * 1000)
        task = FETCH_TASKS[System.parse(system)]
        audit_id = "0" * 32  # no such audit: the task only writes a (harmless) progress field for it
        for _ in range(3):
            task.apply_async(args=[audit_id, "people", [email]]).get(timeout=10)
        for _ in range(runs):
            started = time.perf_counter()
            try:
                marker = task.apply_async(args=[audit_id, "people", [email]]).get(timeout=10)
            except CeleryTimeout as exc:
                raise RuntimeError("a fetch task did not answer within 10 s") from exc
            trips.append((time.perf_counter() - started) * 1000)
            if marker.get("ok") or marker["error"].get("kind") != "breaker_open":
                raise RuntimeError(f"expected a breaker_open marker, got {marker}")
    finally:
        logging.disable(logging.NOTSET)
        breaker.close()
        cluster.clear_faults()
        cluster.redis().delete(f"nexus:audit:{'0' * 32}:progress")
    return {"call_p50": pct(calls, 50), "call_p99": pct(calls, 99), "task_p50": pct(trips, 50),
            "task_p99": pct(trips, 99)}


# -- (c) dead system during a bulk audit -------------------------------------------------------------------------------
def bench_dead_system(cluster: Cluster, people: int, system: str = "entra") -> dict[str, Any]:
    assert cluster.stack.org is not None
    emails = [w.email for w in cluster.stack.org.workday[:people]]
    cluster.reset()
    cluster.fault(system, "down")
    nx = cluster.nexus()
    started = time.perf_counter()
    view = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=120, poll_s=0.05)
    elapsed = time.perf_counter() - started
    reached = cluster.requests().get(system, {"total": 0, "paths": {}})
    report = view.get("report") or {}
    kinds: dict[str, int] = {}
    for entry in report.get("entries", []):
        error = (entry.get("errors") or {}).get(System.parse(system).display)
        if error:
            kinds[error.get("kind", "?")] = kinds.get(error.get("kind", "?"), 0) + 1
    from clients.breaker import breaker_state

    state = breaker_state(system)["state"]
    cluster.reset()
    return {"status": view["status"], "seconds": elapsed, "reached": reached["total"], "paths": reached["paths"],
            "people": report.get("people"), "error_kinds": kinds, "breaker": state}


# -- report ------------------------------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    print()
    print(f"{'figure':<58} {'value':>10} {'target':>10} {'ratio':>7}  verdict")
    print("-" * 96)
    for row in rows:
        print(f"{row.name:<58} {row.figure:>8.1f}{row.unit:<2} {row.target:>8.1f}{row.unit:<2} {row.ratio:>7.2f}  "
              f"{row.verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="audits per latency setting (after 5 warm-up)")
    parser.add_argument("--latency-ms", type=int, default=50, help="the simulator latency of the second series")
    parser.add_argument("--bulk", type=int, default=200, help="people in the dead-system bulk audit")
    parser.add_argument("--people", type=int, default=250, help="size of the simulated organisation")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--loglevel", default="INFO", help="worker log level (INFO is `nexus worker`'s default)")
    parser.add_argument("--json", dest="json_out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    wall = time.perf_counter()
    print(f"bench_audit: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {load()}")
    env = {"NEXUS_FLEET_BULK_SNAPSHOT": "never"}  # (c) measures the per-person fan-out, not the snapshot path
    with bench_cluster(people=args.people, seed=7, workers=args.workers, concurrency=args.concurrency,
                       loglevel=args.loglevel, extra_env=env) as cluster:
        settings = get_settings()
        print(f"rig ready in {time.perf_counter() - wall:.1f}s: {args.workers} workers x {args.concurrency}, "
              f"fail_max={settings.breaker_fail_max}, reset={settings.breaker_reset_timeout_s:g}s, "
              f"backoff={settings.retry_backoff_base_s:g}s, chunk={settings.bulk_chunk_size}, "
              f"window={settings.bulk_window}")
        single = []
        for latency in (0, args.latency_ms):
            result = bench_single_user(cluster, args.runs, latency)
            single.append(result)
            print(f"\n(a) single-user audit, simulator latency {latency} ms, {args.runs} runs: "
                  f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, min {result['min']:.1f} ms")
            print("    where the time goes (p50, ms after submit): " +
                  ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items()))
            print(f"    worker CPU {result['worker_cpu_ms_per_audit']:.1f} ms/audit (all processes), "
                  f"{result['redis_cmds_per_audit']:.0f} Redis commands/audit from the workers; load average {load()}")
        for system in HTTP_SYSTEMS:
            assert cluster.stack.ctx is not None
            cluster.stack.ctx.latency_ms[system] = 0

        open_ = bench_breaker_open(cluster, args.runs)
        print(f"\n(b) breaker OPEN: call() fast-fail p50 {open_['call_p50']:.3f} ms (p99 {open_['call_p99']:.3f}); "
              f"fetch task round trip p50 {open_['task_p50']:.1f} ms (p99 {open_['task_p99']:.1f})")

        dead = bench_dead_system(cluster, args.bulk)
        print(f"\n(c) Entra down, {dead['people']}-person bulk audit: {dead['status']} in {dead['seconds']:.1f}s; "
              f"{dead['reached']} requests reached Entra {dead['paths']}; per-person errors {dead['error_kinds']}; "
              f"breaker {dead['breaker']}")

        fail_max = settings.breaker_fail_max
    rows = [
        Row("(a) single-user p50, latency 0 ms", single[0]["p50"], 40.0, "ms"),
        Row(f"(a) single-user p50, latency {args.latency_ms} ms", single[1]["p50"], 40.0 + args.latency_ms, "ms"),
        Row(f"(a) p50 added by {args.latency_ms} ms latency (one latency)", single[1]["p50"] - single[0]["p50"],
            float(args.latency_ms), "ms"),
        Row("(b) breaker OPEN: call() fast-fail p50", open_["call_p50"], 5.0, "ms"),
        Row("(b) breaker OPEN: fetch task round trip p50", open_["task_p50"], 5.0, "ms"),
        Row(f"(c) requests reaching a dead system, {args.bulk}-person bulk", float(dead["reached"]),
            float((fail_max + args.workers * args.concurrency) * settings.retry_max_attempts), ""),
    ]
    print_table(rows)
    print(f"\n(a) p99: {single[0]['p99']:.1f} ms at 0 ms, {single[1]['p99']:.1f} ms at {args.latency_ms} ms. "
          f"Total bench time {time.perf_counter() - wall:.0f}s; load average {load()}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"single_user": single, "breaker_open": open_, "dead_system": dead,
                       "rows": [dict(vars(r), ratio=r.ratio, verdict=r.verdict) for r in rows]}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
