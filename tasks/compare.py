"""Chord bodies: build reports from whatever the fetches returned (failure markers included) and store them."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from celery import Task, chord

from nexus.audits.assemble import bulk_report, device_full_report, device_owner_refs, people_reports, split_results
from nexus.audits.progress import get_store
from nexus.systems import System
from tasks.fetch import FETCH_TASKS
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")


def _finish(audit_id: str, report: dict[str, Any]) -> None:
    store = get_store()
    if store.claim_finish(audit_id):
        meta = store.meta(audit_id)
        report = {"audit_id": audit_id, "kind": meta["kind"], "generated_at": datetime.now(UTC).isoformat(),
                  **report}
        store.finish(audit_id, report)
        from nexus import metrics
        from nexus.exports import discrepancies_of

        metrics.audit_finished(meta["kind"], "done", max(time.time() - meta["created_at"], 0.0),
                               [d["severity"] for d in discrepancies_of(report)])
        log.info("audit %s done: %s discrepancies", audit_id, report.get("discrepancy_count"),
                 extra={"audit_id": audit_id})


@celery_app.task(name="nexus.compare.people", bind=True, acks_late=True, reject_on_worker_lost=True)
def compare_people(self: Task, results: list[dict[str, Any]], audit_id: str, part: int, total_parts: int) -> int:
    from nexus.settings import get_settings
    from tasks.audit import dispatch_people_part

    store = get_store()
    size = get_settings().bulk_chunk_size
    emails = store.subjects(audit_id, part * size, part * size + size - 1)
    entries = people_reports(emails, results)
    store.save_part(audit_id, part, entries, done_increment=len(emails))
    dispatch_people_part(audit_id, part + get_settings().bulk_window)
    if store.parts_count(audit_id) >= total_parts:
        meta = store.meta(audit_id)
        if meta["kind"] == "user":
            _finish(audit_id, entries[0])
        else:
            ordered = [e for _, part_entries in sorted(store.iter_parts(audit_id)) for e in part_entries]
            _finish(audit_id, bulk_report(ordered))
    return len(entries)


@celery_app.task(name="nexus.compare.device_stage2", bind=True, acks_late=True, reject_on_worker_lost=True)
def device_stage2(self: Task, results: list[dict[str, Any]], audit_id: str) -> dict[str, Any]:
    """Stage 1 is in: look up the people the device records name, and the return shipments' tracking numbers."""
    store = get_store()
    serial = store.subjects(audit_id)[0]
    data, _errors = split_results(results)
    refs, numbers = device_owner_refs(serial, data)
    store.save_part(audit_id, 0, {"stage1": results}, done_increment=1)
    header = []
    if refs:
        header += [FETCH_TASKS[s].s(audit_id, "people", refs) for s in (System.WORKDAY, System.AD, System.ENTRA)]
    if numbers:
        header.append(FETCH_TASKS[System.FEDEX].s(audit_id, "track", numbers))
    if not header:
        compare_device.delay([], audit_id)
    else:
        chord(header, compare_device.s(audit_id)).apply_async()
    return {"refs": len(refs), "tracking_numbers": len(numbers)}


@celery_app.task(name="nexus.compare.device", bind=True, acks_late=True, reject_on_worker_lost=True)
def compare_device(self: Task, results: list[dict[str, Any]], audit_id: str) -> int:
    store = get_store()
    serial = store.subjects(audit_id)[0]
    stage1 = dict(store.iter_parts(audit_id))[0]["stage1"]
    report = device_full_report(serial, stage1, results, datetime.now(UTC))
    store.save_part(audit_id, 1, {"stage2": results}, done_increment=1)
    _finish(audit_id, report)
    return int(report["discrepancy_count"])
