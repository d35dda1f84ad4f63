"""Workday simulator: OAuth refresh-token grant, the Staffing v6 REST worker summary and the RaaS worker report.

Wire shapes, as a Workday tenant answers them (mounted under ``/workday``, so ``WORKDAY_BASE_URL`` is
``http://host:port/workday`` and the paths below are the tenant host's own):

- ``POST /ccx/oauth2/{tenant}/token`` (form ``grant_type=refresh_token&refresh_token=...``, HTTP Basic
  ``client_id:client_secret``) -> ``{"access_token", "token_type": "Bearer", "expires_in", "refresh_token"}``.
  Bad client credentials -> 401 ``{"error": "invalid_client"}``; bad refresh token or grant -> 400
  ``{"error": "invalid_grant" | "unsupported_grant_type" | "invalid_request"}`` (RFC 6749 section 5.2).
- ``GET /ccx/api/staffing/v6/{tenant}/workers?limit=&offset=`` -> ``{"total": N, "data": [worker summary, ...]}``;
  ``GET .../workers/{ID}`` one summary (404 when the WID is unknown). ``limit`` is 1..100 (default 20), anything
  else is a 400 in Workday's REST error shape ``{"error": "...", "errors": [{"error": "...", "field": "limit"}]}``.
  The summary carries ONLY the public ``workerSummary`` fields (Workday REST API reference, as republished in
  schemas.apis.io/schemas/workday/workday-workersummary): ``id`` (WID), ``descriptor``, ``href``,
  ``businessTitle``, ``isManager``, ``primarySupervisoryOrganization`` (a reference), ``primaryWorkEmail``,
  ``primaryWorkPhone`` (omitted: the org has no phones). No employee id, status, dates or manager: the client
  reads none of it except as a health check. Which workers the public listing includes (terminated ones or not)
  is not published: the simulator lists the active ones, and nothing depends on it.
- ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json[&Employee_ID=..][&Email=..]`` ->
  ``{"Report_Entry": [...]}`` (the RaaS ``ReportResponse``: apis.io's "Workday Report-as-a-Service API"
  description; prompts as query parameters: Workato's "Workday RaaS" connector docs). Without prompts the report
  is every worker, terminated ones included (a report on "All Active and Terminated Workers", as VersionForge's
  RaaS set-up describes); the prompts filter the entries (Email case-insensitively). As RaaS does, empty fields are
  omitted from an entry, booleans are ``"1"``/``"0"`` and dates carry the tenant's UTC offset
  (``2021-03-15-08:00``). The field names are the tenant's report's: :mod:`nexus.workday_fields` (the same mapping
  the client is configured with; ``fields=`` renames them). An unknown owner/report is a 404 in the REST error
  shape.
- A missing, invalid or expired bearer token -> 401 ``{"error": "invalid_token", "error_description": ...}`` with
  ``WWW-Authenticate: Bearer error="invalid_token"``.

Faults: ``expired_token`` answers the 401 above; ``truncated`` cuts the unprompted report's body in half (a
connection dropped mid-report behind a proxy that already sent its headers: the body is not JSON), which a client
must report as malformed, never as a shorter fleet.

Scale: indexes (listing order, active subset, WID, employee id, email) are built once at construction; a REST
page renders only its own workers, and the whole report is rendered off the event loop.
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

from nexus import workday_fields as F
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
                 report_name: str = _DEFAULT_REPORT_NAME, fields: F.ReportFields = F.DEFAULT_FIELDS) -> None:
        super().__init__(ctx)
        self.report_owner = report_owner
        self.report_name = report_name
        self.fields = fields
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
        pool = self.index.active
        total = len(pool)
        end = min(offset + limit, total)
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
        """One worker as the public staffing v6 ``workerSummary`` (and nothing else)."""
        return {
            "id": w.wid,
            "descriptor": w.display_name,
            "href": f"{base}/ccx/api/staffing/v6/{tenant}/workers/{w.wid}",
            "businessTitle": w.title,
            "isManager": w.employee_id in self.index.managers,
            "primarySupervisoryOrganization": {"id": _ref_id("org", w.department), "descriptor": w.department},
            "primaryWorkEmail": w.email,
        }

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
        if employee_id is None and email is None and self.truncated(self.system):
            body = JSONResponse({"Report_Entry": entries}).body
            return Response(body[:len(body) // 2], status_code=200, media_type="application/json")
        return JSONResponse({"Report_Entry": entries})

    def render_entry(self, w: WorkdayWorker) -> dict[str, str]:
        """One worker as a Report_Entry under the mapped field names: empty fields left out, as RaaS does."""
        f = self.fields
        mapped: dict[str, str | None] = {
            f[F.EMPLOYEE_ID]: w.employee_id,
            f[F.WORKER]: w.display_name,
            f[F.FIRST_NAME]: w.first_name,
            f[F.LAST_NAME]: w.last_name,
            f[F.EMAIL]: w.email,
            f[F.BUSINESS_TITLE]: w.title,
            f[F.SUPERVISORY_ORG]: w.department,
            f[F.MANAGER_EMPLOYEE_ID]: w.manager_id,
            f[F.WORKER_TYPE]: w.worker_type,
            f[F.ACTIVE]: "1" if w.active else "0",
            f[F.HIRE_DATE]: f"{w.hire_date.isoformat()}{RAAS_DATE_OFFSET}",
            f[F.TERMINATION_DATE]: (f"{w.termination_date.isoformat()}{RAAS_DATE_OFFSET}"
                                    if w.termination_date is not None else None),
        }
        # Columns the report carries that Nexus maps to nothing (a report author's extras), unless a mapped name
        # took their place.
        extras = {"Workday_ID": w.wid, "Location": w.location}
        entry = {**{k: v for k, v in extras.items() if k not in mapped}, **mapped}
        return {k: v for k, v in entry.items() if v not in (None, "")}
