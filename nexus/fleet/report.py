"""The fleet report, and what a finished fleet audit leaves behind (last good sizes, kept snapshots).

Report (``kind: fleet`` and ``audit_id``/``generated_at`` are added by ``tasks.compare._finish``)::

    scope                  "fleet"
    systems_checked        every system, display names
    systems_available      read (fresh, degraded or stale): compared
    systems_failed         not read: never compared, their findings absent (never "everyone missing")
    systems_degraded       read but shrunk past the guard: absence findings suppressed
    systems_stale          failed now, last good snapshot used instead
    systems                {System: {status, records, pages, fetches, failed_attempts, retries, duration_s,
                                     peak_rss_mb}}
    errors                 {System: {type, kind, message, ...}} of failed (and stale) systems
    degraded               {System: {records, last_good, reason}}
    stale                  {System: {age_s, audit_id, taken_at}}
    people, devices        people correlated, serials compared
    discrepancy_count      active discrepancies (not waived, not suppressed)
    summary                nexus.drift.engine.summarize of the active ones
    discrepancies          [{subject, field, system_a, value_a, system_b, value_b, severity, matched_on?,
                             history, since, changed_from?}]
    waived, waived_count   discrepancies a waiver covers (each with "waiver"), not counted
    history                {previous_audit_id, new, persisting, resolved, unknown}
    resolved, unknown      the previous fleet audit's findings now gone / not re-checkable (a system failed)
    suppressed             {count, by_system}: absence findings the mass-drift guard dropped
    stats                  {timings: {load_people_s, people_s (the people part, run while the device systems
                           were still paging), load_devices_s, devices_s, final_s (the final part: device rules,
                           merge)}, compare_peak_rss_mb}

A bulk audit answered from snapshots has the bulk report's shape (``nexus.audits.assemble.bulk_report``) plus
``path: "snapshot"``, ``systems``, ``degraded`` and ``stale``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nexus.drift.engine import summarize
from nexus.fleet.assess import Assessment
from nexus.fleet.compare import Comparison
from nexus.fleet.guard import suppress
from nexus.fleet.store import SnapshotStore
from nexus.history import HistoryStore
from nexus.registry import STREAMS, listed_systems
from nexus.systems import System
from nexus.waivers import WaiverStore

log = logging.getLogger("nexus.fleet")

#: Systems a fleet audit reads, in report order: every system with a listing (the registry's streams).
FLEET_SYSTEMS: tuple[System, ...] = listed_systems()


def system_rows(assessment: Assessment) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for system, status in assessment.systems.items():
        streams = [assessment.streams[name] for name in STREAMS[system]]
        states = [s.state for s in streams if s.state is not None]
        row: dict[str, Any] = {
            "status": status.status,
            "records": streams[0].records if streams[0].usable else 0,  # Helix: assets (tickets below)
            "pages": sum(len(s.pages) for s in streams if s.usable),
            "fetches": sum(st.fetches for st in states),
            "failed_attempts": sum(sum(st.attempts.values()) for st in states),
            "retries": sum(st.retries for st in states),
        }
        if system is System.HELIX:
            row["tickets"] = assessment.streams["helix_tickets"].records
        started = [st.started_at for st in states if st.started_at]
        finished = [st.finished_at for st in states if st.finished_at]
        if started and finished:
            row["duration_s"] = round(max(finished) - min(started), 3)
        rss = [st.rss_mb for st in states if st.rss_mb]
        if rss:
            row["peak_rss_mb"] = max(rss)
        rows[system.display] = row
    return rows


def _frame(assessment: Assessment) -> dict[str, Any]:
    systems = assessment.systems
    return {
        "systems_checked": [s.display for s in systems],
        "systems_available": [s.display for s, st in systems.items() if st.available],
        "systems_failed": [s.display for s, st in systems.items() if st.status == "failed"],
        "systems_degraded": [s.display for s, st in systems.items() if st.status == "degraded"],
        "systems_stale": [s.display for s, st in systems.items() if st.status == "stale"],
        "systems": system_rows(assessment),
        "errors": {s.display: st.error for s, st in systems.items()
                   if st.status in ("failed", "stale", "skipped") and st.error},
        "degraded": {s.display: st.degraded for s, st in systems.items() if st.degraded},
        "stale": {s.display: st.stale for s, st in systems.items() if st.stale},
    }


@dataclass(frozen=True, slots=True)
class Annotators:
    """Where a fleet report's history and waivers come from."""

    history: HistoryStore
    waivers: WaiverStore


def _annotate(annotators: Annotators, audit_id: str, active: list[dict[str, Any]], available: list[str],
              now: datetime, kinds_off: Mapping[str, str], policy_hash: str | None) -> tuple[list[dict[str, Any]],
                                                                                    dict[str, Any]]:
    """History first (so a waived finding keeps its since), then waivers (nexus.history, nexus.waivers)."""
    result = annotators.history.annotate_full(audit_id, active, now, available=available, not_looked_for=kinds_off,
                                              policy_hash=policy_hash)
    counted, waived = annotators.waivers.apply(result.annotated, now)
    extra = {
        "waived": waived,
        "waived_count": len(waived),
        "history": {"previous_audit_id": result.previous_audit_id, **result.counts()},
        "resolved": result.resolved,
        "unknown": result.unknown,
    }
    return counted, extra


