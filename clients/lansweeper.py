"""Lansweeper assets through the Data API (GraphQL at ``LANSWEEPER_GRAPHQL_URL``).

The documents follow Lansweeper's published contract (the vendor-named schema in
``nexus/sim/lansweeper_schema.graphql`` cites its sources: Lansweeper's generated GraphQL types and its own MCP
server's queries; tests/test_lansweeper_schema.py validates every document sent here against it):
``$filters: AssetsFilterGroupedInput``, ``$pagination: AssetsPaginationInputValidated`` (cursor type ``ID``, page
``AssetsPage``), ``assetResources(assetPagination, fields, filters)`` answering an ``ItemsResponse``. Lansweeper's
documented restrictions are kept: ``total`` is requested only on the FIRST page (it is refused with NEXT), at most 30
field paths, and filters only on documented paths. ``assetBasicInfo.userDomain`` is not one, so a ``DOMAIN\\sam``
lookup filters on ``assetBasicInfo.userName`` and checks the domain here.

The queries are CONSTANT strings: the site id, page size, cursor and every filter value travel only in
``variables``, so no value can change the query's shape. Authentication is the personal access token in
``Authorization: Token <LANSWEEPER_TOKEN>``; it does not expire, so the one re-authentication on 401 only re-reads
it (a revoked token therefore fails as AuthError).

Answers. Lansweeper does not publish which HTTP status carries which GraphQL error, nor its ``extensions.code``
values, so the client is tolerant: an ``errors`` array is classified by its ``extensions.code`` whatever the status
(200, or a 4xx other than 401/429): ``UNAUTHENTICATED``/``FORBIDDEN`` -> AuthError, ``INTERNAL_SERVER_ERROR`` (also
what an unusable cursor gives, the simulator's ``truncated`` fault) -> TransientError, ``RATE_LIMITED`` ->
ThrottledError, anything else -> BadRequestError. Other statuses are mapped by the base client. A 200 with neither
``errors`` nor ``data`` is MalformedResponseError. Whether EQUAL compares case-insensitively is not published
either: the domain check here ignores case. Lansweeper allows 150 requests a minute; nothing here waits: a 429 is
ThrottledError with its Retry-After.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from clients._http import HttpSystemClient
from clients.paging import Page, iter_all, iter_pages
from nexus.errors import AuthError, BadRequestError, MalformedResponseError, ThrottledError, TransientError
from nexus.models import DeviceRecord
from nexus.settings import Settings

MAX_PAGE_SIZE = 500

_ASSETS_QUERY = """\
query NexusAssets{suffix}(
  $siteId: ID!
  $pagination: AssetsPaginationInputValidated!
  $fields: [String!]!
  $filters: AssetsFilterGroupedInput
) {{
  site(id: $siteId) {{
    assetResources(assetPagination: $pagination, fields: $fields, filters: $filters) {{
      {total}pagination {{ limit current next page }}
      items
    }}
  }}
}}
"""
#: The first page (``page: FIRST``): the only one that may ask for ``total``.
ASSETS_FIRST_QUERY = _ASSETS_QUERY.format(suffix="First", total="total\n      ")
#: Every following page (``page: NEXT`` with the previous page's ``pagination.next``): no ``total``.
ASSETS_NEXT_QUERY = _ASSETS_QUERY.format(suffix="Next", total="")
#: What a lookup (a filtered query, almost always one page) sends: the first page's document.
ASSETS_QUERY = ASSETS_FIRST_QUERY

HEALTH_QUERY = """\
query NexusHealth($siteId: ID!) {
  site(id: $siteId) { id name }
}
"""

ASSET_FIELDS = (
    "key",
    "assetBasicInfo.name",
    "assetBasicInfo.userName",
    "assetBasicInfo.userDomain",
    "assetBasicInfo.lastSeen",
    "assetCustom.serialNumber",
    "assetCustom.model",
    "assetCustom.manufacturer",
)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


class LansweeperClient(HttpSystemClient):
    system = "lansweeper"
    auth_scheme = "Token"

    base_url_setting = "lansweeper_graphql_url"

    def _configure(self, settings: Settings) -> None:
        self.endpoint = settings.lansweeper_graphql_url

    def _fetch_token(self) -> tuple[str, float]:
        token = self.settings.lansweeper_token.get_secret_value()
        if not token:
            raise AuthError("LANSWEEPER_TOKEN is not set", system=self.system)
        return token, 365 * 24 * 3600.0  # personal access tokens do not expire

    def _error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return response.text[:200] or response.reason_phrase
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))[:300]
        return str(body)[:300]

    # -- GraphQL --------------------------------------------------------------------------------------------------
    def gql(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """POST one operation; its ``data`` object, or the error its ``errors`` call for."""
        # The endpoint URL itself, not "" against base_url (httpx would add a trailing slash).
        response = self.send("POST", self.endpoint, json_body={"query": query, "variables": dict(variables)})
        body = self.parse_json(response)
        if not isinstance(body, dict):
            raise MalformedResponseError("the GraphQL answer is not a JSON object", system=self.system)
        errors = body.get("errors")
        if errors:
            self._raise_for(errors)
        data = body.get("data")
        if not isinstance(data, dict):
            raise MalformedResponseError("the GraphQL answer has neither 'data' nor 'errors'", system=self.system)
        return data

    def check(self, response: httpx.Response, *, not_found_ok: bool = False) -> httpx.Response:
        """Also a 4xx (other than 401 and 429, which the base client handles) with a GraphQL ``errors`` body is
        classified by its ``extensions.code``: the vendor does not publish which status carries which error."""
        status = response.status_code
        if 400 <= status < 500 and status not in (401, 429):
            try:
                body = response.json()
            except (ValueError, UnicodeDecodeError):
                body = None
            errors = body.get("errors") if isinstance(body, dict) else None
            if isinstance(errors, list) and errors:
                self._raise_for(errors, status=status)
        return super().check(response, not_found_ok=not_found_ok)

    def _raise_for(self, errors: Any, *, status: int | None = None) -> None:
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        extensions = _obj(first.get("extensions"))
        code = str(extensions.get("code", ""))
        where = f"HTTP {status}: " if status else ""
        message = f"{where}GraphQL error {code or '(no code)'}: {str(first.get('message', ''))[:300]}"
        if code in ("UNAUTHENTICATED", "FORBIDDEN"):
            raise AuthError(message, system=self.system, status=status)
        if code == "RATE_LIMITED":
            raise ThrottledError(message, system=self.system, status=status)
        if code == "INTERNAL_SERVER_ERROR":
            raise TransientError(message, system=self.system, status=status)
        raise BadRequestError(message, system=self.system, status=status)

    def _assets(self, pagination: Mapping[str, Any], filters: Mapping[str, Any] | None) -> Page[DeviceRecord]:
        variables = {"siteId": self.settings.lansweeper_site_id, "pagination": dict(pagination),
                     "fields": list(ASSET_FIELDS), "filters": dict(filters) if filters else None}
        query = ASSETS_FIRST_QUERY if pagination.get("page") == "FIRST" else ASSETS_NEXT_QUERY
        data = self.gql(query, variables)
        site = data.get("site")
        resources = site.get("assetResources") if isinstance(site, dict) else None
        if not isinstance(resources, dict):
            raise MalformedResponseError("the answer lacks site.assetResources", system=self.system)
        items = resources.get("items")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise MalformedResponseError("assetResources.items is not a list of objects", system=self.system)
        paging = resources.get("pagination")
        next_cursor = paging.get("next") if isinstance(paging, dict) else None
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise MalformedResponseError("pagination.next is not a string", system=self.system)
        total = resources.get("total")
        return Page([self.to_device(item) for item in items], next_cursor or None,
                    total if isinstance(total, int) else None)

    # -- the client shape -------------------------------------------------------------------------------------------
    def fetch_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[DeviceRecord]:
        """One page of assets; ``cursor`` is the previous page's ``pagination.next``."""
        limit = min(max(page_size or MAX_PAGE_SIZE, 1), MAX_PAGE_SIZE)
        pagination = {"limit": limit, "page": "NEXT" if cursor else "FIRST", "cursor": cursor}
        return self._assets(pagination, None)

    def list_all(self) -> Iterator[DeviceRecord]:
        return iter_all(self.fetch_page)

    def _filtered(self, conditions: list[dict[str, str]]) -> list[DeviceRecord]:
        filters = {"conjunction": "AND", "conditions": conditions}

        def fetch(cursor: str | None) -> Page[DeviceRecord]:
            pagination = {"limit": MAX_PAGE_SIZE, "page": "NEXT" if cursor else "FIRST", "cursor": cursor}
            return self._assets(pagination, filters)

        return [device for page in iter_pages(fetch) for device in page.items]

    def find_device(self, serial: str) -> DeviceRecord | None:
        """The asset with this serial number (the most recently seen one if several), or None."""
        found = self._filtered([{"operator": "EQUAL", "path": "assetCustom.serialNumber", "value": serial}])
        if not found:
            return None
        return max(found, key=lambda d: d.last_seen or "")

    def assets_for_user(self, username: str) -> list[DeviceRecord]:
        """Assets whose user is ``username``: ``DOMAIN\\sam`` matches domain and name, a bare ``sam`` any domain.

        Only the name is a filter (``assetBasicInfo.userDomain`` is not a filterable path); the domain is compared
        here, ignoring case (Windows domain names are case-insensitive)."""
        domain, sep, name = username.partition("\\")
        if not sep:
            domain, name = "", username
        found = self._filtered([{"operator": "EQUAL", "path": "assetBasicInfo.userName", "value": name}])
        if not domain:
            return found
        prefix = f"{domain}\\".casefold()
        return [device for device in found if (device.owner or "").casefold().startswith(prefix)]

    def health(self) -> float:
        """One cheap authenticated query (the site's id and name); elapsed milliseconds."""
        started = time.perf_counter()
        data = self.gql(HEALTH_QUERY, {"siteId": self.settings.lansweeper_site_id})
        if not isinstance(data.get("site"), dict):
            raise MalformedResponseError("the health answer lacks 'site'", system=self.system)
        return (time.perf_counter() - started) * 1000.0

    def to_device(self, item: Mapping[str, Any]) -> DeviceRecord:
        key = _str(item.get("key")) or _str(item.get("_id"))
        if key is None:
            raise MalformedResponseError("an asset lacks 'key'", system=self.system)
        basic, custom = _obj(item.get("assetBasicInfo")), _obj(item.get("assetCustom"))
        user, domain = _str(basic.get("userName")), _str(basic.get("userDomain"))
        owner = f"{domain}\\{user}" if user and domain else user
        return DeviceRecord(
            system=self.system,
            key=key,
            serial=_str(custom.get("serialNumber")) or "",
            name=_str(basic.get("name")),
            owner=owner,
            last_seen=_str(basic.get("lastSeen")),
            model=_str(custom.get("model")),
            manufacturer=_str(custom.get("manufacturer")),
        )
