"""Correlation: which Workday, AD and Entra records describe the same person, and who a reference points at.

Records are grouped in one pass over dict indexes (no pairwise comparison), Workday first so that each worker founds
a group and AD / Entra records join it: by employee id first, then by the joining record's mail, UPN and aliases
(each looked up among the group's primary addresses before its aliases). The way a record joined is kept in
``PersonMatch.matched_on`` ("employee_id" | "email" | "upn" | "alias"). A group's canonical key is its employee id
when any record knows it (Workday's first), else a synthetic ``"<system>:<key>"``.

:class:`PersonIndex` then resolves every way the systems write a person (employee id, email, UPN, alias,
``DOMAIN\\sam``, AD DN, Entra object id) to that canonical key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from nexus.drift.normalize import (
    OwnerKind,
    OwnerRef,
    norm_dn,
    norm_email,
    norm_guid,
    norm_id,
    parse_owner,
)
from nexus.models import PersonRecord
from nexus.systems import USER_SYSTEMS, System

__all__ = ["PersonIndex", "PersonMatch", "correlate_people", "parse_system", "person_system"]

EMPLOYEE_ID = "employee_id"
EMAIL = "email"
UPN = "upn"
ALIAS = "alias"


@lru_cache(maxsize=64)
def parse_system(name: str) -> System:
    """:meth:`System.parse`, cached: it runs for every record of a 100k-people audit."""
    return name if isinstance(name, System) else System.parse(name)


def person_system(record: PersonRecord) -> System:
    """The record's system (``system`` may be an id or a display name)."""
    return parse_system(record.system)


@dataclass(slots=True)
class PersonMatch:
    """The records of one person in Workday, AD and Entra (usually at most one each).

    ``matched_on`` maps a system id to how that system's (first) record joined the group; the record that founded
    the group (Workday's, when there is one) has no entry.
    """

    key: str
    workday: list[PersonRecord] = field(default_factory=list)
    ad: list[PersonRecord] = field(default_factory=list)
    entra: list[PersonRecord] = field(default_factory=list)
    matched_on: dict[str, str] = field(default_factory=dict)

    def records(self, system: System | str) -> list[PersonRecord]:
        sys_ = parse_system(system)
        if sys_ is System.WORKDAY:
            return self.workday
        if sys_ is System.AD:
            return self.ad
        if sys_ is System.ENTRA:
            return self.entra
        raise ValueError(f"{sys_.value} holds no person records")

    def all_records(self) -> Iterator[PersonRecord]:
        yield from self.workday
        yield from self.ad
        yield from self.entra

    @property
    def email(self) -> str | None:
        """The person's email as written: Workday's, else AD's or Entra's mail, else a UPN."""
        for rec in self.all_records():
            if rec.email and rec.email.strip():
                return rec.email.strip()
        for rec in self.all_records():
            if rec.upn and rec.upn.strip():
                return rec.upn.strip()
        return None


def _addresses(rec: PersonRecord) -> list[tuple[str, str]]:
    """(how, normalised address) for the record's mail, UPN and aliases, in matching priority."""
    out = []
    if (addr := norm_email(rec.email)) is not None:
        out.append((EMAIL, addr))
    if (addr := norm_email(rec.upn)) is not None:
        out.append((UPN, addr))
    for alias in rec.aliases:
        if (addr := norm_email(alias)) is not None:
            out.append((ALIAS, addr))
    return out


class _Grouper:
    """Incremental grouping; group keys are provisional until :meth:`finish`.

    While grouping it also records every identifier of every record (to the record's group), so the index needs no
    second pass: ``by_eid``/``by_primary``/``by_alias`` drive the matching, ``by_sam``/``by_dn``/``by_guid`` only
    resolution.
    """

    def __init__(self) -> None:
        self.groups: list[PersonMatch] = []
        self.systems: set[System] = set()
        self.by_eid: dict[str, PersonMatch] = {}
        self.by_primary: dict[str, PersonMatch] = {}
        self.by_alias: dict[str, PersonMatch] = {}
        self.by_sam: dict[str, PersonMatch] = {}
        self.by_dn: dict[str, PersonMatch] = {}
        self.by_guid: dict[str, PersonMatch] = {}
        self.first_eid: dict[int, str] = {}  # id(group) -> the first employee id seen among its records
        #: accounts whose employee id names one worker's group and whose address another's (both Workday-founded)
        self.disputes: list[tuple[PersonRecord, System, PersonMatch, PersonMatch]] = []

    def _find(self, eid: str | None, addrs: list[tuple[str, str]]) -> tuple[PersonMatch | None, str | None]:
        if eid is not None and (group := self.by_eid.get(eid)) is not None:
            return group, EMPLOYEE_ID
        for table in (self.by_primary, self.by_alias):
            for how, addr in addrs:
                if (group := table.get(addr)) is not None:
                    return group, how
        return None, None

    def _rival(self, group: PersonMatch, how: str | None, addrs: list[tuple[str, str]]) -> PersonMatch | None:
        """Another worker's group that the record's primary address names, when it joined ``group`` by id."""
        if how != EMPLOYEE_ID or not group.workday:
            return None
        for how_, addr in addrs:
            other = self.by_primary.get(addr) if how_ != ALIAS else None
            if other is not None and other is not group and other.workday:
                return other
        return None

    def add(self, rec: PersonRecord, system: System) -> None:
        eid = norm_id(rec.employee_id)
        addrs = _addresses(rec)
        group, how = self._find(eid, addrs)
        if group is not None and system is not System.WORKDAY and (rival := self._rival(group, how, addrs)):
            self.disputes.append((rec, system, group, rival))
        if group is None:
            group = PersonMatch(key=f"{system.value}:{rec.key}")
            self.groups.append(group)
        elif how is not None:
            group.matched_on.setdefault(system.value, how)
        group.records(system).append(rec)
        self.systems.add(system)
        if eid is not None:
            self.by_eid.setdefault(eid, group)
            self.first_eid.setdefault(id(group), eid)  # systems come Workday first: its id wins
        for how_, addr in addrs:
            (self.by_alias if how_ == ALIAS else self.by_primary).setdefault(addr, group)
        if rec.username and rec.username.strip():
            self.by_sam.setdefault(rec.username.rpartition("\\")[2].strip().casefold(), group)
        if system is System.WORKDAY and rec.key != rec.employee_id and (wid := norm_id(rec.key)) is not None:
            self.by_eid.setdefault(wid, group)  # Workday's key is the employee id
        elif system is System.AD and (dn := norm_dn(rec.key)) is not None:
            self.by_dn.setdefault(dn, group)
        elif system is System.ENTRA and (guid := norm_guid(rec.key)) is not None:
            self.by_guid.setdefault(guid, group)

    def finish(self) -> list[PersonMatch]:
        seen: set[str] = set()
        for group in self.groups:
            eid = self.first_eid.get(id(group))
            key = eid if eid is not None and eid not in seen else group.key
            while key in seen:  # two groups claiming one id cannot happen via by_eid; stay unique regardless
                key += "'"
            group.key = key
            seen.add(key)
        return self.groups


