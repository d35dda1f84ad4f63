"""Microsoft identity platform token endpoint and Microsoft Graph (Entra ID users, Intune managed devices).

Two simulators, both rendering :class:`~nexus.sim.org_model.Org` without altering it:

* :class:`~nexus.sim.graph_token.AzureTokenSim` (prefix ``/azure``, so
  ``AZURE_AUTHORITY_URL=http://host:port/azure``): the v2 token endpoint, client-credentials grant, its ``AADSTS``
  errors; logged and faulted under ``entra`` (with Entra down, Intune cannot be authenticated either, as in
  production). See :mod:`nexus.sim.graph_token`.
* :class:`GraphSim` (prefix ``/graph``): ``/v1.0/users``, ``/v1.0/users/{id | userPrincipalName}`` (and
  ``/manager``), ``/v1.0/deviceManagement/managedDevices`` (and ``/{id}``). ``system_for`` puts
  ``/v1.0/deviceManagement/...`` under ``intune`` and everything else under ``entra``; one Graph token serves both
  (it is issued and checked under ``entra``, so ``tokens.expire_all("entra")`` expires it for Intune too), while the
  ``expired_token`` fault is honoured per system.

Real behaviours reproduced: the default ``$select`` of users (``department``, ``employeeId``, ``accountEnabled``,
``otherMails`` come back only when selected); ``$filter`` parsed by :mod:`nexus.sim.odata` (never evaluated as code;
string equality ignores case like the directory does); ``$top`` 1..999 (Intune 1..1000); ``$expand=manager`` with a
nested ``$select``, and the page cap that comes with it (below); an absolute ``@odata.nextLink`` carrying the
request's options plus an opaque ``$skiptoken``;
Graph's error body with ``innerError``; 401 ``InvalidAuthenticationToken``. Intune listings carry ``@odata.count``
(the size of the filtered collection); users carry it only for ``$count=true`` with ``ConsistencyLevel: eventual``.

The ``$expand`` page cap: a directory listing with ``$expand`` returns at most :data:`EXPAND_PAGE_CAP` (100)
objects per page, whatever ``$top`` asks (a ``$top`` above 100 is not an error; a ``$top`` above 999 still is), and
pages on with a nextLink that carries the request's own ``$top``. Sources: Graph's known issues, "Some limitations
apply to query parameters" (https://developer.microsoft.com/en-us/graph/known-issues/?search=13635): "``$expand``:
For directory objects, returns a maximum of 100 objects", the wording of microsoftgraph/microsoft-graph-docs pull
requests #21506 ("Max page size with $expand is 100. Confirmed with Dev from code.") and #21516 (the same in
concepts/query-parameters.md); observed as ``/v1.0/users?$select=...&$expand=manager&$top=999`` answering exactly
100 users per page (Microsoft Tech Community, "The top parameter does not work together with the expand
parameter", 2023, and "Graph API with expand only bringing max 100 rows even though top=999", 2024). Not to be
confused with the other documented limit, the 20 items of an expanded collection-valued relationship (irrelevant
for the single-valued ``manager``).

``signInActivity`` (what dormancy is judged from): returned only when selected ("You must specify
``$select=signInActivity`` ... as the signInActivity property is not returned by default"), and "when you specify
``$select=signInActivity`` ... while listing users, the maximum page size for ``$top`` is 120. Requests with ``$top``
set higher than 120 will return pages with up to 120 users" (api-reference/v1.0/api/user-list.md of
microsoftgraph/microsoft-graph-docs-contrib, Example 11: :data:`SIGN_IN_PAGE_CAP`; with ``$expand`` too the lower
cap, 100, wins). It needs an Entra ID P1/P2 tenant: without one Graph answers 403
``Authentication_RequestFromNonPremiumTenantOrB2CTenant`` "Neither tenant is B2C or tenant doesn't have premium
license" (microsoftgraph/microsoft-graph-docs#12772, MicrosoftDocs/azure-docs#77948); the simulator does so when its
context says ``extra["entra_premium"] = False``. A single user addressed by userPrincipalName with
``$select=signInActivity`` is refused with 400 ("Selecting the 'signInActivity' resource using UPN is not supported.
You need to use the GUID of the user": Microsoft Q&A 1311910, 2023; the message text is as users report it, not from
a published contract). Its shape is msgraph-sdk's ``SignInActivity``
(:func:`nexus.sim.graph_data.sign_in_activity`).

Pages may be empty: "A page of results may contain zero or more results" (concepts/paging.md of
microsoftgraph/microsoft-graph-docs-contrib). The org names the offsets of the unfiltered listings where the
directory answers an empty page that still has a nextLink (``Org.graph_empty_pages``); a page that would span such
an offset stops short of it, the next request gets the empty page, and the one after goes on from the offset.

Properties (names and types) are those of Graph v1.0's ``microsoft.graph.user`` and ``microsoft.graph.managedDevice``
entity types; tests/test_graph_sdk.py checks every one against Microsoft's generated SDK models (``msgraph-sdk``).

The ``truncated`` fault: a request that carries a ``$skiptoken`` answers 400 ``Directory_ExpiredPageToken`` (what
Graph says when it lost a listing's paging state), so page one succeeds and the nextLink of page one fails. The
clients classify that code as :class:`~nexus.errors.TransientError` (the listing is incomplete; retrying the page
may work once the state is back, and if it never does, the system is reported failed).

Performance: per org, indexes (mail, userPrincipalName, employeeId, id, otherMails; serialNumber,
userPrincipalName, id) are built once (:mod:`nexus.sim.graph_data`); a page costs O(page size) and an indexed filter
O(matches). Other filters scan once and their result is cached (a small LRU) so following their nextLinks stays
O(page size).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nexus.sim import odata
from nexus.sim.base import SimContext, SystemSim
from nexus.sim.graph_data import DEFAULT_USER_SELECT, USER_PROPS, Collection, GraphData, View
from nexus.sim.graph_token import GRAPH_APP_ID, TOKEN_SYSTEM, AzureTokenSim
from nexus.sim.org_model import EntraUser, Org
from nexus.sim.tokens import TokenCheck


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class GraphError(Exception):
    """An error answer in Graph's format, raised inside request handling."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


