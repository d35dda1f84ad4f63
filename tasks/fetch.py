"""One fetch task per system (``fetch_workday``, ``fetch_ad``, ...), each routed to its own queue.

Retries are per REQUEST, as the seed says: the lookup runs with a request guard for the system
(:class:`clients.resilience.RequestGuard`), so each request its client sends gets up to ``max_attempts`` attempts
with 2 -> 4 -> 8 s backoff (no retry on 4xx) and counts once against the shared breaker if all of them fail. A part
of 25 people against a system that fails one request in two thus still reads all 25, and the breaker opens only
after ``fail_max`` consecutive failed requests. The part (this task, across its retries) is one unit of work for
the breaker (:func:`clients.breaker.unit_of_work`, ``<audit>:<system>:<task id>``): when the circuit is half-open,
the request that wins the trial admits the part's other requests, and the other parts wait for its outcome (a trial
stays one part, not a whole bulk audit). A malformed answer is counted inside the unit too.

The task itself retries (Celery countdown, no worker slot sleeping, answers obtained so far kept in a memo) only for
what a request's own retries cannot cover:

* another part's or audit's half-open trial is deciding the circuit (:class:`clients.breaker.TrialInProgressError`):
  back after what is left of that trial's lease. Such runs are not failed attempts; after
  :func:`clients.breaker.trial_wait_budget_s` of waiting in all (``TRIAL_WAIT_LEASES`` leases, or the system's
  longest request plus a lease: Workday's whole report may take minutes), the part gives up with a marker that says
  so;
* our own request budget asks for a longer wait than a caller may sleep (:class:`~nexus.errors.BudgetExceededError`),
  or a request's next attempt would wait longer than ``NEXUS_RETRY_INLINE_MAX_S`` (a 429 asking for a minute:
  :class:`clients.resilience.RetryLater`): back after that wait, as one of the task's ``max_attempts``.

The final failure RETURNS a marker ``{"system", "ok": false, "error"}`` instead of raising: a raising chord header
would stop the chord body, and an audit must finish with what it could read.

Outcomes:  success -> ``{"ok": true, "data"}``;  a request out of attempts (transient or throttled), an OPEN breaker
(fail fast), auth, bad request, malformed -> a marker at once;  a trial in progress elsewhere, a budget wait or a
long Retry-After -> retry with countdown within the bounds above, then a marker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Task

from clients.breaker import TrialInProgressError, trial_wait_budget_s, trial_wait_s, unit_of_work
from clients.resilience import RequestGuard, RetryLater, guarded
from nexus.audits.memo import PartialAnswers
from nexus.audits.progress import report_fetch_progress
from nexus.errors import BudgetExceededError, NexusClientError, error_dict
from nexus.lookups import run_lookup
from nexus.registry import SystemSpec, specs
from nexus.runtime import current
from nexus.systems import System
from workers.app import celery_app
from workers.outcome_events import MARKER_AWARE_REQUEST

log = logging.getLogger("nexus.tasks")


def failure_marker(system: System, exc: BaseException, attempts: int) -> dict[str, Any]:
    error = dict(error_dict(exc))  # a bug or an unmapped library error is "unexpected": still a marker
    error["attempts"] = attempts
    return {"system": system.value, "ok": False, "error": error}


class _TrialWaits:
    """The runs of one fetch task that waited for another caller's half-open trial: how many, and how long in all
    (keyed by the Celery task id, best effort like the memo). Those runs are not failed attempts."""

    PREFIX = "nexus:fetch-trial-waits:"

    def __init__(self, client: Any, task_id: str) -> None:
        self.r = client
        self.key = self.PREFIX + task_id

    def load(self) -> tuple[int, float]:
        try:
            runs, seconds = self.r.hmget(self.key, ["runs", "seconds"])
            return int(runs or 0), float(seconds or 0.0)
        except Exception as exc:
            log.debug("trial waits not loaded: %s", exc)
            return 0, 0.0

    def add(self, seconds: float, ttl_s: int) -> None:
        try:
            pipe = self.r.pipeline()
            pipe.hincrby(self.key, "runs", 1)
            pipe.hincrbyfloat(self.key, "seconds", seconds)
            pipe.expire(self.key, ttl_s)
            pipe.execute()
        except Exception as exc:
            log.debug("trial wait not recorded: %s", exc)

    def drop(self) -> None:
        try:
            self.r.delete(self.key)
        except Exception as exc:
            log.debug("trial waits not dropped: %s", exc)


def run_fetch(task: Task, system: System, audit_id: str, op: str, subjects: list[str], *,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Thin: run the system's lookup with each request retried and guarded by the breaker, classify the outcome,
    return or retry. ``sleep`` waits between a request's attempts (tests inject a recorder)."""
    rt = current()
    store = rt.audit_store()
    memos = PartialAnswers(rt.redis)
    policy = rt.retry_policy()
    task_id = str(task.request.id)
    runs = task.request.retries + 1  # this run of the task
    trial_waits = _TrialWaits(rt.redis, task_id)
    waits, waited_s = trial_waits.load() if runs > 1 else (0, 0.0)
    attempt = runs - waits  # runs that only waited for another caller's trial are not failed attempts
    memo_ttl = int(policy.backoff_max_s + policy.retry_after_max_s + 3600)
    report_fetch_progress(store, audit_id, system, "running", attempt)
    memo = memos.load(task_id) if runs > 1 else {}

    def request_retry(exc: BaseException, wait_s: float) -> None:
        """A request of the lookup is retried (its attempt failed): metrics and progress, as a task retry was."""
        rt.hooks.fetch_attempt(system.value, "retry")
        rt.hooks.fetch_retry(system.value, getattr(exc, "kind", "error"), wait_s)
        report_fetch_progress(store, audit_id, system, "retrying", attempt, error=exc)

    def come_back(exc: NexusClientError, countdown: float) -> Exception:
        """Keep what was read and retry the task in ``countdown`` seconds (no worker slot sleeps meanwhile)."""
        memos.save(task_id, memo, memo_ttl)
        log.warning(
            "[resilience] [%s] Retry attempt %d/%d after %s: %s (countdown %ss)",
            system.display, attempt, policy.max_attempts, type(exc).__name__, exc.message, round(countdown, 3),
            extra={"system": system.value, "audit_id": audit_id, "attempt": attempt,
                   "max_attempts": policy.max_attempts, "wait_s": countdown, "error_type": type(exc).__name__},
        )
        report_fetch_progress(store, audit_id, system, "retrying", attempt, error=exc)
        rt.hooks.fetch_attempt(system.value, "retry")
        rt.hooks.fetch_retry(system.value, exc.kind, countdown)
        # The bounds are ours (attempts, total trial wait): Celery's own max_retries must not end it first.
        return task.retry(countdown=countdown, exc=exc, max_retries=runs)

    breaker = rt.breaker(system)
    guard = RequestGuard(system.value, breaker, policy, sleep=sleep, on_retry=request_retry)
    try:
        client = rt.client(system)
        # One part (this task, whatever its retries) is one unit of work: a half-open trial it wins admits the
        # part's own requests, never another part's (a trial stays small).
        with unit_of_work(f"{audit_id}:{system.value}:{task_id}"), guarded(guard):
            try:
                data = run_lookup(system, client, op, subjects, memo)
            except Exception as exc:
                guard.settle(exc)  # a malformed answer found after its request returned counts, once, in the unit
                raise
    except TrialInProgressError as exc:
        lease_s = breaker.policy.trial_ttl_s
        countdown = trial_wait_s(exc, lease_s)
        if waited_s + countdown <= trial_wait_budget_s(lease_s, rt.settings.longest_request_s(system.value)):
            trial_waits.add(countdown, memo_ttl)
            raise come_back(exc, countdown) from exc
        marker = failure_marker(system, exc, 0)
        marker["error"]["message"] = (f"gave up waiting for another caller's half-open trial after "
                                      f"{round(waited_s, 1):g} s: {exc.message}")
    except (BudgetExceededError, RetryLater) as exc:
        if attempt < policy.max_attempts:
            raise come_back(exc, policy.delay_for(exc, attempt - 1)) from exc
        final = exc.cause if isinstance(exc, RetryLater) else exc
        marker = failure_marker(system, final, guard.attempts if isinstance(exc, RetryLater) else attempt)
    except Exception as exc:
        marker = failure_marker(system, exc, guard.attempts)
    else:
        if runs > 1:
            memos.drop(task_id)
            trial_waits.drop()
        attempts = max(attempt, guard.most_attempts)  # task runs, or the attempts its hardest request took
        report_fetch_progress(store, audit_id, system, "ok", attempts)
        rt.hooks.fetch_attempt(system.value, "ok")
        return {"system": system.value, "ok": True, "data": data, "attempts": attempts}
    if runs > 1:
        memos.drop(task_id)
        trial_waits.drop()
    log.warning("[%s] %s unavailable for audit %s: %s", system.display, system.display, audit_id,
                marker["error"]["message"], extra={"system": system.value, "audit_id": audit_id})
    report_fetch_progress(store, audit_id, system, "failed", attempt, error=marker["error"])
    rt.hooks.fetch_attempt(system.value,
                           "breaker_open" if marker["error"].get("kind") == "breaker_open" else "failed")
    return marker


# Time limits bound a fetch that hangs (a lookup of a whole part, each request bounded by its attempts, the HTTP
# timeouts and the rate budget's maximum wait): the soft limit raises inside the task, which returns a failure
# marker like any error.
_FETCH_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True,
                                  "soft_time_limit": 300, "time_limit": 330,
                                  "Request": MARKER_AWARE_REQUEST}  # a returned marker is "failed" in Flower


def _fetch_task(spec: SystemSpec) -> Task:
    """``nexus.fetch_<id>``: one lookup against ``spec``'s system, on the system's own queue."""
    system = spec.system

    def fetch(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
        return run_fetch(self, system, audit_id, op, subjects)

    fetch.__name__ = fetch.__qualname__ = f"fetch_{system.value}"
    fetch.__doc__ = f"Fetch from {spec.display}: a lookup (people, devices or track), each request retried."
    task: Task = celery_app.task(name=spec.fetch_task, **_FETCH_OPTIONS)(fetch)
    return task


FETCH_TASKS: dict[System, Task] = {spec.system: _fetch_task(spec) for spec in specs()}
