"""BMC Helix (AR System REST API) simulator: JWT login, form entries with qualifications, AR-style errors.

Contract: BMC's AR System REST API documentation (docs.bmc.com: "Overview of the REST API" -- form login at
``/api/jwt/login``, the bare JWT as the body, "A single JWT token is valid for an hour"; "General principles for
using the REST API" -- ``q``, ``fields``, ``limit``, ``sort`` on ``/api/arsys/v1/entry/{formName}``, the qualification
``'Incident Number' = "INC000000000701"``; "Operations on entry objects" -- the entry and entry-id endpoints and
``fields=values(...)``), checked against vendor integrations that speak it (splunk-soar-connectors/bmcremedy:
``AR-JWT``, ``HPD:IncidentInterface_Create`` and its fields, 201 + ``Location``, offset/limit paging ended by a
missing ``_links.next``, error arrays). The part Nexus uses is stored as JSON Schema in
``nexus/sim/helix_rest_contract.json`` (its ``$comment`` cites each source) with the forms' field names; the tests
validate this simulator's answers and the client's requests against it.

Not published (or not found), so the client does not depend on it: the exact ARERR number for each refusal (the
client reports any error array whole and classifies by HTTP status); the server's "Max Entries Returned by GetList"
(site-configured; :data:`MAX_LIMIT` here, and the client follows ``next`` links whatever the page size); whether
``Manufacturer``/``Model Number`` are the names a given site's ``AST:ComputerSystem`` uses (BMC's CDM attributes are
``ManufacturerName`` and ``Model``; the AST join form shows CDM attributes under spaced ITSM names, and these two
are not verified against a published form definition). Owner e-mail, serial and tracking number are site fields.

Wire shapes (mounted under ``/helix``, so ``HELIX_BASE_URL`` is ``http://host:port/helix``):

- ``POST /api/jwt/login`` (form ``username``, ``password``) -> 200, ``text/plain`` body = the bare token. Every other
  call sends ``Authorization: AR-JWT <token>``. ``POST /api/jwt/logout`` -> 204 and the token is dead.
- ``GET /api/arsys/v1/entry/{form}?q=<qualification>&offset=&limit=&fields=values(A,B)&sort=A.asc,B.desc`` ->
  ``{"entries": [{"values": {...}, "_links": {"self": [{"href": ...}]}}], "_links": {"next": [{"href": ...}]}}``;
  ``next`` (same query, next offset) is present while more entries remain. ``limit`` is capped at
  :data:`MAX_LIMIT` (the server's "Max Entries Returned by GetList"); without ``limit`` that cap applies. ``sort``
  orders by each ``Field.asc|desc`` in turn (NULLs first ascending); a malformed one or an unknown field is 400.
- ``GET /api/arsys/v1/entry/{form}/{entryId}`` -> ``{"values": ..., "_links": ...}``; unknown id -> 404 (ARERR 302).
- ``POST /api/arsys/v1/entry/HPD:IncidentInterface_Create[?fields=values(Incident Number,...)]`` with
  ``{"values": {"First_Name", "Last_Name", "Description", "Impact", "Urgency", "Status", "Reported Source",
  "Service_Type", "z1D_Action": "CREATE", ...}}`` -> 201, ``Location: .../HPD:IncidentInterface_Create/<entryId>``
  (the body carries the requested ``values`` when ``fields`` is given). The new incident is stored in
  ``HPD:Help Desk`` (``INC`` + 12 digits), so it can be queried like any other; ``GET`` on the Location returns the
  interface entry with its ``Incident Number``. A required field left blank -> 400 ARERR 326; a selection value
  outside its list, or a ``Description`` over 100 characters -> 400 ARERR 306; ``z1D_Action`` other than
  ``CREATE`` -> 400 ARERR 1291; a POST to any other form -> 403 ARERR 9352 (this simulator serves the asset and
  incident forms read-only).
- Errors are a JSON array ``[{"messageType": "ERROR", "messageText", "messageAppendedText", "messageNumber"}]``:
  401 ARERR 623 "Authentication failed" (bad login, bad/expired/logged-out token), 400 ARERR 1587 for a
  qualification that does not parse or names a field the form lacks, 404 ARERR 303 for an unknown form,
  500 ARERR 552 for a failed database operation, 503 ARERR 90 when the server is unreachable.

Forms and their fields (CMDB/ITSM names; ``Owner Email``, ``Serial Number`` and ``Tracking Number`` on the incident
form are this site's custom fields, as sites commonly add them):

- ``AST:ComputerSystem``: ``Reconciliation Identity`` (also the entry id), ``Name``, ``Serial Number``,
  ``AssetLifecycleStatus`` (Deployed | In Inventory | Return Pending | Disposed ...), ``Owner Email``,
  ``Manufacturer``, ``Model Number``.
- ``HPD:Help Desk`` (return tickets): ``Incident Number`` (also the entry id), ``Description`` (the summary),
  ``Status`` (Assigned | In Progress | Resolved | Closed ...), ``Internet E-mail`` (the customer), ``Serial Number``,
  ``Tracking Number`` (FedEx), ``Submit Date`` (``2024-05-01T10:20:30.000+0000``), ``Service Type``; and, filled for
  incidents created through the interface form, ``Detailed Decription`` (BMC's spelling), ``First Name``,
  ``Last Name``, ``Impact``, ``Urgency``, ``Reported Source``, ``Vendor Ticket Number``.

Qualifications are PARSED (never evaluated as code): the language is :mod:`nexus.sim.helix_qualification`
(``'Field' = "value"``, ``!=``, ``<`` ..., ``LIKE``, ``AND``/``OR``/``NOT``, ``""`` for a quote, ``$NULL$``; strings
compare case-insensitively). The forms, and the indexes that answer equality on key fields without a scan, are
:mod:`nexus.sim.helix_forms`.

Faults: ``expired_token`` -> the 401 above; ``truncated`` -> every page after the first (the ``next`` link) answers
500 ARERR 552, as a Helix whose database gave up mid-listing would.
"""

