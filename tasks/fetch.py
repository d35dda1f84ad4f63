"""One fetch task per system (``fetch_workday``, ``fetch_ad``, ...), each routed to its own queue.

A task run is ONE attempt through the system's shared breaker. The backoff between attempts is Celery's countdown
(2 -> 4 -> 8 s by default), so no worker slot sleeps through it, and the attempts per fetch equal the configured
maximum. The final failure RETURNS a marker ``{"system", "ok": false, "error"}`` instead of raising: a raising
chord header would stop the chord body, and an audit must finish with what it could read.

Outcomes:  success -> ``{"ok": true, "data"}``;  transient or throttled -> retry with countdown (Retry-After honoured)
until attempts are used up, then a marker;  breaker open, auth, bad request, malformed -> a marker at once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from nexus.audits.memo import PartialAnswers
from nexus.audits.progress import report_fetch_progress
from nexus.errors import TransientError, error_dict
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


def run_fetch(task: Task, system: System, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    """Thin: call the system's lookup through its breaker, classify the outcome, return or retry."""
    rt = current()
    store = rt.audit_store()
    memos = PartialAnswers(rt.redis)
    policy = rt.retry_policy()
    attempt = task.request.retries + 1
    task_id = str(task.request.id)
    report_fetch_progress(store, audit_id, system, "running", attempt)
    memo = memos.load(task_id) if attempt > 1 else {}
    try:
        client = rt.client(system)
        data = rt.breaker(system).call(lambda: run_lookup(system, client, op, subjects, memo))
    except TransientError as exc:
        if attempt < policy.max_attempts:
            memos.save(task_id, memo, int(policy.backoff_max_s + policy.retry_after_max_s + 3600))
            countdown = policy.delay_for(exc, task.request.retries)
            log.warning(
                "[resilience] [%s] Retry attempt %d/%d after %s: %s (countdown %ss)",
                system.display, attempt, policy.max_attempts, type(exc).__name__, exc.message, round(countdown, 3),
                extra={"system": system.value, "audit_id": audit_id, "attempt": attempt,
                       "max_attempts": policy.max_attempts, "wait_s": countdown, "error_type": type(exc).__name__},
            )
            report_fetch_progress(store, audit_id, system, "retrying", attempt, error=exc)
            rt.hooks.fetch_attempt(system.value, "retry")
            rt.hooks.fetch_retry(system.value, exc.kind, countdown)
            raise task.retry(countdown=countdown, exc=exc, max_retries=policy.max_attempts - 1) from exc
        marker = failure_marker(system, exc, attempt)
    except Exception as exc:
        marker = failure_marker(system, exc, attempt)
    else:
        if attempt > 1:
            memos.drop(task_id)
        report_fetch_progress(store, audit_id, system, "ok", attempt)
        rt.hooks.fetch_attempt(system.value, "ok")
        return {"system": system.value, "ok": True, "data": data, "attempts": attempt}
    if attempt > 1:
        memos.drop(task_id)
    log.warning("[%s] %s unavailable for audit %s: %s", system.display, system.display, audit_id,
                marker["error"]["message"], extra={"system": system.value, "audit_id": audit_id})
    report_fetch_progress(store, audit_id, system, "failed", attempt, error=marker["error"])
    rt.hooks.fetch_attempt(system.value,
                           "breaker_open" if marker["error"].get("kind") == "breaker_open" else "failed")
    return marker


# Time limits bound a fetch that hangs (a lookup of a whole part, each request bounded by the HTTP timeouts and the
# rate budget's maximum wait): the soft limit raises inside the task, which returns a failure marker like any error.
_FETCH_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True,
                                  "soft_time_limit": 300, "time_limit": 330,
                                  "Request": MARKER_AWARE_REQUEST}  # a returned marker is "failed" in Flower


def _fetch_task(spec: SystemSpec) -> Task:
    """``nexus.fetch_<id>``: one attempt of one lookup against ``spec``'s system, on the system's own queue."""
    system = spec.system

    def fetch(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
        return run_fetch(self, system, audit_id, op, subjects)

    fetch.__name__ = fetch.__qualname__ = f"fetch_{system.value}"
    fetch.__doc__ = f"Fetch from {spec.display}: one attempt of a lookup (people, devices or track)."
    task: Task = celery_app.task(name=spec.fetch_task, **_FETCH_OPTIONS)(fetch)
    return task


FETCH_TASKS: dict[System, Task] = {spec.system: _fetch_task(spec) for spec in specs()}
