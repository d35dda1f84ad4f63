"""Queues and routes: one queue per system so a slow system cannot starve the others, one for comparisons and
one for orchestration (fanning an audit out, building its report).

A queue only isolates a system if its consumers are its own: Celery's pool is shared by every queue one worker
consumes. :func:`default_layout` is how ``nexus worker`` (no ``--queues``) and docker-compose.yml deploy them: one
worker per system queue, one for ``compare`` and ``audit`` (tests/test_worker_layout.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus.systems import System

COMPARE_QUEUE = "compare"
AUDIT_QUEUE = "audit"
SYSTEM_QUEUES: tuple[str, ...] = tuple(s.value for s in System)
ALL_QUEUES: tuple[str, ...] = (*SYSTEM_QUEUES, COMPARE_QUEUE, AUDIT_QUEUE)
CORE_GROUP = "core"


@dataclass(frozen=True)
class WorkerGroup:
    """The queues one worker consumes (``name`` is its node-name prefix and compose service suffix)."""

    name: str
    queues: tuple[str, ...]


def default_layout() -> tuple[WorkerGroup, ...]:
    """A worker of its own for each system's queue, and one for the comparisons and orchestration."""
    return (*(WorkerGroup(q, (q,)) for q in SYSTEM_QUEUES), WorkerGroup(CORE_GROUP, (COMPARE_QUEUE, AUDIT_QUEUE)))


def fetch_task_name(system: System | str) -> str:
    return f"nexus.fetch_{System.parse(str(system)).value}"


def snapshot_task_name(system: System | str) -> str:
    return f"nexus.snapshot_{System.parse(str(system)).value}"


def task_routes() -> dict[str, dict[str, str]]:
    routes = {fetch_task_name(s): {"queue": s.value} for s in System}
    routes.update({snapshot_task_name(s): {"queue": s.value} for s in System})
    routes["nexus.compare.*"] = {"queue": COMPARE_QUEUE}
    routes["nexus.audit.*"] = {"queue": AUDIT_QUEUE}
    return routes
