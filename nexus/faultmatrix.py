"""The fault matrix: every fault kind on every system, run as real audits on a rig, and the outcome classified.

A *rig* is a running Nexus (Redis, the simulators, Celery worker processes): ``tests._cluster.Cluster`` satisfies
:class:`Rig`. For each (system, fault) cell, :class:`FaultMatrix` runs:

1. a clean warm-up audit (the worker's token cache and LDAP connection are then in a known state, so request
   counts are exact),
2. the audit under the fault: a user audit for Workday, AD and Entra, a device audit for Intune, Lansweeper and
   Helix, a device audit of a serial with a return ticket for FedEx,
3. a follow-up audit when the breaker opened (it must fail fast: nothing reaches the system),
4. for ``truncated``: a fleet audit (every system's listing, paged by :mod:`tasks.fleet` through each client's
   ``fetch_page`` chain), because the per-subject lookups of an audit do not page,

and records an :class:`Outcome`: the error class and kind in the report's ``errors``, the attempts (the marker's
``attempts``, or the progress record's ``attempt`` when the system was read), the requests that reached the system
(the simulator's request log), the countdowns before each retry (the workers' ``[resilience] ... Retry attempt``
lines), the breaker state after the cell (it is closed before: breakers are reset between cells), and whether the
system is in ``systems_failed``.

:data:`EXPECTED` is the outcome table the drill must reproduce exactly; :func:`render_section` renders it as the
Markdown table in ``docs/reliability.md`` (``scripts/fault_matrix.py`` regenerates the file), so the published table
is the one the drill verifies. Numbers depend on :data:`RIG_ENV` and the rig's org (:data:`MATRIX_PEOPLE`,
:data:`MATRIX_SEED`); the rig must run ONE worker process with one pool slot (:data:`RIG_WORKERS`), so that the
warm-up leaves the token and the LDAP connection where the measured audit will find them.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

import httpx

from nexus.systems import System

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
    # As many failures as one fetch has attempts: a dead system opens the breaker on the fetch's last attempt,
    # so the report still names the real cause and the NEXT fetch shows the fast-fail.
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
WAIT_S = 60.0

START_MARKER = "<!-- fault-matrix:start -->"
END_MARKER = "<!-- fault-matrix:end -->"


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

SYSTEMS: tuple[System, ...] = (
    System.WORKDAY, System.AD, System.ENTRA, System.INTUNE, System.LANSWEEPER, System.HELIX, System.FEDEX,
)
COMMON_FAULTS: tuple[Fault, ...] = tuple(f for f in Fault if f is not Fault.REFUSED)

#: Which audit exercises each system.
AUDIT_KIND: dict[System, str] = {
    System.WORKDAY: "user", System.AD: "user", System.ENTRA: "user",
    System.INTUNE: "device", System.LANSWEEPER: "device", System.HELIX: "device",
    System.FEDEX: "device+return",
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
_OPENED = {"breaker": "open", "breaker_failures": 3, "next_error": "BreakerOpenError", "next_requests": 0}


def _down(status: int | None, requests: int = 3) -> Outcome:
    return _fail("TransientError", "transient", 3, requests, status=status, waits=_BACKOFF, **_OPENED)


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


_MULTI_REQUEST_FLAKY = "a fetch needs 2+ requests ({}): every attempt meets a failing one (see the notes)"

_expect(System.WORKDAY, {
    Fault.DOWN: _down(503),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _read(requests=2, attempts=2, waits=(0.25,)),
    Fault.THROTTLE: _read(requests=2, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 3),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(Fleet(True, "MalformedResponseError", "malformed", 5, 1, 6, "closed", 1)),
}, {
    Fault.TRUNCATED: "Workday states its total: a listing that stops short is an incomplete listing, not a short "
                     "fleet",
})

_expect(System.AD, {
    # The warm connection's search is dropped; every new connection is reset before its bind is read.
    Fault.DOWN: _down(None, requests=1),
    Fault.SLOW: _down(None),
    Fault.FLAKY: _fail("TransientError", "transient", 3, 8, waits=_BACKOFF, **_OPENED),
    Fault.THROTTLE: _read(requests=3, attempts=2, waits=(0.25,)),
    Fault.THROTTLE_PERSISTENT: _throttled(None, _BACKOFF),
    Fault.EXPIRED_TOKEN: _auth(None, 2),
    Fault.MALFORMED: _malformed(requests=2),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 12), requests=2),
    Fault.REFUSED: _down(None, requests=0),
}, {
    Fault.DOWN: "LDAP: connection reset",
    Fault.SLOW: "ldap3 receive timeout (whole seconds: 1 s)",
    Fault.FLAKY: _MULTI_REQUEST_FLAKY.format("search, manager read, bind"),
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
    Fault.FLAKY: _read(requests=2, attempts=2, waits=(0.25,)),
    Fault.THROTTLE: _read(requests=2, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 3),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 4)),
}, {
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
    Fault.FLAKY: _read(requests=4, attempts=3, waits=(0.25, 0.5)),
    Fault.THROTTLE: _read(requests=3, attempts=2, waits=(_RA,)),
    Fault.THROTTLE_PERSISTENT: _throttled(429, (_RA, _RA)),
    Fault.EXPIRED_TOKEN: _auth(401, 3),
    Fault.MALFORMED: _malformed(),
    Fault.TRUNCATED: _truncated(_fleet_transient(1, 6), requests=2),
}, {
    Fault.FLAKY: "two requests per serial (return tickets, asset): a retry asks only for what the failed attempt "
                 "did not get",
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


# -- the rig -------------------------------------------------------------------------------------------------------


class Rig(Protocol):
    """What the drill needs from a running Nexus (``tests._cluster.Cluster`` has it all)."""

    env: dict[str, str]
    stack: Any  # nexus.sim.stack.SimulatorStack

    @property
    def truth(self) -> dict[str, Any]: ...

    def nexus(self) -> Any: ...

    def reset_breakers(self) -> None: ...

    def worker_logs(self) -> str: ...


class DrillError(RuntimeError):
    """The rig is not in a state where the cell means anything (e.g. the warm-up audit failed)."""


@dataclass(frozen=True, slots=True)
class Subjects:
    """The audit subject of each kind, chosen deterministically from the rig's org."""

    email: str  # a person in Workday, AD and Entra, with a manager
    serial: str  # a device in Intune, Lansweeper and Helix, with an owner
    return_serial: str  # a device with a Helix return ticket whose FedEx shipment is tracked

    @classmethod
    def from_org(cls, org: Any, truth: Mapping[str, Any]) -> Subjects:
        ad_mail = {u.mail.lower() for u in org.ad if u.mail and u.manager_dn and u.enabled}
        entra_mail = {(u.mail or u.upn).lower() for u in org.entra}
        email = next(w.email for w in sorted(org.workday, key=lambda w: w.employee_id)
                     if w.active and w.manager_id and w.email.lower() in ad_mail & entra_mail)
        ls = {a.serial for a in org.lansweeper}
        hx = {a.serial for a in org.helix_assets}
        serial = next(d.serial for d in sorted(org.intune, key=lambda d: d.serial)
                      if d.upn and d.serial in ls and d.serial in hx)
        returns = sorted({e["subject"] for e in truth["drift"] if e["field"] == "return_shipment"})
        if not returns:
            raise DrillError("the org has no device with a return shipment")
        return cls(email=email, serial=serial, return_serial=returns[0])

    def for_system(self, system: System) -> tuple[str, str]:
        """(``email`` | ``serial``, subject) of the audit that exercises ``system``."""
        kind = AUDIT_KIND[system]
        if kind == "user":
            return "email", self.email
        if kind == "device":
            return "serial", self.serial
        return "serial", self.return_serial


