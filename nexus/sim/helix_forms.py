"""The Helix simulator's forms: rows, how each field is read from a row, equality indexes, qualification matching.

Equality on the key fields (serial, owner email, ids, tracking number) is answered from indexes built once, so a
lookup among 100k assets does not scan them; a plain listing renders only its page. Field names are the CMDB/ITSM
ones (see :mod:`nexus.sim.helix`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nexus.sim.helix_qualification import BoolOp, Compare, FieldRef, Literal, Node, evaluate
from nexus.sim.org_model import HelixAsset, HelixReturnTicket

ASSET_FORM = "AST:ComputerSystem"
TICKET_FORM = "HPD:Help Desk"


def _ar_time(value: datetime) -> str:
    """AR REST's timestamp rendering: ``2024-05-01T10:20:30.000+0000`` (UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


@dataclass(slots=True)
class Form:
    """One AR form: its rows, how each field is read from a row, and equality indexes on key fields."""

    name: str
    rows: list[Any]
    fields: dict[str, Callable[[Any], Any]]  # field name -> raw value (datetimes stay datetimes for comparisons)
    entry_id: Callable[[Any], str]
    indexed: tuple[str, ...]
    index: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    by_id: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.indexed:
            getter = self.fields[name]
            idx: dict[str, list[int]] = {}
            for i, row in enumerate(self.rows):
                value = getter(row)
                if isinstance(value, str) and value:
                    idx.setdefault(value.casefold(), []).append(i)
            self.index[name] = idx
        self.by_id = {self.entry_id(row): i for i, row in enumerate(self.rows)}

    def add(self, row: Any) -> None:
        """Append a row and index it (rows are only ever appended, so readers never see a half-built index)."""
        i = len(self.rows)
        self.rows.append(row)
        for name in self.indexed:
            value = self.fields[name](row)
            if isinstance(value, str) and value:
                self.index[name].setdefault(value.casefold(), []).append(i)
        self.by_id[self.entry_id(row)] = i

    def values(self, row: Any, wanted: list[str] | None) -> dict[str, Any]:
        names = wanted if wanted is not None else list(self.fields)
        out: dict[str, Any] = {}
        for name in names:
            value = self.fields[name](row)
            out[name] = _ar_time(value) if isinstance(value, datetime) else value
        return out

    def candidates(self, node: Node) -> list[int] | None:
        """Row numbers that may match, from the indexes; None when the qualification needs a scan."""
        if isinstance(node, Compare) and node.op == "=":
            pair = (node.left, node.right) if isinstance(node.left, FieldRef) else (node.right, node.left)
            ref, lit = pair
            if isinstance(ref, FieldRef) and isinstance(lit, Literal) and ref.name in self.index \
                    and isinstance(lit.value, str) and lit.value:
                return self.index[ref.name].get(lit.value.casefold(), [])
            return None
        if isinstance(node, BoolOp):
            left, right = self.candidates(node.left), self.candidates(node.right)
            if node.op == "OR":
                return None if left is None or right is None else sorted(set(left) | set(right))
            options = [c for c in (left, right) if c is not None]
            return min(options, key=len) if options else None
        return None

    def select(self, node: Node) -> list[int]:
        """Row numbers (in form order) that satisfy ``node``."""
        pool = self.candidates(node)
        numbers = range(len(self.rows)) if pool is None else pool
        return [i for i in numbers if evaluate(node, self._getter(self.rows[i]))]

    def _getter(self, row: Any) -> Callable[[str], Any]:
        fields = self.fields

        def get(name: str) -> Any:
            return fields[name](row)

        return get


def asset_form(assets: list[HelixAsset]) -> Form:
    """``AST:ComputerSystem`` over the org's assets."""
    return Form(
        name=ASSET_FORM,
        rows=assets,
        fields={
            "Reconciliation Identity": lambda a: a.reconciliation_id,
            "Name": lambda a: a.name,
            "Serial Number": lambda a: a.serial,
            "AssetLifecycleStatus": lambda a: a.status,
            "Owner Email": lambda a: a.owner_email,
            "Manufacturer": lambda a: a.manufacturer,
            "Model Number": lambda a: a.model,
        },
        entry_id=lambda a: a.reconciliation_id,
        indexed=("Reconciliation Identity", "Name", "Serial Number", "Owner Email"),
    )


@dataclass(slots=True)
class HelixIncident:
    """An incident created through ``HPD:IncidentInterface_Create`` (no serial: it is not a return ticket)."""

    incident_number: str
    submit_date: datetime
    values: dict[str, str]  # HPD:Help Desk field name -> value
    serial: str | None = None
    customer_email: str | None = None
    tracking_number: str | None = None


def _extra(name: str) -> Callable[[Any], Any]:
    """A field only created incidents carry (None on the generated return tickets)."""
    return lambda t: t.values.get(name) if isinstance(t, HelixIncident) else None


def ticket_form(tickets: list[HelixReturnTicket | HelixIncident]) -> Form:
    """``HPD:Help Desk`` over the return tickets (and the incidents created through the interface form)."""
    return Form(
        name=TICKET_FORM,
        rows=tickets,
        fields={
            "Incident Number": lambda t: t.incident_number,
            "Description": lambda t: t.values.get("Description") if isinstance(t, HelixIncident)
            else f"Device return: {t.serial}",
            "Status": lambda t: t.values.get("Status") if isinstance(t, HelixIncident) else t.status,
            "Internet E-mail": lambda t: t.customer_email,
            "Serial Number": lambda t: t.serial,
            "Tracking Number": lambda t: t.tracking_number,
            "Submit Date": lambda t: t.submit_date,
            "Service Type": lambda t: t.values.get("Service Type") if isinstance(t, HelixIncident)
            else "User Service Request",
            **{name: _extra(name) for name in ("Detailed Decription", "First Name", "Last Name", "Impact", "Urgency",
                                               "Reported Source", "Vendor Ticket Number")},
        },
        entry_id=lambda t: t.incident_number,
        indexed=("Incident Number", "Serial Number", "Internet E-mail", "Tracking Number", "Vendor Ticket Number"),
    )


__all__ = ["ASSET_FORM", "TICKET_FORM", "Form", "HelixIncident", "asset_form", "ticket_form"]
