"""Take one stream's snapshot: page through the system, storing each page with its checkpoint, and decide what a
failure means. No Celery here (the task turns a :class:`RunResult` into a return or a countdown retry), so every
path is testable with a fake source and fakeredis.

Attempts are counted per page (``a:<n>`` in the stream state). A transient failure (5xx, timeout, 429, a lost
Graph page token) of page ``n`` stops the run with ``retry`` and the Celery countdown of the policy's backoff for
that page's attempt; the retried task resumes from the checkpoint, so the pages already stored are never fetched
again. Page ``n`` failing ``max_attempts`` times, an open breaker, or an error no retry can cure (auth, bad request,
an answer that cannot be understood) makes the stream ``failed``: INCOMPLETE, and the system counts as failed in
the report, never as a source of half the people. Our own request budget asking for a long wait is not a failed
attempt: the run stops with ``retry`` after the budget's wait. Nor is another caller's half-open trial
(:class:`clients.breaker.TrialInProgressError`): the run comes back after what is left of that trial's lease, and
gives the stream up (failed, "gave up waiting ... for another caller's half-open trial") only after
:func:`clients.breaker.trial_wait_budget_s` of waiting in all (``TRIAL_WAIT_LEASES`` leases, and at least the
system's longest request plus one lease).

Each page goes through the system's shared breaker; only a page's last attempt counts against it (as the per-person
fetch tasks do), so a flaky system that recovers on retry does not open the circuit for everyone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from clients.breaker import TrialInProgressError, trial_wait_budget_s, trial_wait_s
from clients.paging import Page
from nexus.errors import BudgetExceededError, CircuitOpenError, ListingLost, TransientError
from nexus.errors import error_dict as base_error_dict
from nexus.fleet import codec
from nexus.fleet.sources import Source
from nexus.fleet.store import SnapshotStore, StreamState
from nexus.policy import RetryPolicy


class Gate(Protocol):
    """The breaker's context-manager form (``clients.breaker.NexusBreaker.calling``)."""

    def calling(self, *, count_failure: bool = True) -> AbstractContextManager[None]: ...


class OpenGate:
    """No breaker (unit tests, breakers disabled)."""

    def calling(self, *, count_failure: bool = True) -> AbstractContextManager[None]:
        import contextlib

        return contextlib.nullcontext()


@dataclass(slots=True)
class RunResult:
    status: str  # "ok" | "retry" | "failed"
    state: StreamState
    countdown: float = 0.0
    error: dict[str, Any] | None = None
    reason: str = ""  # "transient" | "budget" | "trial" (retry), or the error kind (failed)


def error_dict(exc: BaseException, page: int | None = None, attempts: int | None = None) -> dict[str, Any]:
    """The report's error shape for a failure of one page."""
    out = dict(base_error_dict(exc))
    if page is not None:
        out["page"] = page
        out["message"] = f"snapshot incomplete: page {page + 1} failed: {out['message']}"
    if attempts is not None:
        out["attempts"] = attempts
    return out


class _Outcome:
    """What one attempt at one page came to (internal)."""

    __slots__ = ("blob", "countdown", "error", "kind", "page")

    def __init__(self, kind: str, *, page: Page[Any] | None = None, blob: bytes = b"", countdown: float = 0.0,
                 error: dict[str, Any] | None = None) -> None:
        self.kind = kind  # "page" | "retry" | "budget" | "trial" | "fatal" | "lost"
        self.page = page
        self.blob = blob
        self.countdown = countdown
        self.error = error