_STATUS_CODES = {400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied",
                 404: "Request_ResourceNotFound", 429: "TooManyRequests", 503: "serviceNotAvailable"}
_GENERIC_CODES = {"ServiceUnavailable": "serviceNotAvailable"}  # the framework's fault codes, as Graph spells them
_SKIPTOKEN_MAGIC = b"DSpt\x01"  # real Graph user skiptokens start with base64("DSpt")
#: Graph's page cap for directory listings that use ``$expand`` (see the module docstring for the sources).
EXPAND_PAGE_CAP = 100
#: Users per page when ``signInActivity`` is selected (user-list.md, Example 11).
SIGN_IN_PAGE_CAP = 120
SIGN_IN_ACTIVITY = "signInActivity"
_USER_OPTIONS = {"$select", "$filter", "$top", "$expand", "$skiptoken", "$count"}
_DEVICE_OPTIONS = {"$select", "$filter", "$top", "$skiptoken", "$count"}


class GraphSim(SystemSim):
    """Microsoft Graph v1.0: Entra ID users and Intune managed devices."""

    prefix = "/graph"
    system = "entra"

    def __init__(self, ctx: SimContext, *, filter_cache_size: int = 64) -> None:
        super().__init__(ctx)
        self._lock = threading.Lock()
        self._data: GraphData | None = None
        self._data_org: Org | None = None
        self._cache: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
        self._cache_size = filter_cache_size
        # Deterministic per seed, so a nextLink stays valid across a restart of the same simulated org.
        self._page_key = hashlib.sha256(f"nexus-graph-skiptoken-{ctx.org.seed}".encode()).digest()

    # -- framework hooks ------------------------------------------------------------------------------------------
    def system_for(self, path: str) -> str:
        return "intune" if path.lower().startswith("/v1.0/devicemanagement") else "entra"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1.0/users", self.list_users, methods=["GET"]),
            Route("/v1.0/users/{key}", self.get_user, methods=["GET"]),
            Route("/v1.0/users/{key}/manager", self.get_manager, methods=["GET"]),
            Route("/v1.0/deviceManagement/managedDevices", self.list_devices, methods=["GET"]),
            Route("/v1.0/deviceManagement/managedDevices/{key}", self.get_device, methods=["GET"]),
        ]

    def error(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None,
              client_request_id: str | None = None) -> Response:
        request_id = str(uuid.uuid4())
        body = {"error": {
            "code": _GENERIC_CODES.get(code, code) or _STATUS_CODES.get(status, str(status)),
            "message": message,
            "innerError": {"date": _now_text(), "request-id": request_id,
                           "client-request-id": client_request_id or request_id},
        }}
        all_headers = {"request-id": request_id, "client-request-id": client_request_id or request_id}
        if status == 401:
            all_headers["WWW-Authenticate"] = 'Bearer realm="", authorization_uri="https://login.microsoftonline.' \
                                              'com/common/oauth2/authorize", client_id="' + GRAPH_APP_ID + '"'
        all_headers.update(headers or {})
        return JSONResponse(body, status_code=status, headers=all_headers)

    def malformed(self) -> Response:
        # A body cut off mid-stream: what a client sees when a proxy truncates Graph's answer.
        return Response(b'{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users","value":[{"id":"',
                        status_code=200, media_type="application/json")

    # -- data -------------------------------------------------------------------------------------------------------
    def data(self) -> GraphData:
        """The indexes for the current org (built on first use, rebuilt if the org object is replaced)."""
        org = self.ctx.org
        with self._lock:
            if self._data is None or self._data_org is not org:
                self._data = GraphData(org)
                self._data_org = org
                self._cache.clear()
            return self._data

    def _positions(self, coll: Collection, flt: odata.Node | None, text: str) -> Sequence[int]:
        if flt is None:
            return range(len(coll.items))
        key = (coll.name, text)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        found = odata.candidates(flt, coll.indexes)
        pool: Iterator[int] = iter(sorted(found)) if found is not None else iter(range(len(coll.items)))
        result = [pos for pos in pool if odata.matches(flt, View(coll.props, coll.items[pos]))]
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def _skiptoken(self, coll: Collection, text: str, offset: int) -> str:
        mac = hmac.new(self._page_key, f"{coll.name}\0{text}\0{offset}".encode(), hashlib.sha256).digest()[:12]
        raw = _SKIPTOKEN_MAGIC + offset.to_bytes(4, "big") + mac
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _offset(self, coll: Collection, text: str, token: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raw = b""
        if len(raw) == len(_SKIPTOKEN_MAGIC) + 16 and raw.startswith(_SKIPTOKEN_MAGIC):
            offset = int.from_bytes(raw[5:9], "big")
            if hmac.compare_digest(self._skiptoken(coll, text, offset), token.rstrip("=")):
                return offset
        raise GraphError(400, "Request_BadRequest", "The specified page token value is invalid or has expired.")

    # -- auth ---------------------------------------------------------------------------------------------------------
    def _authorize(self, request: Request, system: str) -> None:
        token = self.bearer(request)
        if not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if self.ctx.faults.decide_peek(system) == "expired_token":
            check = TokenCheck.EXPIRED
        else:
            check = self.ctx.tokens.check(TOKEN_SYSTEM, token)
        if check is TokenCheck.EXPIRED:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        if check is not TokenCheck.OK:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")

    # -- query options ------------------------------------------------------------------------------------------------
    def _options(self, request: Request, allowed: set[str]) -> dict[str, str]:
        options: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            lowered = key.lower()
            if not lowered.startswith("$"):
                continue  # Graph ignores parameters that are not system query options
            if lowered not in allowed:
                raise GraphError(400, "Request_BadRequest", f"Query option '{key}' is not allowed for this request.")
            if lowered in options:
                raise GraphError(400, "Request_BadRequest", f"Query option '{key}' was specified more than once, "
                                                            "but it must be specified at most once.")
            options[lowered] = value
        return options

    def _top(self, coll: Collection, options: Mapping[str, str]) -> int:
        raw = options.get("$top")
        if raw is None:
            return coll.default_top
        try:
            top = int(raw.strip())
        except ValueError:
            top = 0
        if not 1 <= top <= coll.max_top:
            raise GraphError(400, "Request_BadRequest", f"Invalid value '{raw}' for query parameter $top. The value "
                                                        f"must be between 1 and {coll.max_top}.")
        return top

    def _select(self, coll: Collection, options: Mapping[str, str]) -> list[str]:
        raw = options.get("$select")
        if raw is None or not raw.strip():
            return list(coll.default_select)
        try:
            return odata.parse_select(raw, coll.props, coll.type_name)
        except odata.FilterError as exc:
            raise GraphError(400, "Request_BadRequest", str(exc)) from exc

    def _filter(self, coll: Collection, options: Mapping[str, str]) -> tuple[odata.Node | None, str]:
        raw = options.get("$filter")
        if raw is None:
            return None, ""
        try:
            return odata.bind(odata.parse_filter(raw), coll.schema, coll.type_name), raw
        except odata.FilterError as exc:
            raise GraphError(400, "Request_BadRequest", str(exc)) from exc

    def _manager_select(self, options: Mapping[str, str]) -> list[str] | None:
        raw = options.get("$expand")
        if raw is None:
            return None
        try:
            expands = odata.parse_expand(raw)
        except odata.FilterError as exc:
            raise GraphError(400, "Request_BadRequest", str(exc)) from exc
        select: list[str] | None = None
        for expand in expands:
            if expand.prop.lower() != "manager":
                raise GraphError(400, "Request_BadRequest", f"Could not find a property named '{expand.prop}' on "
                                                            "type 'Microsoft.DirectoryServices.User'.")
            try:
                select = (odata.parse_select(expand.select, USER_PROPS, "Microsoft.DirectoryServices.User")
                          if expand.select else list(DEFAULT_USER_SELECT))
            except odata.FilterError as exc:
                raise GraphError(400, "Request_BadRequest", str(exc)) from exc
        return select

    # -- handlers -----------------------------------------------------------------------------------------------------
    async def _answer(self, request: Request, system: str, work: Callable[[], dict[str, Any]]) -> Response:
        client_request_id = request.headers.get("client-request-id")
        try:
            self._authorize(request, system)
            body = await run_in_threadpool(work)
        except GraphError as exc:
            return self.error(exc.status, exc.message, code=exc.code, headers=exc.headers,
                              client_request_id=client_request_id)
        headers = {"request-id": str(uuid.uuid4())}
        if client_request_id:
            headers["client-request-id"] = client_request_id
        return JSONResponse(body, headers=headers)

    async def list_users(self, request: Request) -> Response:
        return await self._answer(request, "entra", lambda: self._list(request, self.data().users, "entra"))

    async def list_devices(self, request: Request) -> Response:
        return await self._answer(request, "intune", lambda: self._list(request, self.data().devices, "intune"))

    def _list(self, request: Request, coll: Collection, system: str) -> dict[str, Any]:
        users = coll is self.data().users
        options = self._options(request, _USER_OPTIONS if users else _DEVICE_OPTIONS)
        top = self._top(coll, options)
        select = self._select(coll, options)
        manager_select = self._manager_select(options) if users else None
        if manager_select is not None:
            top = min(top, EXPAND_PAGE_CAP)
        if users:
            self._check_licence(select, manager_select)
            if SIGN_IN_ACTIVITY in select:
                top = min(top, SIGN_IN_PAGE_CAP)
        flt, text = self._filter(coll, options)
        cursor = 0  # 2 * offset, + 1 once the empty page at that offset was served
        token = options.get("$skiptoken")
        if token is not None:
            if self.truncated(system):
                raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired "
                                                                    "and can no longer be included in your request.")
            cursor = self._offset(coll, text, token)
        offset, gap_served = divmod(cursor, 2)
        positions = self._positions(coll, flt, text)
        gaps = self._gaps(coll, len(positions)) if flt is None else []
        body: dict[str, Any] = {"@odata.context": self._context(request, coll, select, options)}
        if not users or (options.get("$count", "").lower() == "true"
                         and request.headers.get("consistencylevel", "").lower() == "eventual"):
            body["@odata.count"] = len(positions)
        at = bisect.bisect_left(gaps, offset)
        if at < len(gaps) and gaps[at] == offset and not gap_served:
            body["value"] = []  # Graph's "zero or more results": an empty page that still pages on
            body["@odata.nextLink"] = self._next_link(request, self._skiptoken(coll, text, 2 * offset + 1))
            return body
        end = offset + top
        later = bisect.bisect_right(gaps, offset)
        if later < len(gaps):
            end = min(end, gaps[later])  # the page stops short of the next empty one
        page = positions[offset:end]
        body["value"] = [self._render(coll, coll.items[pos], select, manager_select) for pos in page]
        if end < len(positions):
            body["@odata.nextLink"] = self._next_link(request, self._skiptoken(coll, text, 2 * end))
        return body

    def _check_licence(self, select: Sequence[str], manager_select: Sequence[str] | None) -> None:
        """signInActivity needs a premium (Entra ID P1/P2) tenant."""
        if self.ctx.extra.get("entra_premium", True):
            return
        if SIGN_IN_ACTIVITY in select or SIGN_IN_ACTIVITY in (manager_select or ()):
            raise GraphError(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                             "Neither tenant is B2C or tenant doesn't have premium license")

    def _gaps(self, coll: Collection, size: int) -> list[int]:
        """The offsets of ``coll``'s unfiltered listing where the org puts an empty page (ascending)."""
        wanted = self.ctx.org.graph_empty_pages.get(coll.name, ())
        return sorted({g for g in wanted if 0 <= g < size})

    def _render(self, coll: Collection, item: Any, select: Sequence[str],
                manager_select: Sequence[str] | None) -> dict[str, Any]:
        out = coll.render(item, select)
        if manager_select is not None and isinstance(item, EntraUser) and item.manager_id:
            manager = self.data().user_by_id.get(item.manager_id)
            if manager is not None:
                out["manager"] = {"@odata.type": "#microsoft.graph.user", **self.data().users.render(
                    manager, manager_select)}
        return out

    def _context(self, request: Request, coll: Collection, select: Sequence[str], options: Mapping[str, str],
                 entity: bool = False) -> str:
        root = _service_root(request)
        shape = f"({','.join(select)})" if "$select" in options else ""
        return f"{root}/v1.0/$metadata#{coll.name}{shape}" + ("/$entity" if entity else "")

    def _next_link(self, request: Request, token: str) -> str:
        pairs = [(k, v) for k, v in request.query_params.multi_items() if k.lower() != "$skiptoken"]
        pairs.append(("$skiptoken", token))
        query = urlencode(pairs, quote_via=quote, safe="$,()/:=")
        return str(request.url.replace(query=query))

    async def get_user(self, request: Request) -> Response:
        return await self._answer(request, "entra", lambda: self._get(request, self.data().users, manager=False))

    async def get_manager(self, request: Request) -> Response:
        return await self._answer(request, "entra", lambda: self._get(request, self.data().users, manager=True))

    async def get_device(self, request: Request) -> Response:
        return await self._answer(request, "intune", lambda: self._get(request, self.data().devices, manager=False))

    def _get(self, request: Request, coll: Collection, *, manager: bool) -> dict[str, Any]:
        users = coll is self.data().users
        options = self._options(request, {"$select", "$expand"} if users else {"$select"})
        select = self._select(coll, options)
        manager_select = self._manager_select(options) if users and not manager else None
        key = request.path_params["key"]
        if users:
            self._check_licence(select, manager_select)
            if SIGN_IN_ACTIVITY in select and not _is_guid(key):
                raise GraphError(400, "BadRequest",
                                 "Get By Key only supports UserId and the key has to be a valid Guid")
        hits = coll.indexes["id"].get(key.lower()) or (
            coll.indexes["userPrincipalName"].get(key.lower()) if users else None)
        if not hits:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its "
                                                              "queried reference-property objects are not present.")
        item = coll.items[hits[0]]
        if manager:
            boss = self.data().user_by_id.get(item.manager_id) if item.manager_id else None
            if boss is None:
                raise GraphError(404, "Request_ResourceNotFound", "Resource 'manager' does not exist or one of its "
                                                                  "queried reference-property objects are not present.")
            body = {"@odata.context": f"{_service_root(request)}/v1.0/$metadata#directoryObjects/$entity",
                    "@odata.type": "#microsoft.graph.user"}
            body.update(coll.render(boss, select))
            return body
        body = {"@odata.context": self._context(request, coll, select, options, entity=True)}
        body.update(self._render(coll, item, select, manager_select))
        return body


def _service_root(request: Request) -> str:
    """``http://host:port/graph``: what the client used as GRAPH_BASE_URL (the mount point included)."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}".rstrip("/")


def _is_guid(key: str) -> bool:
    try:
        uuid.UUID(key)
    except ValueError:
        return False
    return True


def graph_sims(ctx: SimContext) -> list[SystemSim]:
    """Both simulators this module provides (token endpoint first), for ``build_app``."""
    return [AzureTokenSim(ctx), GraphSim(ctx)]


__all__ = ["EXPAND_PAGE_CAP", "SIGN_IN_PAGE_CAP", "GraphError", "GraphSim", "graph_sims"]
