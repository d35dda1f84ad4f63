"""Fault injection shared by every simulator (HTTP and LDAP): the contract's `POST /_sim/faults`.

A fault is set per system id: ``down`` (503 / refused), ``slow`` (``delay_ms`` before answering), ``flaky``
(every ``fail_every``-th request fails with 503), ``throttle`` (429 with ``Retry-After: retry_after``),
``expired_token`` (every token is refused as expired, so clients must re-authenticate and still fail),
``malformed`` (a 200 whose body is not the system's format). ``truncated`` (paging stops early: a next link that
leads to an error) is also accepted. Thread-safe: the HTTP server, the LDAP proxy and control requests run on
different threads.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nexus.systems import System

MODES = ("down", "slow", "flaky", "throttle", "expired_token", "malformed", "truncated")


class FaultSpecError(ValueError):
    """The fault request is not valid (unknown system or mode, bad parameter)."""


@dataclass(slots=True)
class Fault:
    system: str
    mode: str
    delay_ms: int = 0
    fail_every: int = 2
    retry_after: float = 1.0
    count: int = 0  # requests seen since the fault was set (for flaky)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.system, "mode": self.mode}
        if self.mode == "slow":
            out["delay_ms"] = self.delay_ms
        if self.mode == "flaky":
            out["fail_every"] = self.fail_every
        if self.mode == "throttle":
            out["retry_after"] = self.retry_after
        return out

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Fault:
        if not isinstance(body, dict):
            raise FaultSpecError("fault must be a JSON object")
        try:
            system = System.parse(str(body.get("system", ""))).value
        except ValueError as exc:
            raise FaultSpecError(str(exc)) from exc
        mode = body.get("mode")
        if mode not in MODES:
            raise FaultSpecError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        try:
            delay_ms = int(body.get("delay_ms", 1000 if mode == "slow" else 0))
            fail_every = int(body.get("fail_every", 2))
            retry_after = float(body.get("retry_after", 1))
        except (TypeError, ValueError) as exc:
            raise FaultSpecError(f"bad fault parameter: {exc}") from exc
        if delay_ms < 0 or fail_every < 1 or retry_after < 0:
            raise FaultSpecError("delay_ms and retry_after must be >= 0, fail_every >= 1")
        return cls(system=system, mode=mode, delay_ms=delay_ms, fail_every=fail_every, retry_after=retry_after)


class FaultBoard:
    """The current fault of each system. ``decide(system)`` is called once per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._faults[fault.system] = fault

    def clear(self, system: str | None = None) -> None:
        with self._lock:
            if system is None:
                self._faults.clear()
            else:
                self._faults.pop(system, None)

    def get(self, system: str) -> Fault | None:
        with self._lock:
            return self._faults.get(system)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults.values()]

    def decide_peek(self, system: str) -> str | None:
        """The mode currently set for ``system`` without counting a request (for auth and paging faults)."""
        with self._lock:
            fault = self._faults.get(system)
            return fault.mode if fault is not None else None

    def decide(self, system: str) -> str | None:
        """The fault to apply to this request, or None. ``flaky`` fails every ``fail_every``-th request."""
        with self._lock:
            fault = self._faults.get(system)
            if fault is None:
                return None
            fault.count += 1
            if fault.mode == "flaky":
                return "flaky" if fault.count % fault.fail_every == 0 else None
            return fault.mode


class RequestLog:
    """Counts what reached each system, per path: the contract's `GET /_sim/requests`."""

    def __init__(self, keep_recent: int = 2000) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        # The last requests with their query (URL query, LDAP filter, GraphQL variables), so tests can prove what
        # a hostile value became on the wire.
        self._recent: deque[dict[str, str]] = deque(maxlen=keep_recent)

    def record(self, system: str, path: str, query: str = "") -> None:
        with self._lock:
            paths = self._counts.setdefault(system, {})
            paths[path] = paths.get(path, 0) + 1
            self._recent.append({"system": system, "path": path, "query": query})

    def note(self, system: str, path: str, body: str) -> None:
        """Keep a request body (GraphQL query and variables, a POSTed tracking list) among the recent requests
        without counting another request: the middleware already counted it."""
        with self._lock:
            self._recent.append({"system": system, "path": path, "query": body})

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._recent.clear()

    def recent(self, system: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [r for r in self._recent if system is None or r["system"] == system]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                system: {"total": sum(paths.values()), "paths": dict(paths)}
                for system, paths in self._counts.items()
            }
