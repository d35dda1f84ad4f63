"""Issue 10, item 3 on the real rig: the first fleet audit after a breaker's reset timeout reads that system.

Workday was down and its breaker opened; Workday is back and the reset timeout (3 s on the rig) has passed. The
weekly fleet audit then pages Workday with last week's size known, so its pages go out concurrently from the start.
Before units of work, the page that won the half-open trial refused the snapshot's other pages ("HALF_OPEN (trial
in progress)") and Workday was reported failed (or stale) although it answered every request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from clients.breaker import breaker_state, get_breaker
from nexus.policy import BreakerPolicy
from nexus.systems import System
from nexus.testing.cluster import Cluster
from tests._fleet_fixtures import fleet_cluster, last_good_records, run_fleet


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    yield from fleet_cluster(request)


@pytest.mark.integration
def test_the_first_fleet_audit_after_a_recovery_is_not_refused_by_its_own_trial(fleet: Cluster) -> None:
    if last_good_records(fleet, "workday") <= 0:
        run_fleet(fleet)  # last week's audit: the next one knows Workday's size and pages it concurrently
    assert last_good_records(fleet, "workday") > 0
    settings = fleet.nexus().settings
    breaker = get_breaker(System.WORKDAY.value, redis=fleet.redis_url, policy=BreakerPolicy.from_settings(settings))
    breaker.open()  # Workday was down: its circuit opened (the same state every worker reads)
    assert breaker_state("workday", redis=fleet.redis_url)["state"] == "open"
    time.sleep(settings.breaker_reset_timeout_s + 0.2)  # ... and it recovered; the reset timeout passes

    report = run_fleet(fleet)["report"]
    assert report["systems_failed"] == [], report["errors"]
    assert "Workday" not in report["errors"], report["errors"]
    assert report["systems"]["Workday"]["status"] == "ok", report["systems"]["Workday"]
    assert breaker_state("workday", redis=fleet.redis_url)["state"] == "closed"
    assert "HALF_OPEN (trial in progress)" not in fleet.worker_logs()
