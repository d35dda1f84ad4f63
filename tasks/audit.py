"""Orchestration: fan an audit out into per-system fetch chords, and finish it with exactly one report.

User and bulk audits run in parts of ``NEXUS_BULK_CHUNK_SIZE`` people; at most ``NEXUS_BULK_WINDOW`` parts are in
flight (bounded concurrency), each finished part dispatching the next. A device audit runs two stages: the device
systems (Intune, Lansweeper, Helix), then the people and shipments those records name (AD, Entra, Workday, FedEx).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task, chord

from nexus import metrics
from nexus.audits.progress import get_store
from nexus.settings import get_settings
from nexus.systems import USER_SYSTEMS, System
from tasks.fetch import FETCH_TASKS
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")

DEVICE_STAGE1 = (System.INTUNE, System.LANSWEEPER, System.HELIX)


def people_part_signature(audit_id: str, part: int, total_parts: int, emails: list[str], chunk_size: int) -> Any:
    from tasks.compare import compare_people

    header = [FETCH_TASKS[s].s(audit_id, "people", emails) for s in USER_SYSTEMS]
    return chord(header, compare_people.s(audit_id, part, total_parts, chunk_size))


def audit_chunk_size(store: Any, audit_id: str) -> int:
    """The part size of this audit, fixed by the first dispatcher and stored with the audit: every worker then cuts
    the subject list the same way, whatever its own NEXUS_BULK_CHUNK_SIZE."""
    key = store.key(audit_id)
    store.r.hsetnx(key, "chunk_size", get_settings().bulk_chunk_size)
    return int(store.r.hget(key, "chunk_size") or get_settings().bulk_chunk_size)


def dispatch_people_part(audit_id: str, part: int, subjects_count: int | None = None) -> bool:
    """Enqueue one part (once: a redelivered task that dispatches again is a no-op). ``subjects_count`` saves a
    read when the caller already has the audit's meta.

    The part is marked dispatched AFTER it is published: a dispatcher killed in between leaves the part to its
    redelivered task, which publishes it again (a duplicate part only repeats its lookups: its result is stored
    once). A mark taken before the publish would leave the part, and the audit, waiting forever
    (tests/test_worker_death.py)."""
    store = get_store()
    size = audit_chunk_size(store, audit_id)
    total = store.meta(audit_id)["subjects_count"] if subjects_count is None else subjects_count
    total_parts = max(1, -(-total // size))
    if part >= total_parts:
        return False
    mark = store.key(audit_id, f"dispatched:{part}")
    if store.r.exists(mark):
        return False
    emails = store.subjects(audit_id, part * size, part * size + size - 1)
    people_part_signature(audit_id, part, total_parts, emails, size).apply_async()
    store.r.set(mark, "1", ex=store.ttl_s)
    return True


def _bulk_by_snapshot(emails: int) -> bool:
    """A long list is cheaper as a snapshot of the people systems (nexus.fleet.cost, NEXUS_FLEET_BULK_SNAPSHOT)."""
    from nexus.fleet.cost import prefer_snapshot
    from tasks.fleet import snapshot_store

    try:
        return prefer_snapshot(emails, get_settings().fleet_bulk_snapshot, snapshot_store())
    except Exception as exc:  # the decision is an optimisation: the per-person path always works
        log.warning("bulk audit path decision failed (%s): auditing person by person", exc)
        return False


# ignore_result: the return value is informational; storing it would cost result-backend writes on every audit's
# critical path (and a result subscription in the submitting process).
@celery_app.task(name="nexus.audit.plan", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def plan_audit(self: Task, audit_id: str) -> dict[str, Any]:
    store = get_store()
    meta = store.meta(audit_id)
    if meta["status"] == "queued":  # store.mark_running, without reading the meta a second time
        store.set_status(audit_id, "running")
    kind = meta["kind"]
    if kind == "bulk" and _bulk_by_snapshot(meta["subjects_count"]):
        from tasks.fleet import start_fleet

        return start_fleet(audit_id)
    if kind in ("user", "bulk"):
        count = meta["subjects_count"]
        size = audit_chunk_size(store, audit_id)
        first = range(min(get_settings().bulk_window, max(1, -(-count // size))))
        dispatched = sum(dispatch_people_part(audit_id, part, count) for part in first)
        return {"audit_id": audit_id, "parts_dispatched": dispatched}
    if kind == "device":
        from tasks.compare import device_stage2

        serials = store.subjects(audit_id)
        store.set_total(audit_id, 2)  # two stages
        header = [FETCH_TASKS[s].s(audit_id, "devices", serials) for s in DEVICE_STAGE1]
        chord(header, device_stage2.s(audit_id)).apply_async()
        return {"audit_id": audit_id, "stage": 1}
    if kind == "fleet":
        from tasks.fleet import start_fleet

        return start_fleet(audit_id)
    if store.finish_once(audit_id, {}, status="failed", error=f"unknown audit kind {kind!r}"):
        metrics.audit_failed(kind, time.time() - meta["created_at"])
    return {"audit_id": audit_id, "error": "unknown kind"}
