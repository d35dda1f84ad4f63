"""Fleet and bulk audits through real workers equal the ground truth at other seeds and sizes than the shared
clusters' (tests/conftest.py: 300 people, seed 11; tests/_fleet_fixtures.py: 2,000, seed 11): every kind, old and
new, planted by a generator run nobody tuned the engine to, and no noise reported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nexus.drift.fields import PERSON_FIELDS, POLICY
from nexus.testing.cluster import Cluster

pytestmark = pytest.mark.integration


def _key(d: dict[str, Any]) -> tuple[str, str, frozenset[str], str]:
    return (d["subject"].lower(), d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"])


@pytest.fixture(scope="module", params=[(120, 29), (700, 5)], ids=["120-people-seed-29", "700-people-seed-5"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    people, seed = request.param
    with Cluster.start(people=people, seed=seed, workers=1, concurrency=2) as running:
        yield running


def test_fleet_and_bulk_audits_equal_the_truth(cluster: Cluster) -> None:
    truth = cluster.truth
    expected = {(e["subject"].lower(), e["field"], frozenset(e["systems"]), e["severity"]) for e in truth["drift"]}
    noise = {(n["subject"].lower(), n["field"]) for n in truth["noise"]}
    nx = cluster.nexus()
    fleet = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=180, poll_s=0.2)
    assert fleet["status"] == "done", (fleet, cluster.worker_logs()[-2000:])
    got = {_key(d) for d in fleet["report"]["discrepancies"]}
    assert got == expected, {"extra": sorted(got - expected)[:8], "missing": sorted(expected - got)[:8]}
    assert {e[1] for e in expected} >= {"orphaned_account", "ambiguous_account", "dormant_account",
                                        "unmanaged_device", "unregistered_device", "account_enabled"}
    assert not {(k[0], k[1]) for k in got} & noise
    # the per-person path: every person a person finding names, looked up one by one by the workers
    subjects = sorted({e["subject"] for e in truth["drift"] if e["field"] in PERSON_FIELDS})
    bulk = nx.wait(nx.submit(nx.request_for(emails=subjects)), timeout=180, poll_s=0.2)
    assert bulk["status"] == "done", bulk
    found = {_key(d) for entry in bulk["report"]["entries"] for d in entry["discrepancies"]}
    wanted = {k for k in expected if k[1] in PERSON_FIELDS}
    assert found == wanted, {"extra": sorted(found - wanted)[:8], "missing": sorted(wanted - found)[:8]}
