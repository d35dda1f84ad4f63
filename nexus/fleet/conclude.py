"""The end of a fleet audit (or of a bulk audit answered from snapshots): judge the snapshots, compare, report.

Two chord bodies call in here (:mod:`tasks.fleet`): :func:`compare_people_early` compares the people (Workday, AD,
Entra) as soon as their snapshots are in, while the device systems are still paging, and stores its findings;
:func:`conclude` judges every snapshot (mass-drift guard, last-known-good fallback), runs the device rules, merges
both parts (redoing the people part when it judged other systems available), stores the report once, then settles
what the audit leaves behind: the believed snapshots become the last good ones, the rest is deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nexus.audits.finish import fail_audit, finish_report
from nexus.audits.policy_pin import audit_policy
from nexus.fleet.assess import Assessment, assess
from nexus.fleet.compare import Comparison, FleetComparer, merge
from nexus.fleet.context import FleetContext, peak_rss_mb
from nexus.fleet.report import Annotators, bulk_snapshot_report, discard, fleet_report, promote
from nexus.history import HistoryStore
from nexus.registry import listed_systems
from nexus.systems import USER_SYSTEMS, System
from nexus.waivers import WaiverStore

log = logging.getLogger("nexus.tasks")

PEOPLE_RESULT = "people"


def audit_systems(kind: str) -> tuple[System, ...]:
    """A fleet audit reads every system; a bulk audit answered from snapshots only the people systems."""
    return USER_SYSTEMS if kind == "bulk" else listed_systems()


def judge(ctx: FleetContext, audit_id: str, kind: str, now: datetime,
          systems: tuple[System, ...] | None = None) -> Assessment:
    settings = ctx.settings
    return assess(ctx.snaps, audit_id, systems or audit_systems(kind), now=now.timestamp(),
                  guard_drop=settings.fleet_guard_drop, fallback=settings.fleet_stale_fallback,
                  stale_max_age_s=settings.fleet_stale_max_age_s)


def compare_people_early(ctx: FleetContext, audit_id: str) -> dict[str, Any]:
    """The people part of a fleet comparison, stored for the final part (which redoes it if this one failed)."""
    try:
        assessment = judge(ctx, audit_id, "fleet", datetime.now(UTC), USER_SYSTEMS)
        comparer = FleetComparer(ctx.snaps, assessment, datetime.now(UTC),
                                 policy=audit_policy(ctx.store, audit_id, ctx.settings),
                                 entra_sign_ins=ctx.settings.entra_sign_in_activity)
        part = comparer.people()
        ctx.snaps.put_result(audit_id, PEOPLE_RESULT, {
            "discrepancies": part.discrepancies, "people": part.people, "timings": part.timings,
            "rss_mb": round(peak_rss_mb(), 1), "available": sorted(assessment.available),
            "policy": comparer.engine_policy.hash})
    except Exception as exc:  # the final part compares the people itself
        log.warning("fleet audit %s: people comparison failed early (%s): redone at the end", audit_id, exc,
                    extra={"audit_id": audit_id})
        return {"audit_id": audit_id, "ok": False}
    return {"audit_id": audit_id, "ok": True, "discrepancies": len(part.discrepancies)}


def conclude(ctx: FleetContext, audit_id: str, *,
             enqueue_remediation: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The final chord body: the report, stored once (a redelivery only settles what is left)."""
    if ctx.store.is_finished(audit_id):
        _judge_and_settle(ctx, audit_id, ctx.store.meta(audit_id)["kind"])
        return {"audit_id": audit_id, "duplicate": True}
    try:
        return _compare(ctx, audit_id, enqueue_remediation)
    except Exception as exc:
        log.exception("fleet comparison of audit %s failed", audit_id, extra={"audit_id": audit_id})
        fail_audit(ctx.store, audit_id, f"the comparison failed: {type(exc).__name__}: {exc}", hooks=ctx.hooks)
        return {"audit_id": audit_id, "error": type(exc).__name__}


def _promote(ctx: FleetContext, audit_id: str, assessment: Assessment) -> list[tuple[str, str]]:
    settings = ctx.settings
    return promote(ctx.snaps, audit_id, assessment, fallback=settings.fleet_stale_fallback,
                   keep_ttl_s=settings.fleet_stale_max_age_s, guard_ttl_s=settings.fleet_guard_ttl_s)