@dataclass(slots=True)
class CellResult:
    system: System
    fault: Fault
    observed: Outcome
    expected: Outcome | None
    seconds: float
    message: str = ""  # the error message in the report (shown by the script, not compared)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.expected is not None and self.observed == self.expected

    def describe(self) -> str:
        head = f"{self.system.display:<15} {FAULT_LABELS[self.fault]:<48} {self.seconds:5.1f}s "
        if self.ok:
            return head + "ok"
        if self.expected is None:
            return head + f"NO EXPECTATION: {self.observed}"
        return head + "MISMATCH " + ", ".join(
            f"{k}: expected {e!r}, got {o!r}" for k, (e, o) in self.expected.diff(self.observed).items())


_RETRY_LINE = re.compile(r"\[resilience\] \[(?P<system>[A-Za-z]+)\] Retry attempt \d+/\d+ after .*"
                         r"\(countdown (?P<wait>[0-9.]+)s\)\s*$", re.MULTILINE)


def retry_waits(logs: str, system: System) -> list[float]:
    """The countdowns the workers logged for ``system``, in order."""
    return [float(m["wait"]) for m in _RETRY_LINE.finditer(logs) if m["system"] == system.display]


class FaultMatrix:
    """Runs cells on ``rig`` one at a time (cells share systems: a device audit reads Workday, AD and Entra, and
    Entra issues Intune's tokens, so two cells in parallel would disturb each other's counts and breakers)."""

    def __init__(self, rig: Rig, *, wait_s: float = WAIT_S, progress: Callable[[str], None] | None = None) -> None:
        self.rig = rig
        self.wait_s = wait_s
        self.progress = progress or (lambda _line: None)
        if rig.stack.org is None:
            raise DrillError("the rig's simulator stack is not started")
        self.subjects = Subjects.from_org(rig.stack.org, rig.truth)
        # One client for the control API: a new httpx client per call costs ~0.1 s (it builds an SSL context),
        # longer than the 0.25 s countdown the throttle cell must beat.
        self.http = httpx.Client(base_url=str(rig.stack.url), timeout=10.0)
        self._ldap_stopped = False

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FaultMatrix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ----------------------------------------------------------------------------------------------------
    def run(self, cells: Iterable[Cell] | None = None) -> list[CellResult]:
        results = []
        for system, fault in cells if cells is not None else all_cells():
            result = self.run_cell(system, fault)
            self.progress(result.describe())
            results.append(result)
        return results

    def run_cell(self, system: System, fault: Fault) -> CellResult:
        if fault is Fault.REFUSED and system is not System.AD:
            raise ValueError("connection refused is an AD cell (the HTTP simulators share one port)")
        started = time.monotonic()
        try:
            observed, message, detail = self._run(system, fault)
        finally:
            self._restore()
        return CellResult(system, fault, observed, EXPECTED.get((system, fault)), time.monotonic() - started,
                          message, detail)

    # -- one cell --------------------------------------------------------------------------------------------------
    def _run(self, system: System, fault: Fault) -> tuple[Outcome, str, dict[str, Any]]:
        rig = self.rig
        self._reset()
        key, subject = self.subjects.for_system(system)
        clock = time.monotonic()
        warm = self._audit(key, subject)
        warm_s = time.monotonic() - clock
        if warm["status"] != "done" or warm["report"]["systems_failed"]:
            raise DrillError(f"warm-up audit of {subject} did not read every system: {warm.get('report')}")
        if _breaker(system) != ("closed", 0):
            raise DrillError(f"{system.display} breaker is not closed before the cell")
        if fault is Fault.EXPIRED_TOKEN and system is System.AD:
            self._bounce_ldap()  # a bound LDAP session outlives its password: make the worker bind again
        self._arm(system, fault)
        self.http.delete("/_sim/requests").raise_for_status()
        logs_before = len(retry_waits(rig.worker_logs(), system))

        clock = time.monotonic()
        view = self._audit(key, subject, lift=(system, logs_before) if fault is Fault.THROTTLE else None)
        audit_s = time.monotonic() - clock
        report = view.get("report") or {}
        completed = view["status"] == "done" and bool(report)
        errors = report.get("errors") or {}
        error = errors.get(system.display) or {}
        failed = system.display in (report.get("systems_failed") or [])
        if failed:
            attempts = int(error.get("attempts") or 0)
        else:
            attempts = int(((view.get("progress") or {}).get("systems") or {}).get(system.value, {}).get("attempt", 0))
        requests = self._count(system)
        waits = tuple(retry_waits(rig.worker_logs(), system)[logs_before:])
        state, failures = _breaker(system)
        observed = Outcome(
            completed=completed,
            failed=failed,
            error=str(error.get("type", "")) if failed else "",
            kind=str(error.get("kind", "")) if failed else "",
            status=error.get("status") if failed else None,
            attempts=attempts,
            requests=requests,
            waits=waits,
            breaker=state,
            breaker_failures=failures,
        )
        detail: dict[str, Any] = {"subject": subject, "audit_id": view.get("audit_id"), "error": error,
                                  "warm_up_s": round(warm_s, 3), "audit_s": round(audit_s, 3)}
        if state == "open":
            observed = replace(observed, **self._follow_up(system, key, subject))
        if fault is Fault.TRUNCATED:
            observed = replace(observed, fleet=self._fleet(system))
        return observed, str(error.get("message", "")), detail

    def _reset(self) -> None:
        """No faults, an empty request log, every breaker closed."""
        self.http.delete("/_sim/faults").raise_for_status()
        self.http.delete("/_sim/requests").raise_for_status()
        self.rig.reset_breakers()

    def _fault(self, system: System, mode: str, **params: Any) -> None:
        self.http.post("/_sim/faults", json={"system": system.value, "mode": mode, **params}).raise_for_status()

    def _arm(self, system: System, fault: Fault) -> None:
        if fault is Fault.DOWN:
            self._fault(system, "down")
        elif fault is Fault.SLOW:
            self._fault(system, "slow", delay_ms=SLOW_DELAY_MS)
        elif fault is Fault.FLAKY:
            self._fault(system, "flaky", fail_every=FLAKY_EVERY)
            # The fault counts requests from 1 and fails every FLAKY_EVERY-th: spend the passing ones here, so the
            # audit's FIRST request is the one that fails and the retry is what the cell shows.
            before = self._count(system)
            for _ in range(FLAKY_EVERY - 1):
                self._prime(system)
            if self._count(system) - before < FLAKY_EVERY - 1:  # (AD logs the prime's unbind too)
                raise DrillError(f"priming {system.display} did not reach its fault board")
        elif fault in (Fault.THROTTLE, Fault.THROTTLE_PERSISTENT):
            self._fault(system, "throttle", retry_after=RETRY_AFTER_S)
        elif fault is Fault.EXPIRED_TOKEN:
            self._fault(system, "expired_token")
        elif fault is Fault.MALFORMED:
            self._fault(system, "malformed")
        elif fault is Fault.TRUNCATED:
            self._fault(system, "truncated")
        elif fault is Fault.REFUSED:
            self._ldap_proxy().stop()
            self._ldap_stopped = True

    def _audit(self, key: str, subject: str, *, lift: tuple[System, int] | None = None) -> dict[str, Any]:
        nx = self.rig.nexus()
        audit_id = nx.submit(nx.request_for(**{key: subject}))
        if lift is not None:
            self._lift_after_first_retry(*lift)
        view: dict[str, Any] = nx.wait(audit_id, timeout=self.wait_s)
        return view

    def _lift_after_first_retry(self, system: System, logs_before: int, timeout: float = 10.0) -> None:
        """Clear the faults once the worker logged its first retry of ``system``: the fault has answered, and the
        task is now waiting its countdown (watching the request log instead would race the fault's decision)."""
        deadline = time.monotonic() + timeout
        while len(retry_waits(self.rig.worker_logs(), system)) <= logs_before:
            if time.monotonic() > deadline:
                raise DrillError(f"{system.display} was not retried within {timeout}s")
            time.sleep(0.005)
        self.http.delete("/_sim/faults").raise_for_status()

    def _follow_up(self, system: System, key: str, subject: str) -> dict[str, Any]:
        """While the breaker is open, one more audit: the system must fail fast and receive nothing."""
        before = self._count(system)
        view = self._audit(key, subject)
        error = ((view.get("report") or {}).get("errors") or {}).get(system.display) or {}
        return {"next_error": str(error.get("type", "")), "next_requests": self._count(system) - before}

    def _count(self, system: System) -> int:
        snapshot = self.http.get("/_sim/requests").raise_for_status().json()
        return int(snapshot.get(system.value, {}).get("total", 0))

    # -- the fleet audit ---------------------------------------------------------------------------------------------
    def _fleet(self, system: System) -> Fleet | None:
        """A fleet audit while the fault is still set: the system's listing is paged by the fleet pipeline.
        FedEx has no listing (it tracks numbers in chunks of 30): None."""
        if system is System.FEDEX:
            return None
        before = self._count(system)
        nx = self.rig.nexus()
        view: dict[str, Any] = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=self.wait_s)
        report = view.get("report") or {}
        error = (report.get("errors") or {}).get(system.display) or {}
        state, failures = _breaker(system)
        page = error.get("page")
        return Fleet(
            failed=view["status"] == "done" and system.display in (report.get("systems_failed") or []),
            error=str(error.get("type", "")),
            kind=str(error.get("kind", "")),
            page=int(page) if page is not None else None,
            attempts=int(error.get("attempts") or 0),
            requests=self._count(system) - before,
            breaker=state,
            breaker_failures=failures,
        )

    # -- the AD proxy and priming ----------------------------------------------------------------------------------
    def _ldap_proxy(self) -> Any:
        """The stack's LDAP fault proxy (``nexus.sim.ldap_proxy.LdapProxy``; slapd mode only). Stopping it closes
        the LDAP port: clients get "connection refused". ``start()`` listens on the same port again."""
        proxy = getattr(self.rig.stack, "_proxy", None)
        if proxy is None:
            raise DrillError("AD cells need the slapd-backed simulator (ldap_mode='slapd')")
        return proxy

    def _bounce_ldap(self) -> None:
        proxy = self._ldap_proxy()
        proxy.stop()
        proxy.start()

    def _restore(self) -> None:
        """Faults off, and the LDAP proxy listening again on its port (after ``refused``)."""
        self.http.delete("/_sim/faults").raise_for_status()
        if self._ldap_stopped:
            self._ldap_proxy().start()
            self._ldap_stopped = False

    def _prime(self, system: System) -> None:
        """One request the fault board counts for ``system`` (it is answered with an error; nothing is read)."""
        if system is System.AD:
            from ldap3 import Connection, Server

            conn = Connection(Server(self.rig.env["AD_LDAP_URL"], connect_timeout=2), receive_timeout=2)
            with contextlib.suppress(Exception):
                conn.bind()  # anonymous: one counted operation
            with contextlib.suppress(Exception):
                conn.unbind()
            return
        env = self.rig.env
        urls = {
            System.WORKDAY: env["WORKDAY_BASE_URL"] + "/_prime",
            System.ENTRA: env["GRAPH_BASE_URL"] + "/v1.0/_prime",
            System.INTUNE: env["GRAPH_BASE_URL"] + "/v1.0/deviceManagement/_prime",
            System.LANSWEEPER: env["LANSWEEPER_GRAPHQL_URL"],
            System.HELIX: env["HELIX_BASE_URL"] + "/_prime",
            System.FEDEX: env["FEDEX_BASE_URL"] + "/_prime",
        }
        self.http.get(urls[system])


