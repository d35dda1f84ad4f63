"""Shared fixtures. The integration rig (real Redis, simulators, worker processes) starts only when a test asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._cluster import Cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """300 people, seed 11, two worker processes of two pool children each."""
    with Cluster.start(people=300, seed=11, workers=2, concurrency=2) as c:
        yield c


@pytest.fixture()
def rig(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, reset before and after the test (faults, request log, breakers)."""
    cluster.reset()
    yield cluster
    cluster.reset()
