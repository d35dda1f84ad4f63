"""Celery tasks of fleet audits: ``nexus.snapshot_<system>`` per listed system and the two comparison bodies.

Thin: the chord is built in :mod:`tasks.signatures`, a snapshot is a :class:`nexus.fleet.job.SnapshotJob` (which
returns a marker or the decision to retry in N seconds, raised here as Celery's countdown retry), and the
comparison is :mod:`nexus.fleet.conclude`. Arguments and results carry the audit id and markers only, never records
or secrets.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Retry

from nexus.fleet.conclude import compare_people_early, conclude
from nexus.fleet.context import FleetContext
from nexus.fleet.job import RetryIn, SnapshotJob
from nexus.registry import SPECS, SystemSpec, listed_systems
from nexus.runtime import Runtime, current
from nexus.systems import System
from tasks.guards import audit_failure_guard, enqueue_remediation
from workers.app import celery_app
from workers.outcome_events import MARKER_AWARE_REQUEST


def fleet_context(rt: Runtime) -> FleetContext:
    return FleetContext(settings=rt.settings, store=rt.audit_store(), snaps=rt.snapshot_store(), client=rt.client,
                        gate=rt.breaker, hooks=rt.hooks)


def run_snapshot(task: Task, system: System, audit_id: str) -> dict[str, Any]:
    """The system's marker. A countdown retry that cannot be published (the broker refused it) ends the snapshot
    failed instead: Celery would turn that error into ``Reject`` and the chord would never complete."""
    job = SnapshotJob(fleet_context(current()), audit_id, system, task.request.retries + 1)
    outcome = job.run()
    if not isinstance(outcome, RetryIn):
        return outcome
    try:
        raise task.retry(countdown=outcome.seconds, max_retries=None)
    except Retry:
        raise
    except Exception as exc:
        return job.fail(exc)


_SNAPSHOT_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True,
                                     "max_retries": None, "Request": MARKER_AWARE_REQUEST}


def _snapshot_task(spec: SystemSpec) -> Task:
    """``nexus.snapshot_<id>`` on the system's queue. A system that runs ``after`` another is chained to it: it
    receives that system's marker and returns both, so the chord sees every system."""
    system = spec.system
    if spec.after is None:
        def snapshot(self: Task, audit_id: str) -> Any:
            return run_snapshot(self, system, audit_id)
    else:
        def snapshot(self: Task, previous: dict[str, Any], audit_id: str) -> Any:  # type: ignore[misc]
            return [previous, run_snapshot(self, system, audit_id)]
    snapshot.__name__ = snapshot.__qualname__ = f"snapshot_{system.value}"
    registered: Task = celery_app.task(name=spec.snapshot_task, **_SNAPSHOT_OPTIONS)(snapshot)
    return registered


SNAPSHOT_TASKS: dict[System, Task] = {s: _snapshot_task(SPECS[s]) for s in listed_systems()}


@celery_app.task(name="nexus.compare.fleet_people", bind=True, acks_late=True, reject_on_worker_lost=True)
def compare_fleet_people(self: Task, results: list[Any], audit_id: str) -> dict[str, Any]:
    """The people part of a fleet comparison, stored for the final part (which redoes it if this one failed)."""
    return compare_people_early(fleet_context(current()), audit_id)  # never raises: the final part redoes it


@celery_app.task(name="nexus.compare.fleet", bind=True, acks_late=True, reject_on_worker_lost=True)
def compare_fleet(self: Task, results: list[Any], audit_id: str) -> dict[str, Any]:
    """The chord body: results are the snapshot markers (the state itself is in Redis)."""
    with audit_failure_guard(audit_id, "the fleet comparison"):
        return conclude(fleet_context(current()), audit_id, enqueue_remediation=enqueue_remediation)
    return {"audit_id": audit_id, "status": "failed"}


__all__ = ["SNAPSHOT_TASKS", "compare_fleet", "compare_fleet_people", "run_snapshot"]
