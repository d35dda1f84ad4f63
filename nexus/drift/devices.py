"""Device rules (docs/drift-rules.md, "Devices"): one serial's records in, discrepancies out.

Helix is the asset register. Owners are compared as resolved people (:class:`PersonIndex`); the owner's status comes
from their Workday record in the index. Choices where the rules are silent (all conservative: no finding unless the
data proves drift):

- An owner reference that resolves to nobody counts as "nobody" only when the index could have resolved it (it holds
  records of a system that writes that kind of reference, or that system was read): with AD failed, ``CORP\\sam``
  cannot be resolved, so Lansweeper's owner is not judged.
- Owner status unknown (no Workday record: Workday failed or the owner is not a worker): rule 2 applies when Helix
  says ``Deployed``, rule 3 cannot. Helix unavailable: rule 2 applies when Workday says the owner is active.
- A Helix ticket whose tracking number is absent from ``shipments`` is "unknown to FedEx": the caller looks up every
  ticket's number when FedEx is available. A ticket without a submit date is never judged overdue.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nexus.drift import fields as F
from nexus.drift.correlate import PersonIndex
from nexus.drift.normalize import OwnerKind, norm_serial, norm_text, parse_owner
from nexus.drift.people import available_ids, is_terminated
from nexus.drift.rules import OWNER_FALLBACK, RETURNS
from nexus.findings_policy import DEFAULT_POLICY, Thresholds
from nexus.models import DeviceRecord, Discrepancy, ReturnTicket, ShipmentRecord
from nexus.systems import System

__all__ = ["compare_device", "device_subject", "group_by_serial", "parse_date", "parse_time"]

DELIVERED = "DL"
DEPLOYED = "deployed"
NONCOMPLIANT = "noncompliant"

_PEOPLE = frozenset({System.WORKDAY, System.AD, System.ENTRA})

#: which person systems must be read to resolve each kind of reference
_RESOLVED_BY: dict[OwnerKind, frozenset[System]] = {
    OwnerKind.EMAIL: frozenset({System.WORKDAY, System.AD, System.ENTRA}),
    OwnerKind.SAM: frozenset({System.AD}),
    OwnerKind.DN: frozenset({System.AD}),
    OwnerKind.GUID: frozenset({System.ENTRA}),
    OwnerKind.EMPLOYEE_ID: frozenset({System.WORKDAY, System.AD, System.ENTRA}),
}


def parse_time(value: str | datetime | None) -> datetime | None:
    """ISO 8601 (``Z`` accepted) -> aware UTC datetime; naive values are taken as UTC; junk -> None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_date(value: str | date | None) -> date | None:
    """An ISO date (or the date part of an ISO datetime)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def device_subject(serial: str) -> str:
    """The serial trimmed and upper-cased: one spelling whichever system's record came first."""
    return norm_serial(serial) or serial


def _disc(field: str, a: str, value_a: Any, b: str, value_b: Any, subject: str) -> Discrepancy:
    return Discrepancy(field, a, value_a, b, value_b, F.SEVERITY[field].value, subject=subject)


class _Owners:
    """Owner comparison with the "could the index have resolved it" guard (raw references: resolution is cached)."""

    def __init__(self, index: PersonIndex, avail: frozenset[System]) -> None:
        self.index = index
        self.readable = index.systems | (avail & _PEOPLE)

    def key(self, raw: str | None) -> str | None:
        return self.index.resolve(raw) if raw else None

    def decidable(self, raw: str) -> bool:
        owner = parse_owner(raw)
        return owner is not None and bool(_RESOLVED_BY[owner.kind] & self.readable)

    def differ(self, raw_a: str | None, raw_b: str | None) -> bool:
        blank_a, blank_b = not (raw_a and raw_a.strip()), not (raw_b and raw_b.strip())
        if blank_a or blank_b:
            return blank_a != blank_b
        assert raw_a is not None and raw_b is not None
        ka, kb = self.key(raw_a), self.key(raw_b)
        if ka is not None and kb is not None:
            return ka != kb
        if ka is not None:
            return self.decidable(raw_b)
        if kb is not None:
            return self.decidable(raw_a)
        return False  # neither side names anyone we know: no evidence either way


