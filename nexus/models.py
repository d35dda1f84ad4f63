"""Canonical records: what clients produce from each system's wire format and the drift engine consumes.

Values are kept as the system wrote them (no normalisation here: that is the engine's job, so reports can show the
original values). ``system`` is the lower-case system id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from nexus.controls import control_of, remediation_of

#: What a listing stream holds (the registry's streams, the snapshot codec): one kind per record class below.
KIND_PERSON = "person"
KIND_DEVICE = "device"
KIND_TICKET = "ticket"
KIND_SHIPMENT = "shipment"


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One person as one system (Workday, AD, Entra) describes them."""

    system: str
    key: str  # the system's own id: Workday employee id, AD DN, Entra object id
    employee_id: str | None = None
    email: str | None = None  # primary mail as the system holds it
    upn: str | None = None
    username: str | None = None  # sAMAccountName (AD only)
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    department: str | None = None
    manager_ref: str | None = None  # as written: Workday employee id, AD DN, Entra object id
    manager_employee_id: str | None = None  # resolved by the client when it can
    manager_email: str | None = None
    enabled: bool | None = None  # AD / Entra: account enabled. Workday: worker active
    status: str | None = None  # Workday: "Active" | "Terminated"
    worker_type: str | None = None  # Workday: "Employee" | "Contractor"
    termination_date: str | None = None  # ISO date (Workday)
    aliases: tuple[str, ...] = ()  # other addresses: proxyAddresses, otherMails
    account_expires: str | None = None  # ISO 8601 UTC (AD accountExpires; None: never). Past it, enabled is False
    last_logon: str | None = None  # ISO 8601 UTC (AD lastLogonTimestamp; None: never logged on)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonRecord:
        data = dict(data)
        data["aliases"] = tuple(data.get("aliases") or ())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device as one system (Intune, Lansweeper, Helix) describes it."""

    system: str
    key: str  # the system's own id
    serial: str
    name: str | None = None
    owner: str | None = None  # as written: UPN (Intune), DOMAIN\\sam (Lansweeper), email (Helix)
    last_seen: str | None = None  # ISO 8601 UTC: lastSyncDateTime / lastSeen
    compliance: str | None = None  # Intune complianceState
    status: str | None = None  # Helix lifecycle status, Intune managementState
    model: str | None = None
    manufacturer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceRecord:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ReturnTicket:
    """A Helix ticket for returning a departed person's device, with the FedEx tracking number."""

    ticket_id: str
    serial: str
    customer_email: str | None
    tracking_number: str | None
    status: str | None
    opened_at: str | None  # ISO 8601 UTC

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReturnTicket:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ShipmentRecord:
    """FedEx's view of one tracking number."""

    tracking_number: str
    found: bool
    delivered: bool = False
    status_code: str | None = None  # FedEx latestStatusDetail.code: DL, IT, PU, DE, ...
    status: str | None = None
    delivered_at: str | None = None
    error: str | None = None  # FedEx's in-200 error code for unknown numbers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShipmentRecord:
        return cls(**data)


@dataclass(slots=True)
class Discrepancy:
    """One disagreement; the seed's shape plus the subject and how the records were matched."""

    field: str
    system_a: str  # display names
    value_a: Any
    system_b: str
    value_b: Any
    severity: str  # critical | high | medium | low
    subject: str = ""
    matched_on: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "field": self.field,
            "system_a": self.system_a,
            "value_a": self.value_a,
            "system_b": self.system_b,
            "value_b": self.value_b,
            "severity": self.severity,
        }
        if self.subject:
            out["subject"] = self.subject
        if self.matched_on:
            out["matched_on"] = self.matched_on
        control = control_of(self.field)
        if control:
            out["control"] = control
            out["remediation"] = remediation_of(self.field)
        out.update(self.extra)
        return out
