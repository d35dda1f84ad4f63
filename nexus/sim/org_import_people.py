"""People from export files: ``workday.json`` (a RaaS report) and ``entra.json`` (a Graph users collection).

``workday.json`` is what ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json`` answers:
``{"Report_Entry": [{...}, ...]}``, RaaS's conventions (as :mod:`nexus.sim.workday` serves them): empty fields are
omitted, booleans are ``"1"``/``"0"``, dates may carry the tenant's offset (``2021-03-15-08:00``). The report's
field names are the report's own (an administrator names them when building it): :data:`RAAS_FIELDS` holds the
defaults, in one place, so a configurable mapping can replace it. ``Workday_ID`` (the WID) and ``Location`` are
read when the report has them; without a WID the worker gets a stable one derived from the employee id (the REST
listing needs one; RaaS never shows it).

``entra.json`` is what ``GET /v1.0/users?$select=...&$expand=manager`` answers: ``{"value": [...]}`` (``@odata.*``
keys tolerated; Graph's "List users", https://learn.microsoft.com/en-us/graph/api/user-list). ``id``,
``userPrincipalName`` and ``accountEnabled`` are required (Graph only returns
``accountEnabled`` with ``$select``: an export without it cannot say who is enabled); the manager is the expanded
``manager`` object's ``id``, which must be a user of the same export (the simulator expands managers from its
own users: a manager outside the export would silently disappear).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from nexus import workday_fields as wf
from nexus.sim.org_import_json import (
    EntryError,
    JsonPath,
    Notes,
    collection,
    graph_collection,
    items,
    obj,
    opt_bool,
    opt_str,
    opt_time,
    parse_day,
    req_str,
    unique,
)
from nexus.sim.org_model import EntraUser, WorkdayWorker
from nexus.workday_fields import DEFAULT_FIELDS, ReportFields


#: Report field of each worker attribute (the RaaS report's default names; ONE mapping, swappable for a
#: configured one).
def raas_fields(report: ReportFields = DEFAULT_FIELDS) -> dict[str, str]:
    """The importer's names for the report's fields, from the mapping the clients use (nexus.workday_fields,
    ``NEXUS_WORKDAY_FIELDS``), plus the two optional fields the simulator also serves."""
    return {
        "employee_id": report[wf.EMPLOYEE_ID],
        "active": report[wf.ACTIVE],
        "hire_date": report[wf.HIRE_DATE],
        "termination_date": report[wf.TERMINATION_DATE],
        "email": report[wf.EMAIL],
        "display_name": report[wf.WORKER],
        "first_name": report[wf.FIRST_NAME],
        "last_name": report[wf.LAST_NAME],
        "title": report[wf.BUSINESS_TITLE],
        "department": report[wf.SUPERVISORY_ORG],
        "manager_id": report[wf.MANAGER_EMPLOYEE_ID],
        "worker_type": report[wf.WORKER_TYPE],
        "wid": "Workday_ID",
        "location": "Location",
    }


#: The default names (``NEXUS_WORKDAY_FIELDS`` unset).
RAAS_FIELDS: dict[str, str] = raas_fields()
_TRUE, _FALSE = frozenset({"1", "true"}), frozenset({"0", "false"})


def workday_workers(document: Any, fields: Mapping[str, str] = RAAS_FIELDS) -> list[WorkdayWorker]:
    """The report's entries as workers (in report order)."""
    f = fields
    entries = collection(document, "Report_Entry")
    seen: dict[str, int] = {}
    out: list[WorkdayWorker] = []
    for i, raw in enumerate(entries):
        path: JsonPath = ("Report_Entry", i)
        entry = obj(raw, path)
        eid = req_str(entry, f["employee_id"], path).strip()
        unique(seen, eid, i, path, f["employee_id"])
        status = req_str(entry, f["active"], path).strip().lower()
        if status not in _TRUE | _FALSE:
            raise EntryError(path, f'{f["active"]} is {status!r}, expected "1" or "0"')
        hire = _day(entry, f["hire_date"], path)
        if hire is None:
            raise EntryError(path, f"{f['hire_date']} is missing")
        first = opt_str(entry, f["first_name"], path) or ""
        last = opt_str(entry, f["last_name"], path) or ""
        display = opt_str(entry, f["display_name"], path) or f"{first} {last}".strip()
        if not display:
            raise EntryError(path, f"{f['display_name']} is missing (and no {f['first_name']}/{f['last_name']})")
        wid = opt_str(entry, f["wid"], path) or hashlib.md5(f"wid:{eid}".encode(), usedforsecurity=False).hexdigest()
        out.append(WorkdayWorker(
            employee_id=eid, wid=wid, first_name=first, last_name=last, display_name=display,
            email=(opt_str(entry, f["email"], path) or "").strip(), title=opt_str(entry, f["title"], path) or "",
            department=opt_str(entry, f["department"], path) or "",
            manager_id=(opt_str(entry, f["manager_id"], path) or "").strip() or None,
            location=opt_str(entry, f["location"], path) or "",
            worker_type=opt_str(entry, f["worker_type"], path) or "", active=status in _TRUE, hire_date=hire,
            termination_date=_day(entry, f["termination_date"], path),
        ))
    return out


