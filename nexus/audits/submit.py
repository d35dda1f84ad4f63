"""Storing and enqueueing an audit: the one submit path of the facade and of the weekly scheduled audit.

The audit is stored, then ``nexus.audit.plan`` is sent BY NAME with the audit id only (subjects stay in Redis, so
task arguments are small and carry no secrets). Nothing is left behind when enqueueing fails. Planning (and every
chord) happens in a worker: a chord applied by the submitter would subscribe it to the result backend's pub/sub,
which a long-running front end (the MCP server) must not accumulate, and which cannot recover once Redis restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nexus.audits.spec import AuditKind, AuditRequest
from nexus.audits.store import AuditStore
from nexus.errors import ServiceUnavailable

#: The task that fans an audit out (tasks/audit.py).
PLAN_TASK = "nexus.audit.plan"


def connection_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable Redis or broker raises (mapped to :class:`ServiceUnavailable`)."""
    import kombu.exceptions
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, kombu.exceptions.OperationalError,
            ConnectionError, OSError)


def submit_audit(store: AuditStore, request: AuditRequest, *, bulk_max_emails: int,
                 send_task: Callable[..., Any]) -> str:
    """Store ``request`` and enqueue its plan; returns the audit id. ``send_task`` is the Celery app's."""
    request.check(bulk_max_emails)  # a request not built by the facade's request_for is validated here
    errors = connection_errors()
    try:
        store.create(request, total=2 if request.kind is AuditKind.DEVICE else None)
    except errors as exc:
        raise ServiceUnavailable(f"cannot store the audit: Redis unreachable ({type(exc).__name__})") from exc
    try:
        send_task(PLAN_TASK, args=[request.audit_id], retry=False)
    except errors as exc:
        try:
            store.delete(request.audit_id)
        except errors:
            pass
        raise ServiceUnavailable(f"cannot enqueue the audit: broker unreachable ({type(exc).__name__})") from exc
    return request.audit_id


__all__ = ["PLAN_TASK", "connection_errors", "submit_audit"]
