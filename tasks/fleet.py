"""Fleet audits (everyone and every device) on snapshots, and bulk audits that are cheaper that way.

    chord([chord([snapshot_workday, snapshot_ad, snapshot_entra],    one task per system, on its system's queue
                 compare.fleet_people),                              the people part, as soon as they are in
           snapshot_intune, snapshot_lansweeper,
           chain(snapshot_helix, snapshot_fedex)],
          compare.fleet)                                             the device part and the report, at the end

Each ``nexus.snapshot_<system>`` pages through the system's listing into Redis (:mod:`nexus.fleet.runner`), page by
page with a checkpoint, and returns a small marker; arguments and results carry the audit id only, never records
or secrets. A transient failure of a page retries THAT page: the task raises a Celery countdown retry and resumes
from its checkpoint. A stream that cannot be completed (a page out of attempts, an open breaker, an auth or format
error) is recorded as failed and the task still returns normally, so the chord body always runs and the system is
reported failed, never as "everyone missing". FedEx runs after Helix (it tracks the numbers Helix's return tickets
name), in chunks of 30 numbers (FedEx's maximum per request) fetched with bounded concurrency.

``nexus.compare.fleet_people`` compares the people (Workday, AD, Entra) while the device systems are still paging and
stores its findings; ``nexus.compare.fleet`` judges the snapshots (mass-drift guard, last-known-good fallback), runs
the device rules, merges both parts, annotates history and waivers and stores the report; then it records the good
snapshots' sizes for the guard, keeps them for the fallback when it is on, and deletes the rest. Splitting the
comparison halves what one process holds (the people part never meets the device records) and takes the people part
off the critical path. A bulk audit answered from snapshots compares its people in the one body.
"""

from __future__ import annotations

import logging
import resource
import time
from datetime import UTC, datetime
from typing import Any

from celery import Task, chain, chord

from nexus import metrics
from nexus.audits.progress import get_store
from nexus.fleet.runner import RunResult, SnapshotRunner
from nexus.fleet.sources import STREAMS, Source, fedex_source, sources_for
from nexus.fleet.store import SnapshotStore
from nexus.settings import get_settings
from nexus.systems import USER_SYSTEMS, System
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")

#: Systems with a listing, in report order (FedEx follows Helix).
SNAPSHOT_SYSTEMS: tuple[System, ...] = (System.WORKDAY, System.AD, System.ENTRA, System.INTUNE, System.LANSWEEPER,
                                        System.HELIX)
FLEET_SYSTEMS: tuple[System, ...] = (*SNAPSHOT_SYSTEMS, System.FEDEX)


def snapshot_store() -> SnapshotStore:
    from nexus.redis_conn import get_redis

    return SnapshotStore(get_redis(), ttl_s=get_settings().fleet_snapshot_ttl_s)


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def audit_systems(kind: str) -> tuple[System, ...]:
    """A fleet audit reads every system; a bulk audit answered from snapshots only the people systems."""
    return USER_SYSTEMS if kind == "bulk" else FLEET_SYSTEMS


# -- start --------------------------------------------------------------------------------------------------------
def start_fleet(audit_id: str) -> dict[str, Any]:
    """Enqueue the snapshot chord of a fleet audit (or of a bulk audit switched to snapshots). Idempotent.

    Marked started AFTER the chord is published: a starter killed in between leaves the start to its redelivered
    task, which publishes the chord again (the snapshots' requests are repeated; the report is still stored once,
    each system's marker once). A mark taken before the publish would leave the audit running forever
    (tests/test_worker_death.py)."""
    store = get_store()
    kind = store.meta(audit_id)["kind"]
    systems = audit_systems(kind)
    started = store.key(audit_id, "fleet_started")
    if store.r.exists(started):
        return {"audit_id": audit_id, "duplicate": True}
    store.set_total(audit_id, len(systems))
    people = [SNAPSHOT_TASKS[s].si(audit_id) for s in USER_SYSTEMS]
    if kind == "bulk":
        chord(people, compare_fleet.s(audit_id)).apply_async()
    else:
        # the people part of the comparison starts as soon as the people systems are in, while the device
        # systems are still paging (Lansweeper's budget makes it the longest chain)
        header: list[Any] = [
            chord(people, compare_fleet_people.s(audit_id)),
            snapshot_intune.si(audit_id),
            snapshot_lansweeper.si(audit_id),
            chain(snapshot_helix.si(audit_id), snapshot_fedex.s(audit_id)),
        ]
        chord(header, compare_fleet.s(audit_id)).apply_async()
    store.r.set(started, "1", ex=store.ttl_s)
    log.info("%s audit %s: snapshots of %s", kind, audit_id, ", ".join(s.display for s in systems),
             extra={"audit_id": audit_id})
    return {"audit_id": audit_id, "snapshots": [s.value for s in systems]}


