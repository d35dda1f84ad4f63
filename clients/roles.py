"""The small roles a system's client plays, as Protocols: what the rest of Nexus may ask of a client.

    HealthCheck       health() -> elapsed ms of one cheap authenticated request      every client
    PeopleDirectory   find_person(ref) -> PersonRecord | None, find_by_employee_id(eid)   Workday, AD, Entra
    DeviceInventory   find_device(serial) -> DeviceRecord | None                       Intune, Lansweeper, Helix
    ReturnRegister    tickets_for_serial(serial) -> [ReturnTicket]                     Helix
    ShipmentTracker   track(numbers) -> {number: ShipmentRecord}                       FedEx
    PagedListing      fetch_page(cursor) -> Page: ONE request, its records, the next cursor (fleet snapshots)

A *person reference* is a string: an email or UPN (has ``@``), ``DOMAIN\\sam`` (has a backslash) or an employee id
(digits). Each directory answers the kinds of reference it can be asked about and returns None for the others
(Workday and Entra know no Windows user name). Nothing outside ``clients/`` calls a client's private methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from clients.paging import Page
from nexus.models import DeviceRecord, PersonRecord, ReturnTicket, ShipmentRecord

EMAIL = "email"
USERNAME = "username"
EMPLOYEE_ID = "employee_id"
OTHER = "other"


def ref_kind(ref: str) -> str:
    """What a person reference is: ``email``, ``username`` (``DOMAIN\\sam``), ``employee_id`` or ``other``."""
    if "\\" in ref:
        return USERNAME
    if "@" in ref:
        return EMAIL
    if ref.isdigit():
        return EMPLOYEE_ID
    return OTHER


@runtime_checkable
class HealthCheck(Protocol):
    def health(self) -> float: ...


@runtime_checkable
class PeopleDirectory(HealthCheck, Protocol):
    def find_person(self, ref: str) -> PersonRecord | None: ...

    def find_by_employee_id(self, employee_id: str) -> list[PersonRecord]:
        """Every record with this employee id, taken as one whatever it looks like (a second-stage lookup)."""
        ...


@runtime_checkable
class DeviceInventory(HealthCheck, Protocol):
    def find_device(self, serial: str) -> DeviceRecord | None: ...


@runtime_checkable
class ReturnRegister(Protocol):
    def tickets_for_serial(self, serial: str) -> list[ReturnTicket]: ...


@runtime_checkable
class ShipmentTracker(HealthCheck, Protocol):
    def track(self, numbers: Iterable[str]) -> dict[str, ShipmentRecord]: ...


@runtime_checkable
class PagedListing(Protocol):
    def fetch_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[Any]: ...


__all__ = ["EMAIL", "EMPLOYEE_ID", "OTHER", "USERNAME", "DeviceInventory", "HealthCheck", "PagedListing",
           "PeopleDirectory", "ReturnRegister", "ShipmentTracker", "ref_kind"]


def same_person(ranked: list[PersonRecord]) -> list[PersonRecord]:
    """A lookup's matches, strongest first, without the accounts that carry ANOTHER employee id than the strongest
    match: an alias or shared mailbox of someone else (``smtp:alice@`` on Bob's account) is Bob's, not a second
    account of Alice's. Accounts without an employee id stay (they may be hers)."""
    if not ranked:
        return []
    top = (ranked[0].employee_id or "").strip().casefold()
    return [r for r in ranked if not top or not r.employee_id or r.employee_id.strip().casefold() == top]
