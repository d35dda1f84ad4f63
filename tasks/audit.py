"""Orchestration: fan an audit out into per-system fetch chords (``nexus.audit.plan``).

User and bulk audits run in parts of ``NEXUS_BULK_CHUNK_SIZE`` people; at most ``NEXUS_BULK_WINDOW`` parts are in
flight (bounded concurrency), each finished part dispatching the next (:mod:`tasks.compare`). A device audit runs
two stages: the device inventories (Intune, Lansweeper, Helix), then the people and shipments those records name.
Fleet audits, and bulk audits that are cheaper as snapshots, start the snapshot chord (:mod:`tasks.fleet`).
Task modules build each other's signatures by task name (:mod:`tasks.signatures`), never by import.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from nexus.audits.finish import fail_audit
from nexus.audits.policy_pin import audit_policy
from nexus.fleet.cost import prefer_snapshot
from nexus.runtime import current
from tasks.signatures import dispatch_people_part, start_device_audit, start_fleet
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")


def _bulk_by_snapshot(emails: int) -> bool:
    """A long list is cheaper as a snapshot of the people systems (nexus.fleet.cost, NEXUS_FLEET_BULK_SNAPSHOT)."""
    rt = current()
    try:
        return prefer_snapshot(emails, rt.settings.fleet_bulk_snapshot, rt.snapshot_store())
    except Exception as exc:  # the decision is an optimisation: the per-person path always works
        log.warning("bulk audit path decision failed (%s): auditing person by person", exc)
        return False


# ignore_result: the return value is informational; storing it would cost result-backend writes on every audit's
# critical path (and a result subscription in the submitting process).
@celery_app.task(name="nexus.audit.plan", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def plan_audit(self: Task, audit_id: str) -> dict[str, Any]:
    rt = current()
    store = rt.audit_store()
    meta = store.meta(audit_id)
    if meta["status"] == "queued":  # store.mark_running, without reading the meta a second time
        store.set_status(audit_id, "running")
    kind = meta["kind"]
    audit_policy(store, audit_id, rt.settings)  # one policy for every part of this audit (nexus.audits.policy_pin)
    if kind == "fleet" or (kind == "bulk" and _bulk_by_snapshot(meta["subjects_count"])):
        return start_fleet(store, audit_id)
    if kind in ("user", "bulk"):
        count = meta["subjects_count"]
        size = store.chunk_size(audit_id, rt.settings.bulk_chunk_size)
        first = range(min(rt.settings.bulk_window, max(1, -(-count // size))))
        dispatched = sum(dispatch_people_part(store, audit_id, part, rt.settings.bulk_chunk_size, count)
                         for part in first)
        return {"audit_id": audit_id, "parts_dispatched": dispatched}
    if kind == "device":
        return start_device_audit(store, audit_id)
    fail_audit(store, audit_id, f"unknown audit kind {kind!r}", hooks=rt.hooks)
    return {"audit_id": audit_id, "error": "unknown kind"}
