"""Queues and routes: one queue per system so a slow system cannot starve the others, one for comparisons and
one for orchestration (fanning an audit out, building its report)."""

from __future__ import annotations

from nexus.systems import System

COMPARE_QUEUE = "compare"
AUDIT_QUEUE = "audit"
SYSTEM_QUEUES: tuple[str, ...] = tuple(s.value for s in System)
ALL_QUEUES: tuple[str, ...] = (*SYSTEM_QUEUES, COMPARE_QUEUE, AUDIT_QUEUE)


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
