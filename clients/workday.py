"""Workday client: the worker listing over the Staffing v6 REST API and one-worker lookups over a RaaS report.

- Token: ``POST /ccx/oauth2/{tenant}/token`` with the refresh-token grant and HTTP Basic client credentials; the
  access token is cached and refreshed before it expires (one re-authentication on a 401).
- ``fetch_page``: ``GET /ccx/api/staffing/v6/{tenant}/workers?limit=&offset=&includeTerminatedWorkers=true``; the
  cursor is the next offset. Terminated workers are requested explicitly: the audit needs them (CIS 6.2).
  A page shorter than asked for while ``offset + len(data) < total`` means the tenant stopped serving before the
  end: :class:`MalformedResponseError` ("incomplete listing"), never a silently short fleet.
- ``find_worker``: ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json&Email=..`` (or
  ``Employee_ID=..``): the report's prompts select the worker; values travel as query parameters only. No entry ->
  None. A 404 there means the report itself is missing (a configuration error) and is raised, not read as "no such
  worker".
- ``get_worker(wid)``: ``GET .../workers/{ID}``; 404 -> None.

Records: ``PersonRecord(system="workday", key=<employee id>)``, ``manager_ref`` = the manager's employee id,
``enabled`` = active, ``status`` ``"Active"``/``"Terminated"``, ISO dates. The REST summary carries no name parts,
so ``first_name``/``last_name`` are set only by RaaS lookups.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx

from clients._http import HttpSystemClient
from clients.paging import Page, iter_all
from clients.roles import EMAIL, EMPLOYEE_ID, ref_kind
from nexus.errors import MalformedResponseError
from nexus.models import PersonRecord
from nexus.settings import Settings

PAGE_MAX = 100  # Workday's cap on `limit` for /workers


def _iso_date(value: Any) -> str | None:
    """``2021-03-15`` from REST's ``2021-03-15`` or RaaS's ``2021-03-15-08:00``; blank -> None."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError as exc:
        raise MalformedResponseError(f"bad Workday date {text[:40]!r}", system="workday") from exc


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class WorkdayClient(HttpSystemClient):
    system = "workday"

    base_url_setting = "workday_base_url"

    def _configure(self, s: Settings) -> None:
        tenant = quote(s.workday_tenant, safe="")
        self._token_path = f"/ccx/oauth2/{tenant}/token"
        self._workers_path = f"/ccx/api/staffing/v6/{tenant}/workers"
        self._report_path = (f"/ccx/service/customreport2/{tenant}/{quote(s.workday_report_owner, safe='')}/"
                             f"{quote(s.workday_report_name, safe='')}")

    # -- auth ------------------------------------------------------------------------------------------------
    def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        return self.token_request(
            self._token_path,
            {"grant_type": "refresh_token", "refresh_token": s.workday_refresh_token.get_secret_value()},
            auth=httpx.BasicAuth(s.workday_client_id, s.workday_client_secret.get_secret_value()),
        )

    def _error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200] or response.reason_phrase
        if not isinstance(body, dict):
            return str(body)[:300]
        parts = [str(body.get("error", ""))]
        if body.get("error_description"):
            parts.append(str(body["error_description"]))
        for item in body.get("errors") or []:
            if isinstance(item, dict) and item.get("error") and item["error"] != body.get("error"):
                parts.append(str(item["error"]) + (f" (field {item['field']})" if item.get("field") else ""))
        return "; ".join(p for p in parts if p)[:300]

    # -- listing ---------------------------------------------------------------------------------------------
    def fetch_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[PersonRecord]:
        """One page of workers (terminated included). ``cursor`` is the offset to start at."""
        offset = int(cursor) if cursor else 0
        limit = page_size or PAGE_MAX
        response = self.send("GET", self._workers_path,
                             params={"limit": limit, "offset": offset, "includeTerminatedWorkers": "true"})
        body = self.parse_json(response)
        total = self.require(body, "total")
        data = self.require(body, "data")
        if not isinstance(total, int) or not isinstance(data, list):
            raise MalformedResponseError("workers response has a bad total or data", system=self.system)
        items = [self._from_summary(item) for item in data]
        after = offset + len(items)
        if after < total and len(items) < limit:
            raise MalformedResponseError(
                f"incomplete listing: {after} of {total} workers served, page at offset {offset} returned "
                f"{len(items)} of {limit}", system=self.system)
        return Page(items=items, next_cursor=str(after) if after < total else None, total=total)

    def list_all(self) -> Iterator[PersonRecord]:
        return iter_all(self.fetch_page)

    def get_worker(self, wid: str) -> PersonRecord | None:
        """One worker by Workday ID (WID); None when Workday has no such worker."""
        response = self.send("GET", f"{self._workers_path}/{quote(wid, safe='')}", not_found_ok=True)
        if response.status_code == 404:
            return None
        return self._from_summary(self.parse_json(response))

    # -- lookups ---------------------------------------------------------------------------------------------
    def find_worker(self, *, email: str | None = None, employee_id: str | None = None) -> PersonRecord | None:
        """The worker with this work email or employee id (via the RaaS report's prompts), or None."""
        if not email and not employee_id:
            raise ValueError("find_worker needs an email or an employee_id")
        params: dict[str, str] = {"format": "json"}
        if email:
            params["Email"] = email
        if employee_id:
            params["Employee_ID"] = employee_id
        body = self.parse_json(self.send("GET", self._report_path, params=params))
        entries = self.require(body, "Report_Entry")
        if not isinstance(entries, list):
            raise MalformedResponseError("Report_Entry is not a list", system=self.system)
        if not entries:
            return None
        return self._from_entry(entries[0])

    def find_person(self, ref: str) -> PersonRecord | None:
        """PeopleDirectory: a work email or an employee id; Workday knows no Windows user name (None)."""
        kind = ref_kind(ref)
        if kind == EMAIL:
            return self.find_worker(email=ref)
        if kind == EMPLOYEE_ID:
            return self.find_worker(employee_id=ref)
        return None

    def health(self) -> float:
        """Elapsed ms of one authenticated one-worker listing request."""
        start = time.perf_counter()
        self.send("GET", self._workers_path, params={"limit": 1, "offset": 0})
        return (time.perf_counter() - start) * 1000

    # -- parsing ---------------------------------------------------------------------------------------------
    def _from_summary(self, item: Any) -> PersonRecord:
        if not isinstance(item, dict) or not item.get("workerId"):
            raise MalformedResponseError("worker summary lacks workerId", system=self.system)
        org = item.get("primarySupervisoryOrganization") or (item.get("primaryJob") or {}).get(
            "supervisoryOrganization") or {}
        manager = item.get("manager") or {}
        manager_eid = _str(manager.get("workerId")) if isinstance(manager, dict) else None
        active = item.get("isActive")
        if not isinstance(active, bool):
            active = not bool(item.get("terminated", False))
        worker_type = item.get("workerType") or {}
        return PersonRecord(
            system=self.system,
            key=str(item["workerId"]),
            employee_id=str(item["workerId"]),
            email=_str(item.get("primaryWorkEmail")),
            display_name=_str(item.get("descriptor")),
            title=_str(item.get("businessTitle")),
            department=_str(org.get("descriptor")) if isinstance(org, dict) else None,
            manager_ref=manager_eid,
            manager_employee_id=manager_eid,
            enabled=active,
            status="Active" if active else "Terminated",
            worker_type=_str(worker_type.get("descriptor")) if isinstance(worker_type, dict) else None,
            termination_date=_iso_date(item.get("terminationDate")),
        )

    def _from_entry(self, entry: Any) -> PersonRecord:
        if not isinstance(entry, dict) or not entry.get("Employee_ID"):
            raise MalformedResponseError("Report_Entry lacks Employee_ID", system=self.system)
        eid = str(entry["Employee_ID"])
        active = str(entry.get("Active_Status", "")).strip() in ("1", "true", "True")
        manager_eid = _str(entry.get("Manager_Employee_ID"))
        return PersonRecord(
            system=self.system,
            key=eid,
            employee_id=eid,
            email=_str(entry.get("Email_-_Work")),
            display_name=_str(entry.get("Worker")),
            first_name=_str(entry.get("First_Name")),
            last_name=_str(entry.get("Last_Name")),
            title=_str(entry.get("Business_Title")),
            department=_str(entry.get("Supervisory_Organization")),
            manager_ref=manager_eid,
            manager_employee_id=manager_eid,
            enabled=active,
            status="Active" if active else "Terminated",
            worker_type=_str(entry.get("Worker_Type")),
            termination_date=_iso_date(entry.get("Termination_Date")),
        )
