"""AD's paged person listing: one request per :meth:`LdapListing.fetch_page`, on a connection the listing owns.

RFC 2696: the server keeps a paged search's state per connection (OpenLDAP and AD both do), so the paging cookie
is only valid on the connection that started the search. A listing therefore opens a connection of its own for its
first page and keeps it until the last page (or :meth:`LdapListing.close`). Cursors are
``<listing id>:<base64 cookie>``; a cursor presented to a listing that no longer holds its connection (another
listing, another process, the same listing after a failure or after its last page) raises :class:`ListingLost`,
and whoever follows the chain restarts it from the first page (cheap: AD pages are 1,000 entries on a LAN).

Records are the client's (:func:`clients.ad.records.entry_to_person`) with managers still unresolved: the
whole listing resolves them (:meth:`clients.ad.ADClient.list_users`, the fleet comparison).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from ldap3 import Connection

from clients.ad.connection import quiet_unbind, search
from clients.ad.errors import map_exception
from clients.ad.records import entry_to_person
from clients.ad.schema import ATTRIBUTES, PERSON_FILTER, SYSTEM
from clients.paging import Page
from nexus.errors import ListingLost, MalformedResponseError
from nexus.models import PersonRecord

#: The paged-results control (RFC 2696), as ldap3 keys it in a search result's ``controls``.
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
_ACTION = "list users"


def next_cookie(result: dict[str, Any]) -> bytes | None:
    """The paging cookie of a search result; None (or empty, which RFC 2696 uses) on the last page."""
    control = (result.get("controls") or {}).get(PAGED_RESULTS_OID) or {}
    cookie = (control.get("value") or {}).get("cookie")
    return bytes(cookie) if cookie else None


def _person(entry: dict[str, Any], now: datetime | None = None) -> PersonRecord:
    try:
        return entry_to_person(entry, now)
    except (KeyError, TypeError) as exc:
        raise MalformedResponseError(f"AD {_ACTION}: unexpected entry ({exc})", system=SYSTEM) from exc


class LdapListing:
    """Every person under ``base_dn``, ``page_size`` entries per request (see the module docstring).

    ``open_connection`` returns a new bound connection (errors already mapped); ``pace`` is called before each
    request (the client's rate limiter); ``keep`` drops accounts that are not people
    (:class:`~clients.ad.exclusions.Exclusions`, whose name patterns also go into the filter as ``extra_filter``, so a
    page is short only by the bind account or an excluded OU's entries). Continuation references (``searchResRef``:
    AD returns them for the DNS and configuration partitions under a domain root) are not entries and are skipped
    (:func:`clients.ad.connection.search`), on every page. Not thread-safe: one listing per chain being followed.
    """

    def __init__(
        self,
        open_connection: Callable[[], Connection],
        *,
        base_dn: str,
        page_size: int,
        pace: Callable[[], None] = lambda: None,
        keep: Callable[[PersonRecord], bool] = lambda _record: True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        extra_filter: str = "",
    ) -> None:
        self._filter = f"(&{PERSON_FILTER}{extra_filter})"
        self._open = open_connection
        self._keep = keep
        self._clock = clock
        self._pace = pace
        self.base_dn = base_dn
        self.page_size = page_size
        self._conn: Connection | None = None
        self._id = ""

    def fetch_page(self, cursor: str | None = None) -> Page[PersonRecord]:
        """The page ``cursor`` names (None: the first, on a new connection); :class:`ListingLost` when the
        connection that cursor belongs to is gone. Any failure closes the connection (the cookie dies with it)."""
        if cursor is None:
            self.close()
            self._conn = self._open()
            self._id = uuid.uuid4().hex[:12]
            cookie: bytes | None = None
        else:
            listing, _, encoded = cursor.partition(":")
            if listing != self._id or self._conn is None or self._conn.closed:
                raise ListingLost(f"AD paging state of listing {listing} is gone (new connection)", system=SYSTEM)
            cookie = base64.b64decode(encoded)
        conn = self._conn
        self._pace()
        try:
            try:
                entries, result = search(conn, _ACTION, self.base_dn, self._filter, attributes=ATTRIBUTES,
                                         paged_size=self.page_size, paged_cookie=cookie)
                now = self._clock()
                records = [r for r in (_person(e, now) for e in entries) if self._keep(r)]
            except Exception as exc:  # ldap3's errors and an entry that does not decode: one typed client error
                raise map_exception(exc, _ACTION) from exc
        except BaseException:
            self.close()
            raise
        following = next_cookie(result)
        if following is None:
            self.close()
            return Page(records, None)
        return Page(records, f"{self._id}:{base64.b64encode(following).decode()}")

    def records(self) -> Iterator[PersonRecord]:
        """Every record, from the first page to the last; the connection is closed when the iteration ends."""
        try:
            cursor: str | None = None
            while True:
                page = self.fetch_page(cursor)
                yield from page.items
                if page.next_cursor is None:
                    return
                cursor = page.next_cursor
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection (and with it the paging state); the next cursor raises :class:`ListingLost`."""
        conn, self._conn = self._conn, None
        if conn is not None:
            quiet_unbind(conn)


__all__ = ["PAGED_RESULTS_OID", "LdapListing", "ListingLost", "next_cookie"]
