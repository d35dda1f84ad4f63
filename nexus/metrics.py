"""Metrics hooks called by tasks, breakers and audits. Each is cheap and never raises.

The Prometheus implementation (counters and histograms, multiprocess-safe) lives behind these functions so the
call sites stay one line each; see README "Metrics".
"""

from __future__ import annotations

from collections.abc import Iterable


def fetch_attempt(system: str, outcome: str) -> None:
    """One fetch attempt finished: outcome is ok | retry | failed | breaker_open."""


def fetch_retry(system: str, error_kind: str, countdown_s: float) -> None:
    """A fetch was rescheduled with a countdown."""


def breaker_transition(system: str, old: str, new: str) -> None:
    """A breaker changed state (fired once across all processes by the process that made the transition)."""


def audit_finished(kind: str, status: str, duration_s: float, severities: Iterable[str]) -> None:
    """An audit reached a terminal status; ``severities`` lists the severity of every discrepancy."""
