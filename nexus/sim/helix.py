"""BMC Helix (AR System REST API) simulator: JWT login, form entries with qualifications, AR-style errors.

Wire shapes (mounted under ``/helix``, so ``HELIX_BASE_URL`` is ``http://host:port/helix``):

- ``POST /api/jwt/login`` (form ``username``, ``password``) -> 200, ``text/plain`` body = the bare token. Every other
  call sends ``Authorization: AR-JWT <token>``. ``POST /api/jwt/logout`` -> 204 and the token is dead.
- ``GET /api/arsys/v1/entry/{form}?q=<qualification>&offset=&limit=&fields=values(A,B)`` ->
  ``{"entries": [{"values": {...}, "_links": {"self": [{"href": ...}]}}], "_links": {"next": [{"href": ...}]}}``;
  ``next`` (same query, next offset) is present while more entries remain. ``limit`` is capped at
  :data:`MAX_LIMIT` (the server's "Max Entries Returned by GetList"); without ``limit`` that cap applies.
- ``GET /api/arsys/v1/entry/{form}/{entryId}`` -> ``{"values": ..., "_links": ...}``; unknown id -> 404 (ARERR 302).
- ``POST /api/arsys/v1/entry/HPD:IncidentInterface_Create[?fields=values(Incident Number,...)]`` with
  ``{"values": {"First_Name", "Last_Name", "Description", "Impact", "Urgency", "Status", "Reported Source",
  "Service_Type", "z1D_Action": "CREATE", ...}}`` -> 201, ``Location: .../HPD:IncidentInterface_Create/<entryId>``
  (the body carries the requested ``values`` when ``fields`` is given). The new incident is stored in
  ``HPD:Help Desk`` (``INC`` + 12 digits), so it can be queried like any other; ``GET`` on the Location returns the
  interface entry with its ``Incident Number``. A required field left blank -> 400 ARERR 326; a selection value
  outside its list -> 400 ARERR 306; ``z1D_Action`` other than ``CREATE`` -> 400 ARERR 1291; a POST to any other
  form -> 403 ARERR 9352 (this simulator serves the asset and incident forms read-only).
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

Qualifications are PARSED (never evaluated as code) by a small recursive-descent parser: ``'Field' = "value"``,
``!=``, ``<``, ``<=``, ``>``, ``>=``, ``LIKE`` (``%`` any run, ``_`` one character), ``AND``/``OR``/``NOT`` (also
``&``, ``|``, ``!``), parentheses, double-quoted strings with ``""`` for a quote, numbers and ``$NULL$``. String
comparisons ignore case, as on Helix's default case-insensitive database collation. A field that is NULL satisfies
only ``= $NULL$`` (SQL semantics). Equality on the key fields (serial, owner email, ids, tracking number) is answered
from indexes built once, so a lookup among 100k assets does not scan them; a plain listing renders only its page.

Faults: ``expired_token`` -> the 401 above; ``truncated`` -> every page after the first (the ``next`` link) answers
500 ARERR 552, as a Helix whose database gave up mid-listing would.
"""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from nexus.sim.base import SimContext, SystemSim
from nexus.sim.org_model import HelixAsset, HelixReturnTicket
from nexus.sim.tokens import TokenCheck

MAX_LIMIT = 2000
MAX_QUALIFICATION_CHARS = 20_000
MAX_DEPTH = 64

ASSET_FORM = "AST:ComputerSystem"
TICKET_FORM = "HPD:Help Desk"
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


# ---------------------------------------------------------------------------------------------------------------
# Qualification language
# ---------------------------------------------------------------------------------------------------------------


class QualificationError(ValueError):
    """The qualification does not parse or names an unknown field."""


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | float | None  # None is $NULL$