from __future__ import annotations

import hmac
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from nexus.sim.base import SimContext, SystemSim
from nexus.sim.helix_forms import ASSET_FORM, TICKET_FORM, Form, HelixIncident, asset_form, ticket_form
from nexus.sim.helix_qualification import QualificationError, fields_of, parse_qualification
from nexus.sim.tokens import TokenCheck

MAX_LIMIT = 2000

INCIDENT_CREATE_FORM = "HPD:IncidentInterface_Create"

#: The interface form's required fields, and the selection fields' allowed values (ITSM 20.x).
INCIDENT_REQUIRED = ("First_Name", "Last_Name", "Description", "Impact", "Urgency", "Status", "Reported Source",
                     "Service_Type", "z1D_Action")
INCIDENT_SELECTIONS: dict[str, tuple[str, ...]] = {
    "Impact": ("1-Extensive/Widespread", "2-Significant/Large", "3-Moderate/Limited", "4-Minor/Localized"),
    "Urgency": ("1-Critical", "2-High", "3-Medium", "4-Low"),
    "Status": ("New", "Assigned", "In Progress", "Pending", "Resolved", "Closed", "Cancelled"),
    "Service_Type": ("User Service Restoration", "User Service Request", "Infrastructure Restoration",
                     "Infrastructure Event", "Security Incident"),
    "Reported Source": ("Direct Input", "Email", "External Escalation", "Fax", "Self Service", "Systems Management",
                        "Phone", "Voice Mail", "Walk In", "Web", "Other", "BMC Impact Manager Event"),
}
#: Interface field -> HPD:Help Desk field, for the values copied onto the new incident.
_INCIDENT_COPY = {"Description": "Description", "Detailed_Decription": "Detailed Decription",
                  "First_Name": "First Name", "Last_Name": "Last Name", "Impact": "Impact", "Urgency": "Urgency",
                  "Status": "Status", "Reported Source": "Reported Source", "Service_Type": "Service Type",
                  "Vendor Ticket Number": "Vendor Ticket Number", "Internet E-mail": "Internet E-mail"}
MAX_INCIDENT_VALUE_CHARS = 4000
#: Character fields with a shorter limit (HPD's Description, the incident summary, holds 100 characters).
INCIDENT_MAX_CHARS = {"Description": 100}

# (messageNumber, messageText) per HTTP status, for errors the middleware raises (down, flaky, throttle).
_STATUS_MESSAGES: dict[int, tuple[int, str]] = {
    400: (1587, "Qualification line error"),
    401: (623, "Authentication failed"),
    404: (303, "Form does not exist on server"),
    429: (9999, "Too many requests"),  # rate limiting happens in Helix's gateway; it has no ARERR number
    500: (552, "Failure during SQL operation to the database"),
    503: (90, "Cannot establish a network connection to the AR System server"),
}


