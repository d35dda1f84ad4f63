"""What each system's fetch does for a set of subjects: the lookups behind the per-system Celery tasks.

A *person reference* is a string: an email or UPN (has ``@``), ``DOMAIN\\sam`` (has a backslash), or an employee id
(digits). Each system answers the references it can; the rest map to None. Results are JSON-safe dicts, so they can
travel through the broker and the result backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
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


def lookup_people(
    system: System, client: Any, refs: Iterable[str], memo: dict[str, Any] | None = None
) -> dict[str, dict[str, Any] | None]:
    """One record (or None) per reference, from Workday, AD or Entra."""
    memo = {} if memo is None else memo
    out: dict[str, dict[str, Any] | None] = {}
    for ref in refs:
        key = f"people:{ref}"
        if key in memo:
            out[ref] = memo[key]
            continue
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
        out[ref] = memo[key] = _rec(record)
    return out


def _device(find: Callable[[str], Any], serial: str) -> dict[str, Any] | None:
    return _rec(find(serial))


def _tickets(client: Any, serial: str) -> list[dict[str, Any]]:
    return [t.to_dict() for t in client.tickets_for_serial(serial)]


def _memoised(memo: dict[str, Any], key: str, compute: Callable[[], Any]) -> Any:
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def lookup_devices(
    system: System, client: Any, serials: Iterable[str], memo: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per serial: the device record (or None); Helix adds the serial's return tickets."""
    memo = {} if memo is None else memo
    out: dict[str, Any] = {}
    for serial in serials:
        if system is System.INTUNE:
            device = _memoised(memo, f"device:{serial}", partial(_device, client.find_device, serial))
            out[serial] = {"device": device}
        elif system is System.LANSWEEPER:
            device = _memoised(memo, f"device:{serial}", partial(_device, client.find_asset, serial))
            out[serial] = {"device": device}
        elif system is System.HELIX:
            tickets = _memoised(memo, f"tickets:{serial}", partial(_tickets, client, serial))
            device = _memoised(memo, f"device:{serial}", partial(_device, client.find_asset, serial))
            out[serial] = {"device": device, "tickets": tickets}
        else:
            raise ValueError(f"{system.display} holds no devices")
    return out


def track_shipments(client: Any, numbers: Iterable[str]) -> dict[str, Any]:
    return {number: record.to_dict() for number, record in client.track(list(numbers)).items()}


def run_lookup(
    system: System, client: Any, op: str, subjects: list[str], memo: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one lookup. ``memo`` keeps each answer obtained so far: an attempt that fails part-way leaves its
    answers there, and the next attempt (a Celery retry) asks only for what is still missing, so a flaky system
    that drops one request in a few still lets a many-request fetch complete within its attempts."""
    if op == "people":
        return lookup_people(system, client, subjects, memo)
    if op == "devices":
        return lookup_devices(system, client, subjects, memo)
    if op == "track":
        return track_shipments(client, subjects)
    raise ValueError(f"unknown lookup {op!r}")
