"""One system's snapshot in a fleet audit: run its streams, and say what the task should do next.

The Celery task (:mod:`tasks.fleet`) is thin: it builds a :class:`SnapshotJob`, runs it and either returns the
marker it gets or raises the countdown retry it is asked for (:class:`RetryIn`). Everything else happens here:
per-system progress, the page runner with its checkpoints, the decision to retry or give up on a stream, and the
rule that a snapshot never raises (a chord header that raises would stop the chord body, and the audit must finish
with what it could read).

A stream that cannot be completed (a page out of attempts, an open breaker, an auth or format error) is recorded as
failed and the job returns a failure marker: the system is reported failed, never as "everyone missing".
Derived streams (FedEx) take their subjects from another system's snapshot: the return tickets' tracking numbers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from clients.breaker import UnitGate
from nexus.fleet.assess import StreamInput, stand_in
from nexus.fleet.compare import load
from nexus.fleet.context import FleetContext, peak_rss_mb
from nexus.fleet.runner import RunResult, SnapshotRunner, error_dict
from nexus.fleet.sources import Source, derived_source, sources_for
from nexus.policy import RetryPolicy
from nexus.registry import SPECS, listed_systems
from nexus.systems import System

log = logging.getLogger("nexus.tasks")


@dataclass(frozen=True, slots=True)
class RetryIn:
    """The decision to run the task again in ``seconds`` (it resumes from the streams' checkpoints)."""

    seconds: float


class _Progress:
    """Per-system progress for ``get_audit`` and the CLI (pages and records so far, across the system's streams)."""

    def __init__(self, ctx: FleetContext, audit_id: str, system: System, attempt: int) -> None:
        self.ctx = ctx
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
            self.ctx.store.set_system_progress(self.audit_id, self.system.value, info)
        except Exception as exc:  # progress is best effort
            log.debug("progress not recorded for %s/%s: %s", self.audit_id, self.system.value, exc)

    def stream_done(self, result: RunResult) -> None:
        self.pages = self.base_pages + result.state.page_count
        self.records = self.base_records + result.state.records
        self.base_pages, self.base_records = self.pages, self.records

    def on_page(self, pages: int, records: int) -> None:
        self.pages, self.records = self.base_pages + pages, self.base_records + records
        self.report("running")


class SnapshotJob:
    """The snapshot of one system for one audit, one task run (``attempt``) at a time."""

    def __init__(self, ctx: FleetContext, audit_id: str, system: System, attempt: int) -> None:
        self.ctx = ctx
        self.audit_id = audit_id
        self.system = system
        self.spec = SPECS[system]
        self.progress = _Progress(ctx, audit_id, system, attempt)

    # -- entry point ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any] | RetryIn:
        """The system's marker, or the decision to retry. Never raises."""
        try:
            return self._derived() if self.spec.after is not None else self._listings()
        except Exception as exc:
            return self.fail(exc)

    def fail(self, exc: BaseException) -> dict[str, Any]:
        """The failed marker for ``exc``: every unfinished stream is recorded failed (best effort). Also for the task
        whose countdown retry could not even be published: the chord must still get a marker for this system."""
        log.error("[%s] snapshot for audit %s broke: %s", self.system.display, self.audit_id, exc,
                  exc_info=exc, extra={"system": self.system.value, "audit_id": self.audit_id})
        error = error_dict(exc)
        try:
            for stream in self.spec.stream_names:
                if self.ctx.snaps.state(self.audit_id, stream).status not in ("ok", "failed", "skipped"):
                    self._fail_stream(stream, error)
            self.progress.report("failed", error=error)
        except Exception:  # Redis itself is gone: the marker below is all there is
            log.debug("snapshot state not recorded for %s/%s", self.audit_id, self.system.value)
        return {"system": self.system.value, "ok": False, "error": error}

    # -- listings --------------------------------------------------------------------------------------------------
    def _listings(self) -> dict[str, Any] | RetryIn:
        failed: dict[str, Any] | None = None
        try:
            sources = sources_for(self.system, self.ctx.client(self.system))
        except Exception as exc:  # a client that cannot even be built (bad settings): every stream failed
            failed = error_dict(exc)
            sources = []
            for stream in self.spec.stream_names:
                self._fail_stream(stream, failed)
        self.progress.report("running")
        for source in sources:
            if failed is not None:  # Helix: the assets failed, the tickets are not worth fetching
                self._fail_stream(source.stream, failed)
                continue
            result = self._run_stream(source)
            if isinstance(result, RetryIn):
                return result
            if result.status == "failed":
                failed = result.error
        if failed is not None:
            log.warning("[%s] snapshot for audit %s failed: %s", self.system.display, self.audit_id,
                        failed.get("message"), extra={"system": self.system.value, "audit_id": self.audit_id})
            self.progress.report("failed", error=failed)
            self.ctx.hooks.fetch_attempt(self.system.value,
                                         "breaker_open" if failed.get("kind") == "breaker_open" else "failed")
            return self._marker(False, failed)
        self.progress.report("ok")
        self.ctx.hooks.fetch_attempt(self.system.value, "ok")
        return self._marker(True)

    def _run_stream(self, source: Source) -> RunResult | RetryIn:
        result = self._runner(source).run()
        if result.status == "retry":
            decision = self._retry_or_fail(source, result)
            if isinstance(decision, RetryIn):
                return decision
            result = decision
        if result.state.finished_at is None:
            self.ctx.snaps.finish(self.audit_id, source.stream, result.status, error=result.error,
                                  rss_mb=peak_rss_mb())
        self.progress.stream_done(result)
        return result

    def _runner(self, source: Source) -> SnapshotRunner:
        settings = self.ctx.settings
        good = self.ctx.snaps.last_good(source.stream)
        # The snapshot is one unit of work: when the circuit is half-open, the page that wins the trial admits the
        # snapshot's other pages (concurrent from the start when last week's size is known) instead of refusing them.
        gate = UnitGate(self.ctx.gate(source.system), f"snapshot:{self.audit_id}:{self.system.value}")
        return SnapshotRunner(self.ctx.snaps, self.audit_id, source, policy=RetryPolicy.from_settings(settings),
                              gate=gate, concurrency=settings.fleet_page_concurrency,
                              expected_records=good["records"] if good else None, on_page=self.progress.on_page,
                              trial_lease_s=settings.breaker_trial_lease_s,
                              longest_request_s=settings.longest_request_s(source.system.value))

    def _retry_or_fail(self, source: Source, result: RunResult) -> RunResult | RetryIn:
        """A stream with pages left to fetch: retry the task in a countdown, or give up on the stream."""
        retries = self.ctx.snaps.count_retry(self.audit_id, source.stream)
        if retries > self.ctx.settings.fleet_max_task_retries:
            error = result.error or {"type": "TransientError", "kind": "transient", "message": "no progress"}
            error = {**error,
                     "message": f"snapshot incomplete: gave up after {retries - 1} retries: {error['message']}"}
            return RunResult("failed", result.state, error=error, reason="retries")
        countdown = round(result.countdown, 3)
        error = result.error or {}
        log.warning(
            "[resilience] [%s] snapshot %s: page %s retry (attempt %s/%s) after %s: %s (countdown %ss)",
            self.system.display, source.stream, error.get("page", "?"), error.get("attempts", "-"),
            self.ctx.settings.retry_max_attempts, error.get("type", result.reason), error.get("message", ""),
            countdown,
            extra={"system": self.system.value, "audit_id": self.audit_id, "stream": source.stream,
                   "wait_s": countdown},
        )
        self.progress.report("retrying", error=error or None)
        self.ctx.hooks.fetch_attempt(self.system.value, "retry")
        self.ctx.hooks.fetch_retry(self.system.value, str(error.get("kind", result.reason)), countdown)
        return RetryIn(countdown)

    # -- derived streams (FedEx after Helix) --------------------------------------------------------------------------
    def _derived(self) -> dict[str, Any] | RetryIn:
        stream = self.spec.streams[0].name
        numbers, origin = tracking_numbers(self.ctx, self.audit_id)
        if numbers is None:
            self.ctx.snaps.begin(self.audit_id, stream)
            error = {"type": "NotNeeded", "kind": "skipped",
                     "message": "Helix's return tickets could not be read: no tracking numbers to look up"}
            self.ctx.snaps.finish(self.audit_id, stream, "skipped", error=error)
            self.progress.report("skipped", error=error)
            return self._marker(False, error)
        source = derived_source(self.system, self.ctx.client(self.system), numbers)
        self.progress.report("running")
        result = self._run_stream(source)
        if isinstance(result, RetryIn):
            return result
        if result.status == "failed":
            self.progress.report("failed", error=result.error)
            return self._marker(False, result.error)
        self.progress.report("ok")
        marker = self._marker(True)
        marker["tickets_from"] = origin
        return marker

    # -- helpers -------------------------------------------------------------------------------------------------------
    def _fail_stream(self, stream: str, error: dict[str, Any]) -> None:
        self.ctx.snaps.begin(self.audit_id, stream)
        self.ctx.snaps.finish(self.audit_id, stream, "failed", error=error)

    def _marker(self, ok: bool, error: dict[str, Any] | None = None) -> dict[str, Any]:
        marker: dict[str, Any] = {"system": self.system.value, "ok": ok}
        if error is not None:
            marker["error"] = error
        try:
            self.ctx.store.save_part(self.audit_id, listed_systems().index(self.system), marker, done_increment=1)
        except Exception as exc:  # progress is best effort
            log.debug("part not recorded for %s/%s: %s", self.audit_id, self.system.value, exc)
        return marker


def tracking_numbers(ctx: FleetContext, audit_id: str) -> tuple[list[str] | None, str]:
    """The return tickets' tracking numbers (sorted, unique: page i is the same on every retry), from this audit's
    Helix snapshot or its stale stand-in; None when no tickets could be read."""
    settings = ctx.settings
    state = ctx.snaps.state(audit_id, "helix_tickets")
    source: StreamInput | None = None
    if state.status == "ok":
        source = StreamInput("helix_tickets", "ok", audit_id, sorted(state.pages), state.records, state)
    elif settings.fleet_stale_fallback:
        source = stand_in(ctx.snaps, "helix_tickets", time.time(), settings.fleet_stale_max_age_s)
    if source is None:
        return None, ""
    numbers = {(t.tracking_number or "").strip() for t in load(ctx.snaps, source)} - {""}
    return sorted(numbers), source.status


__all__ = ["RetryIn", "SnapshotJob", "tracking_numbers"]
