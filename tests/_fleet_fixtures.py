"""One fleet cluster shared by tests/test_fleet.py and tests/test_fleet_guard.py.

2,000 people, two worker processes, the last-known-good fallback ON (the guard tests need it; the fleet tests that
need a plain "failed" system first forget that system's last good snapshot). Starting a cluster and warming its
workers costs about as much as all the fleet tests together, so the processes are started once per session and
stopped at its end, while the test process's environment (which Redis and simulators ``Nexus()`` talks to) is
pointed at this cluster only for the duration of each module that uses it, exactly as a module-scoped cluster
would do, so the session ``cluster`` of tests/conftest.py is never disturbed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from nexus.fleet.store import LAST_GOOD
from nexus.systems import System
from nexus.testing.cluster import Cluster

PEOPLE = 2000
WAIT = 120.0
FLEET_ENV = {
    "NEXUS_FLEET_STALE_FALLBACK": "true",
    # budgets stay on (the limiter runs against the real Redis) but roomy: audits run back to back here
    "NEXUS_RATE_BUDGETS": "lansweeper=6000/60s,entra=1750/10s,intune=2000/20s,fedex=1400/10s",
}

_shared: dict[str, Any] = {}


def fleet_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The body of a module-scoped fixture: ``yield from fleet_cluster(request)``."""
    cluster: Cluster | None = _shared.get("cluster")
    if cluster is None:
        stack = contextlib.ExitStack()
        cluster = stack.enter_context(Cluster.start(people=PEOPLE, seed=11, workers=2, concurrency=2,
                                                    extra_env=FLEET_ENV))
        request.config.add_cleanup(stack.close)
        _shared["cluster"] = cluster
    else:
        cluster.activate()
        _forget_closed_pools()
    try:
        cluster.reset()
        yield cluster
    finally:
        cluster.reset()
        cluster.deactivate()
        _forget_closed_pools()


def _forget_closed_pools() -> None:
    """Switching the app back to a broker URL it used before would get the pool closed when it switched away
    (kombu's global registry is keyed by URL): empty the registry so the next use opens a fresh pool."""
    import kombu.pools

    kombu.pools.reset()


def run_fleet(cluster: Cluster, on_progress: Any = None, poll_s: float = 0.05) -> dict[str, Any]:
    """Submit a fleet audit and wait for it; the finished view (status done asserted)."""
    nx = cluster.nexus()
    view = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=WAIT, poll_s=poll_s, on_progress=on_progress)
    assert view["status"] == "done", (view, cluster.worker_logs()[-3000:])
    return dict(view)


def forget_last_good(cluster: Cluster, *systems: System) -> None:
    """No last good snapshot for these systems: a failure is then reported failed, not answered stale."""
    from nexus.registry import STREAMS

    keys = [f"{LAST_GOOD}:{stream}" for system in systems for stream in STREAMS[system]]
    cluster.redis().delete(*keys)


def last_good_records(cluster: Cluster, stream: str) -> int:
    raw = cluster.redis().hget(f"{LAST_GOOD}:{stream}", "records")
    return int(raw) if raw is not None else -1