def compare_device(
    serial: str,
    intune: Sequence[DeviceRecord],
    lansweeper: Sequence[DeviceRecord],
    helix: Sequence[DeviceRecord],
    tickets: Sequence[ReturnTicket],
    shipments: Mapping[str, ShipmentRecord] | Sequence[ShipmentRecord],
    index: PersonIndex,
    available: Collection[str],
    now: datetime,
    *,
    thresholds: Thresholds = DEFAULT_POLICY.thresholds,
) -> list[Discrepancy]:
    """Apply device rules 1-4 to one serial's records (each sequence holds that system's records for the serial);
    ``thresholds`` from the findings policy (nexus.findings_policy)."""
    avail = available_ids(available)
    now = parse_time(now) or now
    intune = list(intune) if System.INTUNE in avail else []
    lansweeper = list(lansweeper) if System.LANSWEEPER in avail else []
    helix = list(helix) if System.HELIX in avail else []
    subject = device_subject(serial)
    owners = _Owners(index, avail)
    out: list[Discrepancy] = []

    # rule 1: device_owner
    helix_owner = next((r.owner for r in helix if r.owner and r.owner.strip()), None)
    if System.HELIX in avail:
        if helix_owner is not None:
            for system, recs in ((System.INTUNE, intune), (System.LANSWEEPER, lansweeper)):
                for rec in recs:
                    if owners.differ(helix_owner, rec.owner):
                        out.append(_disc(F.DEVICE_OWNER, "Helix", helix_owner, system.display, rec.owner, subject))
    elif (OWNER_FALLBACK.runs(avail) and intune and lansweeper
          and owners.differ(intune[0].owner, lansweeper[0].owner)):
        out.append(_disc(F.DEVICE_OWNER, "Intune", intune[0].owner, "Lansweeper", lansweeper[0].owner, subject))

    # rules 2 and 3: the owner's standing in Workday
    owner_key = next(
        (
            k
            for ref in (helix_owner, *(r.owner for r in intune), *(r.owner for r in lansweeper))
            if (k := owners.key(ref)) is not None
        ),
        None,
    )
    worker = index.workday(owner_key)
    terminated = worker is not None and is_terminated(worker)
    if terminated:
        assert worker is not None
        ended = parse_date(worker.termination_date)
        for rec in intune:
            synced = parse_time(rec.last_seen)
            if ended is not None and synced is not None and synced.date() > ended:
                out.append(_disc(F.DEVICE_ACTIVE, "Workday", worker.termination_date, "Intune", rec.last_seen, subject))
    elif _in_use(helix, worker is not None, System.HELIX in avail):
        out.extend(_intune_health(intune, now, subject, thresholds.stale_after_days))

    # rule 4: return shipments
    if RETURNS.runs(avail):
        out.extend(_returns(tickets, shipments, now, subject, thresholds.return_overdue_days))

    # rules 5 and 6: the inventories against each other (the other direction: from what is on the network)
    out.extend(_inventory(intune, lansweeper, helix, avail, now, subject, thresholds.unmanaged_seen_within_days))
    return out


def _inventory(intune: Sequence[DeviceRecord], lansweeper: Sequence[DeviceRecord], helix: Sequence[DeviceRecord],
               avail: frozenset[System], now: datetime, subject: str, seen_within_days: int) -> list[Discrepancy]:
    """``unmanaged_device``: Lansweeper saw it within ``seen_within_days`` and Intune (read) does not manage it.
    ``unregistered_device``: Intune, or Lansweeper within the same window, knows it and the Helix register (read)
    does not. A device Lansweeper last saw long ago is gone from the network: neither."""
    out: list[Discrepancy] = []
    seen_after = now - timedelta(days=seen_within_days)
    recent = [r for r in lansweeper if (seen := parse_time(r.last_seen)) is not None and seen >= seen_after]
    if recent and System.INTUNE in avail and not intune:
        out.append(_disc(F.UNMANAGED_DEVICE, "Lansweeper", recent[0].last_seen, "Intune", None, subject))
    if System.HELIX in avail and not helix:
        if intune:
            out.append(_disc(F.UNREGISTERED_DEVICE, "Helix", None, "Intune", intune[0].name or intune[0].key,
                             subject))
        if recent:
            out.append(_disc(F.UNREGISTERED_DEVICE, "Helix", None, "Lansweeper", recent[0].name or recent[0].key,
                             subject))
    return out


def _in_use(helix: Sequence[DeviceRecord], owner_is_worker: bool, helix_read: bool) -> bool:
    """Helix says ``Deployed``; with Helix unavailable, a device of an active worker counts as in use."""
    if helix_read:
        return any(norm_text(r.status) == DEPLOYED for r in helix)
    return owner_is_worker


def _intune_health(intune: Sequence[DeviceRecord], now: datetime, subject: str,
                   stale_after_days: int) -> list[Discrepancy]:
    out = []
    stale_before = now - timedelta(days=stale_after_days)
    for rec in intune:
        synced = parse_time(rec.last_seen)
        if synced is not None and synced < stale_before:
            out.append(
                _disc(F.LAST_SYNC, "Intune", rec.last_seen, F.POLICY, f"within {stale_after_days} days", subject)
            )
        if norm_text(rec.compliance) == NONCOMPLIANT:
            out.append(_disc(F.COMPLIANCE, "Intune", rec.compliance, F.POLICY, "compliant", subject))
    return out


def _returns(
    tickets: Sequence[ReturnTicket],
    shipments: Mapping[str, ShipmentRecord] | Sequence[ShipmentRecord],
    now: datetime,
    subject: str,
    overdue_days: int,
) -> list[Discrepancy]:
    if not isinstance(shipments, Mapping):
        shipments = {s.tracking_number.strip(): s for s in shipments}
    overdue_before = now - timedelta(days=overdue_days)
    out = []
    for ticket in tickets:
        opened = parse_time(ticket.opened_at)
        if opened is None or opened >= overdue_before:
            continue  # young returns are legitimately in transit
        number = (ticket.tracking_number or "").strip()
        ship = shipments.get(number) if number else None
        if ship is not None and ship.found and _delivered(ship):
            continue
        status = ship.status_code if ship is not None and ship.found else None
        out.append(_disc(F.RETURN_SHIPMENT, "Helix", ticket.tracking_number, "FedEx", status, subject))
    return out


def _delivered(ship: ShipmentRecord) -> bool:
    if ship.status_code:
        return ship.status_code.strip().upper() == DELIVERED
    return ship.delivered


def group_by_serial(records: Sequence[DeviceRecord] | None) -> dict[str, list[DeviceRecord]]:
    """Records keyed by normalised serial (records without a serial are dropped)."""
    out: dict[str, list[DeviceRecord]] = {}
    for rec in records or ():
        if (key := norm_serial(rec.serial)) is not None:
            out.setdefault(key, []).append(rec)
    return out
