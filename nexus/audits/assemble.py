"""Turn fetch results (success payloads and failure markers) into engine inputs and reports.

Pure functions over JSON-safe dicts: the Celery tasks stay thin, and this is testable without workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from nexus.audits.followup import person_records, replay, split_results
from nexus.drift.engine import device_report, entries_findings, summarize, user_report
from nexus.findings_policy import DEFAULT_POLICY, FindingsPolicy
from nexus.models import DeviceRecord, PersonRecord, ReturnTicket, ShipmentRecord
from nexus.systems import DEVICE_INVENTORIES, USER_SYSTEMS, Role, System

#: Where a device audit looks for the people a device names: the asset register (the system that also holds the
#: return tickets) first, then the other inventories.
OWNER_SOURCES: tuple[System, ...] = tuple(sorted(DEVICE_INVENTORIES, key=lambda s: Role.RETURNS not in s.roles))


def people_reports(emails: Sequence[str], results: Iterable[dict[str, Any]], *,
                   policy: FindingsPolicy = DEFAULT_POLICY,
                   rounds: Sequence[Iterable[dict[str, Any]]] = ()) -> list[dict[str, Any]]:
    """One user report per email, from the people lookups of Workday, AD and Entra (stage 1) and the follow-up
    ``rounds`` that asked for what they named (nexus.audits.followup)."""
    return [user_report(view.email, view.by_system, view.errors, policy=policy)
            for view in replay(emails, results, rounds)]


def device_owner_refs(serial: str, stage1: dict[str, Any]) -> tuple[list[str], list[str]]:
    """From the device lookups: the people references to resolve and the tracking numbers to track."""
    refs: list[str] = []
    numbers: list[str] = []
    for system in OWNER_SOURCES:
        entry = (stage1.get(system.value) or {}).get(serial) or {}
        device = entry.get("device")
        if device and device.get("owner"):
            refs.append(str(device["owner"]))
        for ticket in entry.get("tickets") or ():
            if ticket.get("customer_email"):
                refs.append(str(ticket["customer_email"]))
            if ticket.get("tracking_number"):
                numbers.append(str(ticket["tracking_number"]))
    return list(dict.fromkeys(refs)), list(dict.fromkeys(numbers))


def device_full_report(
    serial: str,
    stage1_results: Iterable[dict[str, Any]],
    stage2_results: Iterable[dict[str, Any]],
    now: datetime,
    *,
    policy: FindingsPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    data1, errors1 = split_results(stage1_results)
    data2, errors2 = split_results(stage2_results)
    records: dict[str, list[Any] | None] = {}
    tickets: list[ReturnTicket] = []
    for system in DEVICE_INVENTORIES:
        if system.value not in data1:
            records[system.value] = None
            continue
        entry = data1[system.value].get(serial) or {}
        device = entry.get("device")
        records[system.value] = [DeviceRecord.from_dict(device)] if device else []
        tickets += [ReturnTicket.from_dict(t) for t in entry.get("tickets") or ()]
    fedex_asked = System.FEDEX.value in data2 or System.FEDEX.value in errors2
    if System.FEDEX.value in data2:
        records[System.FEDEX.value] = [ShipmentRecord.from_dict(s) for s in data2[System.FEDEX.value].values()]
    elif System.FEDEX.value in errors2:
        records[System.FEDEX.value] = None
    else:
        records[System.FEDEX.value] = []  # nothing to track: FedEx was not needed
    people: dict[str, list[PersonRecord] | None] = {}
    for system in USER_SYSTEMS:
        if system.value in data2:
            people[system.value] = [rec for raw in data2[system.value].values() for rec in person_records(raw)]
        elif system.value in errors2:
            people[system.value] = None
    report = device_report(serial, records, {**errors1, **errors2}, now, tickets=tickets, people=people,
                           policy=policy)
    if not fedex_asked:
        # FedEx was not read: it is neither found nor failed. Say why instead of reporting fedex_found: false.
        report["fedex_found"] = None
        report["systems_available"] = [s for s in report["systems_available"] if s != System.FEDEX.display]
        helix_failed = System.HELIX.display in report["systems_failed"]
        report["systems_skipped"] = {System.FEDEX.display: "Helix unavailable: no return tickets to track"
                                     if helix_failed else "no return ticket for this device"}
    return report


def bulk_report(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One report for many people: per-person entries plus a summary by severity, field and system."""
    failed = sorted({s for e in entries for s in e.get("systems_failed", [])})
    # A system may fail for some parts of a bulk audit and not others: say for how many people, with one reason.
    errors: dict[str, Any] = {}
    for entry in entries:
        for system, error in (entry.get("errors") or {}).items():
            slot = errors.setdefault(system, {**error, "people": 0})
            slot["people"] += 1
    all_discrepancies = entries_findings(entries)  # a finding two entries show counts once
    return {
        "people": len(entries),
        "people_with_drift": sum(1 for e in entries if e["discrepancy_count"]),
        "systems_checked": entries[0]["systems_checked"] if entries else [],
        "systems_failed": failed,
        "errors": errors,
        "discrepancy_count": len(all_discrepancies),
        "summary": summarize(all_discrepancies),
        "entries": entries,
    }