# -- snapshots ------------------------------------------------------------------------------------------------------
class _Progress:
    """Per-system progress for ``get_audit`` and the CLI (pages and records so far, across the system's streams)."""

    def __init__(self, audit_id: str, system: System, attempt: int) -> None:
        self.audit_id = audit_id
        self.system = system
        self.attempt = attempt
        self.base_pages = 0
        self.base_records = 0
        self.pages = 0
        self.records = 0

    def report(self, status: str, error: Any = None) -> None:
        info: dict[str, Any] = {"status": status, "attempt": self.attempt, "at": round(time.time(), 3),
                                "pages": self.pages, "records": self.records}
        if error is not None:
            info["error"] = error
        try:
            get_store().set_system_progress(self.audit_id, self.system.value, info)
        except Exception as exc:  # progress is best effort
            log.debug("progress not recorded for %s/%s: %s", self.audit_id, self.system.value, exc)

    def stream_done(self) -> None:
        self.base_pages, self.base_records = self.pages, self.records

    def on_page(self, pages: int, records: int) -> None:
        self.pages, self.records = self.base_pages + pages, self.base_records + records
        self.report("running")


def _runner(audit_id: str, source: Source, progress: _Progress) -> SnapshotRunner:
    from clients.breaker import get_breaker
    from nexus.policy import RetryPolicy

    settings = get_settings()
    snaps = snapshot_store()
    good = snaps.last_good(source.stream)
    return SnapshotRunner(snaps, audit_id, source, policy=RetryPolicy.from_settings(settings),
                          gate=get_breaker(source.system.value), concurrency=settings.fleet_page_concurrency,
                          expected_records=good["records"] if good else None, on_page=progress.on_page)


def _settle_stream(audit_id: str, stream: str, result: RunResult) -> None:
    snapshot_store().finish(audit_id, stream, result.status, error=result.error, rss_mb=peak_rss_mb())


def _marker(system: System, audit_id: str, ok: bool, error: dict[str, Any] | None = None) -> dict[str, Any]:
    marker: dict[str, Any] = {"system": system.value, "ok": ok}
    if error is not None:
        marker["error"] = error
    try:
        position = FLEET_SYSTEMS.index(system)
        get_store().save_part(audit_id, position, marker, done_increment=1)
    except Exception as exc:  # progress is best effort
        log.debug("part not recorded for %s/%s: %s", audit_id, system.value, exc)
    return marker


def _retry_or_fail(task: Task, system: System, audit_id: str, source: Source, result: RunResult,
                   progress: _Progress) -> RunResult:
    """Schedule the countdown retry of a stream that has pages left to fetch (raises), or give up on it."""
    snaps = snapshot_store()
    retries = snaps.count_retry(audit_id, source.stream)
    if retries > get_settings().fleet_max_task_retries:
        error = result.error or {"type": "TransientError", "kind": "transient", "message": "no progress"}
        error = {**error, "message": f"snapshot incomplete: gave up after {retries - 1} retries: {error['message']}"}
        return RunResult("failed", result.state, error=error, reason="retries")
    countdown = round(result.countdown, 3)
    error = result.error or {}
    log.warning(
        "[resilience] [%s] snapshot %s: page %s retry (attempt %s/%s) after %s: %s (countdown %ss)",
        system.display, source.stream, error.get("page", "?"), error.get("attempts", "-"),
        get_settings().retry_max_attempts, error.get("type", result.reason), error.get("message", ""), countdown,
        extra={"system": system.value, "audit_id": audit_id, "stream": source.stream, "wait_s": countdown},
    )
    progress.report("retrying", error=error or None)
    metrics.fetch_attempt(system.value, "retry")
    metrics.fetch_retry(system.value, str(error.get("kind", result.reason)), countdown)
    raise task.retry(countdown=countdown, max_retries=None)


