"""People rules (docs/drift-rules.md, "People"): one correlated person in, discrepancies out.

Values in discrepancies are the systems' original values; comparison happens on normalised values only. A system that
failed (not in ``available``) is never compared and never reported as missing an account.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from nexus.drift import fields as F
from nexus.drift.accounts import ambiguous, dormant, orphaned
from nexus.drift.correlate import PersonIndex, PersonMatch, parse_system
from nexus.drift.normalize import OwnerKind, norm_id, norm_text, parse_owner
from nexus.drift.rules import PEOPLE_FALLBACK
from nexus.findings_policy import DEFAULT_POLICY, FindingsPolicy
from nexus.models import Discrepancy, PersonRecord
from nexus.systems import System

__all__ = ["available_ids", "compare_person", "is_terminated", "manager_key"]

_TERMINATED = {"terminated", "inactive"}

#: (field, PersonRecord attribute) of the text fields compared with normalisation
_TEXT_FIELDS = ((F.JOB_TITLE, "title"), (F.DEPARTMENT, "department"), (F.DISPLAY_NAME, "display_name"))


def available_ids(available: Collection[str]) -> frozenset[System]:
    """Systems named by id or display name (``{"workday", "ActiveDirectory"}``)."""
    if isinstance(available, frozenset):
        return _available_ids(available)  # the engine passes one frozenset per audit: parse it once
    return frozenset(parse_system(s) for s in available)


@lru_cache(maxsize=64)
def _available_ids(available: frozenset[str]) -> frozenset[System]:
    return frozenset(parse_system(s) for s in available)


def is_terminated(worker: PersonRecord) -> bool:
    """Workday's verdict: status ``Terminated`` (or, without a status, an inactive worker)."""
    status = norm_text(worker.status)
    if status is not None:
        return status in _TERMINATED
    return worker.enabled is False


@dataclass(frozen=True, slots=True)
class ManagerKey:
    """Who a record says its manager is: a canonical person key, or (when unresolvable) the normalised reference."""

    key: str | None
    kind: str = ""
    value: str = ""

    def same_as(self, other: ManagerKey) -> bool | None:
        """True / False, or None when the two cannot be compared (an unresolved reference of another kind)."""
        if self.key is not None and other.key is not None:
            return self.key == other.key
        if self.kind and self.kind == other.kind:
            return self.value == other.value
        return None


def manager_key(rec: PersonRecord, index: PersonIndex) -> ManagerKey | None:
    """Resolve the record's manager: the client-resolved employee id first, then the reference as written
    (Workday: employee id, AD: DN, Entra: object id), then the manager's email. ``None``: no manager."""
    if (eid := norm_id(rec.manager_employee_id)) is not None:
        # a canonical key IS the employee id, so an eid unknown to the index still identifies the person
        return ManagerKey(index.resolve_employee_id(eid) or eid)
    if rec.manager_ref and rec.manager_ref.strip():
        if parse_system(rec.system) is System.WORKDAY:
            eid = norm_id(rec.manager_ref) or ""
            return ManagerKey(index.resolve_employee_id(eid) or eid)
        if (key := index.resolve(rec.manager_ref)) is not None:
            return ManagerKey(key)
        owner = parse_owner(rec.manager_ref)
        assert owner is not None
        if owner.kind is OwnerKind.EMPLOYEE_ID:
            return ManagerKey(owner.value)
        if not rec.manager_email:
            return ManagerKey(None, owner.kind.value, owner.value)
    if rec.manager_email and rec.manager_email.strip():
        owner = parse_owner(rec.manager_email)
        assert owner is not None
        key = index.resolve(owner)
        return ManagerKey(key) if key is not None else ManagerKey(None, owner.kind.value, owner.value)
    return None


def _manager_display(rec: PersonRecord, mkey: ManagerKey | None, index: PersonIndex) -> str | None:
    """A readable manager: the email the system gave, else the resolved person's email, else the raw reference."""
    if rec.manager_email and rec.manager_email.strip():
        return rec.manager_email
    if mkey is not None and mkey.key is not None and (email := index.email(mkey.key)) is not None:
        return email
    return rec.manager_employee_id or rec.manager_ref


