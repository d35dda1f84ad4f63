"""Hand-built canonical records for the drift engine tests: a manager and a worker, as each system writes them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from nexus.models import DeviceRecord, PersonRecord, ReturnTicket, ShipmentRecord

NOW = datetime(2026, 4, 13, 12, 0, tzinfo=UTC)
BASE = "DC=corp,DC=example"

MGR_EID, EMP_EID = "100001", "100002"
MGR_OID = "0f6c1b8e-1111-4a8b-9c1d-000000000001"
EMP_OID = "0f6c1b8e-2222-4a8b-9c1d-000000000002"
MGR_DN = f"CN=Maria Manager,OU=Users,OU=Engineering,{BASE}"
EMP_DN = f"CN=Jane Doe,OU=Users,OU=Engineering,{BASE}"
MGR_EMAIL, EMP_EMAIL = "maria.manager@corp.example", "jane.doe@corp.example"


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def days_ago(n: float) -> str:
    return iso(NOW - timedelta(days=n))


def wd(eid: str, email: str, name: str, **kw: Any) -> PersonRecord:
    first, last = name.split(" ", 1)
    base: dict[str, Any] = dict(
        system="workday",
        key=eid,
        employee_id=eid,
        email=email,
        display_name=name,
        first_name=first,
        last_name=last,
        title="Engineer",
        department="Engineering",
        enabled=True,
        status="Active",
        worker_type="Employee",
    )
    base.update(kw)
    return PersonRecord(**base)


def ad(eid: str | None, email: str, name: str, dn: str, sam: str, **kw: Any) -> PersonRecord:
    base: dict[str, Any] = dict(
        system="ad",
        key=dn,
        employee_id=eid,
        email=email,
        upn=email,
        username=sam,
        display_name=name,
        title="Engineer",
        department="Engineering",
        enabled=True,
        aliases=(f"SMTP:{email}",),
    )
    base.update(kw)
    return PersonRecord(**base)


def entra(eid: str | None, email: str | None, name: str, oid: str, **kw: Any) -> PersonRecord:
    base: dict[str, Any] = dict(
        system="entra",
        key=oid,
        employee_id=eid,
        email=email,
        upn=email,
        display_name=name,
        title="Engineer",
        department="Engineering",
        enabled=True,
    )
    base.update(kw)
    return PersonRecord(**base)


def clean_people() -> tuple[list[PersonRecord], list[PersonRecord], list[PersonRecord]]:
    """Manager + worker, identical everywhere (managers written as each system writes them)."""
    workday = [
        wd(MGR_EID, MGR_EMAIL, "Maria Manager", title="Director"),
        wd(EMP_EID, EMP_EMAIL, "Jane Doe", manager_ref=MGR_EID),
    ]
    ad_ = [
        ad(MGR_EID, MGR_EMAIL, "Maria Manager", MGR_DN, "mmanager", title="Director"),
        ad(EMP_EID, EMP_EMAIL, "Jane Doe", EMP_DN, "jdoe", manager_ref=MGR_DN),
    ]
    entra_ = [
        entra(MGR_EID, MGR_EMAIL, "Maria Manager", MGR_OID, title="Director"),
        entra(EMP_EID, EMP_EMAIL, "Jane Doe", EMP_OID, manager_ref=MGR_OID),
    ]
    return workday, ad_, entra_


def with_(records: list[PersonRecord], key: str, **changes: Any) -> list[PersonRecord]:
    """``records`` with the one whose ``key`` matches changed."""
    return [replace(r, **changes) if r.key == key else r for r in records]


def without(records: list[PersonRecord], key: str) -> list[PersonRecord]:
    return [r for r in records if r.key != key]


SERIAL = "5CG1234XYZ"


def device(system: str, owner: str | None, **kw: Any) -> DeviceRecord:
    base: dict[str, Any] = dict(system=system, key=f"{system}-1", serial=SERIAL, owner=owner)
    if system == "intune":
        base.update(last_seen=days_ago(2), compliance="compliant", status="managed")
    elif system == "helix":
        base.update(status="Deployed")
    else:
        base.update(last_seen=days_ago(1))
    base.update(kw)
    return DeviceRecord(**base)


def clean_devices() -> tuple[list[DeviceRecord], list[DeviceRecord], list[DeviceRecord]]:
    """Jane's laptop: Intune by UPN, Lansweeper by CORP\\sam, Helix by email."""
    return (
        [device("intune", EMP_EMAIL)],
        [device("lansweeper", "CORP\\jdoe")],
        [device("helix", EMP_EMAIL)],
    )


def ticket(opened_days_ago: float, tracking: str | None = "794600000001", **kw: Any) -> ReturnTicket:
    base: dict[str, Any] = dict(
        ticket_id="INC000000001234",
        serial=SERIAL,
        customer_email=EMP_EMAIL,
        tracking_number=tracking,
        status="Assigned",
        opened_at=days_ago(opened_days_ago),
    )
    base.update(kw)
    return ReturnTicket(**base)


def shipment(code: str | None, tracking: str = "794600000001", found: bool = True) -> ShipmentRecord:
    return ShipmentRecord(
        tracking_number=tracking, found=found, delivered=code == "DL", status_code=code if found else None
    )


def fields_of(discrepancies: Any) -> set[tuple[str, str, str]]:
    """{(field, system_a, system_b)} of Discrepancy objects or report dicts."""
    out = set()
    for d in discrepancies:
        item = d if isinstance(d, dict) else d.to_dict()
        out.add((item["field"], item["system_a"], item["system_b"]))
    return out
