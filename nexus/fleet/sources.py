"""What each snapshot stream pages through: the clients' one-request steps, described for the snapshot runner.

Two shapes:

- ``cursor``: a chain, each page naming the next (Graph's ``@odata.nextLink``, Lansweeper's ``pagination.next``,
  the LDAP paging cookie). Followed one page at a time; the checkpoint is the next page's cursor.
- ``offset``: page ``i`` is at offset ``i * page_size`` (Workday REST, Helix AR REST, FedEx tracking chunks), so
  pages are fetched with bounded concurrency once their count is known (Workday's ``total``; FedEx's number list)
  or, when the system gives no count (Helix), with a speculative window that ends at the first page without a
  ``next`` link.

LDAP is the one chain whose cursor does not survive its connection (RFC 2696: the server keeps a paged search's
state per connection; OpenLDAP and AD both do). :class:`LdapListing` owns that connection; a cursor presented to a
listing that no longer holds it raises :class:`ListingLost`, and the runner restarts that stream (cheap: AD pages
are 1,000 entries on a LAN).
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clients.paging import Page
from nexus.fleet import codec
from nexus.registry import CURSOR, DERIVED, OFFSET, SPECS, StreamSpec
from nexus.systems import System


class ListingLost(Exception):
    """The chain's server-side paging state is gone (a new connection): restart the stream from its first page."""


@dataclass(slots=True)
class Source:
    """One stream of one system."""

    stream: str
    system: System
    kind: str  # codec kind: person | device | ticket | shipment
    mode: str  # "cursor" | "offset"
    page_size: int
    fetch: Callable[[str | None], Page[Any]]  # cursor mode: the page the cursor names (None: the first)
    fetch_index: Callable[[int], Page[Any]] | None = None  # offset mode: page i
    total_pages: int | None = None  # offset mode, when known before the first page (FedEx)
    close: Callable[[], None] | None = None


def _offset_fetch(fetch_page: Callable[..., Page[Any]], page_size: int) -> Callable[[int], Page[Any]]:
    def fetch(index: int) -> Page[Any]:
        return fetch_page(str(index * page_size), page_size)

    return fetch


def derived_source(system: System, client: Any, numbers: Sequence[str]) -> Source:
    """A derived stream as pages: chunk ``i`` is numbers ``[i*n, (i+1)*n)``, ``n`` the system's per-request
    maximum (FedEx tracks at most 30 numbers a request)."""
    stream = SPECS[system].streams[0]
    size = stream.page_size or 1

    def fetch_index(index: int) -> Page[Any]:
        chunk = list(numbers[index * size:(index + 1) * size])
        found = client.track(chunk) if chunk else {}
        return Page(list(found.values()), None, len(numbers))

    def fetch(cursor: str | None) -> Page[Any]:
        return fetch_index(int(cursor or 0) // size)

    pages = math.ceil(len(numbers) / size)
    return Source(stream.name, system, stream.kind, "offset", size, fetch, fetch_index, total_pages=pages)


def fedex_source(client: Any, numbers: Sequence[str]) -> Source:
    """FedEx's tracking of ``numbers`` (chunks of 30, FedEx's per-request maximum)."""
    return derived_source(System.FEDEX, client, numbers)


class LdapListing:
    """AD's paged person search, one page per :meth:`fetch`, on a connection this listing owns.

    Cursors are ``<listing id>:<base64 cookie>``; the records are the client's (``entry_to_person``), managers
    still unresolved (the comparison resolves them from the whole listing, as ``ADClient.list_users`` does).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._conn: Any = None
        self._id = ""

    def fetch(self, cursor: str | None) -> Page[Any]:
        from clients.ad import ATTRIBUTES, PAGED_RESULTS_OID, PERSON_FILTER, entry_to_person, map_exception

        if cursor is None:
            self.close()
            self._conn = self.client._open()  # the client's bind (errors already mapped)
            self._id = uuid.uuid4().hex[:12]
            cookie: bytes | None = None
        else:
            listing, _, encoded = cursor.partition(":")
            if listing != self._id or self._conn is None or self._conn.closed:
                raise ListingLost(f"AD paging state of listing {listing} is gone (new connection)")
            cookie = base64.b64decode(encoded)
        self.client.rate_limiter.acquire()
        try:
            entries, result = self.client._search(
                self._conn, "list users", self.client.base_dn, f"(&{PERSON_FILTER})",
                attributes=ATTRIBUTES, paged_size=self.client.page_size, paged_cookie=cookie,
            )
            records = [entry_to_person(e) for e in entries]
        except Exception as exc:
            self.close()  # the cookie died with this connection
            raise map_exception(exc, "list users") from exc
        control = (result.get("controls") or {}).get(PAGED_RESULTS_OID) or {}
        next_cookie = (control.get("value") or {}).get("cookie") or None
        if not next_cookie:
            self.close()
            return Page(records, None)
        return Page(records, f"{self._id}:{base64.b64encode(next_cookie).decode()}")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.unbind()
            except Exception:  # closing a dead connection
                pass


def ad_source(client: Any) -> Source:
    listing = LdapListing(client)
    return Source("ad", System.AD, codec.PERSON, "cursor", client.page_size, listing.fetch, close=listing.close)


def _source(system: System, stream: StreamSpec, client: Any) -> Source:
    if stream.mode == DERIVED:
        raise ValueError(f"{stream.name} is derived from another system's snapshot: see derived_source")
    if system is System.AD and not hasattr(client, "fetch_page"):
        return ad_source(client)
    fetch_page = getattr(client, stream.fetch)
    page_size = stream.page_size or int(client.page_size)
    close = getattr(client, stream.close) if stream.close else None
    if stream.mode == OFFSET:
        return Source(stream.name, system, stream.kind, OFFSET, page_size, fetch_page,
                      _offset_fetch(fetch_page, page_size), close=close)
    return Source(stream.name, system, stream.kind, CURSOR, page_size, fetch_page, close=close)


def sources_for(system: System, client: Any) -> list[Source]:
    """The listing streams of ``system``, as its registry entry describes them (not derived ones: FedEx)."""
    streams = [s for s in SPECS[system].streams if s.mode != DERIVED]
    if not streams:
        raise ValueError(f"{system.display} has no listing")
    return [_source(system, stream, client) for stream in streams]


__all__ = ["LdapListing", "ListingLost", "Source", "derived_source", "fedex_source", "sources_for"]
