"""The field names of the Workday RaaS custom report Nexus reads: role -> report field name (a core module).

Workday has no fixed worker listing with employment status for an API client: the Staffing v6 REST worker summary
carries only ``id`` (WID), ``descriptor``, ``href``, ``businessTitle``, ``isManager``,
``primarySupervisoryOrganization``, ``primaryWorkEmail`` and ``primaryWorkPhone`` (Workday REST API reference,
``workerSummary``; as republished in schemas.apis.io/schemas/workday/workday-workersummary): no employee id, no
active flag, no hire or termination date, no manager. Identity integrations therefore read a custom report
published as a web service (RaaS): ServiceNow ("Obtaining data from Workday using RaaS reports": "a RaaS endpoint
returns whatever columns the report author configured"), Workato's Workday RaaS connector, Unified.to's Workday RaaS
integration (an "Employees Report" the customer names), VersionForge ("a single comprehensive worker report",
data source "All Active and Terminated Workers", columns ``Employee_ID``, ``Hire_Date``, ``Termination_Date``,
``Worker_Type``). Microsoft Entra's Workday inbound provisioning reads the same facts over Get_Workers (its
attribute reference: ``Active`` = ``Worker_Status_Data/Active``, ``HireDate``, ``StatusTerminationDate``, ...).

The report's columns are named by whoever builds it in the tenant (the column's "XML alias"), so the names are
configuration, not a contract: :data:`DEFAULTS` documents the names Nexus expects out of the box, and
``NEXUS_WORKDAY_FIELDS`` overrides any of them, either as a JSON object (``{"employee_id": "Emp_ID"}``) or as
``role=Field`` pairs (``employee_id=Emp_ID,active=Is_Active``). The client (:mod:`clients.workday`), the simulator
(:mod:`nexus.sim.workday`) and the org-file importer read the mapping from :func:`report_fields`.

Which fields must be there (a report without them is a configuration error, named in one line, never a fleet of
workers that all look active):

- in EVERY entry: :data:`EMPLOYEE_ID` and :data:`ACTIVE` (RaaS renders a boolean as ``"1"``/``"0"``, so a present
  field is how a terminated worker is told from an active one);
- somewhere in a listing of the whole report: :data:`EMAIL` (RaaS omits empty fields, so one worker without a work
  email is normal; no worker having one means the column is not in the report).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

EMPLOYEE_ID = "employee_id"
ACTIVE = "active"
HIRE_DATE = "hire_date"
TERMINATION_DATE = "termination_date"
EMAIL = "email"
WORKER = "worker"  # the worker's display name (the report's Worker instance, rendered as its descriptor)
FIRST_NAME = "first_name"
LAST_NAME = "last_name"
BUSINESS_TITLE = "business_title"
SUPERVISORY_ORG = "supervisory_organization"
MANAGER_EMPLOYEE_ID = "manager_employee_id"
WORKER_TYPE = "worker_type"

#: role -> the report field name Nexus expects unless ``NEXUS_WORKDAY_FIELDS`` says otherwise.
DEFAULTS: Mapping[str, str] = MappingProxyType({
    EMPLOYEE_ID: "Employee_ID",
    ACTIVE: "Active_Status",
    HIRE_DATE: "Hire_Date",
    TERMINATION_DATE: "Termination_Date",
    EMAIL: "Email_-_Work",
    WORKER: "Worker",
    FIRST_NAME: "First_Name",
    LAST_NAME: "Last_Name",
    BUSINESS_TITLE: "Business_Title",
    SUPERVISORY_ORG: "Supervisory_Organization",
    MANAGER_EMPLOYEE_ID: "Manager_Employee_ID",
    WORKER_TYPE: "Worker_Type",
})
ROLES: tuple[str, ...] = tuple(DEFAULTS)
#: Roles every entry must carry.
REQUIRED_IN_EVERY_ENTRY: tuple[str, ...] = (EMPLOYEE_ID, ACTIVE)
#: Roles at least one entry of a whole-report listing must carry.
REQUIRED_IN_REPORT: tuple[str, ...] = (EMAIL,)

# A report field's XML alias: letters, digits, underscores, hyphens and dots (Workday derives it from the column
# label, e.g. ``Email_-_Work``).
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class ReportFields:
    """The mapping in use: ``fields[role]`` is the report's field name for that role."""

    names: Mapping[str, str]

    def __getitem__(self, role: str) -> str:
        return self.names[role]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self.names.items())


def parse_fields(value: str) -> ReportFields:
    """``NEXUS_WORKDAY_FIELDS`` (empty: the defaults) -> the mapping; ValueError with a readable message."""
    text = (value or "").strip()
    overrides: dict[str, Any]
    if not text:
        overrides = {}
    elif text[0] in "{[":
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"NEXUS_WORKDAY_FIELDS is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError("NEXUS_WORKDAY_FIELDS must be a JSON object of role: field name")
        overrides = loaded
    else:
        overrides = {}
        for item in text.split(","):
            if not item.strip():
                continue
            role, sep, name = item.partition("=")
            if not sep:
                raise ValueError(f"NEXUS_WORKDAY_FIELDS: {item.strip()!r} is not role=Field")
            overrides[role.strip()] = name.strip()
    names = dict(DEFAULTS)
    for role, name in overrides.items():
        if role not in DEFAULTS:
            raise ValueError(f"NEXUS_WORKDAY_FIELDS: unknown role {role!r} (roles: {', '.join(ROLES)})")
        if not isinstance(name, str) or not _FIELD.match(name):
            raise ValueError(f"NEXUS_WORKDAY_FIELDS: {role} must name a report field (letters, digits, _ - .), "
                             f"not {name!r}")
        names[role] = name
    taken: dict[str, str] = {}
    for role, name in names.items():
        if name in taken:
            raise ValueError(f"NEXUS_WORKDAY_FIELDS: {taken[name]} and {role} both read report field {name!r}")
        taken[name] = role
    return ReportFields(MappingProxyType(names))


DEFAULT_FIELDS = parse_fields("")


class _HasFields(Protocol):
    workday_fields: str


def report_fields(settings: _HasFields) -> ReportFields:
    """The mapping ``settings`` (a :class:`nexus.settings.Settings`, which validated it) configures."""
    return parse_fields(settings.workday_fields)


__all__ = ["ACTIVE", "BUSINESS_TITLE", "DEFAULTS", "DEFAULT_FIELDS", "EMAIL", "EMPLOYEE_ID", "FIRST_NAME",
           "HIRE_DATE", "LAST_NAME", "MANAGER_EMPLOYEE_ID", "REQUIRED_IN_EVERY_ENTRY", "REQUIRED_IN_REPORT",
           "ROLES", "SUPERVISORY_ORG", "TERMINATION_DATE", "WORKER", "WORKER_TYPE", "ReportFields", "parse_fields",
           "report_fields"]
