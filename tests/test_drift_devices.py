"""Device rules and the device report (docs/drift-rules.md, "Devices")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from nexus.drift import PersonIndex, audit_devices, compare_device, device_report
from nexus.findings_policy import parse_policy
from nexus.models import DeviceRecord, Discrepancy, ReturnTicket, ShipmentRecord
from tests._drift_fixtures import (
    EMP_DN,
    EMP_EID,
    EMP_EMAIL,
    MGR_EMAIL,
    NOW,
    SERIAL,
    clean_devices,
    clean_people,
    days_ago,
    device,
    fields_of,
    shipment,
    ticket,
    with_,
)

DEVICE_SYSTEMS = {"intune", "lansweeper", "helix", "fedex"}


def people(**worker_changes: Any) -> PersonIndex:
    workday, ad_, entra_ = clean_people()
    if worker_changes:
        workday = with_(workday, EMP_EID, **worker_changes)
    # Jane's mail is an alias in AD (Helix writes the alias, Intune the UPN)
    ad_ = with_(ad_, EMP_DN, aliases=("SMTP:jane.doe@corp.example", "smtp:jdoe@example.com"))
    return PersonIndex([*workday, *ad_, *entra_])


def check(
    intune: list[DeviceRecord],
    lansweeper: list[DeviceRecord],
    helix: list[DeviceRecord],
    *,
    tickets: list[ReturnTicket] | None = None,
    shipments: list[ShipmentRecord] | None = None,
    index: PersonIndex | None = None,
    available: set[str] = DEVICE_SYSTEMS,
) -> list[Discrepancy]:
    found = compare_device(
        SERIAL,
        intune,
        lansweeper,
        helix,
        tickets or [],
        shipments or [],
        index or people(),
        available,
        NOW,
    )
    assert all(d.subject == SERIAL for d in found), found
    return found


# ------------------------------------------------------------------ noise


def test_clean_device_has_no_drift() -> None:
    assert check(*clean_devices()) == []


def test_owner_noise_is_not_drift() -> None:
    """UPN vs CORP\\sam vs alias email, owner case, serial case: all the same owner and device."""
    intune = [device("intune", EMP_EMAIL.upper(), serial=SERIAL.lower())]
    lansweeper = [device("lansweeper", "corp\\JDOE", serial=f" {SERIAL} ")]
    helix = [device("helix", "JDoe@Example.com")]
    assert check(intune, lansweeper, helix) == []
    result = audit_devices(intune, lansweeper, helix, [], [], [], DEVICE_SYSTEMS, NOW)
    assert result.serials == [SERIAL]  # one device, however each system spells the serial


# ------------------------------------------------------------------ rule 1: device_owner


def test_device_owner_differs() -> None:
    intune, lansweeper, helix = clean_devices()
    intune = [replace(intune[0], owner=MGR_EMAIL)]  # another known person
    lansweeper = [replace(lansweeper[0], owner="CORP\\nobody")]  # resolves to nobody
    found = check(intune, lansweeper, helix)
    assert fields_of(found) == {("device_owner", "Helix", "Intune"), ("device_owner", "Helix", "Lansweeper")}
    assert {(d.value_a, d.value_b) for d in found} == {(EMP_EMAIL, MGR_EMAIL), (EMP_EMAIL, "CORP\\nobody")}
    assert {d.severity for d in found} == {"high"}


def test_device_owner_missing_in_intune() -> None:
    intune, lansweeper, helix = clean_devices()
    found = check([replace(intune[0], owner=None)], lansweeper, helix)
    assert fields_of(found) == {("device_owner", "Helix", "Intune")}


def test_unresolvable_owner_is_not_judged_without_ad() -> None:
    """AD failed: CORP\\sam cannot be resolved, so Lansweeper's owner is unknown, not "nobody"."""
    workday, _, entra_ = clean_people()
    index = PersonIndex([*workday, *entra_])
    assert check(*clean_devices(), index=index) == []


def test_helix_unavailable_compares_intune_with_lansweeper() -> None:
    intune, lansweeper, helix = clean_devices()
    available = {"intune", "lansweeper", "fedex"}
    assert check(intune, lansweeper, helix, available=available) == []
    lansweeper = [replace(lansweeper[0], owner="CORP\\mmanager")]
    found = check(intune, lansweeper, helix, available=available)
    assert fields_of(found) == {("device_owner", "Intune", "Lansweeper")}


def test_failed_device_system_is_not_compared() -> None:
    intune, lansweeper, helix = clean_devices()
    lansweeper = [replace(lansweeper[0], owner="CORP\\mmanager")]
    assert check(intune, lansweeper, helix, available={"intune", "helix", "fedex"}) == []


