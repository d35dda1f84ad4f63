"""The matrix: its cells (system x fault), the rig settings the numbers depend on, and :data:`EXPECTED`, the
outcome of every cell that the drill (:mod:`.drill`) must reproduce and the renderer (:mod:`.render`) publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nexus.registry import specs
from nexus.systems import Role, System

MATRIX_PEOPLE = 1100  # every listing needs two pages or more (AD pages 1000, Graph 999, Helix/Lansweeper 500)
MATRIX_SEED = 11
RIG_WORKERS = 1
RIG_CONCURRENCY = 1
#: Everything the expected numbers depend on, pinned (the rig's defaults may change; the table must not).
RIG_ENV: dict[str, str] = {
    "NEXUS_HTTP_TIMEOUT_S": "1",
    "NEXUS_HTTP_CONNECT_TIMEOUT_S": "1",
    "NEXUS_RETRY_MAX_ATTEMPTS": "3",
    "NEXUS_RETRY_BACKOFF_BASE_S": "0.25",
    "NEXUS_RETRY_BACKOFF_MAX_S": "2",
    "NEXUS_RETRY_JITTER": "false",
    "NEXUS_RETRY_AFTER_MAX_S": "5",
    # Breaker accounting is per request (each request after all its attempts, the seed's contract): one cell's
    # fetch is one failed request, so the breaker records 1 failure of 3 and stays closed (the seed's
    # "5 failed requests open it, the 6th fails fast" is tests/test_resilience_requests.py).
    "NEXUS_BREAKER_FAIL_MAX": "3",
    "NEXUS_BREAKER_RESET_TIMEOUT_S": "30",
    "NEXUS_BREAKER_ENABLED": "true",
    "NEXUS_TOKEN_REFRESH_MARGIN_S": "60",
    # One page at a time: with concurrent pages, which failing page a fleet audit reports first, and whether a
    # later page's success resets the breaker count, depend on thread timing.
    "NEXUS_FLEET_PAGE_CONCURRENCY": "1",
    "NEXUS_FLEET_STALE_FALLBACK": "false",
}
SLOW_DELAY_MS = 2500  # > NEXUS_HTTP_TIMEOUT_S (ldap3 rounds its receive timeout up to whole seconds: 1 s)
FLAKY_EVERY = 2
RETRY_AFTER_S = 1


class Fault(StrEnum):
    """A column of the matrix. ``throttle`` recovers after the first 429; ``refused`` is AD's closed LDAP port."""

    DOWN = "down"
    SLOW = "slow"
    FLAKY = "flaky"
    THROTTLE = "throttle"
    THROTTLE_PERSISTENT = "throttle_persistent"
    EXPIRED_TOKEN = "expired_token"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    REFUSED = "refused"


FAULT_LABELS: dict[Fault, str] = {
    Fault.DOWN: "down",
    Fault.SLOW: f"slow ({SLOW_DELAY_MS} ms > 1 s timeout)",
    Fault.FLAKY: f"flaky (every {FLAKY_EVERY}nd request fails)",
    Fault.THROTTLE: f"throttle (Retry-After {RETRY_AFTER_S}, lifted after the first)",
    Fault.THROTTLE_PERSISTENT: f"throttle (Retry-After {RETRY_AFTER_S}, persistent)",
    Fault.EXPIRED_TOKEN: "expired token",
    Fault.MALFORMED: "malformed body",
    Fault.TRUNCATED: "truncated paging",
    Fault.REFUSED: "LDAP connection refused",
}

#: Every system of the registry, in report order.
SYSTEMS: tuple[System, ...] = tuple(spec.system for spec in specs())
COMMON_FAULTS: tuple[Fault, ...] = tuple(f for f in Fault if f is not Fault.REFUSED)

#: Which audit exercises each system, by its role: a people directory in a user audit, a device inventory in a
#: device audit, shipment tracking in a device audit whose device has a return ticket.
_KIND_BY_ROLE: dict[Role, str] = {Role.PEOPLE: "user", Role.DEVICES: "device", Role.SHIPMENTS: "device+return"}
AUDIT_KIND: dict[System, str] = {
    s: next(kind for role, kind in _KIND_BY_ROLE.items() if role in s.roles) for s in SYSTEMS
}

