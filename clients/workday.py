"""Workday client: the worker listing AND the one-worker lookups from ONE RaaS custom report.

Why a report and not the Staffing REST API: the REST worker summary carries no employee id, active flag, dates or
manager (see :mod:`nexus.workday_fields` for the sources), so identity integrations read a custom report published
as a web service. Its field names are the tenant's: :func:`nexus.workday_fields.report_fields` maps each role to
one (``NEXUS_WORKDAY_FIELDS``).

- Token: ``POST /ccx/oauth2/{tenant}/token`` with the refresh-token grant and HTTP Basic client credentials; the
  access token is cached and refreshed before it expires (one re-authentication on a 401).
- The report: ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json`` -> ``{"Report_Entry":
  [...]}`` (Workday RaaS; the ``ReportResponse`` schema of the published RaaS OpenAPI descriptions, e.g.
  apis.io's "Workday Report-as-a-Service API", and Workato's "Workday RaaS" connector docs: prompts are query
  parameters). RaaS has no paging (knowledgelib.io's RaaS card: "Pagination: No", up to 2 GB), so:

  * :meth:`WorkdayClient.list_workers`: the report without prompts is every worker (the report's data source
    "All Active and Terminated Workers", as VersionForge's RaaS set-up describes), ONE request with its own read
    timeout ``NEXUS_WORKDAY_REPORT_TIMEOUT_S``; :meth:`WorkdayClient.listing` serves it to the fleet snapshot as
    chunks of :data:`REPORT_CHUNK` records (one request, several stored pages; a chunk cursor outliving its
    listing raises :class:`~nexus.errors.ListingLost` and the snapshot restarts the stream);
  * :meth:`WorkdayClient.find_worker`: the prompts ``Email`` / ``Employee_ID`` select the worker; values travel as
    query parameters only. No entry -> None. A 404 means the report itself is missing (a configuration error)
    and is raised, not read as "no such worker".

- RaaS conventions tolerated: booleans ``"1"``/``"0"`` (``true``/``false``, ``Y``/``N`` too), dates with the
  tenant's offset (``2021-03-15-08:00``), empty fields omitted, an instance field as its descriptor or as an
  object with a ``Descriptor``. Not tolerated (one :class:`MalformedResponseError` line naming the report and the
  field): an entry without the mapped employee id or active status, a listing where no entry has the mapped work
  email, an active status that is not a boolean, a report with no entries at all.
- :meth:`WorkdayClient.health`: ``GET /ccx/api/staffing/v6/{tenant}/workers?limit=1`` (the public REST resource,
  cheap on any tenant: the token and the API client's grant work). The REST summary is not read for anything.

Records: ``PersonRecord(system="workday", key=<employee id>)``, ``manager_ref`` = the manager's employee id,
``enabled`` = active, ``status`` ``"Active"``/``"Terminated"``, ISO dates.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx

from clients._http import HttpSystemClient
from clients.paging import Page
from clients.roles import EMAIL, EMPLOYEE_ID, ref_kind
from nexus import workday_fields as F
from nexus.errors import ListingLost, MalformedResponseError
from nexus.models import PersonRecord
from nexus.settings import Settings

#: Records per stored chunk of the report listing (a 100k-worker report is 100 stored pages, not one giant one).
REPORT_CHUNK = 1000
_TRUE = frozenset({"1", "true", "y", "yes"})
_FALSE = frozenset({"0", "false", "n", "no"})


#: An employee id no tenant has: the health probe's prompt (answers no entry, costs nothing).
HEALTH_PROBE_ID = "NEXUS-HEALTH-0"

def _iso_date(value: Any) -> str | None:
    """``2021-03-15`` from RaaS's ``2021-03-15-08:00`` (or a plain ISO date); blank -> None."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError as exc:
        raise MalformedResponseError(f"bad Workday date {text[:40]!r}", system="workday") from exc


def _str(value: Any) -> str | None:
    """A RaaS text field; an instance field rendered as an object gives its descriptor."""
    if isinstance(value, dict):
        value = value.get("Descriptor", value.get("descriptor"))
    return None if value is None or value == "" else str(value)


