"""Active Directory over LDAP (ldap3): list every person, find one, check health.

Same shape as the other clients: ``list_users()`` pages through everything, ``find_user()`` looks one person up,
``health()`` measures a round trip, ``close()`` releases the connection. Retries and the circuit breaker are NOT
here (the resilience layer and the Celery tasks own them); this module only talks LDAP and maps every failure into
:mod:`nexus.errors` in one place (:func:`map_exception`, :func:`map_result`):

================================================  =================================
connection refused / reset / closed / timeout     TransientError
``busy`` (51)                                     ThrottledError (retry_after None)
``unavailable`` (52), ``timeLimitExceeded`` (3)   TransientError
``invalidCredentials`` (49) and other auth codes  AuthError
``noSuchObject`` (32) on a base-scope read        NotFoundError
any other result code                             BadRequestError
an answer ldap3 cannot decode                     MalformedResponseError
================================================  =================================

Filters: every value is escaped with :func:`ldap3.utils.conv.escape_filter_chars` (never the whole filter), so
``*)(mail=*`` is a literal that matches nothing. People are ``(&(objectCategory=person)(objectClass=user))``,
which skips computer accounts on a real domain. Whether an account is disabled is read from bit 0x2 of
``userAccountControl`` here, not with AD's bitwise matching rule, so the same filters work on ldap3's MOCK_SYNC
(the embedded demo's directory, :mod:`nexus.sim.ldap_mock`), which rejects that rule.

DNs: AD spells attribute types upper case (``CN=...,OU=...,DC=...``) and escapes with a backslash (``\\,``);
OpenLDAP (the simulator) answers ``cn=...,ou=legal\\2C risk...``. Both name the same entry, so the client spells
every DN the AD way (:func:`ad_dn`): a record's ``key`` is then the DN exactly as AD (and the simulator's org) writes
it, and equals other records' ``manager_ref``.

A client holds one bound connection for lookups and reopens it once when it turns out to have been dropped (idle
timeout, server restart); a listing uses a connection of its own, because a paged-results cookie is only valid on
the connection that started it. Not thread-safe: one client per thread (Celery: per process).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ldap3 import BASE, NONE, SIMPLE, SUBTREE, SYNC, Connection, Server
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPResponseTimeoutError
from ldap3.utils.conv import escape_filter_chars
from pyasn1.error import PyAsn1Error

from clients.ratelimit import NO_LIMIT, RateLimiter
from clients.roles import EMAIL, EMPLOYEE_ID, USERNAME, ref_kind
from nexus.errors import (
    AuthError,
    BadRequestError,
    MalformedResponseError,
    NexusClientError,
    NotFoundError,
    ThrottledError,
    TransientError,
)
from nexus.models import PersonRecord
from nexus.settings import Settings, get_settings
from nexus.systems import System

logger = logging.getLogger(__name__)

SYSTEM = System.AD.value
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
ACCOUNTDISABLE = 0x2
PERSON_FILTER = "(objectCategory=person)(objectClass=user)"
ATTRIBUTES = (
    "sAMAccountName",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "sn",
    "title",
    "department",
    "manager",
    "employeeID",
    "userAccountControl",
    "proxyAddresses",
)
DEFAULT_PAGE_SIZE = 1000
#: Values per OR filter in :meth:`ADClient.find_users` (each email costs three clauses).
BATCH_SIZE = 50

# LDAP result codes (RFC 4511) that are not "our request is wrong".
_AUTH_CODES = {7, 8, 13, 48, 49, 50}  # authMethodNotSupported .. insufficientAccessRights
_BUSY = 51
_TRANSIENT_CODES = {3, 52}  # timeLimitExceeded, unavailable
_NO_SUCH_OBJECT = 32

#: Builds an unbound ldap3 Connection from settings; the test and embedded-demo seam (see ldap_mock).
ConnectionFactory = Callable[[Settings], Connection]

#: What ldap3 raises (besides LDAPException) when an answer cannot be decoded: it has no error of its own for it.
_DECODE_ERRORS = (PyAsn1Error, TypeError, ValueError, KeyError, IndexError, AttributeError, UnicodeDecodeError)

T = TypeVar("T")


#: In-process directories by ``AD_LDAP_URL`` (the embedded demo's ``mock://`` URLs): see register_connection_factory.
_FACTORIES: dict[str, ConnectionFactory] = {}


def register_connection_factory(url: str, factory: ConnectionFactory) -> None:
    """Serve ``AD_LDAP_URL == url`` with ``factory`` in this process (how the embedded demo's mock is reached
    by clients built from settings alone). Real ``ldap://`` URLs need no registration."""
    _FACTORIES[url] = factory