def _discard(ctx: FleetContext, audit_id: str, doomed: list[tuple[str, str]]) -> None:
    discard(ctx.snaps, doomed)
    ctx.snaps.delete_result(audit_id, PEOPLE_RESULT)


def _settle(ctx: FleetContext, audit_id: str, assessment: Assessment) -> None:
    _discard(ctx, audit_id, _promote(ctx, audit_id, assessment))


def _judge_and_settle(ctx: FleetContext, audit_id: str, kind: str) -> None:
    try:
        _settle(ctx, audit_id, judge(ctx, audit_id, kind, datetime.now(UTC)))
    except Exception as exc:  # the report is stored; the snapshot TTL is the backstop
        log.warning("fleet audit %s: snapshots not settled: %s", audit_id, exc, extra={"audit_id": audit_id})


def _people_part(ctx: FleetContext, comparer: FleetComparer, audit_id: str) -> tuple[Comparison, float | None]:
    """The stored people part when it judged the same systems available under the same policy (the file may have
    changed in between: one audit is graded by one policy), else the people compared here."""
    stored = ctx.snaps.get_result(audit_id, PEOPLE_RESULT)
    people_available = sorted(comparer.available & {s.value for s in USER_SYSTEMS})
    if (stored is not None and stored.get("available") == people_available
            and stored.get("policy") == comparer.engine_policy.hash):
        return Comparison(stored["discrepancies"], None, stored["people"], 0, dict(stored["timings"])), \
            stored.get("rss_mb")
    return comparer.people(), None


def _compare(ctx: FleetContext, audit_id: str,
             enqueue_remediation: Callable[[str], None] | None) -> dict[str, Any]:
    store = ctx.store
    meta = store.meta(audit_id)
    now = datetime.now(UTC)
    assessment = judge(ctx, audit_id, meta["kind"], now)
    comparer = FleetComparer(ctx.snaps, assessment, now, policy=audit_policy(store, audit_id, ctx.settings),
                             entra_sign_ins=ctx.settings.entra_sign_in_activity)
    started = time.perf_counter()
    people_rss: float | None = None
    if meta["kind"] == "bulk":
        comparison = comparer.run(subjects=store.subjects(audit_id))
        report = WaiverStore(store.r).apply_to_report(bulk_snapshot_report(assessment, comparison), now)
    else:
        people, people_rss = _people_part(ctx, comparer, audit_id)
        comparison = merge(people, comparer.devices())
        comparison.timings["final_s"] = round(time.perf_counter() - started, 3)
        annotators = Annotators(HistoryStore(store.r, ttl_s=ctx.settings.report_ttl_s), WaiverStore(store.r))
        report = fleet_report(audit_id, assessment, comparison, now, annotators=annotators,
                              kinds_off={**{k: f"the findings policy turns {k} off" for k in comparer.policy.kinds_off},
                                         **comparer.not_judged},
                              policy_hash=comparer.policy.hash)
        if comparer.not_judged:
            report["not_judged"] = dict(comparer.not_judged)
    report["stats"]["compare_peak_rss_mb"] = round(max(peak_rss_mb(), people_rss or 0.0), 1)
    for system, status in assessment.systems.items():
        if status.status in ("degraded", "stale"):
            log.warning("[%s] %s in fleet audit %s: %s", system.display, status.status, audit_id,
                        (status.degraded or {}).get("reason") or f"last good snapshot of {status.stale}",
                        extra={"system": system.value, "audit_id": audit_id})
    doomed = _promote(ctx, audit_id, assessment)  # before ``done`` is visible: the next audit stands on these
    finish_report(store, audit_id, report, hooks=ctx.hooks, remediate=ctx.settings.helix_remediation,
                  enqueue_remediation=enqueue_remediation, policy=comparer.policy.stamp())
    _discard(ctx, audit_id, doomed)
    return {"audit_id": audit_id, "discrepancy_count": report.get("discrepancy_count")}


__all__ = ["PEOPLE_RESULT", "audit_systems", "compare_people_early", "conclude", "judge"]
