"""Discrepancy field names and their severities: shared by the engine, the reports and the ground truth.

A ground-truth drift entry ``{"subject", "field", "systems", "severity"}`` matches a report discrepancy with the same
subject and field whose ``{system_a, system_b}`` (display names) equals ``systems`` (for single-system findings,
``systems`` has one name and the discrepancy's ``system_b`` is ``"Policy"``).
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}

# People (subject: the person's Workday email)
JOB_TITLE = "job_title"  # title differs from Workday (or AD vs Entra when Workday is unavailable)
DEPARTMENT = "department"
MANAGER = "manager"  # compared as a resolved person, never as raw DN / id / email
DISPLAY_NAME = "display_name"
ACCOUNT_ENABLED = "account_enabled"  # terminated in Workday, account still enabled (CIS 6.2)
ACCOUNT_EXISTS = "account_exists"  # active worker with no account in AD or Entra
ORPHANED_ACCOUNT = "orphaned_account"  # enabled account that belongs to no Workday worker (CIS 5.1)
AMBIGUOUS_ACCOUNT = "ambiguous_account"  # two accounts for one worker, or one account matching two (CIS 5.1)
DORMANT_ACCOUNT = "dormant_account"  # an active worker's enabled account without a sign-in for too long (CIS 5.3)

# Devices (subject: the device's serial number)
DEVICE_OWNER = "device_owner"  # Intune / Lansweeper owner differs from Helix (the asset register)
LAST_SYNC = "last_sync"  # Intune has not seen the device for more than the stale threshold (30 days)
COMPLIANCE = "compliance"  # Intune says noncompliant
DEVICE_ACTIVE = "device_active"  # owner terminated in Workday, device still checking in to Intune after that
RETURN_SHIPMENT = "return_shipment"  # Helix return ticket's FedEx shipment not delivered
UNMANAGED_DEVICE = "unmanaged_device"  # Lansweeper saw it recently, Intune does not manage it (CIS 1.2)
UNREGISTERED_DEVICE = "unregistered_device"  # Intune or Lansweeper knows it, the Helix register does not (CIS 1.1)

SEVERITY: dict[str, Severity] = {
    JOB_TITLE: Severity.MEDIUM,
    DEPARTMENT: Severity.HIGH,
    MANAGER: Severity.HIGH,
    DISPLAY_NAME: Severity.LOW,
    ACCOUNT_ENABLED: Severity.CRITICAL,
    ACCOUNT_EXISTS: Severity.HIGH,
    ORPHANED_ACCOUNT: Severity.HIGH,
    AMBIGUOUS_ACCOUNT: Severity.HIGH,
    DORMANT_ACCOUNT: Severity.MEDIUM,
    DEVICE_OWNER: Severity.HIGH,
    LAST_SYNC: Severity.MEDIUM,
    COMPLIANCE: Severity.MEDIUM,
    DEVICE_ACTIVE: Severity.CRITICAL,
    RETURN_SHIPMENT: Severity.CRITICAL,
    UNMANAGED_DEVICE: Severity.HIGH,
    UNREGISTERED_DEVICE: Severity.MEDIUM,
}

PERSON_FIELDS = (JOB_TITLE, DEPARTMENT, MANAGER, DISPLAY_NAME, ACCOUNT_ENABLED, ACCOUNT_EXISTS, ORPHANED_ACCOUNT,
                 AMBIGUOUS_ACCOUNT, DORMANT_ACCOUNT)
DEVICE_FIELDS = (DEVICE_OWNER, LAST_SYNC, COMPLIANCE, DEVICE_ACTIVE, RETURN_SHIPMENT, UNMANAGED_DEVICE,
                 UNREGISTERED_DEVICE)

#: Pseudo-system named as ``system_b`` of single-system findings (stale, noncompliant).
POLICY = "Policy"


def scoped(kind: str, system: str) -> str:
    """A kind as judged in one system only (``dormant_account@Entra``), where "not judged" is narrower than a kind:
    with Entra's sign-ins not read, AD dormancy is still judged. ``system`` is the display name (``system_a``)."""
    return f"{kind}@{system}"

#: Days without a sync after which a device is stale.
STALE_AFTER_DAYS = 30
#: Days after which an undelivered return shipment is drift (younger ones are still legitimately in transit).
RETURN_OVERDUE_DAYS = 14