def unregister_connection_factory(url: str) -> None:
    _FACTORIES.pop(url, None)


def default_connection(settings: Settings) -> Connection:
    """The registered in-process factory for ``AD_LDAP_URL`` if there is one, else :func:`tcp_connection`."""
    factory = _FACTORIES.get(settings.ad_ldap_url)
    if factory is not None:
        return factory(settings)
    if settings.ad_ldap_url.startswith("mock://"):
        raise BadRequestError(
            f"AD: {settings.ad_ldap_url} is an in-process directory that this process does not hold",
            system=SYSTEM,
        )
    return tcp_connection(settings)


def tcp_connection(settings: Settings) -> Connection:
    """The production connection: simple bind over TCP to ``AD_LDAP_URL`` (``ldaps://`` for TLS)."""
    server = Server(settings.ad_ldap_url, connect_timeout=settings.http_connect_timeout_s, get_info=NONE)
    conn = Connection(
        server,
        user=settings.ad_bind_dn,
        password=settings.ad_bind_password.get_secret_value(),
        authentication=SIMPLE,
        client_strategy=SYNC,
        # ldap3 packs this into SO_RCVTIMEO as whole seconds: a float would fail at connect time.
        receive_timeout=max(1, math.ceil(settings.http_timeout_s)),
        read_only=True,
        auto_referrals=False,
        raise_exceptions=False,
        check_names=False,  # no schema is read (get_info=NONE)
        return_empty_attributes=False,
        auto_range=False,  # no attribute Nexus reads comes near AD's 1500-value range limit
    )
    lean_entries(conn)
    return conn


