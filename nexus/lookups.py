"""What each system's fetch does for a set of subjects: the lookups behind the per-system Celery tasks.

A *person reference* is a string: an email or UPN (has ``@``), ``DOMAIN\\sam`` (has a backslash), or an employee id
(digits). Each system answers the references it can; the rest map to None. Results are JSON-safe dicts, so they can
travel through the broker and the result backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from nexus.systems import System


class _Client(Protocol):
    def health(self) -> float: ...


def ref_kind(ref: str) -> str:
    if "\\" in ref:
        return "username"
    if "@" in ref:
        return "email"
    if ref.isdigit():
        return "employee_id"
    return "other"


def _rec(record: Any) -> dict[str, Any] | None:
    return None if record is None else record.to_dict()


def lookup_people(system: System, client: Any, refs: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """One record (or None) per reference, from Workday, AD or Entra."""
    out: dict[str, dict[str, Any] | None] = {}
    for ref in refs:
        kind = ref_kind(ref)
        record: Any = None
        if system is System.WORKDAY:
            if kind == "email":
                record = client.find_worker(email=ref)
            elif kind == "employee_id":
                record = client.find_worker(employee_id=ref)
        elif system is System.AD:
            if kind == "email":
                record = client.find_user(email=ref)
            elif kind == "username":
                record = client.find_user(username=ref.split("\\", 1)[1])
            elif kind == "employee_id":
                record = client.find_user(employee_id=ref)
        elif system is System.ENTRA:
            if kind == "email":
                record = client.find_user(email=ref, upn=ref)
            elif kind == "employee_id":
                record = client.find_user(employee_id=ref)
        else:
            raise ValueError(f"{system.display} holds no people")
        out[ref] = _rec(record)
    return out


def lookup_devices(system: System, client: Any, serials: Iterable[str]) -> dict[str, Any]:
    """Per serial: the device record (or None); Helix adds the serial's return tickets."""
    out: dict[str, Any] = {}
    for serial in serials:
        if system is System.INTUNE:
            out[serial] = {"device": _rec(client.find_device(serial))}
        elif system is System.LANSWEEPER:
            out[serial] = {"device": _rec(client.find_asset(serial))}
        elif system is System.HELIX:
            tickets = client.tickets_for_serial(serial)
            out[serial] = {"device": _rec(client.find_asset(serial)), "tickets": [t.to_dict() for t in tickets]}
        else:
            raise ValueError(f"{system.display} holds no devices")
    return out


def track_shipments(client: Any, numbers: Iterable[str]) -> dict[str, Any]:
    return {number: record.to_dict() for number, record in client.track(list(numbers)).items()}


def run_lookup(system: System, client: Any, op: str, subjects: list[str]) -> dict[str, Any]:
    if op == "people":
        return lookup_people(system, client, subjects)
    if op == "devices":
        return lookup_devices(system, client, subjects)
    if op == "track":
        return track_shipments(client, subjects)
    raise ValueError(f"unknown lookup {op!r}")
