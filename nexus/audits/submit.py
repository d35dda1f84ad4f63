"""Storing and enqueueing an audit: the one submit path of the facade and of the weekly scheduled audit.

The audit is stored, then ``nexus.audit.plan`` is sent BY NAME with the audit id only (subjects stay in Redis, so
task arguments are small and carry no secrets). Nothing is left behind when enqueueing fails. Planning (and every
chord) happens in a worker: a chord applied by the submitter would subscribe it to the result backend's pub/sub,
which a long-running front end (the MCP server) must not accumulate, and which cannot recover once Redis restarts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import redis.exceptions

from nexus.audits.spec import AuditKind, AuditRequest
from nexus.audits.store import AuditStore
from nexus.errors import RedisRefused, ServiceUnavailable

#: The task that fans an audit out (tasks/audit.py).
PLAN_TASK = "nexus.audit.plan"


def connection_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable Redis or broker raises (mapped to :class:`ServiceUnavailable`)."""
    import kombu.exceptions
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, kombu.exceptions.OperationalError,
            ConnectionError, OSError)


def refused(exc: BaseException) -> RedisRefused:
    """A write Redis refused (``maxmemory`` under ``noeviction``, a read-only replica, MISCONF) as one line:
    ``Redis refused the write: out of memory``."""
    text = " ".join(str(exc).split())
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM"):
        return RedisRefused("Redis refused the write: out of memory")
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return RedisRefused("Redis refused the write: read-only replica")
    return RedisRefused(f"Redis refused the write: {text[:200] or type(exc).__name__}")


def submit_audit(store: AuditStore, request: AuditRequest, *, bulk_max_emails: int,
                 send_task: Callable[..., Any]) -> str:
    """Store ``request`` and enqueue its plan; returns the audit id. ``send_task`` is the Celery app's."""
    request.check(bulk_max_emails)  # a request not built by the facade's request_for is validated here
    errors = connection_errors()
    refusals: tuple[type[BaseException], ...] = (*errors, redis.exceptions.ResponseError)
    try:
        store.create(request, total=2 if request.kind is AuditKind.DEVICE else None)
    except errors as exc:
        raise ServiceUnavailable(f"cannot store the audit: Redis unreachable ({type(exc).__name__})") from exc
    except redis.exceptions.ResponseError as exc:
        raise refused(exc) from exc
    try:
        # ignore_result: the plan's result is never read, and waiting for one would subscribe this process to the
        # result backend's pub/sub (see the module docstring)
        send_task(PLAN_TASK, args=[request.audit_id], retry=False, ignore_result=True)
    except refusals as exc:
        with contextlib.suppress(*refusals):
            store.delete(request.audit_id)
        if isinstance(exc, redis.exceptions.ResponseError):
            raise refused(exc) from exc
        raise ServiceUnavailable(f"cannot enqueue the audit: broker unreachable ({type(exc).__name__})") from exc
    return request.audit_id


__all__ = ["PLAN_TASK", "connection_errors", "refused", "submit_audit"]
