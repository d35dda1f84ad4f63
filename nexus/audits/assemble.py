"""Turn fetch results (success payloads and failure markers) into engine inputs and reports.

Pure functions over JSON-safe dicts: the Celery tasks stay thin, and this is testable without workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from nexus.drift.engine import device_report, summarize, user_report
from nexus.findings_policy import DEFAULT_POLICY, FindingsPolicy
from nexus.models import DeviceRecord, PersonRecord, ReturnTicket, ShipmentRecord
from nexus.systems import DEVICE_INVENTORIES, USER_SYSTEMS, Role, System

#: Where a device audit looks for the people a device names: the asset register (the system that also holds the
#: return tickets) first, then the other inventories.
OWNER_SOURCES: tuple[System, ...] = tuple(sorted(DEVICE_INVENTORIES, key=lambda s: Role.RETURNS not in s.roles))


def split_results(results: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """{system id: data} of the systems that answered, {system id: error} of those that failed."""
    data: dict[str, Any] = {}
    errors: dict[str, dict[str, Any]] = {}
    for result in results:
        if not isinstance(result, dict) or "system" not in result:
            continue
        if result.get("ok"):
            data[result["system"]] = result.get("data") or {}
        else:
            errors[result["system"]] = result.get("error") or {"type": "Unknown", "message": "no result"}
    return data, errors


def person_records(raw: Any) -> list[PersonRecord]:
    """A people lookup's answer for one reference: a list of records (an older worker's single record or None is
    read too, so results in flight across an upgrade still assemble)."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return [PersonRecord.from_dict(raw)]
    return [PersonRecord.from_dict(r) for r in raw if r]


def _stage1_records(email: str, data: dict[str, Any]) -> dict[str, list[PersonRecord] | None]:
    return {s.value: person_records(data[s.value].get(email)) if s.value in data else None for s in USER_SYSTEMS}


def _unresolved_ids(by_system: dict[str, list[PersonRecord] | None]) -> list[str]:
    """The employee ids the accounts found carry and no Workday record found for the same reference has: the
    worker they name is not in view (a user audited by a UPN that is not their Workday email, or an account that
    matches a second worker). Empty when Workday failed: stage 2 could not change that."""
    workers = by_system.get(System.WORKDAY.value)
    if workers is None:
        return []
    known = {(w.employee_id or "").strip().casefold() for w in workers}
    out: dict[str, None] = {}
    for system in USER_SYSTEMS:
        if system is System.WORKDAY:
            continue
        for account in by_system.get(system.value) or ():
            eid = (account.employee_id or "").strip()
            if eid and eid.casefold() not in known:
                out[eid] = None
    return list(out)


def people_followup_ids(emails: Sequence[str], results: Iterable[dict[str, Any]]) -> list[str]:
    """Stage 2 of a user or bulk part: the employee ids to look up in every people directory before any verdict
    that depends on who else exists (``orphaned_account``, ``ambiguous_account``). Usually none: an account
    normally carries the employee id of the worker its address found."""
    data, _errors = split_results(results)
    out: dict[str, None] = {}
    for email in emails:
        out.update(dict.fromkeys(_unresolved_ids(_stage1_records(email, data))))
    return list(out)


def _with_followup(by_system: dict[str, list[PersonRecord] | None], ids: list[str], data2: dict[str, Any],
                   errors2: dict[str, dict[str, Any]], errors: dict[str, dict[str, Any]]) -> None:
    """Add what stage 2 found for ``ids`` (deduplicated by the system's key). A system whose stage 2 failed is
    failed for this person: without the worker an account names, its verdict would be a guess."""
    for system in USER_SYSTEMS:
        found = by_system.get(system.value)
        if found is None:
            continue
        if system.value in errors2:
            by_system[system.value] = None
            why = errors2[system.value]
            errors[system.value] = {**why, "message": "looking up the workers its accounts' employee ids name: "
                                                      + str(why.get("message") or why.get("type") or "failed")}
            continue
        keys = {r.key for r in found}
        for eid in ids:
            for record in person_records((data2.get(system.value) or {}).get(eid)):
                if record.key not in keys:
                    keys.add(record.key)
                    found.append(record)


def people_reports(emails: Sequence[str], results: Iterable[dict[str, Any]], *,
                   policy: FindingsPolicy = DEFAULT_POLICY,
                   followup: Iterable[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One user report per email, from the people lookups of Workday, AD and Entra; ``followup``: the stage-2
    lookups by the employee ids of :func:`people_followup_ids` (None: there was no stage 2)."""
    data, errors = split_results(results)
    data2, errors2 = split_results(followup or ())
    reports = []
    for email in emails:
        by_system = _stage1_records(email, data)
        entry_errors = dict(errors)
        if followup is not None and (ids := _unresolved_ids(by_system)):
            _with_followup(by_system, ids, data2, errors2, entry_errors)
        reports.append(user_report(email, by_system, entry_errors, policy=policy))
    return reports


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
    all_discrepancies = [dict(d, subject=d.get("subject") or e["email"]) for e in entries for d in e["discrepancies"]]
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