def _never_raise(task: Task, system: System, audit_id: str, run: Any) -> dict[str, Any]:
    """A chord header that raises stops the chord body: anything unexpected becomes a failed stream and a marker
    (a countdown retry still propagates)."""
    from celery.exceptions import Retry

    from nexus.fleet.runner import error_dict

    try:
        result: dict[str, Any] = run()
        return result
    except Retry:
        raise
    except Exception as exc:
        log.exception("[%s] snapshot for audit %s broke", system.display, audit_id,
                      extra={"system": system.value, "audit_id": audit_id})
        error = error_dict(exc)
        try:
            snaps = snapshot_store()
            for stream in STREAMS[system]:
                if snaps.state(audit_id, stream).status not in ("ok", "failed", "skipped"):
                    snaps.begin(audit_id, stream)
                    snaps.finish(audit_id, stream, "failed", error=error)
            _Progress(audit_id, system, task.request.retries + 1).report("failed", error=error)
        except Exception:  # Redis itself is gone: the marker below is all there is
            log.debug("snapshot state not recorded for %s/%s", audit_id, system.value)
        return {"system": system.value, "ok": False, "error": error}


def run_snapshot(task: Task, system: System, audit_id: str) -> dict[str, Any]:
    return _never_raise(task, system, audit_id, lambda: _run_snapshot(task, system, audit_id))


def _run_snapshot(task: Task, system: System, audit_id: str) -> dict[str, Any]:
    """Thin: build the system's sources, run each stream, turn the outcome into a marker or a countdown retry."""
    from tasks.clients import get_client

    progress = _Progress(audit_id, system, task.request.retries + 1)
    snaps = snapshot_store()
    failed: dict[str, Any] | None = None
    try:
        sources = sources_for(system, get_client(system))
    except Exception as exc:  # a client that cannot even be built (bad settings): every stream failed
        from nexus.fleet.runner import error_dict

        failed = error_dict(exc)
        sources = []
        for stream in STREAMS[system]:
            snaps.begin(audit_id, stream)
            snaps.finish(audit_id, stream, "failed", error=failed)
    progress.report("running")
    for source in sources:
        if failed is not None:  # Helix: the assets failed, the tickets are not worth fetching
            snaps.begin(audit_id, source.stream)
            snaps.finish(audit_id, source.stream, "failed", error=failed)
            continue
        result = _runner(audit_id, source, progress).run()
        if result.status == "retry":
            result = _retry_or_fail(task, system, audit_id, source, result, progress)
        if result.state.finished_at is None:
            _settle_stream(audit_id, source.stream, result)
        if result.status == "failed":
            failed = result.error
        progress.pages = progress.base_pages + result.state.page_count
        progress.records = progress.base_records + result.state.records
        progress.stream_done()
    if failed is not None:
        log.warning("[%s] snapshot for audit %s failed: %s", system.display, audit_id, failed.get("message"),
                    extra={"system": system.value, "audit_id": audit_id})
        progress.report("failed", error=failed)
        metrics.fetch_attempt(system.value, "breaker_open" if failed.get("kind") == "breaker_open" else "failed")
        return _marker(system, audit_id, False, failed)
    progress.report("ok")
    metrics.fetch_attempt(system.value, "ok")
    return _marker(system, audit_id, True)


def _tracking_numbers(audit_id: str) -> tuple[list[str] | None, str]:
    """The return tickets' tracking numbers (sorted, unique: page i is the same on every retry), from this audit's
    Helix snapshot or its stale stand-in; None when no tickets could be read."""
    from nexus.fleet.assess import StreamInput, stand_in
    from nexus.fleet.compare import load

    settings = get_settings()
    snaps = snapshot_store()
    state = snaps.state(audit_id, "helix_tickets")
    source: StreamInput | None = None
    if state.status == "ok":
        source = StreamInput("helix_tickets", "ok", audit_id, sorted(state.pages), state.records, state)
    elif settings.fleet_stale_fallback:
        source = stand_in(snaps, "helix_tickets", time.time(), settings.fleet_stale_max_age_s)
    if source is None:
        return None, ""
    numbers = {(t.tracking_number or "").strip() for t in load(snaps, source)} - {""}
    return sorted(numbers), source.status


def run_fedex(task: Task, audit_id: str) -> dict[str, Any]:
    return _never_raise(task, System.FEDEX, audit_id, lambda: _run_fedex(task, audit_id))