def _breaker(system: System) -> tuple[str, int]:
    """The shared breaker's state and consecutive failures, as every worker sees them."""
    from clients.breaker import breaker_state

    state = breaker_state(system.value)
    return str(state["state"]), int(str(state["failures"]))


# -- rendering -----------------------------------------------------------------------------------------------------


def _fmt_waits(waits: Sequence[float]) -> str:
    return ", ".join(f"{w:g}" for w in waits) if waits else "-"


def _fmt_breaker(state: str, failures: int) -> str:
    if state == "closed":
        return "closed" + (f" ({failures} failure{'s' if failures != 1 else ''})" if failures else "")
    return f"closed → {state}"


def _fmt_error(o: Outcome, status: int | None = None) -> str:
    if not o.error:
        return "-"
    return f"`{o.error}` ({o.kind}{f', HTTP {status}' if status else ''})"


def _fmt_result(o: Outcome) -> str:
    if not o.completed:
        return "audit did NOT complete"
    return "failed, in `systems_failed`" if o.failed else "read"


def _fmt_notes(cell: Cell, o: Outcome) -> str:
    parts: list[str] = []
    if o.next_error:
        parts.append(f"next audit: `{o.next_error}`, {o.next_requests} requests")
    if o.fleet is not None:
        f = o.fleet
        what = f"`{f.error}` ({f.kind})" + (f" on page {f.page + 1}" if f.page is not None else "")
        parts.append(f"fleet audit: {'failed' if f.failed else 'read'}, {what} after {f.attempts} "
                     f"attempt{'s' if f.attempts != 1 else ''}, {f.requests} requests, breaker "
                     f"{_fmt_breaker(f.breaker, f.breaker_failures)}")
    elif cell[1] is Fault.TRUNCATED:
        parts.append("fleet audit: n/a (FedEx has no listing)")
    if cell in NOTES:
        parts.append(NOTES[cell])
    return "; ".join(parts)


