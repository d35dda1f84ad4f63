"""The comparison of a whole fleet: stream the snapshots into records and run the (pure) drift engine over them.

Memory is the constraint at 100,000 people, so: pages are decompressed and decoded one at a time (the compressed
blob and its JSON are garbage as soon as the page's records exist), equal strings are shared across records
(:class:`nexus.fleet.codec.Decoder`), the people comparison's index is dropped before the device systems are even
loaded, and records are slotted dataclasses. Nothing here talks to a system; only Redis is read.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nexus.drift.engine import audit_devices, audit_people, user_report
from nexus.fleet.assess import Assessment, StreamInput
from nexus.fleet.codec import Decoder
from nexus.fleet.sources import STREAM_KIND, STREAM_SYSTEM
from nexus.fleet.store import SnapshotStore
from nexus.models import DeviceRecord, PersonRecord
from nexus.systems import USER_SYSTEMS, System


@dataclass(slots=True)
class Comparison:
    discrepancies: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] | None = None  # subject mode: one user report per requested email
    people: int = 0
    devices: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def load(store: SnapshotStore, source: StreamInput) -> list[Any]:
    """Every record of one stream, page by page."""
    system = STREAM_SYSTEM[source.stream]
    decoder = Decoder(STREAM_KIND[source.stream], system.value)
    records: list[Any] = []
    for blob in store.iter_blobs(source.audit_id, source.stream, source.pages):
        records.extend(decoder.decode(blob))
    return records


def resolve_ad_managers(records: list[PersonRecord]) -> None:
    """Fill AD records' manager employee id and mail from the listing itself (as ``ADClient.list_users`` does)."""
    by_dn = {r.key.lower(): (r.employee_id, r.email) for r in records}
    for i, rec in enumerate(records):
        if rec.manager_ref and rec.manager_employee_id is None:
            manager = by_dn.get(rec.manager_ref.lower())
            if manager is not None:
                records[i] = dataclasses.replace(rec, manager_employee_id=manager[0], manager_email=manager[1])


class FleetComparer:
    def __init__(self, store: SnapshotStore, assessment: Assessment, now: datetime) -> None:
        self.store = store
        self.assessment = assessment
        self.now = now
        self.available = assessment.available

    def _records(self, stream: str) -> list[Any] | None:
        source = self.assessment.streams.get(stream)
        if source is None or not source.usable:
            return None
        return load(self.store, source)

    def _people(self) -> dict[System, list[PersonRecord] | None]:
        people: dict[System, list[PersonRecord] | None] = {}
        for system in USER_SYSTEMS:
            status = self.assessment.systems.get(system)
            people[system] = self._records(system.value) if status is not None and status.available else None
        if people[System.AD]:
            resolve_ad_managers(people[System.AD])  # type: ignore[arg-type]
        return people

    def run(self, subjects: Sequence[str] | None = None) -> Comparison:
        out = Comparison()
        started = time.perf_counter()
        people = self._people()
        out.timings["load_people_s"] = round(time.perf_counter() - started, 3)
        mark = time.perf_counter()
        result = audit_people(people[System.WORKDAY], people[System.AD], people[System.ENTRA], self.available)
        out.people = len(result.matches)
        if subjects is not None:
            out.entries = self._entries(result, people, subjects)
        else:
            out.discrepancies = [d.to_dict() for d in result.discrepancies]
        del result
        gc.collect()
        out.timings["people_s"] = round(time.perf_counter() - mark, 3)
        if subjects is None:
            mark = time.perf_counter()
            devices = self._devices([r for recs in people.values() for r in recs or ()])
            out.devices = len(devices.serials)
            out.discrepancies += [d.to_dict() for d in devices.discrepancies]
            out.timings["devices_s"] = round(time.perf_counter() - mark, 3)
        out.timings["compare_s"] = round(time.perf_counter() - started, 3)
        return out

    def _devices(self, people_records: list[PersonRecord]) -> Any:
        intune: list[DeviceRecord] | None = self._records("intune")
        lansweeper: list[DeviceRecord] | None = self._records("lansweeper")
        helix: list[DeviceRecord] | None = self._records("helix")
        tickets = self._records("helix_tickets")
        shipments = self._records("fedex") or []
        return audit_devices(intune, lansweeper, helix, tickets, shipments, people_records, self.available, self.now)

    def _entries(self, result: Any, people: dict[System, list[PersonRecord] | None],
                 subjects: Sequence[str]) -> list[dict[str, Any]]:
        """One seed-shaped user report per email, from the fleet's correlation (the bulk report's entries)."""
        errors = {s.value: st.error or {} for s, st in self.assessment.systems.items()
                  if s in USER_SYSTEMS and not st.available}
        index = result.index
        entries = []
        for email in subjects:
            match = index.match(index.resolve(email))
            records: dict[str, list[PersonRecord] | None] = {}
            for system in USER_SYSTEMS:
                if people[system] is None:
                    records[system.value] = None
                else:
                    records[system.value] = list(match.records(system)) if match is not None else []
            entries.append(user_report(email, records, errors))
        return entries


__all__ = ["Comparison", "FleetComparer", "load", "resolve_ad_managers"]