def _disc(
    field: str,
    a: System,
    value_a: Any,
    b: System,
    value_b: Any,
    subject: str,
    matched_on: str | None,
) -> Discrepancy:
    return Discrepancy(
        field=field,
        system_a=a.display,
        value_a=value_a,
        system_b=b.display,
        value_b=value_b,
        severity=F.SEVERITY[field].value,
        subject=subject,
        matched_on=matched_on,
    )


def _compare_fields(
    ra: PersonRecord,
    rb: PersonRecord,
    a: System,
    b: System,
    index: PersonIndex,
    subject: str,
    matched_on: str | None,
) -> list[Discrepancy]:
    out = []
    for field, attr in _TEXT_FIELDS:
        va, vb = getattr(ra, attr), getattr(rb, attr)
        if norm_text(va) != norm_text(vb):
            out.append(_disc(field, a, va, b, vb, subject, matched_on))
    ma, mb = manager_key(ra, index), manager_key(rb, index)
    differ = (ma is None) != (mb is None) or (ma is not None and mb is not None and ma.same_as(mb) is False)
    if differ:
        out.append(
            _disc(
                F.MANAGER,
                a,
                _manager_display(ra, ma, index),
                b,
                _manager_display(rb, mb, index),
                subject,
                matched_on,
            )
        )
    return out


def person_subject(match: PersonMatch) -> str:
    """The Workday email (or, without Workday, the AD/Entra mail or UPN), as written."""
    return match.email or match.key


def compare_person(match: PersonMatch, index: PersonIndex, available: Collection[str], *,
                   policy: FindingsPolicy = DEFAULT_POLICY, now: datetime | None = None) -> list[Discrepancy]:
    """Apply people rules 1-3 and the account rules (nexus.drift.accounts) to one correlated person (unsorted; the
    engine sorts). ``now`` (default: the current time) dates dormancy."""
    avail = available_ids(available)
    subject = person_subject(match)
    others = [s for s in (System.AD, System.ENTRA) if s in avail]
    if System.WORKDAY in avail:
        if not match.workday:
            return orphaned(match, others, policy)  # accounts of no worker
        worker = match.workday[0]
        out: list[Discrepancy] = []
        if is_terminated(worker):  # rule 1: nothing else is compared for terminated workers
            for system in others:
                for rec in match.records(system):
                    if rec.enabled is True:
                        out.append(
                            _disc(
                                F.ACCOUNT_ENABLED,
                                System.WORKDAY,
                                worker.status or "Terminated",
                                system,
                                rec.enabled,
                                subject,
                                match.matched_on.get(system.value),
                            )
                        )
            return out
        moment = now or datetime.now(UTC)
        for system in others:  # rule 2
            recs = match.records(system)
            if (two := ambiguous(match, worker, system, subject)) is not None:
                out.append(two)
            for rec in recs:
                if (idle := dormant(rec, system, subject, moment, policy.thresholds.dormant_after_days)) is not None:
                    out.append(idle)
            if not recs:
                out.append(
                    _disc(F.ACCOUNT_EXISTS, System.WORKDAY, worker.status or "Active", system, None, subject, None)
                )
            for rec in recs:
                out.extend(
                    _compare_fields(
                        worker, rec, System.WORKDAY, system, index, subject, match.matched_on.get(system.value)
                    )
                )
        return out
    # rule 3: Workday failed -> AD vs Entra, when both were read and both hold the person
    if not PEOPLE_FALLBACK.runs(avail) or not match.ad or not match.entra:
        return []
    ad, entra = match.ad[0], match.entra[0]
    matched_on = match.matched_on.get(System.ENTRA.value) or match.matched_on.get(System.AD.value)
    out = _compare_fields(ad, entra, System.AD, System.ENTRA, index, subject, matched_on)
    if ad.enabled is not None and entra.enabled is not None and ad.enabled != entra.enabled:
        out.append(_disc(F.ACCOUNT_ENABLED, System.AD, ad.enabled, System.ENTRA, entra.enabled, subject, matched_on))
    return out