def render_table(outcomes: Mapping[Cell, Outcome]) -> str:
    """The Markdown table, one row per cell, in :func:`all_cells` order (cells missing from ``outcomes`` are left
    out)."""
    head = ("| System | Fault | Audit | System in report | Error in `errors` | Attempts | Waits (s) | Requests "
            "| Breaker | Notes |")
    rule = "|---|---|---|---|---|---|---|---|---|---|"
    rows = [head, rule]
    for cell in all_cells():
        if cell not in outcomes:
            continue
        system, fault = cell
        o = outcomes[cell]
        rows.append(
            f"| {system.display} | {FAULT_LABELS[fault]} | {AUDIT_KIND[system]} | {_fmt_result(o)} | "
            f"{_fmt_error(o, o.status)} | {o.attempts} | {_fmt_waits(o.waits)} | {o.requests} | "
            f"{_fmt_breaker(o.breaker, o.breaker_failures)} | {_fmt_notes(cell, o)} |"
        )
    return "\n".join(rows)


GENERAL_NOTES: tuple[str, ...] = (
    "**Attempts** are fetch attempts: the failure marker's `attempts` in the report's `errors`, or the progress "
    "record's `attempt` when the system was read. One attempt is one Celery task run; the waits between runs are "
    "Celery countdowns (the worker slot is free meanwhile), so a Retry-After is honoured exactly.",
    "**Requests** are what reached the system in the simulator's request log during the audit, auth requests "
    "included (the worker holds a token from a warm-up audit, so a re-authentication shows as one more request).",
    "**Breaker**: each system's breaker is closed with no failures before its cell. Every failed attempt that "
    "says the system is unhealthy (transient or malformed) counts; throttling, an expired token and a success "
    "prove the system is alive and reset the count. With `NEXUS_BREAKER_FAIL_MAX=3`, a dead system opens its "
    "breaker on the fetch's third attempt, and the next audit fails fast without sending anything.",
    "**Truncated paging**: an audit's per-subject lookups never page, so the audit itself is unaffected. The fault "
    "is exercised by a fleet audit (`tasks/fleet.py`), which pages every system's listing through its client's "
    "`fetch_page` chain and retries a failed PAGE (not the whole listing) with countdowns; the page number is 1-based "
    "here, 0-based in the report's `errors`. The org is large enough that every listing has two pages or more.",
    "**Flaky, every 2nd request**: the fault counts requests, so the drill spends one passing request first and the "
    "audit's first request is the failing one. A retry repeats the whole fetch: where one fetch needs two or more "
    "requests (Helix: return tickets and the asset; AD: the search, the manager read and a bind after a dropped "
    "connection), every attempt meets a failing request, so the fetch fails after its attempts and the breaker "
    "opens. Random failures at a lower rate let most attempts through; bulk fetches (several subjects per task) "
    "are exposed the same way.",
)


