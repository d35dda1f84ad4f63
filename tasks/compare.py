"""Chord bodies of user, bulk and device audits: build reports from whatever the fetches returned (failure markers
included) and store them (:func:`nexus.audits.finish.finish_report`), and the remediation task that follows.

They run with ``ignore_result``: what they build lives in the audit store, and their return values (informational)
would only cost result-backend writes on each audit's critical path."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task

from nexus.audits.assemble import (
    bulk_report,
    device_full_report,
    device_owner_refs,
    people_reports,
    split_results,
)
from nexus.audits.finish import finish_report
from nexus.audits.followup import MAX_ROUNDS, next_round, replay
from nexus.audits.policy_pin import audit_policy
from nexus.errors import error_dict
from nexus.remediation import policy_from_settings, remediate_stored_report, write_section
from nexus.runtime import Runtime, current
from nexus.systems import System
from nexus.waivers import WaiverStore
from tasks.guards import audit_failure_guard, enqueue_remediation
from tasks.signatures import dispatch_device_stage2, dispatch_people_followup, dispatch_people_part
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")

_BODY_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True,
                                 "ignore_result": True}


def finish(rt: Runtime, audit_id: str, report: dict[str, Any]) -> None:
    report = WaiverStore(rt.redis).apply_to_report(report)  # waived findings are listed, not counted
    store = rt.audit_store()
    finish_report(store, audit_id, report, hooks=rt.hooks, remediate=rt.settings.helix_remediation,
                  enqueue_remediation=enqueue_remediation,
                  policy=audit_policy(store, audit_id, rt.settings).stamp())


@celery_app.task(name="nexus.compare.remediate", **_BODY_OPTIONS)
def remediate_audit(self: Task, audit_id: str) -> dict[str, Any]:
    """Open one Helix incident per critical discrepancy of a finished audit (nexus/remediation.py)."""
    rt = current()
    store = rt.audit_store()
    try:
        section = remediate_stored_report(audit_id, store, rt.client(System.HELIX),
                                          policy_from_settings(rt.settings), call=rt.breaker(System.HELIX).call)
    except Exception as exc:  # e.g. Redis gone mid-run: record it if we can, never crash the worker's task
        log.exception("remediation of audit %s failed", audit_id, extra={"audit_id": audit_id})
        section = {"status": "failed", "error": error_dict(exc)}
        with contextlib.suppress(Exception):
            write_section(store, audit_id, section)
    return {"audit_id": audit_id, **{k: v for k, v in section.items() if k != "items"}}


@celery_app.task(name="nexus.compare.people", **_BODY_OPTIONS)
def compare_people(
    self: Task, results: list[dict[str, Any]], audit_id: str, part: int, total_parts: int, chunk_size: int = 0,
    stage: int = 1,
) -> int:
    """A people part's lookups are in: stage 1 (the audited addresses) or a follow-up round (``stage`` >= 2). While
    the records found name workers or accounts nobody has asked about (nexus.audits.followup), the next round is
    dispatched and this body runs again with every answer so far: no ``orphaned_account`` or ``ambiguous_account``
    verdict is ever reached without them."""
    with audit_failure_guard(audit_id, "the comparison"):
        rt = current()
        store = rt.audit_store()
        window = rt.settings.bulk_window
        size = chunk_size or rt.settings.bulk_chunk_size
        emails = store.subjects(audit_id, part * size, part * size + size - 1)
        policy = audit_policy(store, audit_id, rt.settings)
        earlier = []
        for n in range(1, stage):
            stashed = store.stashed(audit_id, f"stage{n}:{part}")
            if stashed is None:
                raise RuntimeError(f"part {part}'s lookups of stage {n} are gone (expired or lost with Redis)")
            earlier.append(stashed)
        stage1, rounds = (earlier[0], [*earlier[1:], results]) if earlier else (results, [])
        if stage <= MAX_ROUNDS and (refs := next_round(replay(emails, stage1, rounds))):
            store.stash(audit_id, f"stage{stage}:{part}", results)
            dispatch_people_followup(store, audit_id, part, total_parts, size, stage + 1, refs)
            return 0
        entries = people_reports(emails, stage1, policy=policy, rounds=rounds)
        store.save_part(audit_id, part, entries, done_increment=len(emails))
        if part + window < total_parts:
            dispatch_people_part(store, audit_id, part + window, rt.settings.bulk_chunk_size)
        if store.parts_count(audit_id) >= total_parts:
            if store.meta(audit_id)["kind"] == "user":
                finish(rt, audit_id, entries[0])
            else:
                ordered = [e for _, part_entries in sorted(store.iter_parts(audit_id)) for e in part_entries]
                finish(rt, audit_id, bulk_report(ordered))
        return len(entries)
    return 0


@celery_app.task(name="nexus.compare.device_stage2", **_BODY_OPTIONS)
def device_stage2(self: Task, results: list[dict[str, Any]], audit_id: str) -> dict[str, Any]:
    """Stage 1 is in: look up the people the device records name, and the return shipments' tracking numbers."""
    with audit_failure_guard(audit_id, "the device audit's second stage"):
        store = current().audit_store()
        serial = store.subjects(audit_id)[0]
        data, _errors = split_results(results)
        refs, numbers = device_owner_refs(serial, data)
        store.save_part(audit_id, 0, {"stage1": results}, done_increment=1)
        if not dispatch_device_stage2(store, audit_id, refs, numbers):
            return {"duplicate": True}
        return {"refs": len(refs), "tracking_numbers": len(numbers)}
    return {}


@celery_app.task(name="nexus.compare.device", **_BODY_OPTIONS)
def compare_device(self: Task, results: list[dict[str, Any]], audit_id: str) -> int:
    with audit_failure_guard(audit_id, "the device comparison"):
        rt = current()
        store = rt.audit_store()
        serial = store.subjects(audit_id)[0]
        stage1 = dict(store.iter_parts(audit_id))[0]["stage1"]
        report = device_full_report(serial, stage1, results, datetime.now(UTC),
                                    policy=audit_policy(store, audit_id, rt.settings))
        store.save_part(audit_id, 1, {"stage2": results}, done_increment=1)
        finish(rt, audit_id, report)
        return int(report["discrepancy_count"])
    return 0
