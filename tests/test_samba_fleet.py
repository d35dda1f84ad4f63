"""A fleet audit with a real Active Directory: a Samba 4 AD DC (nexus.sim.samba_dc) plus the HTTP simulators, run by
real worker processes, must find exactly the planted drift (the generator's ground truth).

Behind the drill marker (CI runs `make drill`); its own module so the DC of tests/test_samba_ad.py is stopped first
(a DC holds the fixed LDAP ports).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from clients.ad.client import ADClient
from nexus.drift.fields import POLICY
from nexus.settings import Settings
from nexus.sim import samba_dc
from nexus.testing.cluster import Cluster

pytestmark = pytest.mark.drill

PEOPLE = 300


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not samba_dc.is_available():
        pytest.fail("Samba is not installed: `apt-get install -y samba` (CI: scripts/test-prerequisites.sh)")
    with Cluster.start(people=PEOPLE, seed=23, workers=1, ldap_mode="samba") as running:
        yield running


def _key(d: dict[str, Any]) -> tuple[str, str, frozenset[str], str]:
    return (d["subject"].lower(), d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"])


def test_a_fleet_audit_against_samba_finds_exactly_the_planted_drift(cluster: Cluster) -> None:
    assert cluster.env["AD_LDAP_URL"].startswith("ldaps://") and cluster.env.get("AD_CA_FILE")  # verified TLS
    nx = cluster.nexus()
    view = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=300, poll_s=0.2)
    assert view["status"] == "done", (view, cluster.worker_logs()[-3000:])
    report = view["report"]
    assert report["systems_failed"] == [] and report["systems_degraded"] == []
    assert report["systems"]["ActiveDirectory"]["status"] == "ok"
    expected = {(e["subject"].lower(), e["field"], frozenset(e["systems"]), e["severity"])
                for e in cluster.truth["drift"]}
    got = {_key(d) for d in report["discrepancies"]}
    assert got == expected, {"extra": sorted(got - expected)[:10], "missing": sorted(expected - got)[:10]}
    assert any("ActiveDirectory" in k[2] for k in expected)  # the DC's data was compared, not only the others'


def test_the_dc_serves_the_orgs_expiry_and_last_logon(cluster: Cluster) -> None:
    """accountExpires and lastLogonTimestamp round-trip through a real DC as FILETIME (what the drift rules read)."""
    org = cluster.stack.org
    assert org is not None
    settings = Settings(_env_file=None, **{k: v for k, v in cluster.env.items() if k.startswith("AD_")})  # type: ignore[arg-type]
    with ADClient(settings) as client:
        read = {(p.username or "").lower(): p for p in client.list_users()}
    expiring = [u for u in org.ad if u.account_expires is not None]
    logged_on = [u for u in org.ad if u.last_logon is not None]
    assert expiring and logged_on
    for user in org.ad:
        person = read[user.sam.lower()]
        for ours, theirs in ((user.account_expires, person.account_expires), (user.last_logon, person.last_logon)):
            assert (ours is None) == (theirs is None), user.sam
            if ours is not None and theirs is not None:
                assert abs((ours - datetime.fromisoformat(theirs)).total_seconds()) < 1, user.sam
