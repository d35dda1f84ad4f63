"""Chord bodies: build reports from whatever the fetches returned (failure markers included) and store them.

They run with ``ignore_result``: what they build lives in the audit store, and their return values (informational)
would only cost result-backend writes on each audit's critical path."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from celery import Task, chord
from celery.exceptions import Retry

from nexus.audits.assemble import bulk_report, device_full_report, device_owner_refs, people_reports, split_results
from nexus.audits.progress import get_store
from nexus.errors import error_dict, error_text
from nexus.systems import System
from tasks.fetch import FETCH_TASKS
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")


def _finish(audit_id: str, report: dict[str, Any]) -> None:
    store = get_store()
    if store.is_finished(audit_id):
        return
    meta = store.meta(audit_id)
    report = {"audit_id": audit_id, "kind": meta["kind"], "generated_at": datetime.now(UTC).isoformat(), **report}
    from nexus.settings import get_settings

    remediate = get_settings().helix_remediation
    if remediate:
        from nexus.remediation import pending_section

        report["remediation"] = pending_section(report)
    if store.finish_once(audit_id, report):
        from nexus import metrics
        from nexus.exports import discrepancies_of

        metrics.audit_finished(meta["kind"], "done", max(time.time() - meta["created_at"], 0.0),
                               [d["severity"] for d in discrepancies_of(report)])
        log.info("audit %s done: %s discrepancies", audit_id, report.get("discrepancy_count"),
                 extra={"audit_id": audit_id})
        if remediate:
            _enqueue_remediation(audit_id)


@contextlib.contextmanager
def audit_failure_guard(audit_id: str, step: str) -> Iterator[None]:
    """An unexpected error in a step that builds the report fails the AUDIT (status failed, with the error), instead
    of leaving it running forever. Failed fetches never get here: they are markers, and the report is built."""
    try:
        yield
    except Retry:
        raise
    except Exception as exc:
        log.exception("%s of audit %s failed", step, audit_id, extra={"audit_id": audit_id})
        try:
            store = get_store()
            meta = store.meta(audit_id)
            if store.finish_once(audit_id, {}, status="failed", error=f"{step} failed: {error_text(exc)}"):
                from nexus import metrics

                metrics.audit_failed(meta["kind"], max(time.time() - meta["created_at"], 0.0))
        except Exception as inner:  # Redis gone too: nothing more can be recorded
            log.warning("audit %s could not be marked failed: %s", audit_id, inner, extra={"audit_id": audit_id})


def _enqueue_remediation(audit_id: str) -> None:
    """Remediation runs after the report is stored, in its own task: it never delays or fails the audit."""
    try:
        remediate_audit.apply_async(args=[audit_id], retry=False)
    except Exception as exc:
        log.warning("remediation of audit %s not enqueued: %s", audit_id, exc, extra={"audit_id": audit_id})
        from nexus.remediation import write_section

        with contextlib.suppress(Exception):  # the audit is done; a note that cannot be written is only logged
            write_section(get_store(), audit_id, {"status": "failed", "error": {
                "type": type(exc).__name__, "kind": "unexpected", "message": f"not enqueued: {str(exc)[:200]}"}})


@celery_app.task(name="nexus.compare.remediate", bind=True, acks_late=True, reject_on_worker_lost=True,
                 ignore_result=True)
def remediate_audit(self: Task, audit_id: str) -> dict[str, Any]:
    """Open one Helix incident per critical discrepancy of a finished audit (nexus/remediation.py)."""
    from clients.breaker import get_breaker
    from nexus.remediation import policy_from_settings, remediate_stored_report, write_section
    from nexus.settings import get_settings
    from tasks.clients import get_client

    store = get_store()
    try:
        section = remediate_stored_report(audit_id, store, get_client(System.HELIX),
                                          policy_from_settings(get_settings()),
                                          call=get_breaker(System.HELIX.value).call)
    except Exception as exc:  # e.g. Redis gone mid-run: record it if we can, never crash the worker's task
        log.exception("remediation of audit %s failed", audit_id, extra={"audit_id": audit_id})
        section = {"status": "failed", "error": error_dict(exc)}
        with contextlib.suppress(Exception):
            write_section(store, audit_id, section)
    return {"audit_id": audit_id, **{k: v for k, v in section.items() if k != "items"}}


@celery_app.task(name="nexus.compare.people", bind=True, acks_late=True, reject_on_worker_lost=True,
                 ignore_result=True)
def compare_people(
    self: Task, results: list[dict[str, Any]], audit_id: str, part: int, total_parts: int, chunk_size: int = 0
) -> int:
    from nexus.settings import get_settings
    from tasks.audit import dispatch_people_part

    with audit_failure_guard(audit_id, "the comparison"):
        store = get_store()
        size = chunk_size or get_settings().bulk_chunk_size
        emails = store.subjects(audit_id, part * size, part * size + size - 1)
        entries = people_reports(emails, results)
        store.save_part(audit_id, part, entries, done_increment=len(emails))
        if part + get_settings().bulk_window < total_parts:
            dispatch_people_part(audit_id, part + get_settings().bulk_window)
        if store.parts_count(audit_id) >= total_parts:
            meta = store.meta(audit_id)
            if meta["kind"] == "user":
                _finish(audit_id, entries[0])
            else:
                ordered = [e for _, part_entries in sorted(store.iter_parts(audit_id)) for e in part_entries]
                _finish(audit_id, bulk_report(ordered))
        return len(entries)
    return 0


@celery_app.task(name="nexus.compare.device_stage2", bind=True, acks_late=True, reject_on_worker_lost=True,
                 ignore_result=True)
def device_stage2(self: Task, results: list[dict[str, Any]], audit_id: str) -> dict[str, Any]:
    """Stage 1 is in: look up the people the device records name, and the return shipments' tracking numbers."""
    with audit_failure_guard(audit_id, "the device audit's second stage"):
        store = get_store()
        serial = store.subjects(audit_id)[0]
        data, _errors = split_results(results)
        refs, numbers = device_owner_refs(serial, data)
        store.save_part(audit_id, 0, {"stage1": results}, done_increment=1)
        mark = store.key(audit_id, "dispatched:stage2")
        if store.r.exists(mark):
            return {"duplicate": True}  # a redelivered stage 1: stage 2 is already on its way
        header = []
        if refs:
            header += [FETCH_TASKS[s].s(audit_id, "people", refs) for s in (System.WORKDAY, System.AD, System.ENTRA)]
        if numbers:
            header.append(FETCH_TASKS[System.FEDEX].s(audit_id, "track", numbers))
        if not header:
            compare_device.delay([], audit_id)
        else:
            chord(header, compare_device.s(audit_id)).apply_async()
        # Marked after publishing (as tasks/audit.py dispatch_people_part): a stage killed in between is redelivered
        # and publishes again; the report is still stored once.
        store.r.set(mark, "1", ex=store.ttl_s)
        return {"refs": len(refs), "tracking_numbers": len(numbers)}
    return {}


@celery_app.task(name="nexus.compare.device", bind=True, acks_late=True, reject_on_worker_lost=True,
                 ignore_result=True)
def compare_device(self: Task, results: list[dict[str, Any]], audit_id: str) -> int:
    with audit_failure_guard(audit_id, "the device comparison"):
        store = get_store()
        serial = store.subjects(audit_id)[0]
        stage1 = dict(store.iter_parts(audit_id))[0]["stage1"]
        report = device_full_report(serial, stage1, results, datetime.now(UTC))
        store.save_part(audit_id, 1, {"stage2": results}, done_increment=1)
        _finish(audit_id, report)
        return int(report["discrepancy_count"])
    return 0
