"""Account rules (docs/drift-rules.md, "Accounts"): the second direction of reconciliation, from the accounts to the
workers, and the accounts' own hygiene.

- ``orphaned_account``: an enabled AD or Entra account that correlates to no Workday worker and that the findings
  policy does not exclude as a non-person account (built-in, service accounts: nexus.findings_policy). A disabled
  orphan is not drift (it can no longer sign in). Subject: the account's UPN, lower-case.
- ``ambiguous_account``: two or more accounts in one system correlate to the same worker (subject: the worker's
  email; every candidate is listed), or one account matches one worker by employee id and another by address
  (subject: the account's UPN; both workers listed). Nothing is picked silently: the field comparisons still run
  against every candidate.
- ``dormant_account``: an active worker's enabled account whose last sign-in is older than ``dormant_after_days``.
  AD's ``lastLogonTimestamp`` replicates lazily (up to 14 days behind the real last logon by design:
  ``msDS-LogonTimeSyncInterval``), so the default threshold of 45 days is well beyond its lag; an account that never
  signed in carries no evidence either way and is not reported.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime, timedelta

from nexus.drift import fields as F
from nexus.drift.correlate import PersonMatch
from nexus.drift.normalize import norm_dn, norm_email
from nexus.findings_policy import Exclusions, FindingsPolicy
from nexus.models import Discrepancy, PersonRecord
from nexus.systems import System

__all__ = ["account_subject", "ambiguous", "disputed", "dormant", "is_excluded", "orphaned"]

_HAS_NO_WORKER = "a Workday worker"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def account_subject(rec: PersonRecord) -> str:
    """An account's subject: its UPN lower-case (else its mail, else its key)."""
    return (norm_email(rec.upn) or norm_email(rec.email) or rec.key).lower()


def is_excluded(rec: PersonRecord, exclusions: Exclusions) -> bool:
    """A non-person account by policy: a name pattern on sAMAccountName, the UPN or its local part; or an entry
    under an excluded OU (an OU name at any depth, or a full OU DN)."""
    names = [n.casefold() for n in (rec.username.rpartition("\\")[2] if rec.username else None, rec.upn,
                                     (rec.upn or "").partition("@")[0] or None) if n]
    for pattern in exclusions.accounts:
        if any(fnmatch.fnmatchcase(name, pattern.casefold()) for name in names):
            return True
    dn = norm_dn(rec.key) if System.parse(rec.system) is System.AD else None
    if dn is None:
        return False
    parents = dn.split(",")[1:]
    for ou in exclusions.ous:
        wanted = ou.casefold()
        if "=" in wanted:
            if dn.endswith("," + (norm_dn(ou) or wanted)):
                return True
        elif f"ou={wanted}" in parents:
            return True
    return False


def orphaned(match: PersonMatch, systems: Sequence[System], policy: FindingsPolicy) -> list[Discrepancy]:
    """The group has no Workday worker: each enabled, non-excluded account in the systems read is an orphan."""
    out = []
    for system in systems:
        for rec in match.records(system):
            if rec.enabled is True and not is_excluded(rec, policy.exclusions):
                out.append(Discrepancy(F.ORPHANED_ACCOUNT, system.display, rec.upn or rec.key, F.POLICY,
                                       _HAS_NO_WORKER, F.SEVERITY[F.ORPHANED_ACCOUNT].value,
                                       subject=account_subject(rec)))
    return out


def ambiguous(match: PersonMatch, worker: PersonRecord, system: System, subject: str) -> Discrepancy | None:
    """Two or more accounts of ``system`` for one worker: every candidate listed."""
    recs = match.records(system)
    if len(recs) < 2:
        return None
    candidates = sorted(account_subject(r) for r in recs)
    return Discrepancy(F.AMBIGUOUS_ACCOUNT, System.WORKDAY.display, worker.employee_id or worker.key,
                       system.display, candidates, F.SEVERITY[F.AMBIGUOUS_ACCOUNT].value, subject=subject,
                       matched_on=match.matched_on.get(system.value))


def disputed(rec: PersonRecord, workers: Sequence[str], system: System) -> Discrepancy:
    """One account that matches more than one worker (``workers``: their emails)."""
    return Discrepancy(F.AMBIGUOUS_ACCOUNT, System.WORKDAY.display, sorted(workers), system.display,
                       rec.upn or rec.key, F.SEVERITY[F.AMBIGUOUS_ACCOUNT].value, subject=account_subject(rec))


def dormant(rec: PersonRecord, system: System, subject: str, now: datetime, days: int) -> Discrepancy | None:
    """An enabled account whose last sign-in is older than ``days``."""
    if rec.enabled is not True:
        return None
    last = _parse_time(rec.last_logon)
    if last is None or last >= now - timedelta(days=days):
        return None
    return Discrepancy(F.DORMANT_ACCOUNT, system.display, rec.last_logon, F.POLICY, f"within {days} days",
                       F.SEVERITY[F.DORMANT_ACCOUNT].value, subject=subject)