Cell = tuple[System, Fault]


def faults_for(system: System) -> tuple[Fault, ...]:
    return (*COMMON_FAULTS, Fault.REFUSED) if system is System.AD else COMMON_FAULTS


def all_cells() -> list[Cell]:
    return [(s, f) for s in SYSTEMS for f in faults_for(s)]


# -- outcomes ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fleet:
    """A fleet audit under ``truncated``: every system's listing paged by the fleet pipeline (:mod:`tasks.fleet`)."""

    failed: bool = True  # the system is in the fleet report's systems_failed
    error: str = ""
    kind: str = ""
    page: int | None = None  # the page that failed (0-based, as the report's error says)
    attempts: int = 1  # attempts at that page
    requests: int = 0
    breaker: str = "closed"
    breaker_failures: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one cell did. Equality is the drill's verdict, so every field is deterministic on the rig."""

    completed: bool = True  # the audit finished ("done") with a report
    failed: bool = False  # the system is in the report's systems_failed
    error: str = ""  # the error class in the report's errors ("" when the system was read)
    kind: str = ""
    status: int | None = None  # HTTP status in the error, if any
    attempts: int = 1
    requests: int = 1  # requests that reached the system (request log; auth requests included)
    waits: tuple[float, ...] = ()  # countdowns before each retry, seconds
    breaker: str = "closed"  # the system's breaker after the audit (it is closed before)
    breaker_failures: int = 0
    next_error: str = ""  # a follow-up audit while the breaker is open: the system's error class
    next_requests: int | None = None  # ... and the requests it sent (must be 0)
    fleet: Fleet | None = None

    def diff(self, other: Outcome) -> dict[str, tuple[Any, Any]]:
        """{field: (self's value, other's value)} for every field that differs."""
        names = [n for n in self.__slots__]
        return {n: (getattr(self, n), getattr(other, n)) for n in names if getattr(self, n) != getattr(other, n)}


def _read(requests: int = 1, attempts: int = 1, waits: tuple[float, ...] = (), **kw: Any) -> Outcome:
    return Outcome(failed=False, requests=requests, attempts=attempts, waits=waits, **kw)


def _fail(error: str, kind: str, attempts: int, requests: int, **kw: Any) -> Outcome:
    return Outcome(failed=True, error=error, kind=kind, attempts=attempts, requests=requests, **kw)


_BACKOFF = (0.25, 0.5)
_RA = float(RETRY_AFTER_S)
_COUNTED = {"breaker": "closed", "breaker_failures": 1}  # one failed request (3 attempts) of fail_max 3


def _down(status: int | None, requests: int = 3) -> Outcome:
    return _fail("TransientError", "transient", 3, requests, status=status, waits=_BACKOFF, **_COUNTED)


def _throttled(status: int | None, waits: tuple[float, ...]) -> Outcome:
    return _fail("ThrottledError", "throttled", 3, 3, status=status, waits=waits)


def _auth(status: int | None, requests: int) -> Outcome:
    return _fail("AuthError", "auth", 1, requests, status=status)


def _malformed(requests: int = 1) -> Outcome:
    return _fail("MalformedResponseError", "malformed", 1, requests, breaker_failures=1)


def _truncated(fleet: Fleet | None, requests: int = 1) -> Outcome:
    """Lookups do not page: the audit reads the system; the fleet audit shows the fault."""
    return _read(requests=requests, fleet=fleet)


def _fleet_transient(page: int, requests: int) -> Fleet:
    return Fleet(True, "TransientError", "transient", page, 3, requests, "closed", 1)


EXPECTED: dict[Cell, Outcome] = {}  # filled below, per system
NOTES: dict[Cell, str] = {}


def _expect(system: System, outcomes: Mapping[Fault, Outcome], notes: Mapping[Fault, str] | None = None) -> None:
    missing = set(faults_for(system)) - set(outcomes)
    if missing:
        raise ValueError(f"{system}: no expected outcome for {sorted(missing)}")
    for fault, outcome in outcomes.items():
        EXPECTED[(system, fault)] = outcome
    for fault, note in (notes or {}).items():
        NOTES[(system, fault)] = note


