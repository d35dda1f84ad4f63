"""One fetch task per system (``fetch_workday``, ``fetch_ad``, ...), each routed to its own queue.

A task run is ONE attempt through the system's shared breaker. The backoff between attempts is Celery's countdown
(2 -> 4 -> 8 s by default), so no worker slot sleeps through it, and the attempts per fetch equal the configured
maximum. The final failure RETURNS a marker ``{"system", "ok": false, "error"}`` instead of raising: a raising
chord header would stop the chord body, and an audit must finish with what it could read.

Outcomes:  success -> ``{"ok": true, "data"}``;  transient or throttled -> retry with countdown (Retry-After honoured)
until attempts are used up, then a marker;  breaker open, auth, bad request, malformed -> a marker at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Task

from nexus import metrics
from nexus.errors import TransientError, error_dict
from nexus.lookups import run_lookup
from nexus.systems import System
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")


def failure_marker(system: System, exc: BaseException, attempts: int) -> dict[str, Any]:
    error = dict(error_dict(exc))  # a bug or an unmapped library error is "unexpected": still a marker
    error["attempts"] = attempts
    return {"system": system.value, "ok": False, "error": error}


def _partial_key(task: Task) -> str:
    return f"nexus:fetch-partial:{task.request.id}"


def load_partial(task: Task) -> dict[str, Any]:
    """The answers an earlier attempt of this task obtained before it failed (empty if none or unreadable)."""
    from nexus.redis_conn import get_redis

    try:
        raw = get_redis().get(_partial_key(task))
        return dict(json.loads(raw)) if raw else {}
    except Exception as exc:  # a lost memo only costs requests
        log.debug("partial results not loaded: %s", exc)
        return {}


def save_partial(task: Task, memo: dict[str, Any], policy: Any) -> None:
    """Keep this attempt's answers for the retry. Written only on the failure path: the happy path pays nothing."""
    if not memo:
        return
    from nexus.redis_conn import get_redis

    ttl = int(policy.backoff_max_s + policy.retry_after_max_s + 3600)
    try:
        get_redis().set(_partial_key(task), json.dumps(memo, separators=(",", ":")), ex=ttl)
    except Exception as exc:  # best effort
        log.debug("partial results not saved: %s", exc)


def drop_partial(task: Task) -> None:
    from nexus.redis_conn import get_redis

    try:
        get_redis().delete(_partial_key(task))
    except Exception as exc:  # best effort
        log.debug("partial results not dropped: %s", exc)


def run_fetch(task: Task, system: System, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    """Thin: call the system's lookup through its breaker, classify the outcome, return or retry."""
    from clients.breaker import get_breaker
    from nexus.audits.progress import report_fetch_progress
    from nexus.policy import RetryPolicy
    from tasks.clients import get_client

    policy = RetryPolicy.from_settings()
    attempt = task.request.retries + 1
    report_fetch_progress(audit_id, system, "running", attempt)
    memo = load_partial(task) if attempt > 1 else {}
    try:
        client = get_client(system)
        data = get_breaker(system.value).call(lambda: run_lookup(system, client, op, subjects, memo))
    except TransientError as exc:
        if attempt < policy.max_attempts:
            save_partial(task, memo, policy)
            countdown = policy.delay_for(exc, task.request.retries)
            log.warning(
                "[resilience] [%s] Retry attempt %d/%d after %s: %s (countdown %ss)",
                system.display, attempt, policy.max_attempts, type(exc).__name__, exc.message, round(countdown, 3),
                extra={"system": system.value, "audit_id": audit_id, "attempt": attempt,
                       "max_attempts": policy.max_attempts, "wait_s": countdown, "error_type": type(exc).__name__},
            )
            report_fetch_progress(audit_id, system, "retrying", attempt, error=exc)
            metrics.fetch_attempt(system.value, "retry")
            metrics.fetch_retry(system.value, exc.kind, countdown)
            raise task.retry(countdown=countdown, exc=exc, max_retries=policy.max_attempts - 1) from exc
        marker = failure_marker(system, exc, attempt)
    except Exception as exc:
        marker = failure_marker(system, exc, attempt)
    else:
        if attempt > 1:
            drop_partial(task)
        report_fetch_progress(audit_id, system, "ok", attempt)
        metrics.fetch_attempt(system.value, "ok")
        return {"system": system.value, "ok": True, "data": data, "attempts": attempt}
    if attempt > 1:
        drop_partial(task)
    log.warning("[%s] %s unavailable for audit %s: %s", system.display, system.display, audit_id,
                marker["error"]["message"], extra={"system": system.value, "audit_id": audit_id})
    report_fetch_progress(audit_id, system, "failed", attempt, error=marker["error"])
    metrics.fetch_attempt(system.value, "breaker_open" if marker["error"].get("kind") == "breaker_open" else "failed")
    return marker


# Time limits bound a fetch that hangs (a lookup of a whole part, each request bounded by the HTTP timeouts and the
# rate budget's maximum wait): the soft limit raises inside the task, which returns a failure marker like any error.
_FETCH_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True,
                                  "soft_time_limit": 300, "time_limit": 330}


@celery_app.task(name="nexus.fetch_workday", **_FETCH_OPTIONS)
def fetch_workday(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    return run_fetch(self, System.WORKDAY, audit_id, op, subjects)


@celery_app.task(name="nexus.fetch_ad", **_FETCH_OPTIONS)
def fetch_ad(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    return run_fetch(self, System.AD, audit_id, op, subjects)


@celery_app.task(name="nexus.fetch_entra", **_FETCH_OPTIONS)
def fetch_entra(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    return run_fetch(self, System.ENTRA, audit_id, op, subjects)


@celery_app.task(name="nexus.fetch_intune", **_FETCH_OPTIONS)
def fetch_intune(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    return run_fetch(self, System.INTUNE, audit_id, op, subjects)


@celery_app.task(name="nexus.fetch_lansweeper", **_FETCH_OPTIONS)
def fetch_lansweeper(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    return run_fetch(self, System.LANSWEEPER, audit_id, op, subjects)


@celery_app.task(name="nexus.fetch_helix", **_FETCH_OPTIONS)
def fetch_helix(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    return run_fetch(self, System.HELIX, audit_id, op, subjects)


@celery_app.task(name="nexus.fetch_fedex", **_FETCH_OPTIONS)
def fetch_fedex(self: Task, audit_id: str, op: str, subjects: list[str]) -> dict[str, Any]:
    return run_fetch(self, System.FEDEX, audit_id, op, subjects)


FETCH_TASKS = {
    System.WORKDAY: fetch_workday,
    System.AD: fetch_ad,
    System.ENTRA: fetch_entra,
    System.INTUNE: fetch_intune,
    System.LANSWEEPER: fetch_lansweeper,
    System.HELIX: fetch_helix,
    System.FEDEX: fetch_fedex,
}
