"""Workday simulator: OAuth refresh-token grant, the Staffing v6 REST worker listing and a RaaS custom report.

Wire shapes, as a Workday tenant answers them (mounted under ``/workday``, so ``WORKDAY_BASE_URL`` is
``http://host:port/workday`` and the paths below are the tenant host's own):

- ``POST /ccx/oauth2/{tenant}/token`` (form ``grant_type=refresh_token&refresh_token=...``, HTTP Basic
  ``client_id:client_secret``) -> ``{"access_token", "token_type": "Bearer", "expires_in", "refresh_token"}``.
  Bad client credentials -> 401 ``{"error": "invalid_client"}``; bad refresh token or grant -> 400
  ``{"error": "invalid_grant" | "unsupported_grant_type" | "invalid_request"}`` (RFC 6749 section 5.2).
- ``GET /ccx/api/staffing/v6/{tenant}/workers?limit=&offset=&includeTerminatedWorkers=`` ->
  ``{"total": N, "data": [worker summary, ...]}``. ``limit`` is 1..100 (default 20), anything else is a 400 in
  Workday's REST error shape ``{"error": "...", "errors": [{"error": "...", "field": "limit"}]}``. Like the real
  resource, terminated workers are listed only with ``includeTerminatedWorkers=true``.
  ``GET .../workers/{ID}`` returns one summary (404 when the WID is unknown).
- ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json[&Employee_ID=..][&Email=..]`` ->
  ``{"Report_Entry": [...]}``. The report's prompts filter the entries (Email case-insensitively). As RaaS does,
  empty fields are omitted from an entry, booleans are ``"1"``/``"0"`` and dates carry the tenant's UTC offset
  (``2021-03-15-08:00``). An unknown owner/report is a 404 in the REST error shape.
- A missing, invalid or expired bearer token -> 401 ``{"error": "invalid_token", "error_description": ...}`` with
  ``WWW-Authenticate: Bearer error="invalid_token"``.

The worker summary carries what Workday's staffing v6 summary does (``id`` = WID, ``descriptor``, ``href``,
``workerId`` = employee id, ``businessTitle``, ``primaryWorkEmail``, ``workerType``, ``isManager``,
``primaryJob`` with ``location`` and ``supervisoryOrganization``, ``primarySupervisoryOrganization``) plus the
fields this tenant's API client is granted: ``manager`` (a reference whose ``workerId`` is the manager's employee id,
so a single page can name managers without a second lookup), ``isActive``/``terminated``, ``hireDate`` and
``terminationDate`` (omitted while employed).

Faults: ``expired_token`` answers the 401 above; ``truncated`` makes the listing claim its full ``total`` while serving
only the first half of the workers (offsets past that return an empty ``data``), which a client must detect as an
incomplete listing.

Scale: indexes (listing order, active subset, WID, employee id, email) are built once at construction; a page renders
only its own workers (O(page size)), so 100k workers cost nothing per request beyond the page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nexus.settings import Settings
from nexus.sim.base import SimContext, SystemSim
from nexus.sim.org_model import WorkdayWorker
from nexus.sim.tokens import TokenCheck

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
#: The tenant's time-zone offset as RaaS appends it to dates (Workday renders dates in the tenant's zone).
RAAS_DATE_OFFSET = "-08:00"

_DEFAULT_REPORT_OWNER = str(Settings.model_fields["workday_report_owner"].default)
_DEFAULT_REPORT_NAME = str(Settings.model_fields["workday_report_name"].default)


def _ref_id(kind: str, name: str) -> str:
    """A stable 32-hex reference id for a named object (supervisory org, location, worker type)."""
    return hashlib.md5(f"{kind}:{name}".encode(), usedforsecurity=False).hexdigest()


@dataclass(slots=True)
class _Index:
    workers: list[WorkdayWorker]
    active: list[WorkdayWorker]
    by_wid: dict[str, WorkdayWorker]
    by_eid: dict[str, WorkdayWorker]
    by_email: dict[str, list[WorkdayWorker]]
    managers: set[str]  # employee ids that manage someone

    @classmethod
    def build(cls, workers: list[WorkdayWorker]) -> _Index:
        by_email: dict[str, list[WorkdayWorker]] = {}
        for w in workers:
            if w.email:
                by_email.setdefault(w.email.strip().casefold(), []).append(w)
        return cls(
            workers=workers,
            active=[w for w in workers if w.active],
            by_wid={w.wid: w for w in workers},
            by_eid={w.employee_id: w for w in workers},
            by_email=by_email,
            managers={w.manager_id for w in workers if w.manager_id},
        )


class WorkdaySim(SystemSim):
    prefix = "/workday"
    system = "workday"

    def __init__(self, ctx: SimContext, *, report_owner: str = _DEFAULT_REPORT_OWNER,
                 report_name: str = _DEFAULT_REPORT_NAME) -> None:
        super().__init__(ctx)
        self.report_owner = report_owner
        self.report_name = report_name
        self.index = _Index.build(ctx.org.workday)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ccx/oauth2/{tenant}/token", self.token, methods=["POST"]),
            Route("/ccx/api/staffing/v6/{tenant}/workers", self.workers, methods=["GET"]),
            Route("/ccx/api/staffing/v6/{tenant}/workers/{wid}", self.worker, methods=["GET"]),
            Route("/ccx/service/customreport2/{tenant}/{owner}/{report}", self.raas, methods=["GET"]),
        ]

    # -- error formats -------------------------------------------------------------------------------------------
    def error(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None) -> Response:
        if status == 401:
            hdrs = {"WWW-Authenticate": 'Bearer error="invalid_token"', **(headers or {})}
            return JSONResponse({"error": "invalid_token", "error_description": message}, status_code=401,
                                headers=hdrs)
        return self._rest_error(status, message, headers=headers)

    def _rest_error(self, status: int, message: str, *, field: str | None = None,
                    headers: dict[str, str] | None = None) -> Response:
        detail: dict[str, str] = {"error": message}
        if field:
            detail["field"] = field
        return JSONResponse({"error": message, "errors": [detail]}, status_code=status, headers=headers)

    def malformed(self) -> Response:
        # What a misbehaving proxy in front of the tenant serves: a 200 login page, not the API's JSON.
        return Response(b"<html><body>Workday is signing you in...</body></html>", status_code=200,
                        media_type="text/html")

    # -- auth ------------------------------------------------------------------------------------------------------
    def _tenant_ok(self, request: Request) -> bool:
        return bool(request.path_params["tenant"] == self.ctx.creds.workday_tenant)

    def _authorize(self, request: Request) -> Response | None:
        token = self.bearer(request, "Bearer")
        check = self.check_token(self.system, token)
        if check is TokenCheck.OK:
            return None
        if check is TokenCheck.EXPIRED:
            return self.error(401, "The access token expired")
        return self.error(401, "The access token is invalid")

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> Response:
        headers = {"Cache-Control": "no-store"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Workday"'
        return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)

    def _basic_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = raw.partition(":")
        creds = self.ctx.creds
        return hmac.compare_digest(client_id, creds.workday_client_id) and hmac.compare_digest(
            secret, creds.workday_client_secret)

    async def token(self, request: Request) -> Response:
        if not self._tenant_ok(request):
            return self._oauth_error(401, "invalid_client", "Unknown tenant")
        if not self._basic_ok(request):
            return self._oauth_error(401, "invalid_client", "Client authentication failed")
        form = await request.form()
        grant = form.get("grant_type")
        if grant != "refresh_token":
            return self._oauth_error(400, "unsupported_grant_type", "Only the refresh_token grant is enabled")
        refresh = form.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            return self._oauth_error(400, "invalid_request", "refresh_token is required")
        if not hmac.compare_digest(refresh, self.ctx.creds.workday_refresh_token):
            return self._oauth_error(400, "invalid_grant", "The refresh token is invalid or revoked")
        token, expires_in = self.ctx.tokens.issue(self.system)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                             "refresh_token": self.ctx.creds.workday_refresh_token},
                            headers={"Cache-Control": "no-store"})

    # -- REST --------------------------------------------------------------------------------------------------
    @staticmethod
    def _base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"

    def _int_param(self, request: Request, name: str, default: int, low: int, high: int | None) -> int | Response:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            return self._rest_error(400, f"Invalid request: {name} must be an integer", field=name)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            return self._rest_error(400, f"Invalid request: {name} must be {bound}", field=name)
        return value

    async def workers(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        if not self._tenant_ok(request):
            return self._rest_error(404, "Invalid tenant")
        limit = self._int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        if isinstance(limit, Response):
            return limit
        offset = self._int_param(request, "offset", 0, 0, None)
        if isinstance(offset, Response):
            return offset
        include_terminated = request.query_params.get("includeTerminatedWorkers", "false").lower() == "true"
        pool = self.index.workers if include_terminated else self.index.active
        total = len(pool)
        served = total // 2 if self.truncated(self.system) else total
        end = min(offset + limit, served)
        base = self._base(request)
        tenant = request.path_params["tenant"]
        data = [self.render_summary(w, base, tenant) for w in pool[offset:end]] if offset < end else []
        return JSONResponse({"total": total, "data": data})

    async def worker(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        if not self._tenant_ok(request):
            return self._rest_error(404, "Invalid tenant")
        w = self.index.by_wid.get(request.path_params["wid"])
        if w is None:
            return self._rest_error(404, "Resource not found")
        return JSONResponse(self.render_summary(w, self._base(request), request.path_params["tenant"]))

    def render_summary(self, w: WorkdayWorker, base: str, tenant: str) -> dict[str, Any]:
        """One worker as the staffing v6 summary (plus the granted manager/status/date fields)."""
        org = {"id": _ref_id("org", w.department), "descriptor": w.department}
        out: dict[str, Any] = {
            "id": w.wid,
            "descriptor": w.display_name,
            "href": f"{base}/ccx/api/staffing/v6/{tenant}/workers/{w.wid}",
            "workerId": w.employee_id,
            "primaryWorkEmail": w.email,
            "businessTitle": w.title,
            "workerType": {"id": _ref_id("workerType", w.worker_type), "descriptor": w.worker_type},
            "isManager": w.employee_id in self.index.managers,
            "primaryJob": {
                "id": _ref_id("job", w.wid),
                "descriptor": f"{w.title} - {w.display_name}",
                "businessTitle": w.title,
                "location": {"id": _ref_id("location", w.location), "descriptor": w.location},
                "supervisoryOrganization": org,
            },
            "primarySupervisoryOrganization": org,
            "isActive": w.active,
            "terminated": not w.active,
            "hireDate": w.hire_date.isoformat(),
        }
        if w.termination_date is not None:
            out["terminationDate"] = w.termination_date.isoformat()
        manager = self.index.by_eid.get(w.manager_id) if w.manager_id else None
        if manager is not None:
            out["manager"] = {"id": manager.wid, "descriptor": manager.display_name,
                              "workerId": manager.employee_id,
                              "href": f"{base}/ccx/api/staffing/v6/{tenant}/workers/{manager.wid}"}
        elif w.manager_id:  # a manager outside the tenant's data: the id is all there is
            out["manager"] = {"descriptor": w.manager_id, "workerId": w.manager_id}
        return out

    # -- RaaS ----------------------------------------------------------------------------------------------------
    async def raas(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        p = request.path_params
        if not self._tenant_ok(request) or p["owner"] != self.report_owner or p["report"] != self.report_name:
            return self._rest_error(404, f"Report {p['owner']}/{p['report']} not found")
        if request.query_params.get("format") != "json":
            return self._rest_error(400, "Invalid request: only format=json is supported", field="format")
        candidates: list[WorkdayWorker] = self.index.workers
        employee_id = request.query_params.get("Employee_ID")
        email = request.query_params.get("Email")
        if employee_id is not None:
            found = self.index.by_eid.get(employee_id.strip())
            candidates = [found] if found is not None else []
        if email is not None:
            key = email.strip().casefold()
            if employee_id is None:
                candidates = self.index.by_email.get(key, [])
            else:
                candidates = [w for w in candidates if (w.email or "").strip().casefold() == key]
        if len(candidates) > 1000:  # the whole report: render it off the event loop the other systems share
            entries = await run_in_threadpool(lambda: [self.render_entry(w) for w in candidates])
        else:
            entries = [self.render_entry(w) for w in candidates]
        return JSONResponse({"Report_Entry": entries})

    def render_entry(self, w: WorkdayWorker) -> dict[str, str]:
        """One worker as a Report_Entry: empty fields left out, as RaaS does."""
        manager = self.index.by_eid.get(w.manager_id) if w.manager_id else None
        entry: dict[str, str | None] = {
            "Employee_ID": w.employee_id,
            "Workday_ID": w.wid,
            "Worker": w.display_name,
            "First_Name": w.first_name,
            "Last_Name": w.last_name,
            "Email_-_Work": w.email,
            "Business_Title": w.title,
            "Supervisory_Organization": w.department,
            "Location": w.location,
            "Manager": manager.display_name if manager is not None else None,
            "Manager_Employee_ID": w.manager_id,
            "Worker_Type": w.worker_type,
            "Active_Status": "1" if w.active else "0",
            "Hire_Date": f"{w.hire_date.isoformat()}{RAAS_DATE_OFFSET}",
            "Termination_Date": (f"{w.termination_date.isoformat()}{RAAS_DATE_OFFSET}"
                                 if w.termination_date is not None else None),
        }
        return {k: v for k, v in entry.items() if v not in (None, "")}