_expect(System.WORKDAY, {
    Fault.DOWN: _down(503),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _read(requests=2, attempts=2, waits=(0.25,)),
    Fault.THROTTLE: _read(requests=2, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 3),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(Fleet(True, "MalformedResponseError", "malformed", 0, 1, 1, "closed", 1)),
}, {
    Fault.TRUNCATED: "the fleet listing is one RaaS report: a body cut short is not JSON, an error, never a short "
                     "fleet",
})

_expect(System.AD, {
    # The warm connection's search is dropped; every new connection is reset before its bind is read.
    Fault.DOWN: _down(None, requests=1),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _fail("TransientError", "transient", 3, 8, waits=_BACKOFF, **_COUNTED),
    Fault.THROTTLE: _read(requests=5, attempts=2, waits=(0.25,)),
    Fault.THROTTLE_PERSISTENT: _throttled(None, _BACKOFF),
    Fault.EXPIRED_TOKEN: _auth(None, 2),
    Fault.MALFORMED: _malformed(requests=2),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 12), requests=4),
    Fault.REFUSED: _down(None, requests=0),
}, {
    Fault.DOWN: "LDAP: connection reset",
    Fault.SLOW: "ldap3 receive timeout (whole seconds: 1 s)",
    Fault.FLAKY: "every attempt after a dropped connection is two LDAP operations (bind, then the search), so a "
                 "fault failing every 2nd operation fails every attempt's search: one failed request",
    Fault.THROTTLE: "LDAP `busy` (51) carries no Retry-After: the backoff applies",
    Fault.THROTTLE_PERSISTENT: "LDAP `busy` (51) carries no Retry-After: the backoff applies",
    Fault.EXPIRED_TOKEN: "the bind is refused (`invalidCredentials`, 49); a bound session outlives its password, "
                         "so the drill drops the worker's connection first",
    Fault.MALFORMED: "an undecodable LDAP message",
    Fault.TRUNCATED: "later pages answered `unavailable` (52)",
    Fault.REFUSED: "the LDAP port closed (the fault proxy stopped): nothing reaches the directory",
})

_expect(System.ENTRA, {
    Fault.DOWN: _down(503),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _read(requests=4, attempts=2, waits=(0.25, 0.25)),
    Fault.THROTTLE: _read(requests=3, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 3),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 4), requests=2),
}, {
    Fault.FLAKY: "a found account is two lookups (by address, then by the employee id it carries): each fails once",
    Fault.TRUNCATED: "the nextLink answers 400 `Directory_ExpiredPageToken`, classed transient",
})

_expect(System.INTUNE, {
    Fault.DOWN: _down(503),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _read(requests=2, attempts=2, waits=(0.25,)),
    Fault.THROTTLE: _read(requests=2, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 2),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 4)),
}, {
    Fault.EXPIRED_TOKEN: "the new Graph token comes from Entra's token endpoint (counted under Entra)",
    Fault.TRUNCATED: "the nextLink answers 400 `Directory_ExpiredPageToken`, classed transient",
})

_expect(System.LANSWEEPER, {
    Fault.DOWN: _down(503),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _read(requests=2, attempts=2, waits=(0.25,)),
    Fault.THROTTLE: _read(requests=2, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 2),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 4)),
}, {
    Fault.EXPIRED_TOKEN: "a static API token: the retry re-sends it once",
    Fault.TRUNCATED: "the cursor answers `INTERNAL_SERVER_ERROR` (result set gone), classed transient",
})

_expect(System.HELIX, {
    Fault.DOWN: _down(503),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _read(requests=4, attempts=2, waits=(0.25, 0.25)),
    Fault.THROTTLE: _read(requests=3, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 3),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 6), requests=2),
}, {
    Fault.FLAKY: "two requests per serial (return tickets, asset): each is retried on its own, once",
    Fault.TRUNCATED: "the `next` page answers 500 ARERR 552",
})

_expect(System.FEDEX, {
    Fault.DOWN: _down(503),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _read(requests=2, attempts=2, waits=(0.25,)),
    Fault.THROTTLE: _read(requests=2, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 3),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(None),
}, {
    Fault.TRUNCATED: "tracking is one request of at most 30 numbers: nothing pages",
})
