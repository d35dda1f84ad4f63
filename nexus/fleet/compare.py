"""The comparison of a whole fleet: stream the snapshots into records and run the (pure) drift engine over them.

Memory is the constraint at 100,000 people, so: pages are decompressed and decoded one at a time (the compressed
blob and its JSON are garbage as soon as the page's records exist), equal strings are shared across records
(:class:`nexus.fleet.codec.Decoder`), the people comparison's index is dropped before the device systems are even
loaded, and records are slotted dataclasses. Nothing here talks to a system; only Redis is read.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nexus.drift import fields as F
from nexus.drift.engine import audit_devices, audit_people, user_report
from nexus.findings_policy import DEFAULT_POLICY, FindingsPolicy
from nexus.fleet.assess import Assessment, StreamInput
from nexus.fleet.codec import Decoder
from nexus.fleet.store import SnapshotStore
from nexus.models import DeviceRecord, PersonRecord
from nexus.registry import STREAM_KIND, STREAM_SYSTEM
from nexus.systems import USER_SYSTEMS, System


@dataclass(slots=True)
class Comparison:
    discrepancies: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] | None = None  # subject mode: one user report per requested email
    people: int = 0
    devices: int = 0
    timings: dict[str, float] = field(default_factory=dict)


#: The fields the drift engine reads, per stream (nexus.drift.people / devices / correlate): a comparison decodes
#: only these. Device names and ids reach only the unregistered_device finding (which machine it is).
_PERSON_FIELDS = ("key", "employee_id", "email", "upn", "username", "display_name", "title", "department",
                  "manager_ref", "manager_employee_id", "manager_email", "enabled", "status", "termination_date",
                  "aliases", "last_logon")
ENGINE_FIELDS: dict[str, tuple[str, ...] | None] = {
    "workday": _PERSON_FIELDS, "ad": _PERSON_FIELDS, "entra": _PERSON_FIELDS,
    "intune": ("key", "serial", "name", "owner", "last_seen", "compliance"),
    "lansweeper": ("key", "serial", "name", "owner", "last_seen"),
    "helix": ("serial", "owner", "status"),
    "helix_tickets": None,
    "fedex": None,
}


def load(store: SnapshotStore, source: StreamInput, *, memo: dict[str, str] | None = None,
         keep: tuple[str, ...] | None = None, token_keys: bool = False) -> list[Any]:
    """Every record of one stream, page by page (``keep``: only these fields, e.g. ``ENGINE_FIELDS[stream]``)."""
    system = STREAM_SYSTEM[source.stream]
    decoder = Decoder(STREAM_KIND[source.stream], system.value, memo=memo, keep=keep, token_keys=token_keys)
    records: list[Any] = []
    for blob in store.iter_blobs(source.audit_id, source.stream, source.pages):
        records.extend(decoder.decode(blob))
    return records


#: What resolving a device's owner and judging their standing needs of a person record (nexus.drift.correlate,
#: nexus.drift.devices): identities, and Workday's status and termination date.
OWNER_FIELDS = ("key", "employee_id", "email", "upn", "username", "enabled", "status", "termination_date", "aliases")


def merge(people: Comparison, devices: Comparison) -> Comparison:
    """One comparison from the two parts (people findings first, as the engine orders each part)."""
    timings = {**people.timings, **devices.timings}
    return Comparison(people.discrepancies + devices.discrepancies, people.entries, people.people,
                      devices.devices, timings)


def release_memory() -> None:
    """Collect, then hand freed heap back to the OS (glibc keeps it otherwise, and RSS is what a worker is
    judged by)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def resolve_ad_managers(records: list[PersonRecord]) -> None:
    """Fill AD records' manager employee id and mail from the listing itself (as ``ADClient.list_users`` does)."""
    by_dn = {r.key.lower(): (r.employee_id, r.email) for r in records}
    for i, rec in enumerate(records):
        if rec.manager_ref and rec.manager_employee_id is None:
            manager = by_dn.get(rec.manager_ref.lower())
            if manager is not None:
                records[i] = dataclasses.replace(rec, manager_employee_id=manager[0], manager_email=manager[1])