class SnapshotRunner:
    def __init__(
        self,
        store: SnapshotStore,
        audit_id: str,
        source: Source,
        *,
        policy: RetryPolicy,
        gate: Gate | None = None,
        concurrency: int = 8,
        expected_records: int | None = None,
        on_page: Callable[[int, int], None] | None = None,
        trial_lease_s: float = 60.0,
        longest_request_s: float = 0.0,
    ) -> None:
        self.store = store
        self.audit_id = audit_id
        self.source = source
        self.policy = policy
        self.gate = gate or OpenGate()
        self.concurrency = max(1, concurrency)
        self.hint_pages = math.ceil(expected_records / source.page_size) if expected_records else None
        self.on_page = on_page
        self.trial_lease_s = trial_lease_s  # the breaker's half-open trial lease (BreakerPolicy.trial_ttl_s)
        # waiting for another caller's trial ends after this long in all (a trial may be one slow request)
        self.trial_wait_budget_s = trial_wait_budget_s(trial_lease_s, longest_request_s)
        self.attempts: dict[int, int] = {}

    # -- the run ----------------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        state = self.store.begin(self.audit_id, self.source.stream)
        if state.status in ("ok", "failed"):
            return RunResult(state.status, state, error=state.error)  # a redelivered task: already decided
        self.attempts = dict(state.attempts)
        try:
            if self.source.mode == "cursor":
                return self._chain(state)
            return self._offsets(state)
        finally:
            if self.source.close is not None:
                self.source.close()

    def _attempt(self, index: int, fetch: Callable[[], Page[Any]]) -> _Outcome:
        """One attempt at page ``index`` through the breaker, encoded when it succeeds. Thread-safe."""
        tried = self.attempts.get(index, 0)
        final = tried + 1 >= self.policy.max_attempts
        try:
            with self.gate.calling(count_failure=final):
                page = fetch()
        except BudgetExceededError as exc:
            return _Outcome("budget", countdown=min(exc.retry_after or 1.0, self.policy.retry_after_max_s))
        except ListingLost:
            return _Outcome("lost")
        except TrialInProgressError as exc:  # another caller's trial decides the circuit within its lease: wait
            return _Outcome("trial", countdown=trial_wait_s(exc, self.trial_lease_s),
                            error=error_dict(exc, index, tried))
        except CircuitOpenError as exc:
            return _Outcome("fatal", error=error_dict(exc, index, tried))
        except TransientError as exc:
            attempts = self.store.failed_attempt(self.audit_id, self.source.stream, index)
            self.attempts[index] = attempts
            if attempts < self.policy.max_attempts:
                return _Outcome("retry", countdown=self.policy.delay_for(exc, attempts - 1),
                                error=error_dict(exc, index, attempts))
            return _Outcome("fatal", error=error_dict(exc, index, attempts))
        except Exception as exc:  # auth, bad request, malformed, a bug: no retry cures it
            self.store.failed_attempt(self.audit_id, self.source.stream, index)
            return _Outcome("fatal", error=error_dict(exc, index, tried + 1))
        return _Outcome("page", page=page, blob=codec.encode_page(self.source.kind, page.items))

    def _stored(self, index: int, outcome: _Outcome, *, cursor: str | None = None, advance: bool = False) -> None:
        assert outcome.page is not None
        self.store.save_page(self.audit_id, self.source.stream, index, outcome.blob, len(outcome.page.items),
                             cursor=cursor, advance=advance, fetches=outcome.page.requests)

    def _progress(self, pages: int, records: int) -> None:
        if self.on_page is not None:
            self.on_page(pages, records)

    def _finish_retry(self, outcomes: list[_Outcome]) -> RunResult:
        kinds = {o.kind for o in outcomes}
        reason = "transient" if len(kinds) > 1 or "retry" in kinds else ("budget" if "budget" in kinds else "trial")
        errors = [o.error for o in outcomes if o.error]
        countdown = max(o.countdown for o in outcomes)
        if reason == "trial":  # only waiting for another caller's trial: bounded in all, not by page attempts
            waited = self.store.waited_for_trial(self.audit_id, self.source.stream, countdown)
            if waited > self.trial_wait_budget_s:
                error = dict(errors[0]) if errors else {"type": "TrialInProgressError", "kind": "breaker_open"}
                error["message"] = (f"snapshot incomplete: gave up waiting {round(waited - countdown, 1):g} s for "
                                    f"another caller's half-open trial: {error.get('message', '')}")
                return self._fail(error)
        state = self.store.state(self.audit_id, self.source.stream)
        return RunResult("retry", state, countdown=countdown, error=errors[0] if errors else None, reason=reason)

    def _fail(self, error: dict[str, Any] | None) -> RunResult:
        state = self.store.state(self.audit_id, self.source.stream)
        return RunResult("failed", state, error=error, reason=str((error or {}).get("kind", "error")))

    # -- a chain of cursors -----------------------------------------------------------------------------------------
    def _chain(self, state: StreamState) -> RunResult:
        index, cursor = state.next, state.cursor
        pages, records = state.page_count, state.records
        if index > 0 and cursor is None:
            return RunResult("ok", state)  # the last page was stored before a crash
        restarted = False
        seen: set[str] = set()
        while True:
            outcome = self._attempt(index, functools.partial(self.source.fetch, cursor))
            if outcome.kind == "lost" and not restarted:
                restarted = True
                self.store.restart(self.audit_id, self.source.stream)
                index, cursor, pages, records = 0, None, 0, 0
                continue
            if outcome.kind == "lost":
                return self._fail({"type": "ListingLost", "kind": "transient",
                                   "message": "snapshot incomplete: the listing's paging state was lost twice"})
            if outcome.kind == "fatal":
                return self._fail(outcome.error)
            if outcome.kind in ("retry", "budget", "trial"):
                return self._finish_retry([outcome])
            assert outcome.page is not None
            nxt = outcome.page.next_cursor
            if nxt is not None and nxt in seen:
                nxt = None  # a repeating cursor is a server bug: the listing ends here
            self._stored(index, outcome, cursor=nxt, advance=True)
            pages += 1
            records += len(outcome.page.items)
            self._progress(pages, records)
            if nxt is None:
                return RunResult("ok", self.store.state(self.audit_id, self.source.stream))
            seen.add(nxt)
            cursor, index = nxt, index + 1

    # -- offsets, with bounded concurrency --------------------------------------------------------------------------
    def _offsets(self, state: StreamState) -> RunResult:
        src = self.source
        assert src.fetch_index is not None
        fetch_index = src.fetch_index
        done = set(state.pages)
        records = state.records
        end: int | None = state.end
        total = state.total_pages if state.total_pages is not None else src.total_pages
        if total is not None:
            end = total - 1
        ran = 0  # pages completed in this run (the speculative window grows with them)
        beyond_hint = 0
        stop: list[_Outcome] = []
        waits: list[_Outcome] = []
        given_up: set[int] = set()

        # Without a page count, requests past the end are wasted: speculate with half the concurrency (ramping up
        # from one page), so at most that many minus one are lost. The last good size, when known, is trusted.
        speculative = max(1, self.concurrency // 2)

        def allowed() -> int:
            """Indices below this may be requested now."""
            if end is not None:
                return end + 1
            frontier = max(done) if done else -1
            if self.hint_pages is not None:
                return max(self.hint_pages, frontier + 1 + min(speculative, 1 + beyond_hint))
            return frontier + 1 + min(speculative, 1 + ran)

        def candidates() -> Iterator[int]:
            index = 0
            while True:
                if index >= allowed():
                    return
                if index not in done and index not in given_up:
                    yield index
                index += 1

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"snap-{src.stream}") as pool:
            inflight: dict[Future[_Outcome], int] = {}
            while True:
                if not stop:
                    busy = set(inflight.values())
                    for index in candidates():
                        if len(inflight) >= self.concurrency:
                            break
                        if index in busy:
                            continue
                        inflight[pool.submit(self._attempt, index, functools.partial(fetch_index, index))] = index
                if not inflight:
                    break
                finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for future in finished:
                    index = inflight.pop(future)
                    outcome = future.result()
                    if outcome.kind == "fatal":
                        stop.append(outcome)
                        continue
                    if outcome.kind in ("retry", "budget", "trial", "lost"):
                        given_up.add(index)  # not again in this run: the countdown retry comes back for it
                        waits.append(outcome if outcome.kind != "lost" else _Outcome("retry", countdown=0.0))
                        continue
                    page = outcome.page
                    assert page is not None
                    if end is None and total is None and page.total is not None:
                        total = math.ceil(page.total / src.page_size)
                        end = total - 1
                        self.store.set(self.audit_id, src.stream, total_pages=total)
                    if end is None and page.next_cursor is None:
                        end = index
                        self.store.set(self.audit_id, src.stream, end=end)
                    elif end is not None and total is None and page.next_cursor is None and index < end:
                        end = index  # an earlier last page than a speculative one said
                        self.store.set(self.audit_id, src.stream, end=end)
                    if end is not None and index > end:
                        self.store.count_fetch(self.audit_id, src.stream)  # past the end: nothing to keep
                        continue
                    self._stored(index, outcome)
                    done.add(index)
                    ran += 1
                    if self.hint_pages is not None and index >= self.hint_pages:
                        beyond_hint += 1
                    records += len(page.items)
                    self._progress(len(done), records)
            if stop:
                pool.shutdown(wait=True, cancel_futures=True)
        if stop:
            return self._fail(stop[0].error)
        if waits:
            return self._finish_retry(waits)
        assert end is not None, "an offset listing ended without a last page"
        extra = sorted(i for i in done if i > end)
        if extra:  # stored before an earlier last page was seen: not part of this listing
            self.store.drop_pages(self.audit_id, src.stream, extra)
        missing = [i for i in range(end + 1) if i not in done]
        if missing:
            return RunResult("retry", self.store.state(self.audit_id, src.stream), countdown=0.0, reason="transient")
        return RunResult("ok", self.store.state(self.audit_id, src.stream))


__all__ = ["Gate", "OpenGate", "RunResult", "SnapshotRunner", "error_dict"]