# ------------------------------------------------------------------ rule 2: last_sync, compliance


@pytest.mark.parametrize(("synced_days_ago", "stale"), [(29.9, False), (30.1, True), (90, True)])
def test_last_sync_threshold(synced_days_ago: float, stale: bool) -> None:
    intune, lansweeper, helix = clean_devices()
    intune = [replace(intune[0], last_seen=days_ago(synced_days_ago))]
    found = check(intune, lansweeper, helix)
    assert fields_of(found) == ({("last_sync", "Intune", "Policy")} if stale else set())
    if stale:
        assert found[0].severity == "medium" and found[0].value_a == intune[0].last_seen


def test_noncompliant() -> None:
    intune, lansweeper, helix = clean_devices()
    found = check([replace(intune[0], compliance="noncompliant")], lansweeper, helix)
    assert fields_of(found) == {("compliance", "Intune", "Policy")}
    assert found[0].severity == "medium"


def test_rule_2_needs_a_deployed_device() -> None:
    intune, lansweeper, helix = clean_devices()
    intune = [replace(intune[0], compliance="noncompliant", last_seen=days_ago(60))]
    assert check(intune, lansweeper, [replace(helix[0], status="In Inventory")]) == []


# ------------------------------------------------------------------ rule 3: device_active


def test_device_of_departed_worker_still_syncing() -> None:
    index = people(status="Terminated", enabled=False, termination_date="2026-03-01")
    intune, lansweeper, helix = clean_devices()
    helix = [replace(helix[0], status="In Inventory")]
    # synced after termination (and noncompliant, and stale would not matter: rule 2 does not apply)
    intune = [replace(intune[0], last_seen="2026-03-05T08:00:00Z", compliance="noncompliant")]
    found = check(intune, lansweeper, helix, index=index)
    assert fields_of(found) == {("device_active", "Workday", "Intune")}
    assert (found[0].value_a, found[0].value_b, found[0].severity) == ("2026-03-01", "2026-03-05T08:00:00Z", "critical")


def test_device_of_departed_worker_quiet_since() -> None:
    index = people(status="Terminated", enabled=False, termination_date="2026-03-01")
    intune, lansweeper, helix = clean_devices()
    intune = [replace(intune[0], last_seen="2026-02-27T08:00:00Z")]  # stale, but the owner left: not last_sync
    assert check(intune, lansweeper, [replace(helix[0], status="Deployed")], index=index) == []


# ------------------------------------------------------------------ rule 4: return_shipment


@pytest.mark.parametrize(
    ("opened", "ship", "overdue"),
    [
        (20, shipment("DL"), False),  # delivered
        (20, shipment("IT"), True),  # in transit for 20 days
        (20, shipment("DE"), True),
        (20, shipment(None, found=False), True),  # unknown to FedEx
        (20, None, True),  # not even looked up: unknown
        (10, shipment("IT"), False),  # young: legitimately in transit
        (10, shipment(None, found=False), False),
    ],
)
def test_return_shipment(opened: float, ship: ShipmentRecord | None, overdue: bool) -> None:
    intune, lansweeper, helix = clean_devices()
    found = check(intune, lansweeper, helix, tickets=[ticket(opened)], shipments=[ship] if ship else [])
    assert fields_of(found) == ({("return_shipment", "Helix", "FedEx")} if overdue else set())
    if overdue:
        assert found[0].severity == "critical" and found[0].value_a == "794600000001"


def test_fedex_unavailable_means_no_return_findings() -> None:
    found = check(*clean_devices(), tickets=[ticket(60)], available={"intune", "lansweeper", "helix"})
    assert found == []


# ------------------------------------------------------------------ audit_devices and the report


def test_audit_devices_groups_by_serial_and_filters() -> None:
    intune, lansweeper, helix = clean_devices()
    other = "C02XK1ABCD"
    intune = [*intune, device("intune", MGR_EMAIL, key="i2", serial=other, compliance="noncompliant")]
    helix = [*helix, device("helix", MGR_EMAIL, key="h2", serial=other.lower())]
    workday, ad_, entra_ = clean_people()
    result = audit_devices(
        intune, lansweeper, helix, [ticket(30)], [shipment("IT")], [*workday, *ad_, *entra_], DEVICE_SYSTEMS, NOW
    )
    assert result.serials == sorted([SERIAL, other])
    assert [(d.subject, d.field) for d in result.discrepancies] == [
        (SERIAL, "return_shipment"),
        (other, "compliance"),
    ]
    only = audit_devices(
        intune, lansweeper, helix, [], [], [*workday, *ad_, *entra_], DEVICE_SYSTEMS, NOW, serials=[other, "NOPE"]
    )
    assert only.serials == [other] and only.not_found == ["NOPE"]


