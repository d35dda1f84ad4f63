"""History is only ever about what was observed (issue 10, item 2).

A finding is ``resolved`` only when every system it involves AND every system its rule needs to decide it was read
in this audit; otherwise it is ``unknown`` and keeps its ``since``. Through the real fleet comparison and report
(snapshots in fakeredis), by hand for the reported case, and as a property over generated organisations.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.drift.fields import COMPLIANCE, DEVICE_OWNER, JOB_TITLE, LAST_SYNC
from nexus.history import diff_reports, identity
from nexus.models import DeviceRecord, PersonRecord
from nexus.sim.orggen import generate_org
from nexus.sim.records import OrgRecords, org_records
from nexus.systems import System
from tests._fleet_unit import UnitFleet, finding_keys

T1 = datetime(2026, 4, 13, 6, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=7)
T3 = T2 + timedelta(days=7)
ALL_SYSTEMS = tuple(System)


def _alice_org() -> OrgRecords:
    """One active worker with a noncompliant laptop that has not synced for 60 days, deployed in Helix."""
    old = (T1 - timedelta(days=60)).isoformat()
    def person(system: str, key: str, **extra: Any) -> PersonRecord:
        return PersonRecord(system, key, employee_id="E1", email="alice@corp.example", upn="alice@corp.example",
                            display_name="Alice Smith", title="Engineer", department="R&D", enabled=True, **extra)

    return OrgRecords(
        workday=[person("workday", "E1", status="Active")],
        ad=[person("ad", "CN=Alice Smith,OU=Staff,DC=corp,DC=example", username="asmith")],
        entra=[person("entra", "0000-aaaa")],
        intune=[DeviceRecord("intune", "i1", "SER-1", owner="alice@corp.example", last_seen=old,
                             compliance="noncompliant")],
        lansweeper=[DeviceRecord("lansweeper", "l1", "SER-1", owner="CORP\\asmith")],
        helix=[DeviceRecord("helix", "h1", "SER-1", owner="alice@corp.example", status="Deployed")],
    )


def test_intune_findings_are_unknown_not_resolved_when_workday_and_helix_are_down() -> None:
    """The reproduction: Intune was read and nothing changed, but the rule needs Workday and Helix to decide."""
    fleet = UnitFleet()
    org = _alice_org()
    first = fleet.audit("f1", org, T1)
    assert {d["field"] for d in first["discrepancies"]} == {COMPLIANCE, LAST_SYNC}

    second = fleet.audit("f2", org, T2, failed={System.WORKDAY, System.HELIX})
    assert second["systems_failed"] == ["Workday", "Helix"]
    assert second["resolved"] == []
    unknown = {d["field"]: d for d in second["unknown"]}
    assert set(unknown) == {COMPLIANCE, LAST_SYNC}
    for d in unknown.values():
        assert d["history"] == "unknown" and d["since"] == T1.isoformat()
        assert "Workday" in d["reason"] and "Helix" in d["reason"]  # says which systems were missing
    assert second["history"]["resolved"] == 0 and second["history"]["unknown"] == 2

    # The next good audit sees them again: persisting since the first sighting, not new.
    third = fleet.audit("f3", org, T3)
    assert [(d["field"], d["history"], d["since"]) for d in sorted(third["discrepancies"], key=lambda d: d["field"])] \
        == [(COMPLIANCE, "persisting", T1.isoformat()), (LAST_SYNC, "persisting", T1.isoformat())]
    assert third["resolved"] == [] and third["unknown"] == []


def test_a_finding_really_gone_is_resolved_when_its_rule_could_decide() -> None:
    """Only Lansweeper (not needed by the Intune health rule) failed: the fixed device is resolved."""
    fleet = UnitFleet()
    org = _alice_org()
    fleet.audit("f1", org, T1)
    fixed = OrgRecords(workday=org.workday, ad=org.ad, entra=org.entra, helix=org.helix, lansweeper=org.lansweeper,
                       intune=[DeviceRecord("intune", "i1", "SER-1", owner="alice@corp.example",
                                            last_seen=T2.isoformat(), compliance="compliant")])
    second = fleet.audit("f2", fixed, T2, failed={System.FEDEX})
    assert sorted(d["field"] for d in second["resolved"]) == [COMPLIANCE, LAST_SYNC]
    assert second["unknown"] == []


def test_diff_reports_uses_the_same_rule() -> None:
    fleet = UnitFleet()
    org = _alice_org()
    full = fleet.audit("f1", org, T1, annotate=False)
    partial = fleet.audit("f2", org, T2, failed={System.WORKDAY, System.HELIX}, annotate=False)
    changes = diff_reports(full, partial)
    assert changes["resolved"] == []
    assert sorted(d["field"] for d in changes["unknown"]) == [COMPLIANCE, LAST_SYNC]
    assert all("Workday" in d["reason"] and "Helix" in d["reason"] for d in changes["unknown"])


def test_diff_reports_fallback_rule_findings_are_not_resolved_by_a_run_that_did_not_apply_it() -> None:
    """AD vs Entra is compared only while Workday cannot be read: a full run does not re-check it."""
    ad_vs_entra = {"subject": "bob@corp.example", "field": JOB_TITLE, "system_a": "ActiveDirectory",
                   "value_a": "Engineer", "system_b": "Entra", "value_b": "Intern", "severity": "medium"}
    a = {"kind": "fleet", "systems_failed": ["Workday"], "discrepancies": [ad_vs_entra]}
    b = {"kind": "fleet", "systems_failed": [], "discrepancies": []}
    changes = diff_reports(a, b)
    assert changes["resolved"] == [] and [d["field"] for d in changes["unknown"]] == [JOB_TITLE]
    assert "Workday" in changes["unknown"][0]["reason"]
    # Workday down again in B: the fallback rule ran, and found nothing: resolved.
    assert [d["field"] for d in diff_reports(a, dict(b, systems_failed=["Workday"]))["resolved"]] == [JOB_TITLE]


def test_a_bulk_snapshot_report_with_a_stale_or_degraded_system_resolves_none_of_its_findings() -> None:
    """A bulk audit answered from snapshots names an unread system only in its ``stale``/``degraded`` sections and
    its ``systems`` frame (no ``systems_stale`` list): its findings are unknown in a diff, never resolved."""
    title = {"subject": "bob@corp.example", "field": JOB_TITLE, "system_a": "Workday", "value_a": "Engineer",
             "system_b": "Entra", "value_b": "Intern", "severity": "medium"}
    entry = {"email": "bob@corp.example", "discrepancies": [], "discrepancy_count": 0}
    a = {"kind": "bulk", "systems_failed": [], "entries": [dict(entry, discrepancies=[title], discrepancy_count=1)]}
    frame = {s.display: {"status": "ok"} for s in System}
    for section, status in (("stale", {"age_s": 3600, "audit_id": "f0", "taken_at": "2026-12-01T06:00:00Z"}),
                            ("degraded", {"records": 10, "last_good": 300, "reason": "shrunk"})):
        b = {"kind": "bulk", "path": "snapshot", "systems_failed": [], "entries": [entry],
             "systems": {**frame, "Entra": {"status": section}}, section: {"Entra": status}}
        changes = diff_reports(a, b)
        assert changes["resolved"] == [], section
        assert [d["field"] for d in changes["unknown"]] == [JOB_TITLE], section
        assert "Entra" in changes["unknown"][0]["reason"]
    # the same report with Entra read: the finding is gone, and it is resolved
    b_ok = {"kind": "bulk", "path": "snapshot", "systems_failed": [], "entries": [entry], "systems": frame}
    assert [d["field"] for d in diff_reports(a, b_ok)["resolved"]] == [JOB_TITLE]


def test_device_owner_needs_the_people_systems_that_resolve_owners() -> None:
    owner = {"subject": "SER-9", "field": DEVICE_OWNER, "system_a": "Helix", "value_a": "ann@corp.example",
             "system_b": "Lansweeper", "value_b": "CORP\\bob", "severity": "high"}
    a = {"kind": "fleet", "systems_failed": [], "discrepancies": [owner]}
    b = {"kind": "fleet", "systems_failed": ["ActiveDirectory"], "discrepancies": []}
    assert diff_reports(a, b)["resolved"] == []


# -- the property -----------------------------------------------------------------------------------------------------
@cache
def _org(people: int, seed: int) -> OrgRecords:
    return org_records(generate_org(people, seed, T1), resolve_managers=False)


@cache
def _full(people: int, seed: int) -> tuple[dict[str, Any], ...]:
    return tuple(UnitFleet().audit("full", _org(people, seed), T1, annotate=False)["discrepancies"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=st.integers(10, 24), seed=st.integers(0, 5),
       failed=st.sets(st.sampled_from(ALL_SYSTEMS)))
def test_nothing_is_resolved_that_a_full_run_would_still_report(people: int, seed: int,
                                                                  failed: set[System]) -> None:
    org = _org(people, seed)
    full = list(_full(people, seed))
    fleet = UnitFleet()
    first = fleet.audit("a1", org, T1)
    assert finding_keys(first["discrepancies"]) == finding_keys(full)
    second = fleet.audit("a2", org, T1, failed=failed)

    full_keys = finding_keys(full)
    resolved = finding_keys(second["resolved"])
    assert not resolved & full_keys, sorted(resolved & full_keys)[:5]
    # the same data: nothing can have been resolved at all
    assert resolved == set()
    # every earlier finding is reported again or unknown, with its since kept
    reported = finding_keys(second["discrepancies"]) | finding_keys(second.get("waived") or [])
    unknown = {identity(d): d for d in second["unknown"]}
    for d in first["discrepancies"]:
        k = identity(d)
        if k in reported:
            continue
        assert k in unknown, (d, sorted(failed))
        assert unknown[k]["since"] == d["since"] and unknown[k]["history"] == "unknown"
    # diff_reports of the two stored reports agrees
    changes = diff_reports(first, second)
    assert not finding_keys(changes["resolved"]) & full_keys


def test_every_field_has_a_rule_and_unknown_kinds_need_every_system() -> None:
    from nexus.drift.fields import SEVERITY
    from nexus.drift.rules import RULES, undecided

    assert {f for r in RULES for f in r.fields} == set(SEVERITY)
    odd = {"subject": "x", "field": "new_kind", "system_a": "Intune", "system_b": "Policy"}
    assert undecided(odd, set(System)) is None
    assert undecided(odd, set(System) - {System.FEDEX}) == "not re-checked: FedEx not read in this audit"


def _mutated(org: OrgRecords, seed: int) -> OrgRecords:
    """The organisation a week later: some records gone, some titles, statuses, syncs and compliance changed."""
    import dataclasses
    import random

    rng = random.Random(seed)

    def people(records: list[PersonRecord]) -> list[PersonRecord]:
        out = []
        for rec in records:
            roll = rng.random()
            if roll < 0.08:
                continue
            if roll < 0.2:
                rec = dataclasses.replace(rec, title=rng.choice(["Engineer", "Manager", rec.title]))
            elif roll < 0.28:
                rec = dataclasses.replace(rec, enabled=not rec.enabled,
                                          status=rng.choice(["Active", "Terminated", rec.status]))
            out.append(rec)
        return out

    def devices(records: list[DeviceRecord]) -> list[DeviceRecord]:
        out = []
        for rec in records:
            roll = rng.random()
            if roll < 0.08:
                continue
            if roll < 0.25:
                rec = dataclasses.replace(rec, compliance=rng.choice(["compliant", "noncompliant"]),
                                          last_seen=rng.choice([T1.isoformat(), rec.last_seen]),
                                          status=rng.choice(["Deployed", "In Stock", rec.status]))
            out.append(rec)
        return out

    return OrgRecords(workday=people(org.workday), ad=people(org.ad), entra=people(org.entra),
                      intune=devices(org.intune), lansweeper=devices(org.lansweeper), helix=devices(org.helix),
                      tickets=[t for t in org.tickets if rng.random() > 0.1], shipments=org.shipments)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=st.integers(10, 24), seed=st.integers(0, 5), change=st.integers(0, 10_000),
       failed=st.sets(st.sampled_from(ALL_SYSTEMS)))
def test_after_changes_nothing_is_resolved_that_a_full_run_would_still_report(people: int, seed: int, change: int,
                                                                               failed: set[System]) -> None:
    before = _org(people, seed)
    after = _mutated(before, change)
    full_after = finding_keys(UnitFleet().audit("full", after, T2, annotate=False)["discrepancies"])
    fleet = UnitFleet()
    first = fleet.audit("a1", before, T1)
    second = fleet.audit("a2", after, T2, failed=failed)
    resolved = finding_keys(second["resolved"])
    assert not resolved & full_after, (sorted(failed), sorted(resolved & full_after)[:5])
    assert not finding_keys(diff_reports(first, second)["resolved"]) & full_after
    if not failed:  # everything read: every earlier finding is either reported again or resolved
        assert second["unknown"] == []


def test_a_waived_finding_is_not_resolved_in_a_diff() -> None:
    """A waiver accepts a finding, it does not make it go away: B still found it."""
    enabled = {"subject": "cy@corp.example", "field": "account_enabled", "system_a": "Workday",
               "value_a": "Terminated", "system_b": "ActiveDirectory", "value_b": True, "severity": "critical"}
    stamp = {"id": "w-0123456789", "reason": "HR", "expires_at": "2026-05-01T00:00:00+00:00", "created_by": None}
    a = {"kind": "fleet", "systems_failed": [], "discrepancies": [enabled]}
    b = {"kind": "fleet", "systems_failed": [], "discrepancies": [], "waived": [{**enabled, "waiver": stamp}]}
    changes = diff_reports(a, b)
    assert changes["resolved"] == []
    assert [(d["field"], d["waiver"]["id"]) for d in changes["persisting"]] == [("account_enabled", stamp["id"])]
    user_b = {"email": "cy@corp.example", "systems_failed": [], "discrepancies": [],
              "waived": [{**enabled, "waiver": stamp}]}
    assert diff_reports(a, user_b)["resolved"] == [] and len(diff_reports(a, user_b)["persisting"]) == 1
    assert diff_reports(b, a)["new"] == []  # and waived in A, counted in B: the same finding, not new