Operand = FieldRef | Literal


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # = != < <= > >= LIKE
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND | OR
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Node = Compare | BoolOp | Not

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>'(?:[^']|'')*')
      | (?P<string>"(?:[^"]|"")*")
      | (?P<null>\$NULL\$)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<=|>=|=|<|>|\(|\)|&|\||!)
      | (?P<word>[A-Za-z]+)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"AND": "&", "OR": "|", "NOT": "!", "LIKE": "LIKE"}


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QualificationError(f"unexpected character at position {pos + 1}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "field":
            tokens.append(("field", raw[1:-1].replace("''", "'"), start))
        elif kind == "string":
            tokens.append(("lit", raw[1:-1].replace('""', '"'), start))
        elif kind == "null":
            tokens.append(("lit", None, start))
        elif kind == "number":
            tokens.append(("lit", float(raw), start))
        elif kind == "word":
            op = _WORD_OPS.get(raw.upper())
            if op is None:
                raise QualificationError(f"unrecognised keyword {raw[:40]!r} at position {start + 1}")
            tokens.append(("op", op, start))
        else:
            tokens.append(("op", raw, start))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent: or := and ('|' and)* ; and := not ('&' not)* ; not := '!' not | '(' or ')' | cmp."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def parse(self) -> Node:
        if not self.tokens:
            raise QualificationError("empty qualification")
        node = self._or()
        if self.i != len(self.tokens):
            raise QualificationError(f"unexpected token at position {self.tokens[self.i][2] + 1}")
        return node

    def _peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _is_op(self, value: str) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == "op" and tok[1] == value

    def _or(self) -> Node:
        node = self._and()
        while self._is_op("|"):
            self.i += 1
            node = BoolOp("OR", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._is_op("&"):
            self.i += 1
            node = BoolOp("AND", node, self._not())
        return node

    def _not(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QualificationError("qualification nested too deeply")
        try:
            if self._is_op("!"):
                self.i += 1
                return Not(self._not())
            if self._is_op("("):
                self.i += 1
                node = self._or()
                if not self._is_op(")"):
                    raise QualificationError("missing closing parenthesis")
                self.i += 1
                return node
            return self._compare()
        finally:
            self.depth -= 1

    def _operand(self) -> Operand:
        tok = self._peek()
        if tok is None:
            raise QualificationError("qualification ends too early")
        kind, value, pos = tok
        self.i += 1
        if kind == "field":
            return FieldRef(value)
        if kind == "lit":
            return Literal(value)
        raise QualificationError(f"expected a field or a value at position {pos + 1}")

    def _compare(self) -> Compare:
        left = self._operand()
        tok = self._peek()
        if tok is None or tok[0] != "op" or tok[1] not in ("=", "!=", "<", "<=", ">", ">=", "LIKE"):
            where = f"position {tok[2] + 1}" if tok else "the end"
            raise QualificationError(f"expected a relational operator at {where}")
        self.i += 1
        return Compare(tok[1], left, self._operand())


def parse_qualification(text: str) -> Node:
    if len(text) > MAX_QUALIFICATION_CHARS:
        raise QualificationError("qualification too long")
    return _Parser(text).parse()


def _fields_of(node: Node) -> set[str]:
    if isinstance(node, Compare):
        return {o.name for o in (node.left, node.right) if isinstance(o, FieldRef)}
    if isinstance(node, BoolOp):
        return _fields_of(node.left) | _fields_of(node.right)
    return _fields_of(node.operand)


@lru_cache(maxsize=256)
def _like(pattern: str) -> re.Pattern[str]:
    parts = ["." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return value.casefold()
    return value


def _coerce_pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Make a field value and a literal comparable: dates against epoch numbers or date strings."""
    if isinstance(a, datetime) and isinstance(b, str):
        try:
            b = datetime.fromisoformat(b)
        except ValueError:
            return a.isoformat().casefold(), b.casefold()
    if isinstance(b, datetime) and isinstance(a, str):
        return _coerce_pair(b, a)[::-1]
    a, b = _comparable(a), _comparable(b)
    if isinstance(a, float | int) != isinstance(b, float | int):
        return str(a), str(b)
    return a, b


_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y, ">=": lambda x, y: x >= y,
}


def evaluate(node: Node, get: Callable[[str], Any]) -> bool:
    """Does the row whose field values ``get`` returns satisfy ``node``?"""
    if isinstance(node, BoolOp):
        if node.op == "AND":
            return evaluate(node.left, get) and evaluate(node.right, get)
        return evaluate(node.left, get) or evaluate(node.right, get)
    if isinstance(node, Not):
        return not evaluate(node.operand, get)
    a = get(node.left.name) if isinstance(node.left, FieldRef) else node.left.value
    b = get(node.right.name) if isinstance(node.right, FieldRef) else node.right.value
    a = None if a == "" else a
    b = None if b == "" else b
    if a is None or b is None:
        if node.op == "=":
            return a is None and b is None
        if node.op == "!=":
            # Only `'Field' != $NULL$` can be true here: a NULL field compares false with anything (SQL).
            null_field = (a is None and isinstance(node.left, FieldRef)) or (
                b is None and isinstance(node.right, FieldRef))
            return not null_field and (a is None) != (b is None)
        return False
    if node.op == "LIKE":
        return isinstance(b, str) and _like(b).fullmatch(str(a)) is not None
    x, y = _coerce_pair(a, b)
    if node.op == "=":
        return bool(x == y)
    if node.op == "!=":
        return bool(x != y)
    try:
        return _ORDER_OPS[node.op](x, y)
    except TypeError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# Forms
# ---------------------------------------------------------------------------------------------------------------


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


def _asset_form(assets: list[HelixAsset]) -> Form:
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


def _ticket_form(tickets: list[HelixReturnTicket | HelixIncident]) -> Form:
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


_FIELDS_PARAM = re.compile(r"^\s*values\((?P<names>.*)\)\s*$", re.DOTALL)


class HelixSim(SystemSim):
    prefix = "/helix"
    system = "helix"

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.forms: dict[str, Form] = {
            ASSET_FORM: _asset_form(ctx.org.helix_assets),
            # A copy: created incidents are added to the form, never to the org (the ground truth stays as generated).
            TICKET_FORM: _ticket_form(list(ctx.org.helix_tickets)),
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
            unknown = sorted(_fields_of(node) - set(form.fields))
            if unknown:
                return ar_error(400, "Field does not exist on current form", unknown[0][:80], 314)
            # A qualification no index answers scans the form: keep that off the event loop (other systems share it).
            matches: list[int] | range = await run_in_threadpool(form.select, node)
        else:
            matches = range(len(form.rows))
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
    for name, allowed in INCIDENT_SELECTIONS.items():
        if values[name] not in allowed:
            return ar_error(400, "Value does not fall within the limits specified for the field", name, 306)
    if values["z1D_Action"] != "CREATE":
        return ar_error(400, "The z1D_Action field must be CREATE on this form", str(values["z1D_Action"])[:40], 1291)
    return None