def lean_entries(conn: Connection) -> None:
    """Decode search entries to ``{"dn", "raw_attributes"}`` only (keys lower-cased), skipping ldap3's second,
    str-typed copy of every value.

    ldap3 turns each value into str through several per-value configuration lookups and builds two
    case-insensitive dicts per entry; for a 100k-person listing that is half the client's CPU time. Only
    ``searchResEntry`` messages take this path, on SYNC connections; anything unexpected falls back to ldap3.
    """
    strategy = conn.strategy
    original = getattr(strategy, "decode_response_fast", None)
    if original is None or not conn.fast_decoder:
        return

    def decode(message: dict[str, Any]) -> dict[str, Any]:
        if message.get("protocolOp") == 4:  # searchResEntry: payload = (dn, attributes)
            try:
                dn, attributes = message["payload"][0][3], message["payload"][1][3]
                raw = {a[3][0][3].decode("ascii").lower(): [v[3] for v in a[3][1][3]] for a in attributes}
                return {
                    "type": "searchResEntry",
                    "raw_dn": dn,
                    "dn": dn.decode("utf-8"),
                    "raw_attributes": raw,
                    "attributes": {},  # never read by the client
                }
            except (IndexError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                pass  # not the shape we expect: let ldap3 decode (or reject) it
        return dict(original(message))

    strategy.decode_response_fast = decode


# --- error mapping -----------------------------------------------------------------------------------------------


def map_result(result: Mapping[str, Any], action: str, *, base_read: bool = False) -> NexusClientError:
    """The error for a non-success LDAP result (``conn.result``)."""
    code = int(result.get("result", -1))
    name = result.get("description") or "error"
    detail = str(result.get("message") or "").strip()
    message = f"AD {action}: LDAP {name} ({code})" + (f": {detail}" if detail else "")
    if code in _AUTH_CODES:
        return AuthError(message, system=SYSTEM)
    if code == _BUSY:
        return ThrottledError(message, system=SYSTEM, status=None, retry_after=None)
    if code in _TRANSIENT_CODES:
        return TransientError(message, system=SYSTEM)
    if code == _NO_SUCH_OBJECT and base_read:
        return NotFoundError(message, system=SYSTEM)
    return BadRequestError(message, system=SYSTEM)


def map_exception(exc: BaseException, action: str) -> NexusClientError:
    """The error for an exception ldap3 raised (never carries the bind password: ldap3 messages do not)."""
    if isinstance(exc, NexusClientError):
        return exc
    if isinstance(exc, LDAPCommunicationError | LDAPResponseTimeoutError | OSError):
        return TransientError(f"AD {action}: {type(exc).__name__}: {exc}", system=SYSTEM)
    if isinstance(exc, LDAPException):
        return BadRequestError(f"AD {action}: {type(exc).__name__}: {exc}", system=SYSTEM)
    return MalformedResponseError(f"AD {action}: undecodable LDAP answer ({type(exc).__name__})", system=SYSTEM)


def _dropped(exc: BaseException) -> bool:
    """The connection was closed under us (reset, EOF): reopening may help. A timeout is not a dropped line."""
    return isinstance(exc, LDAPCommunicationError) and not isinstance(exc, TimeoutError)


# --- entries -> records -----------------------------------------------------------------------------------------


def _split_unescaped(text: str, sep: str) -> list[str]:
    if "\\" not in text:
        return text.split(sep)
    parts: list[str] = []
    start, escaped = 0, False
    for index, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def unescape_dn_value(value: str) -> str:
    """RFC 4514 unescaping of one RDN value: ``Legal\\, Risk`` and ``Legal\\2C Risk`` -> ``Legal, Risk``."""
    if "\\" not in value:
        return value
    out = bytearray()
    index = 0
    while index < len(value):
        ch = value[index]
        if ch == "\\" and index + 1 < len(value):
            pair = value[index + 1 : index + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                index += 3
                continue
            out += value[index + 1].encode()
            index += 2
            continue
        out += ch.encode()
        index += 1
    return out.decode("utf-8", errors="replace")


def escape_dn_value(value: str) -> str:
    """RFC 4514 escaping the way AD writes it: a backslash before ``\\ , + " < > ; =``, ``\\00`` for NUL,
    leading ``#``/space and a trailing space escaped; everything else (UTF-8 included) as is."""
    out = "".join(f"\\{ch}" if ch in '\\,+"<>;=' else "\\00" if ch == "\0" else ch for ch in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def _ad_rdn(rdn: str) -> str:
    parts = []
    for ava in _split_unescaped(rdn, "+"):
        attr, eq, value = ava.partition("=")
        if not eq:
            return rdn
        value = value.lstrip()
        while value.endswith(" ") and not value.endswith("\\ "):  # keep an escaped trailing space
            value = value[:-1]
        parts.append(f"{attr.strip().upper()}={escape_dn_value(unescape_dn_value(value))}")
    return "+".join(parts)


def ad_dn(dn: str) -> str:
    """``dn`` spelled the way AD writes DNs: upper-case attribute types, ``\\,``-style escapes.

    ``cn=a\\2C b,ou=x`` -> ``CN=a\\, b,OU=x``. DN comparison is case- and escape-form-insensitive, so this only
    makes equal DNs look equal; on a real AD it changes nothing.
    """
    if "\\" not in dn and "+" not in dn:  # fast path: no escapes, no multi-valued RDNs
        out = []
        for rdn in dn.split(","):
            attr, eq, value = rdn.partition("=")
            out.append(f"{attr.strip().upper()}={value}" if eq else rdn)
        return ",".join(out)
    return ",".join(_ad_rdn(rdn) for rdn in _split_unescaped(dn, ","))


def dn_key(dn: str) -> str:
    """A DN comparable with another spelling of it (case-insensitive, as AD compares DNs)."""
    return ad_dn(dn).lower()


def _values(attrs: Mapping[str, Any], name: str) -> list[str]:
    """Values of ``name`` from an entry's ``raw_attributes`` (bytes, decoded here: identical for TCP and mock).

    Looked up lower-cased: :func:`lean_entries` keys are lower case, ldap3's own dicts are case-insensitive.
    """
    values = attrs.get(name.lower())
    if not values:
        return []
    if not isinstance(values, list | tuple):
        values = [values]
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    except UnicodeDecodeError as exc:
        raise MalformedResponseError(f"AD: {name} is not UTF-8", system=SYSTEM) from exc


def _first(attrs: Mapping[str, Any], name: str) -> str | None:
    values = _values(attrs, name)
    return values[0] if values and values[0] != "" else None


def entry_to_person(entry: Mapping[str, Any]) -> PersonRecord:
    """One ldap3 search entry as a :class:`PersonRecord` (manager not yet resolved)."""
    attrs = entry["raw_attributes"]
    uac_text = _first(attrs, "userAccountControl")
    try:
        enabled = None if uac_text is None else not (int(uac_text) & ACCOUNTDISABLE)
    except ValueError as exc:
        raise MalformedResponseError(f"AD: userAccountControl {uac_text!r} is not an integer", system=SYSTEM) from exc
    mail = _first(attrs, "mail")
    aliases: list[str] = []
    seen = {mail.lower()} if mail else set()
    for address in _values(attrs, "proxyAddresses"):
        if address[:5].lower() == "smtp:" and address[5:].lower() not in seen:
            seen.add(address[5:].lower())
            aliases.append(address[5:])
    manager = _first(attrs, "manager")
    return PersonRecord(
        system=SYSTEM,
        key=ad_dn(str(entry["dn"])),
        employee_id=_first(attrs, "employeeID"),
        email=mail,
        upn=_first(attrs, "userPrincipalName"),
        username=_first(attrs, "sAMAccountName"),
        display_name=_first(attrs, "displayName"),
        first_name=_first(attrs, "givenName"),
        last_name=_first(attrs, "sn"),
        title=_first(attrs, "title"),
        department=_first(attrs, "department"),
        manager_ref=ad_dn(manager) if manager else None,
        enabled=enabled,
        aliases=tuple(aliases),
    )


def _with_manager(record: PersonRecord, manager: tuple[str | None, str | None] | None) -> PersonRecord:
    if manager is None:
        return record
    return dataclasses.replace(record, manager_employee_id=manager[0], manager_email=manager[1])


def _escape(value: str) -> str:
    return str(escape_filter_chars(value))


# --- the client --------------------------------------------------------------------------------------------------


class ADClient:
    """Read-only Active Directory client (see the module docstring for errors, filters and DNs)."""

    system = SYSTEM
    #: Request budget (clients.ratelimit), acquired before each search; the worker layer installs the shared one.
    rate_limiter: RateLimiter = NO_LIMIT

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        connection_factory: ConnectionFactory | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if not 1 <= page_size <= 1000:  # AD's MaxPageSize is 1000
            raise ValueError("page_size must be 1..1000")
        self.settings = settings or get_settings()
        self._factory = connection_factory or default_connection
        self.page_size = page_size
        self._conn: Connection | None = None

    @property
    def base_dn(self) -> str:
        return self.settings.ad_base_dn

    # connections

    def _open(self) -> Connection:
        """A new bound connection; bind refusals are AuthError, never retried here."""
        try:
            conn = self._factory(self.settings)
            ok = conn.bind()
        except (LDAPException, *_DECODE_ERRORS, OSError) as exc:
            raise map_exception(exc, "bind") from exc
        if not ok:
            result = dict(conn.result or {})
            _quiet_unbind(conn)
            raise map_result(result, "bind")
        return conn

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
            _quiet_unbind(conn)

    def _with_shared(self, action: str, call: Callable[[Connection], T]) -> T:
        """Run ``call`` on the lookup connection, reopening it once if it had been dropped."""
        conn, reused = self._shared()
        try:
            return call(conn)
        except (LDAPException, *_DECODE_ERRORS, OSError) as exc:
            self._discard()
            if not (reused and _dropped(exc)):
                raise map_exception(exc, action) from exc
            logger.info("AD: connection dropped (%s); reopening once", type(exc).__name__)
        conn, _ = self._shared()
        try:
            return call(conn)
        except (LDAPException, *_DECODE_ERRORS, OSError) as exc:
            self._discard()
            raise map_exception(exc, action) from exc

    def close(self) -> None:
        self._discard()

    def __enter__(self) -> ADClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # searches

    @staticmethod
    def _search(
        conn: Connection,
        action: str,
        base: str,
        search_filter: str,
        *,
        scope: str = SUBTREE,
        attributes: Sequence[str] = ATTRIBUTES,
        paged_cookie: bytes | None = None,
        paged_size: int | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One search request: (entries, result). Raises the mapped error for a non-success result."""
        conn.search(
            base,
            search_filter,
            search_scope=scope,
            attributes=list(attributes),
            paged_size=paged_size,
            paged_cookie=paged_cookie,
        )
        result = dict(conn.result or {})
        if result.get("result") != 0:
            raise map_result(result, action, base_read=scope == BASE)
        entries = [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
        return entries, result

    def _lookup(
        self,
        action: str,
        base: str,
        search_filter: str,
        *,
        scope: str = SUBTREE,
        attributes: Sequence[str] = ATTRIBUTES,
    ) -> list[dict[str, Any]]:
        """A non-paged search on the lookup connection (reopened once if it had been dropped)."""

        def call(conn: Connection) -> list[dict[str, Any]]:
            self.rate_limiter.acquire()
            return self._search(conn, action, base, search_filter, scope=scope, attributes=attributes)[0]

        return self._with_shared(action, call)

    def _paged_entries(self, search_filter: str, attributes: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every entry, page by page, on a connection of its own (closed when the iteration ends)."""
        conn = self._open()
        try:
            cookie: bytes | None = None
            while True:
                self.rate_limiter.acquire()
                try:
                    entries, result = self._search(
                        conn,
                        "list users",
                        self.base_dn,
                        search_filter,
                        attributes=attributes,
                        paged_size=self.page_size,
                        paged_cookie=cookie,
                    )
                except (LDAPException, *_DECODE_ERRORS, OSError) as exc:
                    raise map_exception(exc, "list users") from exc
                yield from entries
                control = (result.get("controls") or {}).get(PAGED_RESULTS_OID) or {}
                cookie = (control.get("value") or {}).get("cookie") or None
                if not cookie:
                    return
        finally:
            _quiet_unbind(conn)

    def list_users(self) -> Iterator[PersonRecord]:
        """Every person in the base DN, with managers resolved to their employeeID and mail.

        Managers are resolved from the listing itself: a record is yielded as soon as its manager has been seen
        (or it has none); the others wait for the end of the listing. Memory is one small tuple per person plus
        the records still waiting.
        """
        seen: dict[str, tuple[str | None, str | None]] = {}
        waiting: list[PersonRecord] = []
        for entry in self._paged_entries(f"(&{PERSON_FILTER})", ATTRIBUTES):
            try:
                record = entry_to_person(entry)
            except (KeyError, TypeError) as exc:
                raise MalformedResponseError(f"AD list users: unexpected entry ({exc})", system=SYSTEM) from exc
            # key and manager_ref are already in AD spelling (ad_dn): lower() is their dn_key.
            seen[record.key.lower()] = (record.employee_id, record.email)
            if record.manager_ref is None:
                yield record
            elif (manager := seen.get(record.manager_ref.lower())) is not None:
                yield _with_manager(record, manager)
            else:
                waiting.append(record)
        for record in waiting:
            assert record.manager_ref is not None
            yield _with_manager(record, seen.get(record.manager_ref.lower()))

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
        match, the strongest identifier wins (employee id, then mail, UPN, alias, username).
        """
        clauses = _clauses(email=email, upn=upn, employee_id=employee_id, username=username)
        if not clauses:
            raise ValueError("find_user needs at least one of email, upn, employee_id, username")
        search_filter = f"(&{PERSON_FILTER}(|{''.join(clauses)}))"
        entries = self._lookup("find user", self.base_dn, search_filter)
        if not entries:
            return None
        records = [entry_to_person(e) for e in entries]
        best = min(records, key=lambda r: _rank(r, email=email, upn=upn, employee_id=employee_id, username=username))
        if len(records) > 1:
            logger.warning("AD: %d entries match one lookup; using %s", len(records), best.key)
        return self._resolve_manager(best, {})

    def find_person(self, ref: str) -> PersonRecord | None:
        """PeopleDirectory: an address, ``DOMAIN\\sam`` or an employee id."""
        kind = ref_kind(ref)
        if kind == EMAIL:
            return self.find_user(email=ref)
        if kind == USERNAME:
            return self.find_user(username=ref.split("\\", 1)[1])
        if kind == EMPLOYEE_ID:
            return self.find_user(employee_id=ref)
        return None

    def find_users(self, emails: Iterable[str]) -> dict[str, PersonRecord | None]:
        """Batch :meth:`find_user` by email: one search per :data:`BATCH_SIZE` addresses. Keys are the inputs."""
        wanted = list(dict.fromkeys(e for e in emails if e))
        found: dict[str, PersonRecord | None] = dict.fromkeys(wanted)
        managers: dict[str, tuple[str | None, str | None] | None] = {}
        for start in range(0, len(wanted), BATCH_SIZE):
            chunk = wanted[start : start + BATCH_SIZE]
            clauses = [c for e in chunk for c in _clauses(email=e)]
            search_filter = f"(&{PERSON_FILTER}(|{''.join(clauses)}))"
            entries = self._lookup("find users", self.base_dn, search_filter)
            records = [entry_to_person(e) for e in entries]
            for address in chunk:
                matches = [r for r in records if _rank(r, email=address) < len(_RANKS)]
                if matches:
                    best = min(matches, key=functools.partial(_rank, email=address))
                    found[address] = self._resolve_manager(best, managers)
        return found

    def get_user(self, dn: str) -> PersonRecord:
        """The person at ``dn`` (base-scope read, manager resolved); NotFoundError when there is none."""
        entries = self._lookup("read user", dn, "(objectClass=*)", scope=BASE)
        if not entries:
            raise NotFoundError(f"AD read user: no entry at {dn}", system=SYSTEM)
        return self._resolve_manager(entry_to_person(entries[0]), {})

    def _resolve_manager(
        self, record: PersonRecord, cache: dict[str, tuple[str | None, str | None] | None]
    ) -> PersonRecord:
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
            cache[key] = (_first(attrs, "employeeID"), _first(attrs, "mail")) if attrs is not None else None
        return _with_manager(record, cache[key])

    def health(self) -> float:
        """Milliseconds for a fresh connection, bind and base-DN read (raises the mapped error on failure)."""
        started = time.perf_counter()
        conn = self._open()
        try:
            self._search(conn, "health", self.base_dn, "(objectClass=*)", scope=BASE, attributes=("objectClass",))
        except (LDAPException, *_DECODE_ERRORS, OSError) as exc:
            raise map_exception(exc, "health") from exc
        finally:
            _quiet_unbind(conn)
        return (time.perf_counter() - started) * 1000.0


# --- lookups -----------------------------------------------------------------------------------------------------

_RANKS = ("employee_id", "mail", "upn", "alias", "username")


def _clauses(
    *, email: str | None = None, upn: str | None = None, employee_id: str | None = None, username: str | None = None
) -> list[str]:
    clauses: list[str] = []
    if employee_id:
        clauses.append(f"(employeeID={_escape(employee_id)})")
    if email:
        value = _escape(email)
        clauses += [f"(mail={value})", f"(userPrincipalName={value})", f"(proxyAddresses=smtp:{value})"]
    if upn:
        clauses.append(f"(userPrincipalName={_escape(upn)})")
    if username:
        clauses.append(f"(sAMAccountName={_escape(username)})")
    return clauses


def _rank(
    record: PersonRecord,
    *,
    email: str | None = None,
    upn: str | None = None,
    employee_id: str | None = None,
    username: str | None = None,
) -> int:
    """0 for the strongest identifier that matches, len(_RANKS) when none does."""

    def same(a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and a.casefold() == b.casefold()

    if employee_id and record.employee_id == employee_id:
        return 0
    if email and same(record.email, email):
        return 1
    if (upn and same(record.upn, upn)) or (email and same(record.upn, email)):
        return 2
    if email and any(same(alias, email) for alias in record.aliases):
        return 3
    if username and same(record.username, username):
        return 4
    return len(_RANKS)


def _quiet_unbind(conn: Connection) -> None:
    try:
        conn.unbind()
    except (LDAPException, *_DECODE_ERRORS, OSError):
        pass


__all__ = [
    "ATTRIBUTES",
    "ADClient",
    "ConnectionFactory",
    "ad_dn",
    "default_connection",
    "dn_key",
    "entry_to_person",
    "escape_dn_value",
    "lean_entries",
    "map_exception",
    "map_result",
    "register_connection_factory",
    "tcp_connection",
    "unescape_dn_value",
    "unregister_connection_factory",
]