class FleetComparer:
    """The comparison in two parts that can run in different processes (and at different times):

    - :meth:`people`: Workday, AD and Entra with the people rules (or, for a bulk audit, one user report per email);
    - :meth:`devices`: Intune, Lansweeper, Helix and FedEx with the device rules, the people systems' records
      reloaded with only what owner resolution needs.

    The fleet pipeline runs the people part as soon as the people snapshots are in (while the device systems are
    still paging) and the device part last, so each process holds one half of the fleet: at 100,000 people that
    is what keeps a worker well under 500 MB. :meth:`run` does both, one after the other.
    """

    def __init__(self, store: SnapshotStore, assessment: Assessment, now: datetime, *,
                 policy: FindingsPolicy = DEFAULT_POLICY, entra_sign_ins: bool = True) -> None:
        self.store = store
        self.policy = policy  # as configured (the report's stamp)
        #: kinds this audit cannot judge, and why: an account "of no worker" is only known from a fresh, whole
        #: Workday (a stale or degraded one lacks the recent hires, who would all look orphaned)
        self.not_judged: dict[str, str] = {}
        workday = assessment.systems.get(System.WORKDAY)
        if workday is not None and workday.status in ("stale", "degraded") and policy.is_on(F.ORPHANED_ACCOUNT):
            self.not_judged[F.ORPHANED_ACCOUNT] = (f"Workday was {workday.status}: accounts of no worker are not "
                                                  "judged from an incomplete list of workers")
        engine_off = dict.fromkeys(self.not_judged, False)
        if not entra_sign_ins and policy.is_on(F.DORMANT_ACCOUNT):
            # scoped to one system (history keys it "kind@System"): AD dormancy is still judged
            self.not_judged[F.scoped(F.DORMANT_ACCOUNT, System.ENTRA.display)] = (
                "Entra sign-ins are not read (ENTRA_SIGN_IN_ACTIVITY=false): dormant Entra accounts are not looked for")
        self.engine_policy = policy if not engine_off else policy.model_copy(
            update={"kinds": {**policy.kinds, **engine_off}})
        self.assessment = assessment
        self.now = now
        self.available = assessment.available

    def _records(self, stream: str, memo: dict[str, str], fields: tuple[str, ...] | None = None,
                 token_keys: bool = False) -> list[Any] | None:
        source = self.assessment.streams.get(stream)
        if source is None or not source.usable:
            return None
        return load(self.store, source, memo=memo, keep=fields or ENGINE_FIELDS[stream], token_keys=token_keys)

    def _people(self, memo: dict[str, str], *, owners: bool = False) -> dict[System, list[PersonRecord] | None]:
        """Workday, AD and Entra (None: not available); ``owners``: only what device owner resolution needs."""
        people: dict[System, list[PersonRecord] | None] = {}
        for system in USER_SYSTEMS:
            status = self.assessment.systems.get(system)
            if status is None or not status.available:
                people[system] = None
            elif owners:
                # No device system names an owner by AD DN or Entra object id: those keys become short tokens.
                people[system] = self._records(system.value, memo, OWNER_FIELDS,
                                               token_keys=system is not System.WORKDAY)
            else:
                people[system] = self._records(system.value, memo)
        if people[System.AD] and not owners:
            resolve_ad_managers(people[System.AD])  # type: ignore[arg-type]
        return people

    def people(self, subjects: Sequence[str] | None = None) -> Comparison:
        out = Comparison()
        started = time.perf_counter()
        people = self._people({})  # one memo for the three: one string per email, employee id, name, DN
        out.timings["load_people_s"] = round(time.perf_counter() - started, 3)
        mark = time.perf_counter()
        result = audit_people(people[System.WORKDAY], people[System.AD], people[System.ENTRA], self.available,
                              policy=self.engine_policy, now=self.now)
        out.people = len(result.matches)
        if subjects is not None:
            out.entries = self._entries(result, people, subjects)
        else:
            out.discrepancies = [d.to_dict() for d in result.discrepancies]
        del result, people
        release_memory()
        out.timings["people_s"] = round(time.perf_counter() - mark, 3)
        return out

    def devices(self) -> Comparison:
        out = Comparison()
        started = time.perf_counter()
        memo: dict[str, str] = {}  # owners' addresses and serials repeat across the people and device systems
        owners = [r for recs in self._people(memo, owners=True).values() for r in recs or ()]
        intune: list[DeviceRecord] | None = self._records("intune", memo)
        lansweeper: list[DeviceRecord] | None = self._records("lansweeper", memo)
        helix: list[DeviceRecord] | None = self._records("helix", memo)
        tickets = self._records("helix_tickets", memo)
        shipments = self._records("fedex", memo) or []
        del memo
        out.timings["load_devices_s"] = round(time.perf_counter() - started, 3)
        mark = time.perf_counter()
        result = audit_devices(intune, lansweeper, helix, tickets, shipments, owners, self.available, self.now,
                               policy=self.engine_policy)
        out.devices = len(result.serials)
        out.discrepancies = [d.to_dict() for d in result.discrepancies]
        del result
        out.timings["devices_s"] = round(time.perf_counter() - mark, 3)
        return out

    def run(self, subjects: Sequence[str] | None = None) -> Comparison:
        started = time.perf_counter()
        out = self.people(subjects)
        if subjects is None:
            out = merge(out, self.devices())
        out.timings["compare_s"] = round(time.perf_counter() - started, 3)
        return out

    def _entries(self, result: Any, people: dict[System, list[PersonRecord] | None],
                 subjects: Sequence[str]) -> list[dict[str, Any]]:
        """One seed-shaped user report per email, from the fleet's correlation (the bulk report's entries)."""
        errors = {s.value: st.error or {} for s, st in self.assessment.systems.items()
                  if s in USER_SYSTEMS and not st.available}
        index = result.index
        # an account matching two workers: either worker's entry needs the other's Workday record to see it
        rivals: dict[str, list[PersonRecord]] = {}
        for _rec, _system, groups in index.disputes:
            for group in groups:
                rivals.setdefault(group.key, []).extend(w for g in groups if g is not group for w in g.workday)
        entries = []
        for email in subjects:
            match = index.match(index.resolve(email))
            records: dict[str, list[PersonRecord] | None] = {}
            for system in USER_SYSTEMS:
                if people[system] is None:
                    records[system.value] = None
                else:
                    records[system.value] = list(match.records(system)) if match is not None else []
            if match is not None and records[System.WORKDAY.value] is not None:
                records[System.WORKDAY.value] = [*(records[System.WORKDAY.value] or []), *rivals.get(match.key, [])]
            entries.append(user_report(email, records, errors, policy=self.engine_policy, now=self.now))
        return entries


__all__ = ["ENGINE_FIELDS", "OWNER_FIELDS", "Comparison", "FleetComparer", "load", "merge", "resolve_ad_managers"]