def _day(entry: Mapping[str, Any], name: str, path: JsonPath) -> Any:
    text = opt_str(entry, name, path)
    if text is None:
        return None
    try:
        return parse_day(text)
    except ValueError:
        raise EntryError(path, f"{name} {text!r} is not a date (2021-03-15 or 2021-03-15-08:00)") from None


def _sign_ins(user: Mapping[str, Any], path: JsonPath) -> tuple[datetime | None, datetime | None]:
    """``signInActivity``'s interactive and non-interactive times (exported with ``$select=...,signInActivity``);
    Graph's ``0001-01-01T00:00:00Z`` is "none"."""
    activity = user.get("signInActivity")
    if activity is None:
        return None, None
    where: JsonPath = (*path, "signInActivity")
    record = obj(activity, where)
    times = (opt_time(record, "lastSignInDateTime", where), opt_time(record, "lastNonInteractiveSignInDateTime", where))
    first, second = (t if t is not None and t.year > 1 else None for t in times)
    return first, second


def entra_users(document: Any, notes: Notes | None = None) -> list[EntraUser]:
    """The collection's users (guests included: the Entra client tells them apart, as it must on a tenant)."""
    users = graph_collection(document, notes, "entra.json", "the tenant's users")
    seen: dict[str, int] = {}
    out: list[EntraUser] = []
    for i, raw in enumerate(users):
        path: JsonPath = ("value", i)
        user = obj(raw, path)
        uid = req_str(user, "id", path)
        unique(seen, uid, i, path, "id")
        enabled = opt_bool(user, "accountEnabled", path)
        if enabled is None:
            raise EntryError(path, "accountEnabled is missing (export with $select=...,accountEnabled)")
        manager = user.get("manager")
        manager_id = None
        if manager is not None:
            manager_id = opt_str(obj(manager, (*path, "manager")), "id", (*path, "manager"))
        interactive, non_interactive = _sign_ins(user, path)
        other = user.get("otherMails") or []
        other_mails = [m for m in items(other, (*path, "otherMails")) if isinstance(m, str) and m]
        out.append(EntraUser(
            id=uid, upn=req_str(user, "userPrincipalName", path), mail=opt_str(user, "mail", path),
            display_name=opt_str(user, "displayName", path) or "", given_name=opt_str(user, "givenName", path) or "",
            surname=opt_str(user, "surname", path) or "", job_title=opt_str(user, "jobTitle", path),
            department=opt_str(user, "department", path), employee_id=opt_str(user, "employeeId", path),
            account_enabled=enabled, manager_id=manager_id, other_mails=other_mails,
            created=opt_time(user, "createdDateTime", path), user_type=opt_str(user, "userType", path) or "Member",
            last_sign_in=interactive, last_non_interactive_sign_in=non_interactive,
        ))
    for i, u in enumerate(out):
        # The simulator expands a manager from the collection itself: one outside it would silently vanish.
        if u.manager_id and u.manager_id.casefold() not in seen:
            raise EntryError(("value", i, "manager"), f"manager {u.manager_id!r} is not a user of this export")
    return out


__all__ = ["RAAS_FIELDS", "entra_users", "raas_fields", "workday_workers"]
