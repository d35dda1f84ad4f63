"""Drift history across real fleet audits (issue 10, item 2): Workday and Helix down resolve nothing that Intune
still shows, and the next good audit finds those findings persisting since their first sighting (2,000 people,
real workers and simulators; the shared fleet cluster of tests/_fleet_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nexus.drift.fields import COMPLIANCE, LAST_SYNC
from nexus.history import identity
from nexus.systems import System
from nexus.testing.cluster import Cluster
from tests._fleet_fixtures import fleet_cluster, forget_last_good, run_fleet


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    yield from fleet_cluster(request)


@pytest.mark.integration
def test_workday_and_helix_down_resolve_no_intune_finding(fleet: Cluster) -> None:
    first = run_fleet(fleet)["report"]
    intune = {identity(d): d for d in first["discrepancies"] if d["field"] in (COMPLIANCE, LAST_SYNC)}
    assert intune

    forget_last_good(fleet, System.WORKDAY, System.HELIX)  # failed, not answered stale
    fleet.fault("workday", "down")
    fleet.fault("helix", "down")
    second = run_fleet(fleet)["report"]
    assert set(second["systems_failed"]) == {"Workday", "Helix"}
    assert "Intune" in second["systems_available"]
    assert second["resolved"] == [], second["resolved"][:3]
    unknown = {identity(d): d for d in second["unknown"]}
    assert set(intune) <= set(unknown)
    assert all(unknown[k]["since"] == intune[k]["since"] for k in intune)

    fleet.reset()  # faults cleared, breakers closed
    third = run_fleet(fleet)["report"]
    again = {identity(d): d for d in third["discrepancies"]}
    assert set(intune) <= set(again)
    assert all((again[k]["history"], again[k]["since"]) == ("persisting", intune[k]["since"]) for k in intune)
