"""The drill: runs cells as real audits on a rig and observes each one as an :class:`~.matrix.Outcome`."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx

from nexus.systems import System

from .matrix import (
    AUDIT_KIND,
    EXPECTED,
    FAULT_LABELS,
    FLAKY_EVERY,
    RETRY_AFTER_S,
    SLOW_DELAY_MS,
    Cell,
    Fault,
    Fleet,
    Outcome,
    all_cells,
)

WAIT_S = 60.0


class Rig(Protocol):
    """What the drill needs from a running Nexus (``nexus.testing.cluster.Cluster`` has it all)."""

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
                         r"\((?:countdown|waiting) (?P<wait>[0-9.]+)s\)\s*$", re.MULTILINE)


def retry_waits(logs: str, system: System) -> list[float]:
    """The waits before each retry the workers logged for ``system``, in order: a request's own retries
    (``waiting``) and the task's countdowns (``countdown``)."""
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
