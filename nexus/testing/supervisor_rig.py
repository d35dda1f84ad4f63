"""A worker-group supervisor (workers/supervisor.py) on fake processes and an injected clock: no real waits.

Tests of the default worker layout and of the supervisor itself drive a :class:`SupervisorRig`: ``spawned`` lists
every fake process started, in order; a test ends one with ``proc.returncode = n`` and advances ``clock``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from nexus.testing.clock import FakeClock
from workers.supervisor import Child, Supervisor

_PIDS = itertools.count(5000)


class FakeProc:
    """The slice of ``subprocess.Popen`` the supervisor uses; a signal ends it at once (``returncode = -signum``)."""

    def __init__(self) -> None:
        self.pid = next(_PIDS)
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.returncode = -signum


class SupervisorRig:
    """A :class:`Supervisor` of one child per name, spawning :class:`FakeProc`; ``max_sleeps`` stops a test whose
    group never stops (an AssertionError instead of a hang)."""

    def __init__(self, names: list[str], *, max_sleeps: int = 50) -> None:
        self.clock = FakeClock()
        self.spawned: list[FakeProc] = []
        self.on_spawn: Callable[[], None] | None = None  # called inside spawn, before it returns: a signal lands
        self.sleeps = 0
        self.max_sleeps = max_sleeps
        self.sup = Supervisor([Child(n, ["nexus", "worker", n]) for n in names], spawn=self.spawn,
                              clock=self.clock.monotonic, sleep=self.sleep)

    def start_all(self) -> SupervisorRig:
        for child in self.sup.children:
            self.sup.start(child)
        return self

    def spawn(self, argv: list[str], env: Any) -> Any:
        proc = FakeProc()
        self.spawned.append(proc)
        if self.on_spawn is not None:
            hook, self.on_spawn = self.on_spawn, None
            hook()
        return proc

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > self.max_sleeps:
            raise AssertionError("the group never stopped")
        self.clock.sleep(seconds)


__all__ = ["FakeProc", "SupervisorRig"]
