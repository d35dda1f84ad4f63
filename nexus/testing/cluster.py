"""The integration rig: a private redis-server, every simulator (slapd for AD), and real Celery worker PROCESSES.

    with Cluster.start(people=300, seed=11, workers=2) as cluster:
        nx = cluster.nexus()              # the facade, talking to the private Redis
        cluster.fault("workday", "down")  # POST /_sim/faults
        cluster.requests()                # GET /_sim/requests

Worker processes get the simulators' env file plus short countdowns (``NEXUS_RETRY_BACKOFF_BASE_S``) and a short
breaker reset, so the tests exercise the real retry and breaker paths without waiting for the production 2/4/8 s.

Used by the integration tests (``tests/conftest.py`` starts one per session), the fault-matrix drill
(``scripts/faultmatrix``) and the benchmarks (``benchmarks/_rig.py``, with the production policies). Linux only
(pool children are found through ``/proc``); needs ``redis-server`` and ``slapd`` installed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from nexus.runtime import Runtime
from nexus.sim.org_model import Org
from nexus.sim.stack import SimulatorStack
from nexus.testing.procs import alive, children_of, parent_pid
from nexus.testing.redis_server import redis_server

#: The directory worker processes start in: the checkout, when nexus is installed editable (``make setup``).
ROOT = Path(__file__).resolve().parents[2]

TEST_POLICY_ENV = {
    "NEXUS_RETRY_BACKOFF_BASE_S": "0.25",
    "NEXUS_RETRY_BACKOFF_MAX_S": "2",
    "NEXUS_RETRY_AFTER_MAX_S": "5",
    "NEXUS_BREAKER_RESET_TIMEOUT_S": "3",
    "NEXUS_HTTP_TIMEOUT_S": "3",
    "NEXUS_HTTP_CONNECT_TIMEOUT_S": "2",
    "NEXUS_BULK_CHUNK_SIZE": "5",
    "NEXUS_BULK_WINDOW": "4",
    "NEXUS_METRICS_PORT": "0",  # no /metrics endpoint unless a test asks for one (tests/test_metrics.py)
}


def repoint_celery_app() -> None:
    """Drop the broker pools and result backend that ``celery_app`` caches, so a changed ``broker_url`` or
    ``result_backend`` takes effect (``conf.update`` alone keeps publishing to the first Redis this process used,
    which breaks a second Cluster in the same test session), and so no connection from before a Redis restart is
    reused."""
    from kombu import pools

    from workers.app import celery_app

    app: Any = celery_app
    pools.reset()  # kombu keeps one pool per broker URL: drop them all, stale connections with them
    app._pool = None
    app.amqp._producer_pool = None
    backend = app._backend_cache or getattr(app._local, "backend", None)
    consumer = getattr(backend, "result_consumer", None) if backend is not None else None
    if consumer is not None:  # its pubsub would keep reconnecting to a Redis that is gone
        with contextlib.suppress(Exception):
            consumer.stop()
        consumer._pubsub = None
    app._backend_cache = None
    vars(app._local).pop("backend", None)


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def children(self) -> list[int]:
        """The pids of this worker's pool children (processes whose parent is the worker's main process)."""
        return sorted(children_of([self.proc.pid]))


@dataclass
class Cluster:
    stack: SimulatorStack
    redis_url: str
    env: dict[str, str]
    workdir: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    #: Workers killed by :meth:`kill_worker` (kept for their logs).
    retired: list[WorkerProcess] = field(default_factory=list)
    _saved_env: Runtime | None = None  # the runtime this process had before the cluster's
    _active: bool = True

    def deactivate(self) -> None:
        """Give this process back its own environment while the cluster keeps running (a session-wide cluster
        must not leak its short test policies into unit tests that run between integration tests)."""
        if self._active:
            self._restore_env(self._saved_env)
            self._active = False

    def activate(self) -> None:
        """Point this process at the cluster again (after :meth:`deactivate`)."""
        if not self._active:
            self._saved_env = self._apply_env_here()
            self._active = True

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def start(cls, *, people: int = 300, seed: int = 11, workers: int = 2, concurrency: int = 2,
              extra_env: dict[str, str] | None = None, redis_url: str | None = None,
              ldap_mode: str = "slapd", org: Org | None = None) -> Iterator[Cluster]:
        """``redis_url``: use that Redis (e.g. one the test restarts on a fixed port) instead of a private one;
        ``ldap_mode``: who serves AD (``"samba"``: a real Samba AD DC, see nexus.sim.samba_dc); ``org``: serve this
        organisation (e.g. one imported by :func:`nexus.sim.org_import.load_org`) instead of generating one of
        ``people`` from ``seed``."""
        own_redis = redis_server() if redis_url is None else contextlib.nullcontext(redis_url)
        with own_redis as url, SimulatorStack(people=people, seed=seed, ldap_mode=ldap_mode, org=org) as stack, \
                tempfile.TemporaryDirectory(prefix="nexus-cluster-") as tmp:
            policy_file = Path(tmp) / "policy.toml"
            policy_file.write_text("")  # the defaults; policy() rewrites it (workers re-read a changed file)
            env = {**stack.env(), "REDIS_URL": url, **TEST_POLICY_ENV, "NEXUS_POLICY_FILE": str(policy_file),
                   **(extra_env or {})}
            cluster = cls(stack=stack, redis_url=url, env=env, workdir=Path(tmp))
            saved = cluster._apply_env_here()
            cluster._saved_env = saved
            try:
                for i in range(workers):
                    cluster.spawn_worker(f"w{i + 1}", concurrency=concurrency)
                cluster.wait_ready(workers)
                yield cluster
            finally:
                cluster.stop_workers()
                cluster._restore_env(saved)

    @contextlib.contextmanager
    def policy(self, text: str) -> Iterator[None]:
        """The workers' findings policy (NEXUS_POLICY_FILE) is ``text`` for the duration; the defaults after."""
        path = Path(self.env["NEXUS_POLICY_FILE"])
        path.write_text(text)
        try:
            yield
        finally:
            path.write_text("")

    def _apply_env_here(self) -> Runtime | None:
        """Point this (the test) process at the same Redis and simulators as the workers: a runtime of its own,
        built from the cluster's settings (the environment is left alone). Returns the runtime it replaced."""
        from nexus import runtime
        from nexus.settings import Settings
        from workers.app import celery_app
        from workers.config import celery_config

        settings = Settings(**self.env)  # type: ignore[arg-type]  # the environment's names (field aliases)
        previous = runtime.install(runtime.Runtime(settings))
        celery_app.conf.update(celery_config(settings))
        self._reset_process_caches()
        return previous

    def _restore_env(self, previous: Runtime | None) -> None:
        from nexus import runtime
        from nexus.settings import get_settings
        from workers.app import celery_app
        from workers.config import celery_config

        # a runtime built on demand (not installed by anyone) is not put back pinned: that would freeze the
        # settings it was built from for every later test; it is closed, and the next use builds a fresh one
        keep = previous if previous is not None and previous.pinned else None
        mine = runtime.install(keep)
        if mine is not None and mine is not previous:
            mine.close()
        if previous is not None and keep is None:
            previous.close()
        celery_app.conf.update(celery_config(get_settings()))
        self._reset_process_caches()

    @staticmethod
    def _reset_process_caches() -> None:
        from clients.breaker import clear_registry

        clear_registry()
        repoint_celery_app()

    def spawn_worker(self, name: str, *, concurrency: int = 2, queues: str = "") -> WorkerProcess:
        log_path = self.workdir / f"{name}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool=prefork",
               f"--concurrency={concurrency}", f"--hostname={name}@%h", "--without-gossip", "--without-mingle",
               "--loglevel=INFO"]
        from workers.routing import ALL_QUEUES

        cmd.append(f"--queues={queues or ','.join(ALL_QUEUES)}")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        worker = WorkerProcess(name, proc, log_path)
        self.workers.append(worker)
        return worker

    def wait_ready(self, count: int, timeout: float = 60.0) -> None:
        from workers.app import celery_app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in self.workers:
                if w.proc.poll() is not None:
                    raise RuntimeError(f"worker {w.name} exited {w.proc.returncode}:\n{w.log()[-3000:]}")
            replies = celery_app.control.ping(timeout=0.5) or []
            if len(replies) >= count:
                return
        logs = "\n".join(f"--- {w.name}\n{w.log()[-2000:]}" for w in self.workers)
        raise RuntimeError(f"workers not ready after {timeout}s:\n{logs}")

    def stop_workers(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.proc.pid, signal.SIGTERM)
        for w in self.workers:
            try:
                w.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait(5)
        self.workers.clear()

    # -- helpers for tests --------------------------------------------------------------------------------------
    @property
    def sim_url(self) -> str:
        return self.stack.url

    def nexus(self) -> Any:
        from nexus.facade import Nexus

        return Nexus()

    def redis(self) -> redis.Redis:
        """A new client of the cluster's Redis: ``redis_url``, or the master its sentinels name now (a cluster
        started with ``REDIS_SENTINELS`` in ``extra_env``: tests/test_sentinel_failover.py)."""
        from nexus.redis_conn import connect
        from nexus.settings import Settings

        if not self.env.get("REDIS_SENTINELS"):
            return redis.Redis.from_url(self.redis_url)
        return connect(Settings(**self.env).redis_target)  # type: ignore[arg-type]  # the environment's names

    def fault(self, system: str, mode: str, **params: Any) -> None:
        httpx.post(f"{self.sim_url}/_sim/faults", json={"system": system, "mode": mode, **params}).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.sim_url}/_sim/faults").raise_for_status()

    def requests(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.sim_url}/_sim/requests").json())

    def reset_requests(self) -> None:
        httpx.delete(f"{self.sim_url}/_sim/requests").raise_for_status()

    def reset_breakers(self) -> None:
        r = self.redis()
        keys = list(r.scan_iter("nexus:breaker:*"))
        if keys:
            r.delete(*keys)

    def reset(self) -> None:
        """Between tests: no faults, empty request log, every breaker closed."""
        self.clear_faults()
        self.reset_requests()
        self.reset_breakers()

    def worker_logs(self) -> str:
        """Every worker's log, killed workers' included."""
        return "\n".join(w.log() for w in (*self.retired, *self.workers))

    # -- killing workers (tests/test_worker_kill.py, tests/test_worker_death.py) ----------------------------------
    def owner_of(self, pid: int) -> WorkerProcess | None:
        """The worker of this cluster whose pool child ``pid`` is (None for any other process)."""
        parent = parent_pid(pid)
        return next((w for w in self.workers if parent is not None and w.proc.pid == parent), None)

    def kill_pool_child(self, pid: int) -> WorkerProcess:
        """SIGKILL one pool child of one of this cluster's workers; refuses any pid that is not one. The worker
        notices (``WorkerLostError``), requeues the child's task (``task_reject_on_worker_lost``) and forks a new
        child. Returns the child's worker."""
        owner = self.owner_of(pid)
        if owner is None:
            raise ValueError(f"pid {pid} is not a pool child of this cluster's workers")
        os.kill(pid, signal.SIGKILL)
        return owner

    def kill_worker(self, worker: WorkerProcess, timeout: float = 10.0) -> list[int]:
        """SIGKILL a whole worker: its main process and every pool child (one process group: workers are started
        in their own session). Nothing acknowledges or requeues its messages: they wait in the broker's unacked
        index until a consumer restores them after the visibility timeout. Returns the pids that were killed; the
        worker moves to :attr:`retired`."""
        if worker not in self.workers:
            raise ValueError(f"worker {worker.name} is not a running worker of this cluster")
        pids = [worker.proc.pid, *worker.children()]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while any(alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
            time.sleep(0.02)  # the children are reaped by init once their parent is gone
        left = [pid for pid in pids[1:] if alive(pid)]
        if left:
            raise RuntimeError(f"pool children {left} of {worker.name} survived SIGKILL")
        self.workers.remove(worker)
        self.retired.append(worker)
        return pids

    @property
    def truth(self) -> dict[str, Any]:
        assert self.stack.org is not None
        return self.stack.org.truth


__all__ = ["ROOT", "TEST_POLICY_ENV", "Cluster", "WorkerProcess", "repoint_celery_app"]
