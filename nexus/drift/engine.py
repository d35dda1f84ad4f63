"""Public entry points of the drift engine: whole audits, report builders and summaries.

Everything is pure: records in, discrepancies and report dicts out. ``available`` names the systems that were read
(ids or display names); a system missing from it failed, is never compared and its ``_found`` is ``None``.
Discrepancies are sorted by (severity, subject, field, system_a, system_b) so reports are reproducible.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from nexus.controls import control_of
from nexus.drift.accounts import disputed
from nexus.drift.correlate import PersonIndex, PersonMatch
from nexus.drift.devices import compare_device, group_by_serial
from nexus.drift.fields import POLICY, SEVERITY_ORDER, Severity
from nexus.drift.normalize import norm_serial
from nexus.drift.people import available_ids, compare_person
from nexus.findings_policy import DEFAULT_POLICY, FindingsPolicy
from nexus.models import DeviceRecord, Discrepancy, PersonRecord, ReturnTicket, ShipmentRecord
from nexus.systems import DEVICE_SYSTEMS, USER_SYSTEMS, System

__all__ = [
    "DevicesResult",
    "PeopleResult",
    "audit_devices",
    "audit_people",
    "device_report",
    "disputed_accounts",
    "entries_findings",
    "graded",
    "sort_discrepancies",
    "summarize",
    "user_report",
]


@dataclass(slots=True)
class PeopleResult:
    discrepancies: list[Discrepancy]
    matches: list[PersonMatch]  # the people audited
    index: PersonIndex
    not_found: list[str] = field(default_factory=list)  # requested subjects no system knows


@dataclass(slots=True)
class DevicesResult:
    discrepancies: list[Discrepancy]
    serials: list[str]  # normalised serials audited
    index: PersonIndex
    not_found: list[str] = field(default_factory=list)  # requested serials no system knows


def _sort_key(d: Discrepancy) -> tuple[Any, ...]:
    return (
        SEVERITY_ORDER.get(Severity(d.severity), len(SEVERITY_ORDER)),
        d.subject,
        d.field,
        d.system_a,
        d.system_b,
        repr(d.value_a),
        repr(d.value_b),
    )


def sort_discrepancies(discrepancies: Iterable[Discrepancy]) -> list[Discrepancy]:
    """Severity first (critical..low), then subject, field and systems."""
    return sorted(discrepancies, key=_sort_key)


def graded(discrepancies: Iterable[Discrepancy], policy: FindingsPolicy) -> list[Discrepancy]:
    """The policy applied: kinds turned off dropped, severities re-graded; sorted."""
    if policy is DEFAULT_POLICY:
        return sort_discrepancies(discrepancies)
    out = []
    for d in discrepancies:
        if not policy.is_on(d.field):
            continue
        severity = policy.severity(d.field, d.severity)
        out.append(d if severity == d.severity else replace(d, severity=severity))
    return sort_discrepancies(out)


def audit_people(
    workday: Sequence[PersonRecord] | None,
    ad: Sequence[PersonRecord] | None,
    entra: Sequence[PersonRecord] | None,
    available: Collection[str],
    *,
    subjects: Iterable[str] | None = None,
    policy: FindingsPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> PeopleResult:
    """Correlate and compare everyone (or only ``subjects``: emails, UPNs, employee ids, ... of people)."""
    avail = available_ids(available)
    records = [
        rec
        for system, recs in ((System.WORKDAY, workday), (System.AD, ad), (System.ENTRA, entra))
        if system in avail
        for rec in recs or ()
    ]
    index = PersonIndex(records)
    matches = index.matches
    not_found: list[str] = []
    if subjects is not None:
        chosen: dict[str, PersonMatch] = {}
        for subject in subjects:
            match = index.match(index.resolve(subject))
            if match is None:
                not_found.append(subject)
            else:
                chosen.setdefault(match.key, match)
        matches = list(chosen.values())
    found = [d for m in matches for d in compare_person(m, index, avail, policy=policy, now=now)]
    found += disputed_accounts(index, avail, None if subjects is None else matches)
    return PeopleResult(graded(found, policy), matches, index, not_found)


def disputed_accounts(index: PersonIndex, available: Collection[str],
                      among: Sequence[PersonMatch] | None = None) -> list[Discrepancy]:
    """An ``ambiguous_account`` per account matching two workers (one by employee id, one by address), when Workday
    and the account's system were read; ``among``: only those involving one of these people."""
    avail = available_ids(available)
    if System.WORKDAY not in avail:
        return []
    keys = None if among is None else {m.key for m in among}
    out = []
    for rec, system, groups in index.disputes:
        if system in avail and (keys is None or any(g.key in keys for g in groups)):
            out.append(disputed(rec, [g.email or g.key for g in groups], system))
    return out


