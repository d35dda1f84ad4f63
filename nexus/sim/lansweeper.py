"""Lansweeper's Data API: ``POST /api/v2/graphql`` served by a real GraphQL engine (graphql-core) over the
vendor-named schema subset in :file:`lansweeper_schema.graphql`.

The contract, and where it comes from (facts only; the schema file's header has the commits):

- Type and field names, arguments and nullability: Lansweeper's generated GraphQL types (an introspection of
  ``https://api.lansweeper.com/api/v2/graphql``, github.com/DeskproApps/lansweeper ``src/services/lansweeper/
  schema.ts``) and the queries of Lansweeper's own MCP server (github.com/Lansweeper-public/MCP-server-lansweeper,
  ``src/tools/assetsResources/handler.ts``). Every incoming document is parsed and validated against that schema,
  so a variable typed ``AssetsFilterGroupInput`` (no such type: the vendor's is ``AssetsFilterGroupedInput``) is
  refused like any other unknown type, before anything runs.
- Restrictions (developer.lansweeper.com/docs/platform-api/guides/restrictions): at most 30 field paths; filters only
  on the documented paths (:data:`nexus.sim.lansweeper_assets.FILTERABLE`; ``assetBasicInfo.userDomain`` is not one),
  at most 100 conditions; ``total`` may be selected only with ``page: FIRST`` (not with PREV, NEXT or LAST); 150
  requests a minute (enforced only when built with ``rate_limit_per_min``: then 429 with ``Retry-After``).
- Not published, so this simulator's choice (the client is tolerant of the alternatives): the HTTP status of a
  GraphQL error and the ``extensions.code`` values. Query errors (syntax, validation: ``GRAPHQL_VALIDATION_FAILED``;
  bad arguments, an unusable cursor: ``BAD_USER_INPUT``; an unknown site: ``FORBIDDEN``) come back as HTTP 200 with
  an ``errors`` array, Apollo style; a document that fails validation has no ``data``. A missing or wrong token, or
  the ``expired_token`` fault (a revoked token), answers HTTP 401 with a GraphQL-style ``UNAUTHENTICATED`` body
  (Lansweeper's partner integrations treat 401/403 as an authentication failure). The vendor's MCP server posts to
  ``/api/integrations/graphql``, the older integrations to ``/api/v2/graphql``: the URL is configuration.

Assets are served by ``site(id) { assetResources(assetPagination, fields, filters) { total pagination { limit
current next page } items } }`` (the vendor's other pagination argument, ``pagination: AssetsPaginationInput``, is
accepted too): ``items`` is a list of JSON objects shaped by the requested ``fields`` paths
(``assetBasicInfo.userName`` -> ``{"assetBasicInfo": {"userName": ...}}``), plus ``_id`` and ``key``. Pagination:
``limit`` 1..500; ``page: FIRST`` (no cursor), ``NEXT`` with ``pagination.next``, ``PREV`` with ``pagination.current``
(the page before it), ``LAST``. Cursors (type ``ID``) are opaque and bound to the site and the filters. EQUAL on
``assetCustom.serialNumber``, ``assetBasicInfo.userName`` and ``key`` is a dictionary look-up (indexes built once per
org), so a page costs O(page size) even with 150k assets. Field paths, indexes, operators and filters:
:mod:`nexus.sim.lansweeper_assets`.

Faults: the generic ones come from the framework. ``truncated``: a request that carries a cursor (``NEXT``/``PREV``)
fails with a GraphQL error whose ``extensions.code`` is ``INTERNAL_SERVER_ERROR`` (the client maps that code to
TransientError: the listing is incomplete).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    execute_sync,
    parse,
    validate,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nexus.sim.base import SimContext, SystemSim
from nexus.sim.lansweeper_assets import FIELDS, Assets, Group, bad_input, candidates, matches, parse_group
from nexus.sim.org_model import LansweeperAsset, Org

GRAPHQL_PATH = "/api/v2/graphql"
MAX_LIMIT = 500

SCHEMA_FILE = "lansweeper_schema.graphql"
MAX_FIELDS = 30  # "A maximum of 30 element paths can be requested at the same time."


def vendor_sdl() -> str:
    """The vendor-named schema subset (:file:`lansweeper_schema.graphql`, with its sources in its header)."""
    return (Path(__file__).with_name(SCHEMA_FILE)).read_text(encoding="utf-8")


SDL = vendor_sdl()


class RateLimiter:
    """A sliding one-minute window: ``check()`` returns None when allowed, else the seconds to wait."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque()

    def check(self) -> float | None:
        with self._lock:
            now = self._clock()
            while self._stamps and self._stamps[0] <= now - 60.0:
                self._stamps.popleft()
            if len(self._stamps) >= self.per_minute:
                return max(self._stamps[0] + 60.0 - now, 0.0)
            self._stamps.append(now)
            return None