def ar_error(status: int, text: str, appended: str = "", number: int | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    """An AR System REST error: a JSON array of status messages."""
    num = number if number is not None else _STATUS_MESSAGES.get(status, (9000, ""))[0]
    body = [{"messageType": "ERROR", "messageText": text, "messageAppendedText": appended, "messageNumber": num}]
    return JSONResponse(body, status_code=status, headers=headers)


_FIELDS_PARAM = re.compile(r"^\s*values\((?P<names>.*)\)\s*$", re.DOTALL)


class HelixSim(SystemSim):
    prefix = "/helix"
    system = "helix"

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.forms: dict[str, Form] = {
            ASSET_FORM: asset_form(ctx.org.helix_assets),
            # A copy: created incidents are added to the form, never to the org (the ground truth stays as generated).
            TICKET_FORM: ticket_form(list(ctx.org.helix_tickets)),
        }
        self._revoked: set[str] = set()
        self._lock = threading.Lock()
        # Interface entry id -> (its values, the incident it created). Incident numbers continue after the org's.
        self._interface: dict[str, dict[str, Any]] = {}
        self._next_incident = 1 + max((int(n) for t in ctx.org.helix_tickets
                                       if (n := t.incident_number[3:]).isdigit()), default=0)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/jwt/login", self.login, methods=["POST"]),
            Route("/api/jwt/logout", self.logout, methods=["POST"]),
            Route("/api/arsys/v1/entry/{form}", self.entries, methods=["GET"]),
            Route("/api/arsys/v1/entry/{form}", self.create_entry, methods=["POST"]),
            Route("/api/arsys/v1/entry/{form}/{entry_id}", self.entry, methods=["GET"]),
        ]

    def incidents(self) -> list[HelixIncident]:
        """The incidents created so far (for tests and the demo)."""
        return [row for row in list(self.forms[TICKET_FORM].rows) if isinstance(row, HelixIncident)]

    def error(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None) -> Response:
        number, text = _STATUS_MESSAGES.get(status, (9000, message))
        return ar_error(status, text, message, number, headers=headers)

    def malformed(self) -> Response:
        # A load balancer's maintenance page answered with 200, in place of the API's JSON.
        return Response(b"<html><head><title>BMC Helix</title></head><body>Service maintenance</body></html>",
                        status_code=200, media_type="text/html")

    # -- auth ------------------------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        creds = self.ctx.creds
        if not isinstance(username, str) or not isinstance(password, str) or not (
                hmac.compare_digest(username, creds.helix_username)
                and hmac.compare_digest(password, creds.helix_password)):
            shown = username[:64] if isinstance(username, str) else ""
            return ar_error(401, "Authentication failed", shown, 623)
        token, _ = self.ctx.tokens.issue(self.system)
        return PlainTextResponse(token)

    def _token(self, request: Request) -> str | None:
        return self.bearer(request, "AR-JWT")

    def _authorize(self, request: Request) -> Response | None:
        token = self._token(request)
        with self._lock:
            revoked = token in self._revoked
        check = TokenCheck.INVALID if revoked else self.check_token(self.system, token)
        if check is TokenCheck.OK:
            return None
        detail = "Token expired" if check is TokenCheck.EXPIRED else "Invalid or missing AR-JWT token"
        return ar_error(401, "Authentication failed", detail, 623)

    async def logout(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        token = self._token(request)
        if token:
            with self._lock:
                if len(self._revoked) > 10_000:
                    self._revoked.clear()  # long-dead tokens expire on their own anyway
                self._revoked.add(token)
        return Response(status_code=204)

    # -- entries -----------------------------------------------------------------------------------------------
    @staticmethod
    def _base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"

    def _href(self, request: Request, form: Form, entry_id: str | None = None,
              params: dict[str, str] | None = None) -> str:
        href = f"{self._base(request)}/api/arsys/v1/entry/{quote(form.name, safe=':')}"
        if entry_id is not None:
            href += "/" + quote(entry_id, safe="")
        if params:
            href += "?" + urlencode(params, quote_via=quote)
        return href

    def _form(self, request: Request) -> Form | Response:
        name = request.path_params["form"]
        form = self.forms.get(name)
        if form is None:
            return ar_error(404, "Form does not exist on server", name[:80], 303)
        return form

    @staticmethod
    def _wanted(form: Form, raw: str | None) -> list[str] | Response | None:
        if raw is None:
            return None
        m = _FIELDS_PARAM.match(raw)
        if m is None:
            return ar_error(400, "Invalid fields parameter", "expected values(Field,Field,...)", 1587)
        names = [n.strip() for n in m.group("names").split(",") if n.strip()]
        unknown = [n for n in names if n not in form.fields]
        if unknown:
            return ar_error(400, "Field does not exist on current form", unknown[0][:80], 314)
        return names

    @staticmethod
    def _int(raw: str | None, default: int, name: str) -> int | Response:
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            return ar_error(400, f"Invalid {name} parameter", raw[:40], 9000)
        if value < 0:
            return ar_error(400, f"Invalid {name} parameter", raw[:40], 9000)
        return value

    async def entries(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        form = self._form(request)
        if isinstance(form, Response):
            return form
        qp = request.query_params
        wanted = self._wanted(form, qp.get("fields"))
        if isinstance(wanted, Response):
            return wanted
        offset = self._int(qp.get("offset"), 0, "offset")
        if isinstance(offset, Response):
            return offset
        limit = self._int(qp.get("limit"), MAX_LIMIT, "limit")
        if isinstance(limit, Response):
            return limit
        limit = min(limit, MAX_LIMIT) or MAX_LIMIT
        if offset > 0 and self.truncated(self.system):
            return ar_error(500, "Failure during SQL operation to the database", "ORA-01555: snapshot too old", 552)
        q = qp.get("q")
        if q:
            try:
                node = parse_qualification(q)
            except QualificationError as exc:
                return ar_error(400, "Qualification line error", str(exc), 1587)
            unknown = sorted(fields_of(node) - set(form.fields))
            if unknown:
                return ar_error(400, "Field does not exist on current form", unknown[0][:80], 314)
            # A qualification no index answers scans the form: keep that off the event loop (other systems share it).
            matches: list[int] | range = await run_in_threadpool(form.select, node)
        else:
            matches = range(len(form.rows))
        order = _sort_keys(form, qp.get("sort"))
        if isinstance(order, Response):
            return order
        if order:
            matches = await run_in_threadpool(_sorted, form, list(matches), order)
        page = matches[offset:offset + limit]
        entries = []
        for i in page:
            row = form.rows[i]
            entries.append({"values": form.values(row, wanted),
                            "_links": {"self": [{"href": self._href(request, form, form.entry_id(row))}]}})
        body: dict[str, Any] = {"entries": entries, "_links": {"self": [{"href": str(request.url)}]}}
        if offset + limit < len(matches):
            params = {k: v for k, v in qp.items() if k not in ("offset",)}
            params["offset"] = str(offset + limit)
            params["limit"] = str(limit)
            body["_links"]["next"] = [{"href": self._href(request, form, params=params)}]
        return JSONResponse(body)

    async def entry(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        if request.path_params["form"] == INCIDENT_CREATE_FORM:
            return self._interface_entry(request)
        form = self._form(request)
        if isinstance(form, Response):
            return form
        entry_id = request.path_params["entry_id"]
        i = form.by_id.get(entry_id)
        if i is None:
            return ar_error(404, "Entry does not exist in database", entry_id[:80], 302)
        wanted = self._wanted(form, request.query_params.get("fields"))
        if isinstance(wanted, Response):
            return wanted
        row = form.rows[i]
        return JSONResponse({"values": form.values(row, wanted),
                             "_links": {"self": [{"href": self._href(request, form, entry_id)}]}})

    # -- incident creation -----------------------------------------------------------------------------------------
    def _interface_href(self, request: Request, entry_id: str) -> str:
        return f"{self._base(request)}/api/arsys/v1/entry/{quote(INCIDENT_CREATE_FORM, safe=':')}/{entry_id}"

    def _interface_entry(self, request: Request) -> Response:
        entry_id = request.path_params["entry_id"]
        with self._lock:
            values = self._interface.get(entry_id)
        if values is None:
            return ar_error(404, "Entry does not exist in database", entry_id[:80], 302)
        return JSONResponse({"values": values, "_links": {"self": [{"href": self._interface_href(request, entry_id)}]}})

    async def create_entry(self, request: Request) -> Response:
        """``POST`` an entry: only ``HPD:IncidentInterface_Create`` accepts one (it creates an incident)."""
        if (denied := self._authorize(request)) is not None:
            return denied
        name = request.path_params["form"]
        if name != INCIDENT_CREATE_FORM:
            if name in self.forms:
                return ar_error(403, "You do not have write access to the form", name[:80], 9352)
            return ar_error(404, "Form does not exist on server", name[:80], 303)
        try:
            body = await request.json()
        except ValueError:
            return ar_error(400, "Invalid JSON in the request body", "", 9000)
        values = body.get("values") if isinstance(body, dict) else None
        if not isinstance(values, dict):
            return ar_error(400, "The request body needs a values object", "", 9000)
        problem = _check_incident(values)
        if problem is not None:
            return problem
        wanted = _FIELDS_PARAM.match(request.query_params.get("fields") or "values()")
        if wanted is None:
            return ar_error(400, "Invalid fields parameter", "expected values(Field,Field,...)", 1587)
        fields = [n.strip() for n in wanted.group("names").split(",") if n.strip()]
        with self._lock:
            number = f"INC{self._next_incident:012d}"
            entry_id = f"{len(self._interface) + 1:015d}"
            self._next_incident += 1
            incident = HelixIncident(
                incident_number=number, submit_date=datetime.now(UTC),
                values={target: str(values[source]) for source, target in _INCIDENT_COPY.items()
                        if values.get(source) not in (None, "")},
                customer_email=str(values["Internet E-mail"]) if values.get("Internet E-mail") else None,
            )
            self.forms[TICKET_FORM].add(incident)
            stored = {**{k: v for k, v in values.items() if isinstance(k, str)}, "Incident Number": number,
                      "Request ID": entry_id}
            self._interface[entry_id] = stored
        location = self._interface_href(request, entry_id)
        answer: dict[str, Any] = {}
        if fields:
            answer = {"values": {f: stored.get(f) for f in fields}, "_links": {"self": [{"href": location}]}}
        return JSONResponse(answer, status_code=201, headers={"Location": location})


def _sort_keys(form: Form, raw: str | None) -> list[tuple[str, bool]] | Response | None:
    """``sort=Field.asc,Other.desc`` -> [(field, descending)]; a malformed sort or unknown field is refused."""
    if raw is None or not raw.strip():
        return None
    keys = []
    for part in raw.split(","):
        name, _, direction = part.strip().rpartition(".")
        if not name or direction.lower() not in ("asc", "desc"):
            return ar_error(400, "Invalid sort parameter", part.strip()[:80], 9000)
        if name not in form.fields:
            return ar_error(400, "Field does not exist on current form", name[:80], 314)
        keys.append((name, direction.lower() == "desc"))
    return keys


def _sorted(form: Form, numbers: list[int], keys: list[tuple[str, bool]]) -> list[int]:
    """Row numbers ordered by ``keys`` (stable; NULLs sort first ascending, as AR's databases order them)."""
    for name, descending in reversed(keys):
        getter = form.fields[name]

        def key(i: int, getter: Any = getter) -> tuple[int, Any]:
            value = getter(form.rows[i])
            if value is None or value == "":
                return (0, "")
            return (1, value.casefold() if isinstance(value, str) else value)

        numbers.sort(key=key, reverse=descending)
    return numbers


def _check_incident(values: dict[str, Any]) -> Response | None:
    """The interface form's validation: required fields, selection values, the action, and value sizes."""
    for name in INCIDENT_REQUIRED:
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return ar_error(400, "Required field cannot be blank.", name, 326)
    for name, value in values.items():
        if not isinstance(name, str) or not isinstance(value, str | int | float):
            return ar_error(400, "Invalid value for the field", str(name)[:80], 306)
        if len(str(value)) > MAX_INCIDENT_VALUE_CHARS:
            return ar_error(400, "Value exceeds the maximum length of the field", name[:80], 306)
    for name, most in INCIDENT_MAX_CHARS.items():
        if len(str(values.get(name, ""))) > most:
            return ar_error(400, "Value exceeds the maximum length of the field", name, 306)
    for name, allowed in INCIDENT_SELECTIONS.items():
        if values[name] not in allowed:
            return ar_error(400, "Value does not fall within the limits specified for the field", name, 306)
    if values["z1D_Action"] != "CREATE":
        return ar_error(400, "The z1D_Action field must be CREATE on this form", str(values["z1D_Action"])[:40], 1291)
    return None


__all__ = ["ASSET_FORM", "INCIDENT_CREATE_FORM", "MAX_LIMIT", "TICKET_FORM", "HelixIncident", "HelixSim", "ar_error"]
