"""Prometheus metrics for Nexus, behind one-line hooks. Each hook is cheap and never raises.

Tasks and audits call :func:`fetch_attempt`, :func:`fetch_retry`, :func:`audit_finished` (and :func:`audit_failed`);
the hooks update the process's :class:`NexusMetrics`, built on first use. The breakers do not call in: they never
import this module. The worker installs :data:`BREAKER_LISTENER` (a pybreaker listener calling
:func:`breaker_transition`) on every breaker of its process with :func:`install`, at start
(``workers.metrics_server.install``); a process that installs nothing counts no transitions. A metrics bug must
never break a task, so every hook swallows its errors (logged at DEBUG on ``nexus.metrics``).

Every name starts with ``nexus_``; system labels are the lower-case ids (``workday``, ``ad``, ...)::

    nexus_fetch_attempts_total{system, outcome}         outcome: ok | retry | failed | breaker_open
    nexus_fetch_retries_total{system, error_kind}        a fetch rescheduled with a countdown
    nexus_fetch_retry_countdown_seconds{system}          histogram of those countdowns
    nexus_breaker_transitions_total{system, from, to}    counted once fleet-wide (by the process that made it)
    nexus_breaker_state{system}                          0 closed, 1 half-open, 2 open (read from Redis at scrape)
    nexus_breaker_failures{system}                       consecutive failures in the shared count (idem)
    nexus_breaker_store_up                               1 when the breaker store answered the scrape
    nexus_audit_duration_seconds{kind}                   histogram, submission to terminal status
    nexus_audits_finished_total{kind, status}            status: done | failed (failed includes an audit in
                                                         which no system could be read)
    nexus_discrepancies_total{severity}                  counted (not waived) discrepancies of done audits

Multiprocess (Celery prefork): counters and histograms are plain prometheus-client metrics, so with
``PROMETHEUS_MULTIPROC_DIR`` set every pool child writes its own file and the worker's main process merges them at
scrape time (:mod:`workers.metrics_server`). The breaker state is deliberately NOT a per-process gauge: a transition
is only seen by the process that made it, so a gauge set there would be stale in every other process (and in
"livemostrecent" mode lost when that child exits). :class:`BreakerStateCollector` reads the shared state from Redis
at each scrape instead: every worker reports the same truth, so aggregate it with ``max``, not ``sum``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pybreaker
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from clients.breaker import breaker_state, install_listener
from nexus.systems import System

log = logging.getLogger("nexus.metrics")

#: ``nexus_breaker_state`` values.
BREAKER_STATE_VALUES: dict[str, float] = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
FETCH_OUTCOMES = ("ok", "retry", "failed", "breaker_open")
#: Countdowns follow 2, 4, 8 s by default (capped by NEXUS_RETRY_BACKOFF_MAX_S); Retry-After may ask for more.
COUNTDOWN_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 120.0, 300.0)
#: From a one-person audit in seconds to a fleet audit in hours.
AUDIT_DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                          14400.0, 43200.0)


def _system(name: str) -> str:
    """The lower-case id for an id or a display name; anything else lower-cased (labels stay one spelling)."""
    try:
        return System.parse(name).value
    except ValueError:
        return name.strip().lower()


class NexusMetrics:
    """The counters and histograms, registered on ``registry`` (a private one by default, so several instances can
    coexist in tests; in multiprocess mode the registry is irrelevant: the files are what is scraped)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.fetch_attempts = Counter("nexus_fetch_attempts", "Fetch task attempts by system and outcome.",
                                      ["system", "outcome"], registry=r)
        self.fetch_retries = Counter("nexus_fetch_retries", "Fetches rescheduled with a countdown, by error kind.",
                                     ["system", "error_kind"], registry=r)
        self.retry_countdown = Histogram("nexus_fetch_retry_countdown_seconds", "Countdown before a fetch retry.",
                                         ["system"], buckets=COUNTDOWN_BUCKETS, registry=r)
        self.breaker_transitions = Counter("nexus_breaker_transitions",
                                           "Circuit breaker transitions (counted once, by the process that made it).",
                                           ["system", "from", "to"], registry=r)
        self.audit_duration = Histogram("nexus_audit_duration_seconds", "Audit duration from submission to the end.",
                                        ["kind"], buckets=AUDIT_DURATION_BUCKETS, registry=r)
        self.audits_finished = Counter("nexus_audits_finished", "Audits that reached a terminal status.",
                                       ["kind", "status"], registry=r)
        self.discrepancies = Counter("nexus_discrepancies", "Discrepancies reported by finished audits.",
                                     ["severity"], registry=r)

    def fetch_attempt(self, system: str, outcome: str) -> None:
        self.fetch_attempts.labels(system=_system(system), outcome=outcome).inc()

    def fetch_retry(self, system: str, error_kind: str, countdown_s: float) -> None:
        sid = _system(system)
        self.fetch_retries.labels(system=sid, error_kind=error_kind or "unknown").inc()
        self.retry_countdown.labels(system=sid).observe(max(0.0, float(countdown_s)))

    def breaker_transition(self, system: str, old: str, new: str) -> None:
        self.breaker_transitions.labels(**{"system": _system(system), "from": old, "to": new}).inc()

    def audit_finished(self, kind: str, status: str, duration_s: float, severities: Iterable[str]) -> None:
        self.audits_finished.labels(kind=kind, status=status).inc()
        self.audit_duration.labels(kind=kind).observe(max(0.0, float(duration_s)))
        counts: dict[str, int] = {}
        for severity in severities:
            key = str(severity or "unknown").lower()
            counts[key] = counts.get(key, 0) + 1
        for severity, n in counts.items():
            self.discrepancies.labels(severity=severity).inc(n)