def test_device_report_shape() -> None:
    intune, lansweeper, helix = clean_devices()
    intune = [replace(intune[0], compliance="noncompliant")]
    workday, ad_, entra_ = clean_people()
    report = device_report(
        SERIAL.lower(),
        {"intune": intune, "lansweeper": lansweeper, "helix": helix, "fedex": [shipment("DL")]},
        {},
        NOW,
        tickets=[ticket(40)],
        people={"workday": workday, "ad": ad_, "entra": entra_},
    )
    assert report == {
        "serial": SERIAL.lower(),
        "systems_checked": ["Intune", "Lansweeper", "Helix", "FedEx", "Workday", "ActiveDirectory", "Entra"],
        "systems_available": ["Intune", "Lansweeper", "Helix", "FedEx", "Workday", "ActiveDirectory", "Entra"],
        "systems_failed": [],
        "intune_found": True,
        "lansweeper_found": True,
        "helix_found": True,
        "fedex_found": True,
        "discrepancy_count": 1,
        "discrepancies": [
            {
                "field": "compliance",
                "system_a": "Intune",
                "value_a": "noncompliant",
                "system_b": "Policy",
                "value_b": "compliant",
                "severity": "medium",
                "subject": SERIAL,
                "control": "CIS 4.1",
                "remediation": "Bring the device back to policy, or restrict its access until it complies.",
            }
        ],
        "errors": {},
    }


def test_device_report_failed_systems_are_null() -> None:
    intune, _, _ = clean_devices()
    error = {"type": "CircuitOpenError", "kind": "breaker_open", "message": "Helix circuit open"}
    report = device_report(
        SERIAL,
        {"intune": intune, "lansweeper": [], "helix": None, "fedex": None},
        {"helix": error, "fedex": {"type": "TransientError", "kind": "transient", "message": "timeout"}},
        NOW,
    )
    assert report["systems_checked"] == ["Intune", "Lansweeper", "Helix", "FedEx"]
    assert report["systems_failed"] == ["Helix", "FedEx"]
    assert (report["intune_found"], report["lansweeper_found"]) == (True, False)
    assert report["helix_found"] is None and report["fedex_found"] is None
    assert report["errors"]["Helix"] == error
    assert report["discrepancy_count"] == 0


def test_a_machine_on_the_network_that_intune_does_not_manage_nor_helix_register() -> None:
    intune, lansweeper, helix = clean_devices()
    people = [r for recs in clean_people() for r in recs]
    rogue = replace(lansweeper[0], key="lsw-9", serial="NX0000000001", name="DESKTOP-ROGUE", owner=None,
                    last_seen=days_ago(3))
    found = audit_devices(intune, [*lansweeper, rogue], helix, [], [], people, DEVICE_SYSTEMS, NOW).discrepancies
    assert {(d.field, d.subject, d.system_a, d.system_b) for d in found} == {
        ("unmanaged_device", "NX0000000001", "Lansweeper", "Intune"),
        ("unregistered_device", "NX0000000001", "Helix", "Lansweeper")}
    assert {d.to_dict()["control"] for d in found} == {"CIS 1.2", "CIS 1.1"}
    # a machine Lansweeper last saw long ago is gone from the network: neither finding
    gone = replace(rogue, last_seen=days_ago(300))
    assert audit_devices(intune, [*lansweeper, gone], helix, [], [], people, DEVICE_SYSTEMS, NOW).discrepancies == []
    # the window is the policy's
    wide = parse_policy("[thresholds]\nunmanaged_seen_within_days = 400\n")
    assert len(audit_devices(intune, [*lansweeper, gone], helix, [], [], people, DEVICE_SYSTEMS, NOW,
                             policy=wide).discrepancies) == 2
    # without Intune read, "Intune does not manage it" is unknown: only the register's finding
    read = ["Lansweeper", "Helix", "Workday", "ActiveDirectory", "Entra", "FedEx"]
    no_intune = audit_devices([], [*lansweeper, rogue], helix, [], [], people, read, NOW).discrepancies
    assert {d.field for d in no_intune} == {"unregistered_device"}


def test_an_enrolled_laptop_the_register_does_not_hold_is_unregistered() -> None:
    intune, lansweeper, _helix = clean_devices()
    people = [r for recs in clean_people() for r in recs]
    found = audit_devices(intune, lansweeper, [], [], [], people, DEVICE_SYSTEMS, NOW).discrepancies
    assert {(d.field, d.system_a, d.system_b) for d in found} == {("unregistered_device", "Helix", "Intune"),
                                                                  ("unregistered_device", "Helix", "Lansweeper")}
    assert all(d.severity == "medium" for d in found)