class LansweeperSim(SystemSim):
    """Lansweeper Data API v2 (GraphQL)."""

    prefix = "/lansweeper"
    system = "lansweeper"

    def __init__(self, ctx: SimContext, *, rate_limit_per_min: int | None = None,
                 clock: Callable[[], float] = time.monotonic, cache_size: int = 64) -> None:
        super().__init__(ctx)
        self.limiter = RateLimiter(rate_limit_per_min, clock) if rate_limit_per_min else None
        self.schema: GraphQLSchema = build_schema(SDL)
        self._wire_resolvers()
        self._lock = threading.Lock()
        self._assets: Assets | None = None
        self._assets_org: Org | None = None
        self._documents: OrderedDict[str, DocumentNode | list[GraphQLError]] = OrderedDict()
        self._results: OrderedDict[str, list[int]] = OrderedDict()
        self._cache_size = cache_size
        self._cursor_key = hashlib.sha256(f"nexus-lansweeper-cursor-{ctx.org.seed}".encode()).digest()

    # -- framework hooks ----------------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [Route(GRAPHQL_PATH, self.graphql, methods=["POST"])]

    def error(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None) -> Response:
        codes = {401: "UNAUTHENTICATED", 429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE"}
        body = {"errors": [{"message": message, "extensions": {"code": codes.get(status, code or str(status))}}]}
        return JSONResponse(body, status_code=status, headers=headers)

    def malformed(self) -> Response:
        return Response(b'{"data":{"site":{"assetResources":{"total":12,"items":[{"_id":"', status_code=200,
                        media_type="application/json")

    # -- data -----------------------------------------------------------------------------------------------------
    def assets(self) -> Assets:
        org = self.ctx.org
        with self._lock:
            if self._assets is None or self._assets_org is not org:
                self._assets = Assets(org)
                self._assets_org = org
                self._results.clear()
            return self._assets

    def _positions(self, group: Group | None, key: str) -> Sequence[int]:
        assets = self.assets()
        if group is None:
            return range(len(assets.items))
        with self._lock:
            cached = self._results.get(key)
            if cached is not None:
                self._results.move_to_end(key)
                return cached
        found = candidates(group, assets)
        pool = sorted(found) if found is not None else range(len(assets.items))
        result = [pos for pos in pool if matches(group, assets.items[pos])]
        with self._lock:
            self._results[key] = result
            while len(self._results) > self._cache_size:
                self._results.popitem(last=False)
        return result

    def _cursor(self, binding: str, offset: int) -> str:
        mac = hmac.new(self._cursor_key, f"{binding}\0{offset}".encode(), hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(offset.to_bytes(4, "big") + mac).decode().rstrip("=")

    def _cursor_offset(self, binding: str, cursor: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError:
            raw = b""
        if len(raw) == 16:
            offset = int.from_bytes(raw[:4], "big")
            if hmac.compare_digest(self._cursor(binding, offset), cursor.rstrip("=")):
                return offset
        raise bad_input("Invalid cursor.")

    # -- resolvers ------------------------------------------------------------------------------------------------
    def _wire_resolvers(self) -> None:
        query = self.schema.query_type
        site_type = self.schema.get_type("Site")
        assert query is not None and isinstance(site_type, GraphQLObjectType)
        query.fields["site"].resolve = self._resolve_site
        query.fields["authorizedSites"].resolve = lambda _root, _info: {"sites": [self._site()]}
        query.fields["me"].resolve = lambda _root, _info: {"id": "nexus-api", "username": "nexus-api"}
        site_type.fields["assetResources"].resolve = self._resolve_assets

    def _site(self) -> dict[str, Any]:
        return {"id": self.ctx.creds.lansweeper_site_id, "name": f"{self.ctx.org.domain} (simulated)"}

    def _resolve_site(self, _root: Any, _info: GraphQLResolveInfo, id: str) -> dict[str, Any]:
        if id != self.ctx.creds.lansweeper_site_id:
            raise GraphQLError(f"Site '{id}' not found or not authorized for this token.",
                               extensions={"code": "FORBIDDEN"})
        return self._site()

    def _resolve_assets(self, site: dict[str, Any], info: GraphQLResolveInfo, fields: list[str],
                        assetPagination: dict[str, Any] | None = None,
                        filters: dict[str, Any] | None = None,
                        pagination: dict[str, Any] | None = None) -> dict[str, Any]:
        if len(fields) > MAX_FIELDS:
            raise bad_input(f"At most {MAX_FIELDS} field paths can be requested at the same time.")
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise bad_input(f"Invalid field path '{unknown[0]}'.")
        paging = assetPagination or pagination or {}
        limit = paging.get("limit") or 100
        if not 1 <= limit <= MAX_LIMIT:
            raise bad_input(f"limit must be between 1 and {MAX_LIMIT}.")
        page = paging.get("page") or "FIRST"
        if page != "FIRST" and _selects(info, "total"):
            raise bad_input("The total field requires page FIRST: it cannot be used with PREV, NEXT or LAST.")
        group = parse_group(filters) if filters else None
        binding = json.dumps([site["id"], filters], sort_keys=True)
        positions = self._positions(group, binding)
        total = len(positions)
        cursor = paging.get("cursor")
        if page in ("NEXT", "PREV"):
            if not cursor:
                raise bad_input(f"page {page} needs a cursor.")
            if info.context.get("truncated"):
                raise GraphQLError("The cursor could not be resolved: the result set is no longer available.",
                                   extensions={"code": "INTERNAL_SERVER_ERROR"})
            offset = self._cursor_offset(binding, cursor)
            if page == "PREV":
                offset = max(offset - limit, 0)
        elif page == "LAST":
            offset = max((math.ceil(total / limit) - 1) * limit, 0)
        else:
            offset = 0
        assets = self.assets().items
        items = [self._render(assets[pos], fields) for pos in positions[offset:offset + limit]]
        has_next = offset + limit < total
        return {
            "total": total,
            "pagination": {
                "limit": limit,
                "current": self._cursor(binding, offset),
                "next": self._cursor(binding, offset + limit) if has_next else None,
                "page": page,
            },
            "items": items,
        }

    @staticmethod
    def _render(asset: LansweeperAsset, fields: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"_id": asset.key, "key": asset.key}
        for path in fields:
            *parents, leaf = path.split(".")
            node = out
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = FIELDS[path](asset)
        return out

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> Response | None:
        token = self.bearer(request, "Token")
        if not token or not hmac.compare_digest(token.encode(), self.ctx.creds.lansweeper_token.encode()):
            return self.error(401, "Unauthorized: the access token is missing or invalid.")
        if self.ctx.faults.decide_peek(self.system) == "expired_token":
            return self.error(401, "Unauthorized: the access token has been revoked or has expired.")
        return None

    def _document(self, query: str) -> DocumentNode | list[GraphQLError]:
        with self._lock:
            cached = self._documents.get(query)
            if cached is not None:
                self._documents.move_to_end(query)
                return cached
        try:
            document: DocumentNode | list[GraphQLError] = parse(query)
        except GraphQLError as exc:
            document = [exc]
        if not isinstance(document, list):
            errors = validate(self.schema, document)
            if errors:
                document = list(errors)
        with self._lock:
            self._documents[query] = document
            while len(self._documents) > self._cache_size:
                self._documents.popitem(last=False)
        return document

    async def graphql(self, request: Request) -> Response:
        if self.limiter is not None:
            wait = self.limiter.check()
            if wait is not None:
                return self.error(429, "Rate limit exceeded: too many requests, retry later.",
                                  headers={"Retry-After": str(max(math.ceil(wait), 1))})
        raw = await request.body()
        text = raw.decode("utf-8", errors="replace")
        self.ctx.log.note(self.system, GRAPHQL_PATH, text)
        denied = self._authorized(request)
        if denied is not None:
            return denied
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body:
            return self.error(400, "POST body missing, invalid Content-Type, or JSON object has no keys.",
                              code="BAD_REQUEST")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return self.error(400, "GraphQL operations must contain a non-empty `query`.", code="BAD_REQUEST")
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return self.error(400, "`variables` must be an object.", code="BAD_REQUEST")
        operation = body.get("operationName")
        context = {"truncated": self.truncated(self.system)}
        result = await run_in_threadpool(self._execute, query, variables, operation, context)
        return JSONResponse(result)

    def _execute(self, query: str, variables: dict[str, Any] | None, operation: Any,
                 context: dict[str, Any]) -> dict[str, Any]:
        document = self._document(query)
        if isinstance(document, list):
            return {"errors": [_formatted(e, "GRAPHQL_VALIDATION_FAILED") for e in document]}
        result = execute_sync(self.schema, document, variable_values=variables, context_value=context,
                              operation_name=operation if isinstance(operation, str) else None)
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [_formatted(e, "BAD_USER_INPUT") for e in result.errors]
        out["data"] = result.data
        return out


def _selects(info: GraphQLResolveInfo, name: str) -> bool:
    """Does the query select ``name`` on this field (directly; Nexus and the vendor's examples use no fragments)?"""
    for node in info.field_nodes:
        selections = node.selection_set.selections if node.selection_set else ()
        if any(isinstance(s, FieldNode) and s.name.value == name for s in selections):
            return True
    return False


def _formatted(error: GraphQLError, default_code: str) -> dict[str, Any]:
    """GraphQL's error shape with an ``extensions.code`` (Apollo style); never a Python traceback."""
    formatted: dict[str, Any] = dict(error.formatted)
    raw_extensions = formatted.get("extensions")
    extensions: dict[str, Any] = dict(raw_extensions) if isinstance(raw_extensions, dict) else {}
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        formatted["message"] = "Internal server error"
        extensions["code"] = "INTERNAL_SERVER_ERROR"
    extensions.setdefault("code", default_code)
    formatted["extensions"] = extensions
    return formatted


__all__ = ["GRAPHQL_PATH", "MAX_FIELDS", "MAX_LIMIT", "SDL", "LansweeperSim", "RateLimiter", "vendor_sdl"]
