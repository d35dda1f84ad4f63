"""What each system's fetch does for a set of subjects: the lookups behind the per-system Celery tasks.

One lookup per role (:mod:`clients.roles`), the same for every system that plays it: ``people`` asks a
:class:`~clients.roles.PeopleDirectory` for each person reference, ``devices`` asks a
:class:`~clients.roles.DeviceInventory` for each serial (plus its return tickets when the system is a
:class:`~clients.roles.ReturnRegister`), ``track`` asks a :class:`~clients.roles.ShipmentTracker`. Results are JSON-safe
dicts, so they can travel through the broker and the result backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from clients.roles import ref_kind
from nexus.systems import Role, System

__all__ = ["EMAIL_REF", "EMPLOYEE_ID_REF", "FOLLOWUP_OP", "lookup_devices", "lookup_people", "ref_kind", "run_lookup",
           "track_shipments"]

#: The lookup op of a people part's follow-up rounds (nexus.audits.followup), and its typed references.
FOLLOWUP_OP = "people_followup"
EMPLOYEE_ID_REF = "employee_id:"
EMAIL_REF = "email:"


def _rec(record: Any) -> dict[str, Any] | None:
    return None if record is None else record.to_dict()


def _person(client: Any, ref: str) -> list[dict[str, Any]]:
    """Every record the directory holds for ``ref`` (strongest match first): a directory with two accounts for one
    person must show both (nexus.drift.accounts); one that only answers ``find_person`` gives at most one."""
    find_people = getattr(client, "find_people", None)
    if callable(find_people):
        return [r.to_dict() for r in find_people(ref)]
    found = client.find_person(ref)
    return [] if found is None else [found.to_dict()]


def _person_by_id(client: Any, employee_id: str) -> list[dict[str, Any]]:
    return [r.to_dict() for r in client.find_by_employee_id(employee_id)]


def _followup(client: Any, ref: str) -> list[dict[str, Any]]:
    """A follow-up round's typed reference (nexus.audits.followup): ``employee_id:<id>`` or ``email:<address>``."""
    if ref.startswith(EMPLOYEE_ID_REF):
        return _person_by_id(client, ref[len(EMPLOYEE_ID_REF):])
    if ref.startswith(EMAIL_REF):
        return _person(client, ref[len(EMAIL_REF):])
    raise ValueError(f"not a follow-up reference: {ref!r}")


def _device(client: Any, serial: str) -> dict[str, Any] | None:
    return _rec(client.find_device(serial))


def _tickets(client: Any, serial: str) -> list[dict[str, Any]]:
    return [t.to_dict() for t in client.tickets_for_serial(serial)]


def _memoised(memo: dict[str, Any], key: str, compute: Callable[[], Any]) -> Any:
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def lookup_people(
    system: System, client: Any, refs: Iterable[str], memo: dict[str, Any] | None = None, *, followup: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Per reference, the records a people directory holds for it (empty: none); ``followup``: the references are
    typed (``employee_id:<id>``, ``email:<address>``: a follow-up round of a people part), never guessed at."""
    if Role.PEOPLE not in system.roles:
        raise ValueError(f"{system.display} holds no people")
    memo = {} if memo is None else memo
    if followup:
        return {ref: _memoised(memo, f"followup:{ref}", partial(_followup, client, ref)) for ref in refs}
    found = {ref: _memoised(memo, f"people:{ref}", partial(_person, client, ref)) for ref in refs}
    if system is System.WORKDAY:  # the system of record: a worker is found by their own addresses
        return found
    return {ref: _with_same_employee_id(client, memo, records) for ref, records in found.items()}


def _with_same_employee_id(client: Any, memo: dict[str, Any], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An account directory's answer for an address, plus every account carrying the employee id of an account it
    found: a worker's second account may carry their id and none of their addresses (``ambiguous_account``). One
    lookup per distinct id, memoised with the follow-up rounds' (nexus.audits.followup)."""
    out = list(found)
    keys = {r.get("key") for r in found}
    for eid in dict.fromkeys((r.get("employee_id") or "").strip() for r in found):
        if not eid:
            continue
        ref = EMPLOYEE_ID_REF + eid
        for record in _memoised(memo, f"followup:{ref}", partial(_followup, client, ref)):
            if record.get("key") not in keys:
                keys.add(record.get("key"))
                out.append(record)
    return out


def lookup_devices(
    system: System, client: Any, serials: Iterable[str], memo: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per serial: the device record (or None); a return register adds the serial's return tickets."""
    if Role.DEVICES not in system.roles:
        raise ValueError(f"{system.display} holds no devices")
    memo = {} if memo is None else memo
    returns = Role.RETURNS in system.roles
    out: dict[str, Any] = {}
    for serial in serials:
        entry: dict[str, Any] = {}
        if returns:
            entry["tickets"] = _memoised(memo, f"tickets:{serial}", partial(_tickets, client, serial))
        entry["device"] = _memoised(memo, f"device:{serial}", partial(_device, client, serial))
        out[serial] = {"device": entry["device"], **({"tickets": entry["tickets"]} if returns else {})}
    return out


def track_shipments(client: Any, numbers: Iterable[str]) -> dict[str, Any]:
    return {number: record.to_dict() for number, record in client.track(list(numbers)).items()}


def run_lookup(
    system: System, client: Any, op: str, subjects: list[str], memo: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one lookup. ``memo`` keeps each answer obtained so far: an attempt that fails part-way leaves its
    answers there, and the next attempt (a Celery retry) asks only for what is still missing, so a flaky system
    that drops one request in a few still lets a many-request fetch complete within its attempts."""
    if op in ("people", FOLLOWUP_OP):
        return lookup_people(system, client, subjects, memo, followup=op == FOLLOWUP_OP)
    if op == "devices":
        return lookup_devices(system, client, subjects, memo)
    if op == "track":
        return track_shipments(client, subjects)
    raise ValueError(f"unknown lookup {op!r}")