def _run_fedex(task: Task, audit_id: str) -> dict[str, Any]:
    from tasks.clients import get_client

    system = System.FEDEX
    snaps = snapshot_store()
    progress = _Progress(audit_id, system, task.request.retries + 1)
    numbers, origin = _tracking_numbers(audit_id)
    if numbers is None:
        snaps.begin(audit_id, "fedex")
        error = {"type": "NotNeeded", "kind": "skipped",
                 "message": "Helix's return tickets could not be read: no tracking numbers to look up"}
        snaps.finish(audit_id, "fedex", "skipped", error=error)
        progress.report("skipped", error=error)
        return _marker(system, audit_id, False, error)
    source = fedex_source(get_client(system), numbers)
    progress.report("running")
    result = _runner(audit_id, source, progress).run()
    if result.status == "retry":
        result = _retry_or_fail(task, system, audit_id, source, result, progress)
    if result.state.finished_at is None:
        _settle_stream(audit_id, "fedex", result)
    if result.status == "failed":
        progress.report("failed", error=result.error)
        return _marker(system, audit_id, False, result.error)
    progress.report("ok")
    marker = _marker(system, audit_id, True)
    marker["tickets_from"] = origin
    return marker


_SNAPSHOT_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True,
                                     "max_retries": None}


@celery_app.task(name="nexus.snapshot_workday", **_SNAPSHOT_OPTIONS)
def snapshot_workday(self: Task, audit_id: str) -> dict[str, Any]:
    return run_snapshot(self, System.WORKDAY, audit_id)


@celery_app.task(name="nexus.snapshot_ad", **_SNAPSHOT_OPTIONS)
def snapshot_ad(self: Task, audit_id: str) -> dict[str, Any]:
    return run_snapshot(self, System.AD, audit_id)


@celery_app.task(name="nexus.snapshot_entra", **_SNAPSHOT_OPTIONS)
def snapshot_entra(self: Task, audit_id: str) -> dict[str, Any]:
    return run_snapshot(self, System.ENTRA, audit_id)


@celery_app.task(name="nexus.snapshot_intune", **_SNAPSHOT_OPTIONS)
def snapshot_intune(self: Task, audit_id: str) -> dict[str, Any]:
    return run_snapshot(self, System.INTUNE, audit_id)


@celery_app.task(name="nexus.snapshot_lansweeper", **_SNAPSHOT_OPTIONS)
def snapshot_lansweeper(self: Task, audit_id: str) -> dict[str, Any]:
    return run_snapshot(self, System.LANSWEEPER, audit_id)


@celery_app.task(name="nexus.snapshot_helix", **_SNAPSHOT_OPTIONS)
def snapshot_helix(self: Task, audit_id: str) -> dict[str, Any]:
    return run_snapshot(self, System.HELIX, audit_id)


@celery_app.task(name="nexus.snapshot_fedex", **_SNAPSHOT_OPTIONS)
def snapshot_fedex(self: Task, helix: dict[str, Any], audit_id: str) -> list[dict[str, Any]]:
    """Chained after Helix; returns both markers so the chord sees every system."""
    return [helix, run_fedex(self, audit_id)]


SNAPSHOT_TASKS = {
    System.WORKDAY: snapshot_workday,
    System.AD: snapshot_ad,
    System.ENTRA: snapshot_entra,
    System.INTUNE: snapshot_intune,
    System.LANSWEEPER: snapshot_lansweeper,
    System.HELIX: snapshot_helix,
    System.FEDEX: snapshot_fedex,
}


# -- comparison -----------------------------------------------------------------------------------------------------
PEOPLE_RESULT = "people"


@celery_app.task(name="nexus.compare.fleet_people", bind=True, acks_late=True, reject_on_worker_lost=True)
def compare_fleet_people(self: Task, results: list[Any], audit_id: str) -> dict[str, Any]:
    """The people part of a fleet comparison, stored for the final part (which redoes it if this one failed)."""
    from nexus.fleet.compare import FleetComparer

    try:
        assessment = _assess(audit_id, "fleet", datetime.now(UTC), USER_SYSTEMS)
        part = FleetComparer(snapshot_store(), assessment, datetime.now(UTC)).people()
        snapshot_store().put_result(audit_id, PEOPLE_RESULT, {
            "discrepancies": part.discrepancies, "people": part.people, "timings": part.timings,
            "rss_mb": round(peak_rss_mb(), 1), "available": sorted(assessment.available)})
    except Exception as exc:  # the final part compares the people itself
        log.warning("fleet audit %s: people comparison failed early (%s): redone at the end", audit_id, exc,
                    extra={"audit_id": audit_id})
        return {"audit_id": audit_id, "ok": False}
    return {"audit_id": audit_id, "ok": True, "discrepancies": len(part.discrepancies)}


