"""Shared fixtures. The integration rig (real Redis, simulators, worker processes) starts only when a test asks.

Lanes: a test that uses a fixture of :data:`SERVER_FIXTURES` (directly or through another fixture) is marked
``integration`` here, so ``make unit`` (``-m "not integration and not drill and not slow"``) never starts a
redis-server, slapd, a simulator stack or a worker process. Tests that start one inline carry the mark themselves.

The session-wide cluster is started once; its environment (short retry and breaker policies, the simulators'
URLs, the private Redis) is applied to this process only while a test that uses it runs, so unit tests collected in
between see the defaults. Module-scoped fixtures built on ``cluster`` run with the environment NOT applied: they
should pass ``cluster.env`` explicitly (as subprocesses do) or call ``cluster.activate()`` themselves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nexus.testing.cluster import Cluster

#: Fixtures that start real servers or processes (redis-server, slapd, the simulator stack, Celery workers, the CLI).
SERVER_FIXTURES = frozenset({
    "cluster", "rig",  # below: the session cluster
    "redis_url",  # nexus.testing.redis_server.redis_server_fixture's default name
    "ad",  # tests/_ad_fixtures.py: slapd and its fault proxy
    "pipeline",  # tests/test_mcp.py: the simulator stack (slapd for AD)
    "fleet_module", "guarded",  # tests/_fleet_fixtures.py: the fleet cluster
    "flower_rig", "metrics_cluster", "remediating", "restartable", "matrix", "idle_redis", "sim_process",
    "sentinels", "ha_cluster",  # tests/test_sentinel_failover.py: a Sentinel-managed Redis and its cluster
})


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """300 people, seed 11, two worker processes of two pool children each."""
    with Cluster.start(people=300, seed=11, workers=2, concurrency=2) as c:
        c.deactivate()
        try:
            yield c
        finally:
            c.activate()  # Cluster.start restores the original environment on exit


@pytest.fixture(autouse=True)
def _cluster_environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """Point this process at the session cluster for the duration of a test that uses it."""
    if "cluster" not in request.fixturenames and "rig" not in request.fixturenames:
        yield
        return
    c: Cluster = request.getfixturevalue("cluster")
    c.activate()
    try:
        yield
    finally:
        c.deactivate()


@pytest.fixture()
def rig(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, reset before and after the test (faults, request log, breakers)."""
    cluster.reset()
    yield cluster
    cluster.reset()