_lock = threading.Lock()
_current: NexusMetrics | None = None


def current() -> NexusMetrics:
    """This process's metrics, built on first use (after the worker has chosen its multiprocess directory)."""
    global _current
    with _lock:
        if _current is None:
            _current = NexusMetrics()
        return _current


def use_metrics(metrics: NexusMetrics | None) -> None:
    """Install ``metrics`` as this process's instance (tests); None forgets it, so the next hook builds a new one
    (the worker does this after switching prometheus-client to multiprocess mode)."""
    global _current
    with _lock:
        _current = metrics


def _safely(action: Callable[[NexusMetrics], None], what: str) -> None:
    try:
        action(current())
    except Exception as exc:  # a metric must never fail a task
        log.debug("metrics: %s not recorded: %s", what, exc, exc_info=True)


# -- the hooks (names and signatures are what the call sites use) -----------------------------------------------------


def fetch_attempt(system: str, outcome: str) -> None:
    """One fetch attempt finished: outcome is ok | retry | failed | breaker_open."""
    _safely(lambda m: m.fetch_attempt(system, outcome), "fetch_attempt")


def fetch_retry(system: str, error_kind: str, countdown_s: float) -> None:
    """A fetch was rescheduled with a countdown."""
    _safely(lambda m: m.fetch_retry(system, error_kind, countdown_s), "fetch_retry")


def breaker_transition(system: str, old: str, new: str) -> None:
    """A breaker changed state (fired once across all processes by the process that made the transition)."""
    _safely(lambda m: m.breaker_transition(system, old, new), "breaker_transition")


def audit_finished(kind: str, status: str, duration_s: float, severities: Iterable[str]) -> None:
    """An audit reached a terminal status; ``severities`` lists the severity of every discrepancy."""
    _safely(lambda m: m.audit_finished(kind, status, duration_s, severities), "audit_finished")


def audit_failed(kind: str, duration_s: float) -> None:
    """An audit ended with status ``failed``: it broke, or no system could be read (no discrepancy counts)."""
    audit_finished(kind, "failed", duration_s, ())


class BreakerTransitions(pybreaker.CircuitBreakerListener):
    """Counts each breaker transition in ``nexus_breaker_transitions_total``.

    A breaker calls ``state_change`` only in the process that made the transition (see :mod:`clients.breaker`), so
    each transition is counted once fleet-wide. States are counted in Nexus's spelling (``half_open``).
    """

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        breaker_transition(str(getattr(cb, "system", cb.name)), _state_name(old_state), _state_name(new_state))

    def __repr__(self) -> str:
        return "BreakerTransitions()"


def _state_name(state: pybreaker.CircuitBreakerState | None) -> str:
    return str(state.name if state is not None else pybreaker.STATE_CLOSED).replace("-", "_")


#: The listener :func:`install` puts on every breaker of the process.
BREAKER_LISTENER = BreakerTransitions()


def install() -> None:
    """Count this process's breaker transitions (the worker calls it at start; idempotent)."""
    install_listener(BREAKER_LISTENER)


# -- breaker state, read from the shared store at scrape time ----------------------------------------------------------

StateReader = Callable[[str], dict[str, Any]]


def _read_breaker_state(system: str) -> dict[str, Any]:
    return breaker_state(system)


class BreakerStateCollector:
    """``nexus_breaker_state``, ``nexus_breaker_failures`` and ``nexus_breaker_store_up``, from Redis per scrape.

    ``read`` returns :func:`clients.breaker.breaker_state`'s dict for a system id (injectable for tests). A system
    whose state cannot be read is left out of the scrape (no stale value) and the store is reported down.
    """

    def __init__(self, systems: Sequence[str] | None = None, read: StateReader | None = None) -> None:
        if systems is None:
            systems = [s.value for s in System]
        self.systems = list(systems)
        self.read = read or _read_breaker_state

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("nexus_breaker_state", "Shared circuit state: 0 closed, 1 half-open, 2 open.",
                              labels=["system"]),
            GaugeMetricFamily("nexus_breaker_failures", "Consecutive failures in the shared breaker count.",
                              labels=["system"]),
            GaugeMetricFamily("nexus_breaker_store_up", "1 if the breaker store (Redis) answered this scrape."),
        )

    def describe(self) -> Iterator[Metric]:
        # Without describe() the registry would collect (i.e. query Redis) just to register the collector.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        state, failures, up = self._families()
        store_ok = True
        for system in self.systems:
            try:
                snap = self.read(system)
            except Exception as exc:
                log.debug("metrics: breaker state of %s unreadable: %s", system, exc)
                store_ok = False
                break
            if not snap.get("storage_ok", True) or snap.get("state") not in BREAKER_STATE_VALUES:
                store_ok = False
            if not store_ok:
                break  # one store for every system: do not wait on each of them in turn
            state.add_metric([system], BREAKER_STATE_VALUES[str(snap["state"])])
            failures.add_metric([system], float(snap.get("failures") or 0))
        up.add_metric([], 1.0 if store_ok else 0.0)
        yield state
        yield failures
        yield up


__all__ = [
    "AUDIT_DURATION_BUCKETS",
    "BREAKER_LISTENER",
    "BREAKER_STATE_VALUES",
    "COUNTDOWN_BUCKETS",
    "FETCH_OUTCOMES",
    "BreakerStateCollector",
    "BreakerTransitions",
    "NexusMetrics",
    "audit_failed",
    "audit_finished",
    "breaker_transition",
    "current",
    "fetch_attempt",
    "fetch_retry",
    "install",
    "use_metrics",
]
