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

Sign-ins (dormancy, CIS 5.3): ``signInActivity`` is selected unless ``ENTRA_SIGN_IN_ACTIVITY=false``. Graph returns it
only when selected, caps such pages at 120 users (below the ``$expand`` cap of 100, so the plan is unchanged), and
needs an Entra ID P1/P2 tenant and ``AuditLog.Read.All``; without the licence Graph answers 403
``Authentication_RequestFromNonPremiumTenantOrB2CTenant``, which the client turns into an error naming the setting
(sources: nexus.sim.graph). A user's last sign-in is the latest of its interactive, non-interactive and successful
sign-in times (a token refreshed by a desktop client is use of the account too); Graph's ``0001-01-01T00:00:00Z``
means "none". ``get_user`` selects it only by object id: Graph refuses ``$select=signInActivity`` on a user addressed by
userPrincipalName.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from clients._graph import EXPAND_PAGE_SIZE, GraphClient, as_str, odata_quote, require_str
from clients.paging import Page, iter_all
from clients.roles import EMAIL, EMPLOYEE_ID, ref_kind, same_person
from nexus.errors import AuthError, MalformedResponseError
from nexus.models import PersonRecord

USERS_PATH = "/v1.0/users"
USER_SELECT = ("id", "displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department",
               "employeeId", "accountEnabled", "otherMails", "userType")
SIGN_IN_ACTIVITY = "signInActivity"
#: The properties of ``signInActivity`` that say when the account was last used.
SIGN_IN_TIMES = ("lastSignInDateTime", "lastNonInteractiveSignInDateTime", "lastSuccessfulSignInDateTime")
#: What Graph answers for signInActivity in a tenant without Entra ID P1/P2.
NOT_PREMIUM = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
#: Graph's ``userType`` of B2B guests: accounts of other organisations' people, never this organisation's people.
GUEST = "Guest"
MANAGER_EXPAND = "manager($select=id,employeeId,userPrincipalName,mail)"
#: Users a listing page holds: the ``$expand`` cap (asking for more gets no more).
PAGE_SIZE = EXPAND_PAGE_SIZE


class EntraClient(GraphClient):
    system = "entra"

    @property
    def reads_sign_ins(self) -> bool:
        """Whether ``signInActivity`` is read (``ENTRA_SIGN_IN_ACTIVITY``): without it there is no Entra dormancy."""
        return bool(self.settings.entra_sign_in_activity)

    def _select(self, *, sign_ins: bool = True) -> str:
        return ",".join((*USER_SELECT, SIGN_IN_ACTIVITY) if sign_ins and self.reads_sign_ins else USER_SELECT)

    def _params(self, page_size: int | None = None) -> dict[str, str]:
        top = min(max(page_size or PAGE_SIZE, 1), PAGE_SIZE)
        return {"$select": self._select(), "$expand": MANAGER_EXPAND, "$top": str(top)}

    def check(self, response: httpx.Response, *, not_found_ok: bool = False) -> httpx.Response:
        if response.status_code == 403 and self._error_body(response)[0] == NOT_PREMIUM:
            raise AuthError(f"HTTP 403: {self._error_message(response)}: reading signInActivity (for dormant "
                            "accounts) needs an Entra ID P1/P2 tenant and AuditLog.Read.All; without them set "
                            "ENTRA_SIGN_IN_ACTIVITY=false (Entra dormancy is then not looked for)",
                            system=self.system, status=403)
        return super().check(response, not_found_ok=not_found_ok)

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
            return self.find_by_employee_id(ref)
        return []

    def find_by_employee_id(self, employee_id: str) -> list[PersonRecord]:
        """Every member with this ``employeeId``, whatever its form (quoted into ``$filter``)."""
        return self._find_all(self._clauses(employee_id=employee_id), email=None, upn=None, employee_id=employee_id)

    def get_user(self, key: str) -> PersonRecord | None:
        """The user with this object id or userPrincipalName, or None (Graph's 404)."""
        params = {"$select": self._select(sign_ins=_is_object_id(key)), "$expand": MANAGER_EXPAND}
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
            last_logon=self._last_sign_in(user.get(SIGN_IN_ACTIVITY)),
        )

    def _last_sign_in(self, activity: Any) -> str | None:
        """The latest sign-in time in ``signInActivity`` as ISO 8601 UTC (``...Z``); None when there is none."""
        if activity is None:
            return None
        if not isinstance(activity, dict):
            raise MalformedResponseError("a user's 'signInActivity' is not an object", system=self.system)
        latest: datetime | None = None
        for name in SIGN_IN_TIMES:
            text = activity.get(name)
            if text is None or text == "":
                continue
            try:
                moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
            except ValueError:
                raise MalformedResponseError(f"signInActivity.{name} {str(text)[:40]!r} is not a date-time",
                                             system=self.system) from None
            if moment.year <= 1:  # Graph's 0001-01-01T00:00:00Z: no such sign-in
                continue
            moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
            latest = moment if latest is None or moment > latest else latest
        return latest.strftime("%Y-%m-%dT%H:%M:%SZ") if latest is not None else None


def _is_object_id(key: str) -> bool:
    try:
        uuid.UUID(key)
    except ValueError:
        return False
    return True


def is_guest(user: Mapping[str, Any]) -> bool:
    """A B2B guest (``userType`` Guest, any case); a user without ``userType`` is a member."""
    value = user.get("userType")
    return isinstance(value, str) and value.casefold() == GUEST.casefold()