def audit_devices(
    intune: Sequence[DeviceRecord] | None,
    lansweeper: Sequence[DeviceRecord] | None,
    helix: Sequence[DeviceRecord] | None,
    tickets: Sequence[ReturnTicket] | None,
    shipments: Sequence[ShipmentRecord] | Mapping[str, ShipmentRecord] | None,
    people_records: Iterable[PersonRecord],
    available: Collection[str],
    now: datetime,
    *,
    serials: Iterable[str] | None = None,
    policy: FindingsPolicy = DEFAULT_POLICY,
) -> DevicesResult:
    """Compare every serial any device system knows (or only ``serials``)."""
    avail = available_ids(available)
    index = PersonIndex(people_records)
    by_intune = group_by_serial(intune)
    by_lansweeper = group_by_serial(lansweeper)
    by_helix = group_by_serial(helix)
    by_ticket: dict[str, list[ReturnTicket]] = {}
    for ticket in tickets or ():
        if (key := norm_serial(ticket.serial)) is not None:
            by_ticket.setdefault(key, []).append(ticket)
    if shipments is None:
        ship_map: Mapping[str, ShipmentRecord] = {}
    elif isinstance(shipments, Mapping):
        ship_map = shipments
    else:
        ship_map = {s.tracking_number.strip(): s for s in shipments}
    known = by_intune.keys() | by_lansweeper.keys() | by_helix.keys() | by_ticket.keys()
    not_found: list[str] = []
    if serials is None:
        wanted = sorted(known)
    else:
        wanted = []
        for serial in serials:
            key = norm_serial(serial)
            if key is None or key not in known:
                not_found.append(serial)
            elif key not in wanted:
                wanted.append(key)
    found = [
        d
        for key in wanted
        for d in compare_device(
            key,
            by_intune.get(key, []),
            by_lansweeper.get(key, []),
            by_helix.get(key, []),
            by_ticket.get(key, []),
            ship_map,
            index,
            avail,
            now,
            thresholds=policy.thresholds,
        )
    ]
    return DevicesResult(graded(found, policy), wanted, index, not_found)


# ---------------------------------------------------------------- reports


def _by_system(mapping: Mapping[str, Any]) -> dict[System, Any]:
    return {System.parse(k): v for k, v in mapping.items()}


def _error_entry(error: Mapping[str, Any] | None) -> dict[str, Any]:
    """The contract's ``{type, kind, message}`` (extra keys such as ``status`` pass through)."""
    out = dict(error or {})
    out.setdefault("type", "NotRead")
    out.setdefault("kind", "error")
    out.setdefault("message", "the system was not read")
    return out


def _availability(
    systems: Sequence[System], results: Mapping[System, Any], errors: Mapping[System, Any]
) -> tuple[list[System], list[System], dict[str, dict[str, Any]]]:
    """A system is available when it has a result (even an empty one) and no error."""
    available = [s for s in systems if results.get(s) is not None and s not in errors]
    failed = [s for s in systems if s not in available]
    errs = {s.display: _error_entry(errors.get(s)) for s in failed}
    return available, failed, errs