def _rig_line() -> str:
    settings = ", ".join(f"`{k}={v}`" for k, v in RIG_ENV.items())
    return (f"Rig: `tests/_cluster.py` with {MATRIX_PEOPLE} people (seed {MATRIX_SEED}), a private Redis, every "
            f"simulator and {RIG_WORKERS} Celery worker process ({RIG_CONCURRENCY} pool slot); {settings}.")


def render_section(outcomes: Mapping[Cell, Outcome] | None = None) -> str:
    """What ``docs/reliability.md`` holds between the markers (the table of :data:`EXPECTED` by default)."""
    table = render_table(EXPECTED if outcomes is None else outcomes)
    notes = "\n".join(f"- {note}" for note in GENERAL_NOTES)
    return (
        f"{START_MARKER}\n"
        "<!-- generated by scripts/fault_matrix.py from nexus/faultmatrix.py: do not edit by hand -->\n\n"
        f"{_rig_line()}\n\n"
        f"{table}\n\n"
        f"{notes}\n\n"
        f"{END_MARKER}"
    )


def update_document(text: str, section: str | None = None) -> str:
    """``text`` with the part between the markers (markers included) replaced by ``section``."""
    section = render_section() if section is None else section
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the document lacks the {START_MARKER} ... {END_MARKER} markers")
    return text[:start] + section + text[end + len(END_MARKER):]


def extract_section(text: str) -> str:
    """The part between the markers, markers included."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the document lacks the {START_MARKER} ... {END_MARKER} markers")
    return text[start:end + len(END_MARKER)]


__all__ = [
    "AUDIT_KIND",
    "END_MARKER",
    "EXPECTED",
    "FAULT_LABELS",
    "MATRIX_PEOPLE",
    "MATRIX_SEED",
    "NOTES",
    "RIG_CONCURRENCY",
    "RIG_ENV",
    "RIG_WORKERS",
    "START_MARKER",
    "SYSTEMS",
    "Cell",
    "CellResult",
    "DrillError",
    "Fault",
    "FaultMatrix",
    "Fleet",
    "Outcome",
    "Rig",
    "Subjects",
    "all_cells",
    "extract_section",
    "faults_for",
    "render_section",
    "render_table",
    "retry_waits",
    "update_document",
]
