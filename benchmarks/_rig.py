"""The benchmark rig: the test suite's Cluster (:mod:`nexus.testing.cluster`: a private redis-server and every
simulator, slapd for AD), with the PRODUCTION retry, breaker and bulk policy (the tests shorten them) and workers
started the way an operator starts them, ``nexus worker``. Also CPU accounting for those worker processes, from /proc.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from nexus.settings import Settings
from nexus.testing.cluster import ROOT, TEST_POLICY_ENV, Cluster, WorkerProcess
from nexus.testing.procs import children_of, cpu_ms
from workers.routing import default_layout


def production_policy_env() -> dict[str, str]:
    """Every variable the test rig shortens, set back to the default in nexus.settings (metrics stay off)."""
    by_alias = {f.alias: f.default for f in Settings.model_fields.values() if f.alias}
    env = {name: str(by_alias[name]) for name in TEST_POLICY_ENV if name in by_alias}
    env["NEXUS_METRICS_PORT"] = "0"
    return env


@contextlib.contextmanager
def bench_cluster(*, people: int, seed: int, workers: int, concurrency: int, loglevel: str,
                  extra_env: dict[str, str] | None = None) -> Iterator[Cluster]:
    env = {**production_policy_env(), **(extra_env or {})}
    with Cluster.start(people=people, seed=seed, workers=0, extra_env=env) as cluster:
        for i in range(workers):
            spawn_nexus_worker(cluster, f"bench{i + 1}", concurrency=concurrency, loglevel=loglevel)
        cluster.wait_ready(workers * len(default_layout()))  # each `nexus worker` is a group (workers/supervisor.py)
        yield cluster


def spawn_nexus_worker(cluster: Cluster, name: str, *, concurrency: int, loglevel: str) -> WorkerProcess:
    log_path = cluster.workdir / f"{name}.log"
    cmd = [sys.executable, "-m", "nexus.cli", "--log-level", loglevel, "worker", f"--concurrency={concurrency}",
           f"--hostname={name}@%h", f"--loglevel={loglevel}"]
    env = {**os.environ, **cluster.env, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProcess(name, proc, log_path)
    cluster.workers.append(worker)  # Cluster.start stops it on exit
    return worker


def worker_pids(cluster: Cluster) -> set[int]:
    """The worker processes and every descendant: pool children, and with the default `nexus worker` (a supervised
    group) the group's Celery workers and their pool children."""
    pids = {w.proc.pid for w in cluster.workers}
    frontier = set(pids)
    while frontier:
        frontier = children_of(frontier) - pids
        pids |= frontier
    return pids


__all__ = ["bench_cluster", "cpu_ms", "production_policy_env", "spawn_nexus_worker", "worker_pids"]