def user_report(
    email: str,
    records_by_system: Mapping[str, Sequence[PersonRecord] | None],
    errors: Mapping[str, Mapping[str, Any]],
    *,
    policy: FindingsPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The seed's user-audit report (plus ``errors``), from the records each system returned for ``email``.

    ``records_by_system`` maps a system (id or display name) to its records, or to ``None`` when it failed; a
    system absent from it counts as failed too. A failed system's ``<id>_found`` is ``None``, never ``False``.
    """
    results = _by_system(records_by_system)
    errs_in = _by_system(errors)
    available, failed, errs = _availability(USER_SYSTEMS, results, errs_in)
    index = PersonIndex(rec for s in available for rec in results[s] or ())
    match = index.match(index.resolve(email))
    if match is None and len(index.matches) == 1:
        match = index.matches[0]  # the systems found the person by a key the email does not show (e.g. an alias)
    found = compare_person(match, index, available, policy=policy, now=now) if match else []
    if match is not None:
        found += disputed_accounts(index, available, [match])
    discrepancies = graded(found, policy)
    report: dict[str, Any] = {
        "email": email,
        "systems_checked": [s.display for s in USER_SYSTEMS],
        "systems_available": [s.display for s in available],
        "systems_failed": [s.display for s in failed],
    }
    for system in USER_SYSTEMS:
        report[f"{system.value}_found"] = (
            None if system in failed else bool(match is not None and match.records(system))
        )
    report["discrepancy_count"] = len(discrepancies)
    report["discrepancies"] = [d.to_dict() for d in discrepancies]
    report["errors"] = errs
    return report


def device_report(
    serial: str,
    records_by_system: Mapping[str, Sequence[DeviceRecord] | Sequence[ShipmentRecord] | None],
    errors: Mapping[str, Mapping[str, Any]],
    now: datetime,
    *,
    tickets: Sequence[ReturnTicket] | None = None,
    people: Mapping[str, Sequence[PersonRecord] | None] | None = None,
    policy: FindingsPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """The device-audit report, shaped like :func:`user_report`.

    ``records_by_system``: ``intune`` / ``lansweeper`` / ``helix`` -> DeviceRecords for the serial, ``fedex`` ->
    ShipmentRecords for the tickets' tracking numbers (``None`` = failed). ``tickets``: Helix return tickets for the
    serial. ``people``: Workday / AD / Entra records used to resolve owners and their status; those systems are
    listed in ``systems_checked`` after the device systems.
    """
    results = _by_system(records_by_system)
    people_results = _by_system(people or {})
    errs_in = _by_system(errors)
    people_systems = [s for s in USER_SYSTEMS if s in people_results or s in errs_in]
    checked = [*DEVICE_SYSTEMS, *people_systems]
    available, failed, errs = _availability(checked, {**results, **people_results}, errs_in)
    key = norm_serial(serial) or serial
    index = PersonIndex(rec for s in people_systems if s in available for rec in people_results[s] or ())

    def devices(system: System) -> list[DeviceRecord]:
        recs = results.get(system) if system in available else None
        return [r for r in recs or () if isinstance(r, DeviceRecord) and norm_serial(r.serial) == key]

    shipments = [r for r in results.get(System.FEDEX) or () if isinstance(r, ShipmentRecord)]
    own_tickets = [t for t in tickets or () if norm_serial(t.serial) == key]
    found = compare_device(
        key,
        devices(System.INTUNE),
        devices(System.LANSWEEPER),
        devices(System.HELIX),
        own_tickets,
        shipments,
        index,
        available,
        now,
        thresholds=policy.thresholds,
    )
    discrepancies = graded(found, policy)
    numbers = {(t.tracking_number or "").strip() for t in own_tickets} - {""}
    report: dict[str, Any] = {
        "serial": serial,
        "systems_checked": [s.display for s in checked],
        "systems_available": [s.display for s in available],
        "systems_failed": [s.display for s in failed],
    }
    for system in (System.INTUNE, System.LANSWEEPER, System.HELIX):
        report[f"{system.value}_found"] = None if system in failed else bool(devices(system))
    report["fedex_found"] = (
        None if System.FEDEX in failed else any(s.found and s.tracking_number.strip() in numbers for s in shipments)
    )
    report["discrepancy_count"] = len(discrepancies)
    report["discrepancies"] = [d.to_dict() for d in discrepancies]
    report["errors"] = errs
    return report


def _control_order(control: str) -> tuple[int, ...]:
    """``CIS 1.2`` before ``CIS 1.10``: by the safeguard's numbers."""
    return tuple(int(part) for part in control.split()[-1].split(".") if part.isdigit())


def entries_findings(entries: Iterable[Mapping[str, Any]], subject_of: str = "email") -> list[dict[str, Any]]:
    """The distinct findings of a bulk report's entries (each with its subject): a finding two entries show (an
    account matching two workers, one worker audited by two of their addresses) is one finding, counted once."""
    distinct: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for entry in entries:
        for d in entry["discrepancies"]:
            finding = dict(d, subject=d.get("subject") or entry.get(subject_of))
            key = (str(finding["subject"]).casefold(), str(finding["field"]), str(finding["system_a"]),
                   str(finding["system_b"]))
            distinct.setdefault(key, finding)
    return list(distinct.values())


def summarize(discrepancies: Iterable[Discrepancy | Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts by severity (every severity, critical first), by field, by control (CIS safeguard, nexus.controls)
    and by system (``Policy`` excluded)."""
    by_severity = {s.value: 0 for s in sorted(Severity, key=lambda s: SEVERITY_ORDER[s])}
    by_field: dict[str, int] = {}
    by_control: dict[str, int] = {}
    by_system: dict[str, int] = {}
    for d in discrepancies:
        item = d.to_dict() if isinstance(d, Discrepancy) else d
        by_severity[item["severity"]] = by_severity.get(item["severity"], 0) + 1
        by_field[item["field"]] = by_field.get(item["field"], 0) + 1
        control = item.get("control") or control_of(item["field"])
        if control:
            by_control[control] = by_control.get(control, 0) + 1
        for system in {item["system_a"], item["system_b"]} - {POLICY}:
            by_system[system] = by_system.get(system, 0) + 1
    return {
        "by_severity": by_severity,
        "by_field": dict(sorted(by_field.items())),
        "by_control": dict(sorted(by_control.items(), key=lambda kv: _control_order(kv[0]))),
        "by_system": dict(sorted(by_system.items())),
    }