class WorkdayClient(HttpSystemClient):
    system = "workday"

    base_url_setting = "workday_base_url"
    page_size = REPORT_CHUNK

    def _configure(self, s: Settings) -> None:
        tenant = quote(s.workday_tenant, safe="")
        self._token_path = f"/ccx/oauth2/{tenant}/token"
        self._workers_path = f"/ccx/api/staffing/v6/{tenant}/workers"
        self._report_name = f"{s.workday_report_owner}/{s.workday_report_name}"
        self._report_path = (f"/ccx/service/customreport2/{tenant}/{quote(s.workday_report_owner, safe='')}/"
                             f"{quote(s.workday_report_name, safe='')}")
        self.fields = s.workday_report_fields()
        self._listing: ReportListing | None = None

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

    # -- the report ------------------------------------------------------------------------------------------
    def _malformed(self, message: str) -> MalformedResponseError:
        return MalformedResponseError(f"Workday report {self._report_name}: {message}", system=self.system)

    def report_entries(self, prompts: dict[str, str] | None = None, *,
                       read_timeout_s: float | None = None) -> list[dict[str, Any]]:
        """The report's ``Report_Entry`` list (``prompts`` as query parameters), each entry an object."""
        params = {"format": "json", **(prompts or {})}
        body = self.parse_json(self.send("GET", self._report_path, params=params, read_timeout_s=read_timeout_s))
        if not isinstance(body, dict) or "Report_Entry" not in body:
            raise self._malformed("the answer has no Report_Entry")
        entries = body["Report_Entry"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise self._malformed("Report_Entry is not a list of entries")
        return entries

    def list_workers(self) -> list[PersonRecord]:
        """Every worker, terminated ones included: the report without prompts, ONE request."""
        entries = self.report_entries(read_timeout_s=self.settings.workday_report_timeout_s)
        if not entries:
            raise self._malformed("the unprompted report has no entries (no worker at all is never a fleet)")
        for role in F.REQUIRED_IN_REPORT:
            name = self.fields[role]
            if not any(name in e for e in entries):
                raise self._missing(role, entries[0], everywhere=True)
        return [self._from_entry(e) for e in entries]

    def list_all(self) -> Iterator[PersonRecord]:
        return iter(self.list_workers())

    def listing(self) -> ReportListing:
        """The report listing in chunks, for a fleet snapshot (``fetch_page`` + ``close``)."""
        return ReportListing(self, REPORT_CHUNK)

    def fetch_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[PersonRecord]:
        """A chunk of the report listing this client holds (:class:`ReportListing`); ``page_size`` is ignored
        (the report is one request)."""
        if self._listing is None or cursor is None:
            self._listing = self.listing()
        return self._listing.fetch_page(cursor)

    # -- lookups ---------------------------------------------------------------------------------------------
    def find_worker(self, *, email: str | None = None, employee_id: str | None = None) -> PersonRecord | None:
        """The worker with this work email or employee id (via the RaaS report's prompts), or None."""
        found = self.find_workers(email=email, employee_id=employee_id)
        return found[0] if found else None

    def find_workers(self, *, email: str | None = None, employee_id: str | None = None) -> list[PersonRecord]:
        """Every worker the prompts select that really has this email or employee id (two workers may share a work
        email: a contingent worker converted to an employee keeps both records). A report that answers entries of
        which none matches ignored its prompts: an error, never somebody else audited in the subject's name."""
        if not email and not employee_id:
            raise ValueError("find_worker needs an email or an employee_id")
        prompts: dict[str, str] = {}
        if email:
            prompts["Email"] = email
        if employee_id:
            prompts["Employee_ID"] = employee_id
        entries = self.report_entries(prompts)
        people = [self._from_entry(e) for e in entries]
        fold = str.casefold
        wanted = [p for p in people if (email and p.email and fold(p.email) == fold(email))
                  or (employee_id and p.employee_id and fold(p.employee_id) == fold(employee_id))]
        if people and not wanted:
            raise self._malformed(f"the report answered {len(people)} entries for the prompts "
                                  f"{', '.join(sorted(prompts))} and none matches them: does the report define "
                                  "these prompts?")
        return wanted

    def find_person(self, ref: str) -> PersonRecord | None:
        """PeopleDirectory: a work email or an employee id; Workday knows no Windows user name (None)."""
        found = self.find_people(ref)
        return found[0] if found else None

    def find_people(self, ref: str) -> list[PersonRecord]:
        """Every worker :meth:`find_person` chooses from."""
        kind = ref_kind(ref)
        if kind == EMAIL:
            return self.find_workers(email=ref)
        if kind == EMPLOYEE_ID:
            return self.find_by_employee_id(ref)
        return []

    def find_by_employee_id(self, employee_id: str) -> list[PersonRecord]:
        """Every worker with this employee id, whatever its form (``C-1001`` as well as ``100234``)."""
        return self.find_workers(employee_id=employee_id)

    def health(self) -> float:
        """Elapsed ms of one authenticated report request whose prompt matches nobody: the path the audits use
        (the integration user may be granted the report and nothing else)."""
        start = time.perf_counter()
        self.report_entries({"Employee_ID": HEALTH_PROBE_ID})
        return (time.perf_counter() - start) * 1000

    # -- parsing ---------------------------------------------------------------------------------------------
    def _missing(self, role: str, entry: dict[str, Any], *, everywhere: bool = False) -> MalformedResponseError:
        name = self.fields[role]
        where = "no entry has" if everywhere else "an entry lacks"
        seen = ", ".join(sorted(entry)[:12]) or "nothing"
        return self._malformed(f"{where} field {name!r} ({role}); map it with NEXUS_WORKDAY_FIELDS "
                               f"(the entry has: {seen})")

    def _active(self, entry: dict[str, Any]) -> bool:
        raw = entry[self.fields[F.ACTIVE]]
        text = str(raw).strip().lower() if not isinstance(raw, bool) else ("1" if raw else "0")
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._malformed(f"field {self.fields[F.ACTIVE]!r} ({F.ACTIVE}) is {str(raw)[:40]!r}, not a boolean")

    def _from_entry(self, entry: dict[str, Any]) -> PersonRecord:
        f = self.fields
        for role in F.REQUIRED_IN_EVERY_ENTRY:
            if _str(entry.get(f[role])) is None:
                raise self._missing(role, entry)
        eid = str(_str(entry[f[F.EMPLOYEE_ID]]))
        active = self._active(entry)
        manager_eid = _str(entry.get(f[F.MANAGER_EMPLOYEE_ID]))
        return PersonRecord(
            system=self.system,
            key=eid,
            employee_id=eid,
            email=_str(entry.get(f[F.EMAIL])),
            display_name=_str(entry.get(f[F.WORKER])),
            first_name=_str(entry.get(f[F.FIRST_NAME])),
            last_name=_str(entry.get(f[F.LAST_NAME])),
            title=_str(entry.get(f[F.BUSINESS_TITLE])),
            department=_str(entry.get(f[F.SUPERVISORY_ORG])),
            manager_ref=manager_eid,
            manager_employee_id=manager_eid,
            enabled=active,
            status="Active" if active else "Terminated",
            worker_type=_str(entry.get(f[F.WORKER_TYPE])),
            termination_date=_iso_date(entry.get(f[F.TERMINATION_DATE])),
        )


class ReportListing:
    """The whole report, fetched by the first :meth:`fetch_page` (cursor None) and served in chunks.

    Cursors are ``<listing id>:<offset>``; a cursor of another listing or process (a retried snapshot task) raises
    :class:`ListingLost`, and the snapshot restarts the stream from the one request. Chunks after the first sent
    no request (``Page.requests == 0``). Not thread-safe: one listing per chain being followed.
    """

    def __init__(self, client: WorkdayClient, chunk: int) -> None:
        self.client = client
        self.chunk = max(1, chunk)
        self._id = ""
        self._records: list[PersonRecord] | None = None

    def fetch_page(self, cursor: str | None = None) -> Page[PersonRecord]:
        if cursor is None:
            self.close()
            self._records = self.client.list_workers()
            self._id = uuid.uuid4().hex[:12]
            offset, requests = 0, 1
        else:
            listing, _, raw = cursor.partition(":")
            if listing != self._id or self._records is None or not raw.isdigit():
                raise ListingLost(f"Workday report listing {listing} is gone (the report is read again)",
                                  system="workday")
            offset, requests = int(raw), 0
        records = self._records
        end = min(offset + self.chunk, len(records))
        nxt = f"{self._id}:{end}" if end < len(records) else None
        page = Page(records[offset:end], nxt, len(records), requests=requests)
        if nxt is None:
            self.close()
        return page

    def close(self) -> None:
        self._records = None


__all__ = ["REPORT_CHUNK", "ReportListing", "WorkdayClient"]
