"""The synthetic organisation as each system holds it.

The generator (:mod:`nexus.sim.orggen`) produces one :class:`Org`: a list of records per system, already
diverged by the planted drift and noise, plus the ground truth. Simulators only render these records into their
system's wire format; they never invent or alter data. Times are timezone-aware UTC datetimes.

Domain conventions (shared by generator, simulators and tests):
- AD base DN ``DC=corp,DC=example``; users live under ``OU=Users,OU=<Department>,DC=corp,DC=example``;
  ``cn`` is the display name (with a numeric suffix when two people share one); manager is the manager's DN.
- UPN ``first.last@corp.example`` (lower case); ``mail`` is the UPN for most people and an alias
  (``flast@example.com``) for some; Workday's email is the primary ``mail``.
- Lansweeper records the owner as ``CORP\\<sAMAccountName>``; Intune as the UPN; Helix as the email.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(slots=True)
class WorkdayWorker:
    employee_id: str  # "100042"
    wid: str  # Workday ID, 32 hex chars
    first_name: str
    last_name: str
    display_name: str  # preferred name "First Last"
    email: str
    title: str  # business title
    department: str  # supervisory organisation name
    manager_id: str | None  # manager's employee_id
    location: str
    worker_type: str  # "Employee" | "Contractor"
    active: bool
    hire_date: date
    termination_date: date | None = None


@dataclass(slots=True)
class AdUser:
    dn: str
    cn: str
    sam: str  # sAMAccountName
    upn: str
    mail: str | None
    display_name: str
    given_name: str
    sn: str
    title: str | None
    department: str | None
    manager_dn: str | None
    employee_id: str | None
    enabled: bool  # userAccountControl 512 (enabled) / 514 (disabled)
    proxy_addresses: list[str] = field(default_factory=list)  # "SMTP:primary", "smtp:alias"
    object_guid: str = ""
    account_expires: datetime | None = None  # accountExpires (None: never); past it the account cannot sign in
    last_logon: datetime | None = None  # lastLogonTimestamp (None: never logged on)

    @property
    def user_account_control(self) -> int:
        return 512 if self.enabled else 514

    def can_sign_in(self, now: datetime) -> bool:
        """Not disabled and not expired: what "enabled" means to the AD client (a DC refuses an expired account)."""
        return self.enabled and (self.account_expires is None or self.account_expires > now)


@dataclass(slots=True)
class EntraUser:
    id: str  # object id (GUID)
    upn: str
    mail: str | None
    display_name: str
    given_name: str
    surname: str
    job_title: str | None
    department: str | None
    employee_id: str | None
    account_enabled: bool
    manager_id: str | None  # the manager's Entra object id
    other_mails: list[str] = field(default_factory=list)
    created: datetime | None = None
    user_type: str = "Member"  # Graph's userType: "Member" | "Guest" (B2B guests: UPN "x_domain#EXT#@tenant")
    # Graph's signInActivity (lastSignInDateTime / lastNonInteractiveSignInDateTime); None: no such sign-in on record
    last_sign_in: datetime | None = None
    last_non_interactive_sign_in: datetime | None = None


@dataclass(slots=True)
class IntuneDevice:
    id: str  # GUID
    device_name: str
    serial: str
    upn: str | None  # userPrincipalName of the primary user
    compliance_state: str  # "compliant" | "noncompliant" | "unknown" | "inGracePeriod"
    last_sync: datetime
    enrolled: datetime
    operating_system: str  # "Windows" | "macOS"
    os_version: str
    model: str
    manufacturer: str
    management_state: str = "managed"


@dataclass(slots=True)
class LansweeperAsset:
    key: str  # asset key (base64-ish id)
    name: str
    serial: str
    user_name: str | None  # "CORP\\sam" of the assigned user
    asset_type: str  # "Windows" | "Macintosh"
    last_seen: datetime
    manufacturer: str
    model: str
    ip_address: str = ""


@dataclass(slots=True)
class HelixAsset:
    reconciliation_id: str  # "RE0050560..."
    name: str
    serial: str
    owner_email: str | None
    status: str  # "Deployed" | "In Inventory" | "Return Pending" | "Disposed"
    model: str
    manufacturer: str


@dataclass(slots=True)
class HelixReturnTicket:
    incident_number: str  # "INC000000001234"
    serial: str
    customer_email: str
    tracking_number: str
    status: str  # "Assigned" | "In Progress" | "Resolved" | "Closed"
    submit_date: datetime


@dataclass(slots=True)
class FedexShipment:
    tracking_number: str  # 12 digits
    status_code: str  # "DL" delivered | "IT" in transit | "DE" delivery exception | "PU" picked up | "OC" label
    description: str
    ship_date: datetime
    delivered_at: datetime | None = None


@dataclass(slots=True)
class Org:
    """Everything the simulators serve, plus the ground truth (the contract's JSON)."""

    seed: int
    people: int
    generated_at: datetime
    domain: str  # "corp.example"
    base_dn: str  # "DC=corp,DC=example"
    workday: list[WorkdayWorker]
    ad: list[AdUser]
    entra: list[EntraUser]
    intune: list[IntuneDevice]
    lansweeper: list[LansweeperAsset]
    helix_assets: list[HelixAsset]
    helix_tickets: list[HelixReturnTicket]
    fedex: list[FedexShipment]
    truth: dict[str, Any]  # {"seed", "people", "devices", "drift": [...], "noise": [...]}
    #: Graph collection ("users" | "deviceManagement/managedDevices") -> offsets of its unfiltered listing where
    #: Graph answers an empty page that still has a nextLink (see nexus.sim.graph)
    graph_empty_pages: dict[str, list[int]] = field(default_factory=dict)
