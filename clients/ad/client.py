"""The AD client: lookups on one shared connection, the person listing, health.

A client holds one bound connection for lookups and reopens it once when it turns out to have been dropped (idle
timeout, server restart); a listing uses a connection of its own (:mod:`clients.ad.listing`), because a
paged-results cookie is only valid on the connection that started it. Not thread-safe: one client per thread
(Celery: per process).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from ldap3 import BASE, SUBTREE, Connection

from clients.ad.connection import ConnectionFactory, default_connection, open_bound, quiet_unbind, search
from clients.ad.dn import dn_key
from clients.ad.errors import LDAP_FAILURES, dropped, map_exception
from clients.ad.exclusions import Exclusions
from clients.ad.listing import LdapListing
from clients.ad.matching import NO_MATCH, clauses, rank
from clients.ad.records import Manager, entry_to_person, first, with_manager
from clients.ad.schema import ATTRIBUTES, PERSON_FILTER, SYSTEM
from clients.paging import Page
from clients.ratelimit import NO_LIMIT, RateLimiter
from clients.resilience import per_request
from clients.roles import EMAIL, EMPLOYEE_ID, USERNAME, ref_kind, same_person
from nexus.errors import NotFoundError
from nexus.models import PersonRecord
from nexus.settings import Settings, get_settings

logger = logging.getLogger("clients.ad")

DEFAULT_PAGE_SIZE = 1000
#: Values per OR filter in :meth:`ADClient.find_users` (each email costs three clauses).
BATCH_SIZE = 50

T = TypeVar("T")


class ADClient:
    """Read-only Active Directory client (see :mod:`clients.ad` for errors, filters and DNs).

    ``connection_factory`` builds the unbound connections (default: TCP to ``AD_LDAP_URL``); the embedded demo
    and the tests pass the in-process directory's (:class:`nexus.sim.ldap_mock.MockDirectory`).
    """

    system = SYSTEM
    #: Request budget (clients.ratelimit), acquired before each search; the worker layer installs the shared one.
    rate_limiter: RateLimiter = NO_LIMIT

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        connection_factory: ConnectionFactory | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not 1 <= page_size <= 1000:  # AD's MaxPageSize is 1000
            raise ValueError("page_size must be 1..1000")
        self.settings = settings or get_settings()
        self._factory = connection_factory or default_connection
        self.exclusions = Exclusions.from_settings(self.settings)
        #: What "now" is for accountExpires (an expired account is not enabled); the tests inject a fixed clock.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.page_size = page_size
        self._conn: Connection | None = None
        self._listing: LdapListing | None = None

    @property
    def base_dn(self) -> str:
        return self.settings.ad_base_dn

    # connections

    def _open(self) -> Connection:
        """A new bound connection; bind refusals are AuthError, never retried here."""
        return open_bound(self._factory, self.settings)

    def _pace(self) -> None:
        self.rate_limiter.acquire()

    def _shared(self) -> tuple[Connection, bool]:
        """The lookup connection and whether it was already open (so a failure may mean it went stale)."""
        if self._conn is not None and not self._conn.closed and self._conn.bound:
            return self._conn, True
        self._discard()
        self._conn = self._open()
        return self._conn, False

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            quiet_unbind(conn)

    def _with_shared(self, action: str, call: Callable[[Connection], T]) -> T:
        """Run ``call`` on the lookup connection, reopening it once if it had been dropped."""
        conn, reused = self._shared()
        try:
            return call(conn)
        except LDAP_FAILURES as exc:
            self._discard()
            if not (reused and dropped(exc)):
                raise map_exception(exc, action) from exc
            logger.info("AD: connection dropped (%s); reopening once", type(exc).__name__)
        conn, _ = self._shared()
        try:
            return call(conn)
        except LDAP_FAILURES as exc:
            self._discard()
            raise map_exception(exc, action) from exc

    def close(self) -> None:
        """Release the lookup connection and the listing :meth:`fetch_page` follows."""
        self._discard()
        self.close_listing()

    def close_listing(self) -> None:
        """Release the listing :meth:`fetch_page` follows (its connection, and with it the paging state); its
        cursors then raise :class:`~clients.ad.listing.ListingLost`. The lookup connection stays open."""
        listing, self._listing = self._listing, None
        if listing is not None:
            listing.close()

    def __enter__(self) -> ADClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the listing

    def listing(self) -> LdapListing:
        """A new paged person listing on a connection of its own (close it when done)."""
        return LdapListing(self._open, base_dn=self.base_dn, page_size=self.page_size, pace=self._pace,
                           keep=self._is_person, clock=self.clock, extra_filter=self.exclusions.ldap_clauses())

    def _is_person(self, record: PersonRecord) -> bool:
        return not self.exclusions.excludes(record)

    def _people(self, entries: Iterable[dict[str, Any]]) -> list[PersonRecord]:
        now = self.clock()
        return [r for r in (entry_to_person(e, now) for e in entries) if self._is_person(r)]

    def fetch_page(self, cursor: str | None = None) -> Page[PersonRecord]:
        """One page of the person listing this client follows (:meth:`LdapListing.fetch_page`): managers are
        unresolved, and a cursor from another listing or process raises :class:`~clients.ad.listing.ListingLost`.
        """
        if self._listing is None:
            self._listing = self.listing()
        return self._listing.fetch_page(cursor)

    def list_users(self) -> Iterator[PersonRecord]:
        """Every person in the base DN, with managers resolved to their employeeID and mail.

        Managers are resolved from the listing itself: a record is yielded as soon as its manager has been seen
        (or it has none); the others wait for the end of the listing. Memory is one small tuple per person plus
        the records still waiting.
        """
        seen: dict[str, Manager] = {}
        waiting: list[PersonRecord] = []
        for record in self.listing().records():
            # key and manager_ref are already in AD spelling (ad_dn): lower() is their dn_key.
            seen[record.key.lower()] = (record.employee_id, record.email)
            if record.manager_ref is None:
                yield record
            elif (manager := seen.get(record.manager_ref.lower())) is not None:
                yield with_manager(record, manager)
            else:
                waiting.append(record)
        for record in waiting:
            assert record.manager_ref is not None
            yield with_manager(record, seen.get(record.manager_ref.lower()))

    # lookups

    def _lookup(
        self,
        action: str,
        base: str,
        search_filter: str,
        *,
        scope: str = SUBTREE,
        attributes: Sequence[str] = ATTRIBUTES,
    ) -> list[dict[str, Any]]:
        """A non-paged search on the lookup connection (reopened once if it had been dropped): one request, retried
        and counted by the breaker as one under the caller's request guard (:func:`clients.resilience.per_request`)."""

        def call(conn: Connection) -> list[dict[str, Any]]:
            self._pace()
            return search(conn, action, base, search_filter, scope=scope, attributes=attributes)[0]

        return per_request(self.system, lambda: self._with_shared(action, call))

    def find_user(
        self,
        *,
        email: str | None = None,
        upn: str | None = None,
        employee_id: str | None = None,
        username: str | None = None,
    ) -> PersonRecord | None:
        """The person matching any of the given identifiers (one search), or None.

        ``email`` matches ``mail``, ``userPrincipalName`` or an ``smtp:`` proxy address. When several entries
        match, the strongest identifier wins (employee id, then mail, UPN, alias, username); :meth:`find_users_all`
        returns them all.
        """
        found = self.find_users_all(email=email, upn=upn, employee_id=employee_id, username=username)
        if len(found) > 1:
            logger.warning("AD: %d entries match one lookup; using %s", len(found), found[0].key)
        return found[0] if found else None

    def find_users_all(
        self,
        *,
        email: str | None = None,
        upn: str | None = None,
        employee_id: str | None = None,
        username: str | None = None,
    ) -> list[PersonRecord]:
        """Every person matching any of the given identifiers (one search), strongest match first, managers
        resolved: two accounts for one person are both returned (the engine reports them as ambiguous)."""
        wanted = clauses(email=email, upn=upn, employee_id=employee_id, username=username)
        if not wanted:
            raise ValueError("find_user needs at least one of email, upn, employee_id, username")
        search_filter = f"(&{PERSON_FILTER}(|{''.join(wanted)}))"
        records = self._people(self._lookup("find user", self.base_dn, search_filter))
        ranked = sorted(records, key=lambda r: rank(r, email=email, upn=upn, employee_id=employee_id,
                                                    username=username))
        managers: dict[str, Manager | None] = {}
        return [self._resolve_manager(r, managers) for r in same_person(ranked)]

    def find_person(self, ref: str) -> PersonRecord | None:
        """PeopleDirectory: an address, ``DOMAIN\\sam`` or an employee id."""
        found = self.find_people(ref)
        return found[0] if found else None

    def find_people(self, ref: str) -> list[PersonRecord]:
        """Every account :meth:`find_person` chooses from, strongest match first."""
        kind = ref_kind(ref)
        if kind == EMAIL:
            return self.find_users_all(email=ref)
        if kind == USERNAME:
            return self.find_users_all(username=ref.split("\\", 1)[1])
        if kind == EMPLOYEE_ID:
            return self.find_by_employee_id(ref)
        return []

    def find_by_employee_id(self, employee_id: str) -> list[PersonRecord]:
        """Every account with this ``employeeID``, whatever its form (escaped into the filter)."""
        return self.find_users_all(employee_id=employee_id)

    def find_users(self, emails: Iterable[str]) -> dict[str, PersonRecord | None]:
        """Batch :meth:`find_user` by email: one search per :data:`BATCH_SIZE` addresses. Keys are the inputs."""
        wanted = list(dict.fromkeys(e for e in emails if e))
        found: dict[str, PersonRecord | None] = dict.fromkeys(wanted)
        managers: dict[str, Manager | None] = {}
        for start in range(0, len(wanted), BATCH_SIZE):
            chunk = wanted[start : start + BATCH_SIZE]
            search_filter = f"(&{PERSON_FILTER}(|{''.join(c for e in chunk for c in clauses(email=e))}))"
            records = self._people(self._lookup("find users", self.base_dn, search_filter))
            for address in chunk:
                matches = [r for r in records if rank(r, email=address) < NO_MATCH]
                if matches:
                    best = min(matches, key=functools.partial(rank, email=address))
                    found[address] = self._resolve_manager(best, managers)
        return found

    def get_user(self, dn: str) -> PersonRecord:
        """The person at ``dn`` (base-scope read, manager resolved); NotFoundError when there is none."""
        records = self._people(self._lookup("read user", dn, f"(&{PERSON_FILTER})", scope=BASE))
        if not records:
            raise NotFoundError(f"AD read user: no person at {dn}", system=SYSTEM)
        return self._resolve_manager(records[0], {})

    def _resolve_manager(self, record: PersonRecord, cache: dict[str, Manager | None]) -> PersonRecord:
        """Fill manager_employee_id/manager_email with a base read of the manager DN (a dangling DN stays raw)."""
        if record.manager_ref is None:
            return record
        key = dn_key(record.manager_ref)
        if key not in cache:
            try:
                entries = self._lookup(
                    "read manager", record.manager_ref, "(objectClass=*)", scope=BASE, attributes=("employeeID", "mail")
                )
            except NotFoundError:
                entries = []
            attrs = entries[0]["raw_attributes"] if entries else None
            cache[key] = (first(attrs, "employeeID"), first(attrs, "mail")) if attrs is not None else None
        return with_manager(record, cache[key])

    def health(self) -> float:
        """Milliseconds for a fresh connection, bind and base-DN read (raises the mapped error on failure)."""
        started = time.perf_counter()
        conn = self._open()
        try:
            search(conn, "health", self.base_dn, "(objectClass=*)", scope=BASE, attributes=("objectClass",))
        except LDAP_FAILURES as exc:
            raise map_exception(exc, "health") from exc
        finally:
            quiet_unbind(conn)
        return (time.perf_counter() - started) * 1000.0


__all__ = ["BATCH_SIZE", "DEFAULT_PAGE_SIZE", "ADClient"]
