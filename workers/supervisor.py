"""A supervised group of worker processes: what ``nexus worker`` runs when no ``--queues`` is given.

Why a group: Celery's prefork pool is shared by every queue a worker consumes, so a system that answers slowly
(Workday past its HTTP timeout) fills every pool slot and the other systems' fetches wait behind it (measured: AD
and Entra results at p50 19.9 s instead of about 1 s). Celery has no per-queue concurrency, so isolation means one
worker per queue group: :func:`workers.routing.default_layout` gives each system's queue a worker of its own and
one more for ``compare`` and ``audit`` (benchmarks/bench_isolation.py).

The supervisor starts one child per group (``nexus worker --queues <group> ...``, each a normal Celery worker with
its own pool), restarts a child that exits while the group runs (after 1 s, doubling to 30 s for a child that keeps
dying within a minute of its start), and stops the group on SIGTERM/SIGINT by sending each child SIGTERM (Celery's
warm shutdown: running tasks finish; a child that already had a terminal's Ctrl-C is only asked twice for the same
warm shutdown) and waiting for them; a second signal sends SIGQUIT (Celery's cold shutdown). A child that exits 2
(bad usage: every child would) stops the group with exit code 2; a child that dies within a minute of its start
:data:`CRASH_LOOP_LIMIT` times in a row (a crash loop, e.g. on a configuration error) stops it with exit code 1, so
``Restart=on-failure`` or Kubernetes sees the failure instead of a group restarting one child forever.

A stop signal can land at any point of :meth:`Supervisor.start`, including inside ``Popen`` before the new child is
known: :meth:`Supervisor.start` does not spawn once the group is stopping, and signals the child it just spawned if the
stop came while it was spawning (the handler runs in this same thread, between bytecodes, so checking after the child
is recorded closes the window; blocking the signals around ``Popen`` would not do: the child inherits the mask).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("nexus.workers")

RESTART_START_S = 1.0
RESTART_MAX_S = 30.0
STABLE_AFTER_S = 60.0
CRASH_LOOP_LIMIT = 5
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_delay_s: float = RESTART_START_S
    restart_at: float | None = None
    fast_exits: int = 0  # exits in a row within STABLE_AFTER_S of the start
    signalled: int | None = None  # the last stop signal sent to the current process


@dataclass
class Supervisor:
    """Runs ``children`` until stopped. ``spawn``, ``clock`` and ``sleep`` are injectable for tests."""

    children: list[Child]
    env: dict[str, str] | None = None
    spawn: Callable[[list[str], dict[str, str] | None], subprocess.Popen[bytes]] | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    stopping: int | None = None  # the signal that stops the group, once received
    exit_code: int = 0

    def start(self, child: Child) -> bool:
        """Spawn ``child``'s process, unless the group is stopping (False)."""
        child.restart_at = None
        if self.stopping is not None:
            return False
        proc = (self.spawn or _popen)(child.argv, self.env)
        child.signalled = None
        child.proc = proc
        child.started_at = self.clock()
        log.info("worker %s started (pid %d): %s", child.name, proc.pid, " ".join(child.argv[-6:]))
        if self.stopping is not None and child.signalled is None:
            # The stop signal came while it was being spawned, before stop() could see it.
            self._forward(child, signal.SIGTERM)
        return True

    def stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: a warm shutdown of every child (SIGTERM), a cold one (SIGQUIT) on a second signal."""
        forward = signal.SIGQUIT if self.stopping is not None else signal.SIGTERM
        self.stopping = signum
        for child in self.children:
            self._forward(child, forward)

    @staticmethod
    def _forward(child: Child, signum: int) -> None:
        if child.proc is not None and child.proc.poll() is None:
            child.signalled = signum
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signum)

    def step(self) -> bool:
        """One round: reap and restart children. False once the group has stopped."""
        now = self.clock()
        running = 0
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is None:
                running += 1
                continue
            if self.stopping is not None:
                continue
            if proc is not None and child.restart_at is None:  # it just exited
                code = proc.returncode
                if code == EXIT_USAGE:
                    log.error("worker %s exited %d (bad usage): stopping the group", child.name, code)
                    self.exit_code = EXIT_USAGE
                    self.stop(signal.SIGTERM)
                    continue
                if now - child.started_at >= STABLE_AFTER_S:
                    child.restart_delay_s = RESTART_START_S
                    child.fast_exits = 0
                else:
                    child.fast_exits += 1
                if child.fast_exits >= CRASH_LOOP_LIMIT:
                    log.error("worker %s is in a crash loop: it exited %d times in a row within %.0f s of its start "
                              "(last exit code %s; see its log above): stopping the group", child.name,
                              child.fast_exits, STABLE_AFTER_S, code)
                    self.exit_code = EXIT_FAILURE
                    self.stop(signal.SIGTERM)
                    continue
                child.restart_at = now + child.restart_delay_s
                log.warning("worker %s (pid %d) exited %s; restarting it in %.0f s", child.name, proc.pid, code,
                            child.restart_delay_s)
                child.restart_delay_s = min(child.restart_delay_s * 2, RESTART_MAX_S)
            if child.restart_at is not None and now >= child.restart_at:
                if self.start(child):
                    running += 1
            elif child.restart_at is not None:
                running += 1  # waiting to restart: the group still runs
        return running > 0 or self.stopping is None

    def run(self, poll_s: float = 0.2) -> int:
        """Start every child and supervise until stopped; returns the exit code."""
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                self.start(child)
            while self.step():
                self.sleep(poll_s)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.exit_code


def _popen(argv: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    # Same process group: a terminal's Ctrl-C reaches every child too, as with a single worker.
    return subprocess.Popen(argv, env=env)


def child_hostname(hostname: str, group: str) -> str:
    """The node name of one group's worker: ``<group>@%h`` by default, ``<name>-<group>@<host>`` from ``name@host``."""
    if not hostname:
        return f"{group}@%h"
    name, at, host = hostname.partition("@")
    return f"{name}-{group}@{host}" if at else f"{hostname}-{group}"


def worker_command(queues: Sequence[str], options: Sequence[str]) -> list[str]:
    """``nexus worker --queues ...`` for one group, run by this interpreter."""
    return [sys.executable, "-m", "nexus.cli", "worker", f"--queues={','.join(queues)}", *options]


def child_env() -> dict[str, str]:
    return dict(os.environ)


__all__ = ["CRASH_LOOP_LIMIT", "EXIT_FAILURE", "Child", "Supervisor", "child_env", "child_hostname", "worker_command"]