def fleet_report(audit_id: str, assessment: Assessment, comparison: Comparison, now: datetime, *,
                 annotators: Annotators | None = None, kinds_off: Mapping[str, str] | None = None,
                 policy_hash: str | None = None) -> dict[str, Any]:
    """The fleet report; with ``annotators``, each discrepancy labelled new/persisting and waivers applied.
    ``kinds_off``: kinds not looked for, with why (history calls their earlier findings unknown)."""
    frame = _frame(assessment)
    kept, dropped = suppress(comparison.discrepancies, assessment.degraded)
    extra: dict[str, Any] = {}
    if annotators is not None:
        # Only systems read fresh and whole judge earlier findings: a degraded one was not fully read (the guard hid
        # its absence findings), a stale one not read at all this time (nexus.history.read_systems, for diffs).
        unread = {*frame["systems_degraded"], *frame["systems_stale"]}
        judged = [s for s in frame["systems_available"] if s not in unread]
        kept, extra = _annotate(annotators, audit_id, kept, judged, now, kinds_off or {}, policy_hash)
    report: dict[str, Any] = {"scope": "fleet", **frame, "people": comparison.people, "devices": comparison.devices,
                              "discrepancy_count": len(kept), "summary": summarize(kept), "discrepancies": kept,
                              **extra}
    report["suppressed"] = {"count": len(dropped),
                            "by_system": dict(Counter(str(d["system_b"]) for d in dropped))}
    report["stats"] = {"timings": comparison.timings}
    return report


def bulk_snapshot_report(assessment: Assessment, comparison: Comparison) -> dict[str, Any]:
    """The bulk report's shape, from a snapshot comparison of the requested people."""
    from nexus.audits.assemble import bulk_report

    entries = comparison.entries or []
    degraded = assessment.degraded
    suppressed = 0
    if degraded:
        for entry in entries:
            kept, dropped = suppress(entry["discrepancies"], degraded)
            if dropped:
                suppressed += len(dropped)
                entry["discrepancies"] = kept
                entry["discrepancy_count"] = len(kept)
    frame = _frame(assessment)
    report = bulk_report(entries)
    report.update({"path": "snapshot", "systems": frame["systems"], "degraded": frame["degraded"],
                   "stale": frame["stale"], "suppressed": {"count": suppressed}})
    report["stats"] = {"timings": comparison.timings}
    return report


def promote(store: SnapshotStore, audit_id: str, assessment: Assessment, *, fallback: bool, keep_ttl_s: int,
            guard_ttl_s: int) -> list[tuple[str, str]]:
    """Believed snapshots become the last good ones (kept for the fallback when it is on), before the report is
    visible: an audit submitted the moment this one reads ``done`` must already see them. Nothing is deleted here,
    so a redelivered final part still finds this audit's pages. Returns the ``(audit_id, stream)`` copies that
    :func:`discard` deletes once the report is stored."""
    doomed: list[tuple[str, str]] = []
    for system, status in assessment.systems.items():
        for name in STREAMS[system]:
            source = assessment.streams[name]
            good = status.status == "ok" and source.status == "ok" and system is not System.FEDEX
            if good and source.state is not None:
                previous = store.set_last_good(name, audit_id=audit_id, records=source.records,
                                               pages=len(source.pages), taken_at=source.state.finished_at or 0.0,
                                               kept=fallback, ttl_s=guard_ttl_s)
                if fallback:
                    store.keep(audit_id, name, keep_ttl_s)
                if previous and previous.get("kept") and previous.get("audit_id") != audit_id:
                    doomed.append((str(previous["audit_id"]), name))
                if fallback:
                    continue
            doomed.append((audit_id, name))  # this audit's copy only (a stale stand-in belongs to an older audit)
    return doomed


def discard(store: SnapshotStore, doomed: list[tuple[str, str]]) -> None:
    """Delete what :func:`promote` left behind (the snapshot TTL is only the backstop)."""
    for audit_id, name in doomed:
        store.delete(audit_id, name)


def settle(store: SnapshotStore, audit_id: str, assessment: Assessment, *, fallback: bool, keep_ttl_s: int,
           guard_ttl_s: int) -> None:
    """:func:`promote` then :func:`discard`: everything of this audit that is not kept is deleted."""
    discard(store, promote(store, audit_id, assessment, fallback=fallback, keep_ttl_s=keep_ttl_s,
                           guard_ttl_s=guard_ttl_s))


__all__ = ["FLEET_SYSTEMS", "Annotators", "bulk_snapshot_report", "discard", "fleet_report", "promote", "settle",
           "system_rows"]
