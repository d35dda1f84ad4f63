"""Entra ID users through Microsoft Graph v1.0.

Every property the audit compares is named in ``$select``: Graph leaves ``department``, ``employeeId``,
``accountEnabled`` and ``otherMails`` out of its default answer. The manager comes with the user through
``$expand=manager($select=id,employeeId,userPrincipalName,mail)``, so no extra request per person is needed; the
price is Graph's page cap for ``$expand`` (:data:`~clients._graph.EXPAND_PAGE_SIZE`, 100 users a page whatever
``$top`` says), so the listing asks for and is planned with :data:`PAGE_SIZE` = 100 (a 100k-user tenant is 1,000
pages, not 101).

What a tenant really holds, and what the client makes of it:

* B2B guests (``userType`` ``Guest``, UPN ``<address with _ for @>#EXT#@<tenant>.onmicrosoft.com``, the invited
  address as ``mail``, usually no ``employeeId``) are other organisations' people: the listing, the lookups and
  ``get_user`` leave them out, so a guest that carries a worker's address never joins that worker in the audit.
  A user without ``userType`` (older accounts may lack it) counts as a member.
* Members without ``mail`` or without ``employeeId``: kept, with the missing value None; the engine then correlates
  them by whatever they still have (employee id, UPN, aliases), and a manager without mail is named by UPN.
* An empty page that still has a nextLink: an empty :class:`~clients.paging.Page` whose cursor goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from clients._graph import EXPAND_PAGE_SIZE, GraphClient, as_str, odata_quote, require_str
from clients.paging import Page, iter_all
from clients.roles import EMAIL, EMPLOYEE_ID, ref_kind, same_person
from nexus.errors import MalformedResponseError
from nexus.models import PersonRecord

USERS_PATH = "/v1.0/users"
USER_SELECT = ("id", "displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department",
               "employeeId", "accountEnabled", "otherMails", "userType")
#: Graph's ``userType`` of B2B guests: accounts of other organisations' people, never this organisation's people.
GUEST = "Guest"
MANAGER_EXPAND = "manager($select=id,employeeId,userPrincipalName,mail)"
#: Users a listing page holds: the ``$expand`` cap (asking for more gets no more).
PAGE_SIZE = EXPAND_PAGE_SIZE


class EntraClient(GraphClient):
    system = "entra"

    def _params(self, page_size: int | None = None) -> dict[str, str]:
        top = min(max(page_size or PAGE_SIZE, 1), PAGE_SIZE)
        return {"$select": ",".join(USER_SELECT), "$expand": MANAGER_EXPAND, "$top": str(top)}

    def fetch_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[PersonRecord]:
        """One page of users; ``cursor`` is the previous page's ``@odata.nextLink`` (its page size is kept)."""
        page = self.get_collection(USERS_PATH, self._params(page_size), cursor)
        return Page([self.to_person(item) for item in page.items if not is_guest(item)], page.next_link, page.count)

    def list_all(self) -> Iterator[PersonRecord]:
        return iter_all(self.fetch_page)

    def find_user(self, *, email: str | None = None, upn: str | None = None,
                  employee_id: str | None = None) -> PersonRecord | None:
        """The user matching any of the given keys (one request with an ``or`` filter), or None.

        ``email`` matches ``mail`` or one of ``otherMails``. When several users match (drift between systems can
        make two people share a key), the best is chosen: employee id, then primary mail, then UPN, then alias.
        """
        clauses = self._clauses(email=email, upn=upn, employee_id=employee_id)
        found = self._find_all(clauses, email=email, upn=upn, employee_id=employee_id)
        return found[0] if found else None

    @staticmethod
    def _clauses(*, email: str | None = None, upn: str | None = None, employee_id: str | None = None) -> list[str]:
        clauses: list[str] = []
        if email:
            clauses += [f"mail eq {odata_quote(email)}", f"otherMails/any(m:m eq {odata_quote(email)})"]
        if upn:
            clauses.append(f"userPrincipalName eq {odata_quote(upn)}")
        if employee_id:
            clauses.append(f"employeeId eq {odata_quote(employee_id)}")
        if not clauses:
            raise ValueError("find_user needs email, upn or employee_id")
        return clauses

    def _find_all(self, clauses: list[str], *, email: str | None, upn: str | None,
                  employee_id: str | None) -> list[PersonRecord]:
        """Every member matching one of the ``or`` clauses, the strongest match first."""
        params = self._params() | {"$filter": " or ".join(clauses)}
        people = [self.to_person(item) for item in self.get_collection(USERS_PATH, params).items
                  if not is_guest(item)]

        def rank(person: PersonRecord) -> int:
            fold = str.casefold
            if employee_id and person.employee_id and fold(person.employee_id) == fold(employee_id):
                return 0
            if email and person.email and fold(person.email) == fold(email):
                return 1
            if upn and person.upn and fold(person.upn) == fold(upn):
                return 2
            return 3

        return same_person(sorted(people, key=rank))

    def find_person(self, ref: str) -> PersonRecord | None:
        """PeopleDirectory: an address (mail, alias or UPN) or an employee id; no Windows user names in Entra."""
        found = self.find_people(ref)
        return found[0] if found else None

    def find_people(self, ref: str) -> list[PersonRecord]:
        """Every member :meth:`find_person` chooses from, strongest match first (two accounts for one person are
        both returned: the engine reports them as ambiguous)."""
        kind = ref_kind(ref)
        if kind == EMAIL:
            return self._find_all(self._clauses(email=ref, upn=ref), email=ref, upn=ref, employee_id=None)
        if kind == EMPLOYEE_ID:
            return self._find_all(self._clauses(employee_id=ref), email=None, upn=None, employee_id=ref)
        return []

    def get_user(self, key: str) -> PersonRecord | None:
        """The user with this object id or userPrincipalName, or None (Graph's 404)."""
        params = {"$select": ",".join(USER_SELECT), "$expand": MANAGER_EXPAND}
        body = self.get_json(f"{USERS_PATH}/{quote(key, safe='@')}", params, not_found_ok=True)
        return None if body is None or is_guest(body) else self.to_person(body)

    def health(self) -> float:
        return self.timed_probe(USERS_PATH)

    def to_person(self, user: Mapping[str, Any]) -> PersonRecord:
        manager = user.get("manager")
        if manager is not None and not isinstance(manager, dict):
            raise MalformedResponseError("a user's 'manager' is not an object", system=self.system)
        manager = manager or {}
        enabled = user.get("accountEnabled")
        aliases = user.get("otherMails") or []
        if not isinstance(aliases, list):
            raise MalformedResponseError("a user's 'otherMails' is not a list", system=self.system)
        return PersonRecord(
            system=self.system,
            key=require_str(user, "id", self.system),
            employee_id=as_str(user.get("employeeId")),
            email=as_str(user.get("mail")),
            upn=as_str(user.get("userPrincipalName")),
            display_name=as_str(user.get("displayName")),
            first_name=as_str(user.get("givenName")),
            last_name=as_str(user.get("surname")),
            title=as_str(user.get("jobTitle")),
            department=as_str(user.get("department")),
            manager_ref=as_str(manager.get("id")),
            manager_employee_id=as_str(manager.get("employeeId")),
            manager_email=as_str(manager.get("mail")) or as_str(manager.get("userPrincipalName")),
            enabled=enabled if isinstance(enabled, bool) else None,
            aliases=tuple(a for a in aliases if isinstance(a, str)),
        )


def is_guest(user: Mapping[str, Any]) -> bool:
    """A B2B guest (``userType`` Guest, any case); a user without ``userType`` is a member."""
    value = user.get("userType")
    return isinstance(value, str) and value.casefold() == GUEST.casefold()
