"""What the Entra and Intune clients share: the client-credentials token and Graph's paging and errors.

Token: ``POST {AZURE_AUTHORITY_URL}/{AZURE_TENANT_ID}/oauth2/v2.0/token`` with
``scope=https://graph.microsoft.com/.default``, cached by :class:`~clients._tokens.TokenCache` and refreshed before
``expires_in`` runs out; a 401 from Graph invalidates it and the request is repeated once (the base client).
Each client instance holds its own cache: Entra and Intune run on different Celery queues, usually in different
processes, so a process-wide cache would rarely be shared.

Paging: the first page is ``GET /v1.0/<collection>?$select=...&$top=...``; every later page is the previous
answer's ``@odata.nextLink`` followed WHOLE (Graph's ``$skiptoken`` is opaque and only valid with the options it
was issued for). The link must point under ``GRAPH_BASE_URL``: the bearer token is never sent elsewhere.

Page sizes: ``$top`` is at most :data:`MAX_PAGE_SIZE` (999) on directory collections, but a listing with ``$expand``
gets at most :data:`EXPAND_PAGE_SIZE` (100) objects a page whatever ``$top`` asks, so the Entra listing (which
expands the manager) asks for and is planned with 100. A page may be empty and still carry a nextLink (Graph's
paging guide: "A page of results may contain zero or more results"): only a missing nextLink ends a listing.

Errors beyond the base mapping: 400 ``Directory_ExpiredPageToken`` (Graph lost the paging state of a listing, which
is also what the simulator's ``truncated`` fault answers) is a :class:`~nexus.errors.TransientError`: the listing
is incomplete through no fault of the request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from clients._http import HttpSystemClient
from nexus.errors import MalformedResponseError, TransientError

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
#: Graph's limit for ``$top`` on directory collections (users); the clients ask for full pages.
MAX_PAGE_SIZE = 999
#: Graph's page cap for directory listings with ``$expand``: at most 100 objects a page, whatever ``$top`` says
#: (Graph's known issues, "Some limitations apply to query parameters": "$expand: For directory objects, returns a
#: maximum of 100 objects"; microsoftgraph/microsoft-graph-docs#21506). Clients that expand plan with this size.
EXPAND_PAGE_SIZE = 100


def odata_quote(value: str) -> str:
    """An OData string literal: single-quoted, every embedded quote doubled. The only way values enter a $filter."""
    return "'" + value.replace("'", "''") + "'"


def encode_query(params: Mapping[str, str]) -> str:
    """Percent-encode query options but keep OData's ``$`` and punctuation readable (as Graph's own links do)."""
    return urlencode(params, quote_via=quote, safe="$,()/:=")


@dataclass(slots=True)
class GraphPage:
    """One decoded Graph collection answer."""

    items: list[dict[str, Any]]
    next_link: str | None
    count: int | None


class GraphClient(HttpSystemClient):
    """Base of :class:`~clients.entra.EntraClient` and :class:`~clients.intune.IntuneClient`."""

    base_url_setting = "graph_base_url"

    # -- auth ---------------------------------------------------------------------------------------------------
    def token_url(self) -> str:
        authority = self.settings.azure_authority_url.rstrip("/")
        return f"{authority}/{quote(self.settings.azure_tenant_id, safe='')}/oauth2/v2.0/token"

    def _fetch_token(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.azure_client_id,
            "client_secret": self.settings.azure_client_secret.get_secret_value(),
            "scope": GRAPH_SCOPE,
        }
        return self.token_request(self.token_url(), form)

    # -- errors -------------------------------------------------------------------------------------------------
    @staticmethod
    def _error_body(response: httpx.Response) -> tuple[str, str]:
        """(code, message) from Graph's ``{"error": {"code", "message"}}`` or the token endpoint's
        ``{"error": "...", "error_description": "..."}``; empty strings when the body is neither."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return "", response.text[:200]
        if not isinstance(body, dict):
            return "", str(body)[:200]
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("code", "")), str(error.get("message", ""))[:300]
        if isinstance(error, str):
            return error, str(body.get("error_description", "")).split(" Trace ID:")[0][:300]
        return "", str(body)[:200]

    def _error_message(self, response: httpx.Response) -> str:
        code, message = self._error_body(response)
        return f"{code}: {message}" if code else message

    def check(self, response: httpx.Response, *, not_found_ok: bool = False) -> httpx.Response:
        if response.status_code == 400 and self._error_body(response)[0] == "Directory_ExpiredPageToken":
            raise TransientError(f"HTTP 400: {self._error_message(response)} (listing incomplete)",
                                 system=self.system, status=400)
        return super().check(response, not_found_ok=not_found_ok)

    # -- requests -----------------------------------------------------------------------------------------------
    def get_json(self, path: str, params: Mapping[str, str] | None = None, *,
                 not_found_ok: bool = False) -> dict[str, Any] | None:
        """GET one Graph resource; None on 404 when ``not_found_ok``; MalformedResponseError unless an object."""
        url = f"{path}?{encode_query(params)}" if params else path
        response = self.send("GET", url, not_found_ok=not_found_ok)
        if response.status_code == 404:
            return None
        body = self.parse_json(response)
        if not isinstance(body, dict):
            raise MalformedResponseError(f"GET {path}: the answer is not a JSON object", system=self.system)
        return body

    def get_collection(self, path: str, params: Mapping[str, str], cursor: str | None = None) -> GraphPage:
        """ONE page of a collection: the first page (``cursor`` None) or the page a nextLink names."""
        if cursor is None:
            body = self.get_json(path, params)
        else:
            self._check_next_link(cursor)
            body = self.get_json(cursor)
        assert body is not None  # not_found_ok is False: a 404 raised NotFoundError
        value = self.require(body, "value")
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise MalformedResponseError(f"GET {path}: 'value' is not a list of objects", system=self.system)
        next_link = body.get("@odata.nextLink")
        if next_link is not None and (not isinstance(next_link, str) or not next_link):
            raise MalformedResponseError(f"GET {path}: '@odata.nextLink' is not a URL", system=self.system)
        count = body.get("@odata.count")
        return GraphPage(value, next_link, count if isinstance(count, int) else None)

    def _check_next_link(self, link: str) -> None:
        try:
            url = httpx.URL(link)
        except httpx.InvalidURL as exc:
            raise MalformedResponseError("the nextLink is not a valid URL", system=self.system) from exc
        base = self.http.base_url
        base_path = base.path.rstrip("/")
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not (
            url.path == base_path or url.path.startswith(base_path + "/")
        ):
            raise MalformedResponseError(f"the nextLink points outside GRAPH_BASE_URL ({url.host})",
                                         system=self.system)

    def timed_probe(self, path: str) -> float:
        """One cheap authenticated request; its elapsed time in milliseconds."""
        started = time.perf_counter()
        self.get_collection(path, {"$top": "1", "$select": "id"})
        return (time.perf_counter() - started) * 1000.0


def as_str(value: Any) -> str | None:
    """A Graph string property, or None (also for a property of the wrong type)."""
    return value if isinstance(value, str) else None


def require_str(item: Mapping[str, Any], key: str, system: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedResponseError(f"a {system} record lacks {key!r}", system=system)
    return value
