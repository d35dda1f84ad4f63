"""`nexus sim --org examples/org` end to end: the example export served by every simulator (slapd for AD), real
Redis and a real worker process, a fleet audit and user audits.

The expected findings are written here from the example files themselves (examples/org/README.md explains each):
they are what the authors planted, not what the engine happened to report. The export was taken at
:data:`EXPORTED_AT`; the import moves its dates to today, so the ages (a device unsynced for 60 days, a return
ticket open for 60 days) are the same whatever day the test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nexus.drift.fields import DEVICE_FIELDS, PERSON_FIELDS, POLICY
from nexus.sim.org_import import load_org
from nexus.testing.cluster import Cluster

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "org"
EXPORTED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WAIT = 120.0

#: (subject, field, systems) planted in examples/org (see its README).
PLANTED = {
    ("grace.lee@corp.example", "account_enabled", frozenset({"Workday", "ActiveDirectory"})),
    ("dmitri.ivanov@corp.example", "job_title", frozenset({"Workday", "Entra"})),
    ("farid.haddad@corp.example", "department", frozenset({"Workday", "ActiveDirectory"})),
    ("hiro.tanaka@corp.example", "account_exists", frozenset({"Workday", "Entra"})),
    ("ines.moreau@corp.example", "manager", frozenset({"Workday", "ActiveDirectory"})),
    ("jonas.berg@corp.example", "display_name", frozenset({"Workday", "Entra"})),
    ("5CG5678DIM", "compliance", frozenset({"Intune"})),
    ("C02EMMA0001", "last_sync", frozenset({"Intune"})),
    ("PF0SHARED1", "device_owner", frozenset({"Helix", "Lansweeper"})),
    ("PF0INES001", "device_owner", frozenset({"Helix", "Intune"})),
    ("5CG9999GRC", "device_active", frozenset({"Workday", "Intune"})),
    ("5CG9999GRC", "return_shipment", frozenset({"Helix", "FedEx"})),
}
#: Differences the example holds that are not drift: Liam's title differs from Workday's in case only (AD), and
#: the Entra guest, the domain's Administrator and the computer account are nobody's.
NOISE = {("liam.walsh@corp.example", "job_title")}


def _key(d: dict[str, Any], subject: str | None = None) -> tuple[str, str, frozenset[str]]:
    return (d.get("subject") or subject or "", d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}))


@pytest.fixture(scope="module")
def example_cluster() -> Iterator[Cluster]:
    imported = load_org(EXAMPLE, exported_at=EXPORTED_AT)
    with Cluster.start(org=imported.org, workers=1, concurrency=2) as cluster:
        yield cluster


def test_fleet_audit_reports_exactly_what_the_example_plants(example_cluster: Cluster) -> None:
    nx = example_cluster.nexus()
    view = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=WAIT)
    assert view["status"] == "done", (view, example_cluster.worker_logs()[-3000:])
    report = view["report"]
    assert report["systems_failed"] == [], report.get("errors")
    got = {_key(d) for d in report["discrepancies"] if d["field"] in PERSON_FIELDS + DEVICE_FIELDS}
    assert got == PLANTED, {"missed": PLANTED - got, "extra": got - PLANTED}
    assert not {(s, f) for s, f, _ in got} & NOISE
    assert report["people"] >= 12  # the twelve workers (identities only AD or Entra holds may add rows)


@pytest.mark.parametrize(("email", "expected"), [
    ("grace.lee@corp.example", {("account_enabled", frozenset({"Workday", "ActiveDirectory"}))}),
    ("farid.haddad@corp.example", {("department", frozenset({"Workday", "ActiveDirectory"}))}),
    ("chloe.dubois@corp.example", set()),  # non-ASCII name, base64 in the LDIF: found everywhere, no drift
    ("liam.walsh@corp.example", set()),  # title differs in case only
])
def test_user_audit_of_the_example(example_cluster: Cluster, email: str,
                                   expected: set[tuple[str, frozenset[str]]]) -> None:
    nx = example_cluster.nexus()
    view = nx.wait(nx.submit(nx.request_for(email=email)), timeout=WAIT)
    assert view["status"] == "done", view
    report = view["report"]
    assert report["systems_failed"] == []
    assert report["workday_found"] is True and report["ad_found"] is True and report["entra_found"] is True
    got = {_key(d, email)[1:] for d in report["discrepancies"]}
    assert got == expected


def test_an_export_of_another_domain_is_served_under_its_own_base_dn(tmp_path: Path) -> None:
    from clients.ad.client import ADClient
    from nexus.settings import Settings
    from nexus.sim.stack import SimulatorStack

    (tmp_path / "ad.ldif").write_text(
        "dn: CN=Lee\\, Ann,OU=Staff,DC=contoso,DC=com\nchangetype: add\nobjectClass: top\nobjectClass: person\n"
        "objectClass: organizationalPerson\nobjectClass: user\nsAMAccountName: ann.lee\n"
        "userPrincipalName: ann.lee@contoso.com\nemployeeID: 1\nuserAccountControl: 512\n", encoding="utf-8")
    org = load_org(tmp_path).org
    with SimulatorStack(org=org, ldap_mode="slapd", port=0) as stack:
        env = stack.env()
        assert env["AD_BASE_DN"] == "DC=contoso,DC=com"
        assert env["AD_BIND_DN"] == "CN=svc-nexus,OU=Service Accounts,DC=contoso,DC=com"
        client = ADClient(Settings(**env))  # type: ignore[arg-type]  # the environment's names (field aliases)
        try:
            people = list(client.list_users())
        finally:
            client.close()
    assert [(p.key, p.upn, p.enabled) for p in people] == [
        ("CN=Lee\\, Ann,OU=Staff,DC=contoso,DC=com", "ann.lee@contoso.com", True)]