@celery_app.task(name="nexus.compare.fleet", bind=True, acks_late=True, reject_on_worker_lost=True)
def compare_fleet(self: Task, results: list[Any], audit_id: str) -> dict[str, Any]:
    """The chord body: results are the snapshot markers (the state itself is in Redis)."""
    store = get_store()
    if store.r.exists(store.key(audit_id, "final")):
        # a redelivery after the report was stored: only make sure what the audit leaves behind is settled
        _assess_and_settle(audit_id, store.meta(audit_id)["kind"])
        return {"audit_id": audit_id, "duplicate": True}
    try:
        return _compare(audit_id)
    except Exception as exc:
        log.exception("fleet comparison of audit %s failed", audit_id, extra={"audit_id": audit_id})
        meta = store.meta(audit_id)
        if store.finish_once(audit_id, {}, status="failed",
                             error=f"the comparison failed: {type(exc).__name__}: {exc}"):
            metrics.audit_failed(meta["kind"], time.time() - meta["created_at"])
        return {"audit_id": audit_id, "error": type(exc).__name__}


def _assess(audit_id: str, kind: str, now: datetime, systems: tuple[System, ...] | None = None) -> Any:
    from nexus.fleet.assess import assess

    settings = get_settings()
    return assess(snapshot_store(), audit_id, systems or audit_systems(kind), now=now.timestamp(),
                  guard_drop=settings.fleet_guard_drop, fallback=settings.fleet_stale_fallback,
                  stale_max_age_s=settings.fleet_stale_max_age_s)


def _settle(audit_id: str, assessment: Any) -> None:
    """Believed snapshots become the last good ones (kept for the fallback when it is on); the rest is deleted."""
    from nexus.fleet.report import settle

    settings = get_settings()
    snaps = snapshot_store()
    settle(snaps, audit_id, assessment, fallback=settings.fleet_stale_fallback,
           keep_ttl_s=settings.fleet_stale_max_age_s, guard_ttl_s=settings.fleet_guard_ttl_s)
    snaps.delete_result(audit_id, PEOPLE_RESULT)


def _assess_and_settle(audit_id: str, kind: str) -> None:
    try:
        _settle(audit_id, _assess(audit_id, kind, datetime.now(UTC)))
    except Exception as exc:  # the report is stored; the snapshot TTL is the backstop
        log.warning("fleet audit %s: snapshots not settled: %s", audit_id, exc, extra={"audit_id": audit_id})


def _people_part(comparer: Any, audit_id: str) -> tuple[Any, float | None]:
    """The stored people part when it judged the same systems available, else the people compared here."""
    from nexus.fleet.compare import Comparison

    stored = snapshot_store().get_result(audit_id, PEOPLE_RESULT)
    people_available = sorted(comparer.available & {s.value for s in USER_SYSTEMS})
    if stored is not None and stored.get("available") == people_available:
        return Comparison(stored["discrepancies"], None, stored["people"], 0, dict(stored["timings"])), \
            stored.get("rss_mb")
    return comparer.people(), None


def _compare(audit_id: str) -> dict[str, Any]:
    from nexus.fleet.compare import FleetComparer, merge
    from nexus.fleet.report import bulk_snapshot_report, fleet_report
    from tasks.compare import _finish

    store = get_store()
    snaps = snapshot_store()
    meta = store.meta(audit_id)
    now = datetime.now(UTC)
    assessment = _assess(audit_id, meta["kind"], now)
    comparer = FleetComparer(snaps, assessment, now)
    started = time.perf_counter()
    people_rss: float | None = None
    if meta["kind"] == "bulk":
        comparison = comparer.run(subjects=store.subjects(audit_id))
        report = bulk_snapshot_report(assessment, comparison)
    else:
        people, people_rss = _people_part(comparer, audit_id)
        comparison = merge(people, comparer.devices())
        comparison.timings["final_s"] = round(time.perf_counter() - started, 3)
        report = fleet_report(audit_id, assessment, comparison, now)
    report["stats"]["compare_peak_rss_mb"] = round(max(peak_rss_mb(), people_rss or 0.0), 1)
    for system, status in assessment.systems.items():
        if status.status in ("degraded", "stale"):
            log.warning("[%s] %s in fleet audit %s: %s", system.display, status.status, audit_id,
                        (status.degraded or {}).get("reason") or f"last good snapshot of {status.stale}",
                        extra={"system": system.value, "audit_id": audit_id})
    _finish(audit_id, report)
    _settle(audit_id, assessment)
    return {"audit_id": audit_id, "discrepancy_count": report.get("discrepancy_count")}


__all__ = ["FLEET_SYSTEMS", "SNAPSHOT_SYSTEMS", "SNAPSHOT_TASKS", "compare_fleet", "compare_fleet_people",
           "run_snapshot", "start_fleet"]
