"""What the fleet jobs need from the process they run in, passed in rather than looked up.

The Celery tasks build one :class:`FleetContext` per task run from the worker's runtime and hand it to the jobs in
:mod:`nexus.fleet.job` and :mod:`nexus.fleet.conclude`; tests build one over fakes.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nexus.audits.finish import FinishHooks
from nexus.audits.store import AuditStore
from nexus.fleet.runner import Gate
from nexus.fleet.store import SnapshotStore
from nexus.settings import Settings
from nexus.systems import System


class FleetHooks(FinishHooks, Protocol):
    """Observability hooks (no-ops unless the worker installed metrics)."""

    def fetch_attempt(self, system: str, outcome: str) -> None: ...
    def fetch_retry(self, system: str, error_kind: str, countdown_s: float) -> None: ...


@dataclass(slots=True)
class FleetContext:
    settings: Settings
    store: AuditStore
    snaps: SnapshotStore
    client: Callable[[System], Any]  # the process's client of a system
    gate: Callable[[System], Gate]  # the system's shared breaker
    hooks: FleetHooks


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


__all__ = ["FleetContext", "FleetHooks", "peak_rss_mb"]