def _group(records: Iterable[PersonRecord]) -> _Grouper:
    by_system: dict[System, list[PersonRecord]] = {s: [] for s in USER_SYSTEMS}
    for rec in records:
        system = person_system(rec)
        if system not in by_system:
            raise ValueError(f"not a person record: system {rec.system!r}")
        by_system[system].append(rec)
    grouper = _Grouper()
    for system in USER_SYSTEMS:  # Workday first: its workers found the groups the others join
        for rec in by_system[system]:
            grouper.add(rec, system)
    grouper.finish()
    return grouper


def correlate_people(
    workday: Iterable[PersonRecord] | None,
    ad: Iterable[PersonRecord] | None,
    entra: Iterable[PersonRecord] | None,
) -> list[PersonMatch]:
    """Group the records of the same person (``None`` = that system returned nothing)."""
    return _group([*(workday or ()), *(ad or ()), *(entra or ())]).groups


def _keys(table: dict[str, PersonMatch]) -> dict[str, str]:
    return {ident: group.key for ident, group in table.items()}


class PersonIndex:
    """Resolves any person reference to a canonical person key (the employee id when known)."""

    def __init__(self, records: Iterable[PersonRecord] = ()) -> None:
        grouper = _group(records)
        self.matches: list[PersonMatch] = grouper.groups
        #: systems that contributed at least one record (what kinds of reference the index can resolve)
        self.systems: set[System] = grouper.systems
        #: (account, its system, the worker groups it matches): an account matching two workers
        self.disputes: list[tuple[PersonRecord, System, tuple[PersonMatch, PersonMatch]]] = [
            (rec, system, (a, b)) for rec, system, a, b in grouper.disputes]
        self._by_key: dict[str, PersonMatch] = {m.key: m for m in self.matches}
        self._eid = _keys(grouper.by_eid)
        self._primary = _keys(grouper.by_primary)
        self._alias = _keys(grouper.by_alias)  # consulted after _primary: an alias never shadows a primary address
        self._sam = _keys(grouper.by_sam)
        self._dn = _keys(grouper.by_dn)
        self._guid = _keys(grouper.by_guid)
        self._resolved: dict[str, str | None] = {}

    @classmethod
    def from_matches(cls, matches: Sequence[PersonMatch]) -> PersonIndex:
        return cls([rec for m in matches for rec in m.all_records()])

    def __len__(self) -> int:
        return len(self.matches)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def match(self, key: str | None) -> PersonMatch | None:
        return self._by_key.get(key) if key is not None else None

    def resolve(self, ref: str | OwnerRef | None) -> str | None:
        """The canonical key of the person ``ref`` names, or ``None`` when nobody in the index matches."""
        if isinstance(ref, str):
            # managers and owners repeat: each is parsed once per index
            if ref not in self._resolved:
                self._resolved[ref] = self.resolve(parse_owner(ref)) if ref.strip() else None
            return self._resolved[ref]
        owner = ref
        if owner is None:
            return None
        v = owner.value
        if owner.kind is OwnerKind.EMAIL:
            return self._primary.get(v) or self._alias.get(v)
        if owner.kind is OwnerKind.DN:
            return self._dn.get(v)
        if owner.kind is OwnerKind.GUID:
            return self._guid.get(v)
        if owner.kind is OwnerKind.EMPLOYEE_ID:
            return self._eid.get(v) or self._sam.get(v.casefold())
        # OwnerKind.SAM: an account name; a bare token may also be a contractor's employee id
        found = self._sam.get(v)
        if found is None and owner.domain is None:
            found = self._eid.get(norm_id(v) or "")
        return found

    def resolve_employee_id(self, employee_id: str | None) -> str | None:
        eid = norm_id(employee_id)
        return self._eid.get(eid) if eid is not None else None

    def workday(self, key: str | None) -> PersonRecord | None:
        """The person's Workday record (the first, if Workday holds duplicates)."""
        match = self.match(key)
        return match.workday[0] if match is not None and match.workday else None

    def email(self, key: str | None) -> str | None:
        """A readable reference for the person: their email as written (Workday's first)."""
        match = self.match(key)
        return match.email if match is not None else None
