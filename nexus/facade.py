"""The one small facade every front end uses (CLI, MCP server, beat): submit an audit, get it, list them.

It validates input before anything is stored or enqueued, stores the audit, enqueues ``nexus.audit.plan`` with the
audit id only (subjects stay in Redis, so task arguments are small and carry no secrets), and reads status,
progress and report back from the store.

Errors a front end shows in one line: :class:`InvalidInput` (bad input, or an id never known), ServiceUnavailable
(Redis or the broker unreachable), :class:`RedisRefused` (Redis refused the write: out of memory, read-only), and
:class:`AuditLost` (an audit this caller knows existed is gone: Redis restarted without its data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis.exceptions

from nexus.audits.spec import AuditKind, AuditRequest, audit_id_time, validate_audit_id
from nexus.audits.store import TERMINAL, AuditStore, view_times
from nexus.audits.submit import connection_errors, refused, submit_audit
from nexus.errors import (
    AuditLost,
    AuditNotFound,
    InvalidInput,
    NotConfigured,
    RedisRefused,
    ServiceUnavailable,
    WaitTimeout,
)
from nexus.runtime import current
from nexus.settings import Settings, missing_settings, not_configured_message
from nexus.systems import System
from workers.app import celery_app

#: Polling pauses while Redis is unreachable during ``wait``: from the first to the last, doubling.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


def lost(audit_id: str) -> AuditLost:
    return AuditLost(f"audit {audit_id} was lost: its record is gone from Redis (restarted without its data?)")


class Nexus:
    def __init__(self, store: AuditStore | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or current().settings
        self.store = store if store is not None else AuditStore(current().redis, ttl_s=self.settings.report_ttl_s)

    # -- requests ---------------------------------------------------------------------------------------------------
    def request_for(
        self,
        *,
        email: str | None = None,
        serial: str | None = None,
        emails: list[Any] | None = None,
        fleet: bool = False,
    ) -> AuditRequest:
        """Exactly one of the four; validated. Raises InvalidInput with one clear line."""
        options = (("email", email), ("device", serial), ("emails", emails))
        given = [name for name, value in options if value is not None]
        if fleet:
            given.append("fleet")
        if len(given) != 1:
            raise InvalidInput("give exactly one of: email, device serial, list of emails, fleet")
        if email is not None:
            return AuditRequest.user(email)
        if serial is not None:
            return AuditRequest.device(serial)
        if emails is not None:
            return AuditRequest.bulk(emails, self.settings.bulk_max_emails)
        return AuditRequest.fleet()

    def submit(self, request: AuditRequest) -> str:
        """Store and enqueue; returns the audit id. Nothing is left behind if enqueueing fails.

        Redis refusing the write (out of memory under ``noeviction``) is :class:`RedisRefused`, one line; with no
        system configured at all it is :class:`NotConfigured` and nothing is stored or sent."""
        missing = missing_settings(self.settings)
        if len(missing) == len(System):
            raise NotConfigured(not_configured_message(missing))
        return submit_audit(self.store, request, bulk_max_emails=self.settings.bulk_max_emails,
                            send_task=celery_app.send_task)

    # -- reading ------------------------------------------------------------------------------------------------------
    def get(self, audit_id: str, *, include_report: bool = True) -> dict[str, Any]:
        audit_id = validate_audit_id(audit_id)
        try:
            meta = self.store.meta(audit_id)
            progress = self.store.progress(audit_id)
            report = self.store.report(audit_id) if include_report and meta["status"] in TERMINAL else None
        except AuditNotFound:
            if self._was_lost(audit_id):
                raise lost(audit_id) from None
            raise InvalidInput(f"no audit with id {audit_id} (unknown or expired)") from None
        except connection_errors() as exc:
            raise ServiceUnavailable(f"cannot read the audit: Redis unreachable ({type(exc).__name__})") from exc
        view: dict[str, Any] = {
            "audit_id": audit_id,
            "kind": meta["kind"],
            "status": meta["status"],
            "description": meta.get("description", ""),
            **view_times(meta),  # ISO 8601 (UTC), like the MCP views
            "progress": progress,
        }
        if meta.get("error"):
            view["error"] = meta["error"]
        if report is not None:
            view["report"] = report
        return view

    def _was_lost(self, audit_id: str) -> bool:
        """A missing audit whose id says it was created within the TTL, before this Redis's data began."""
        try:
            return self.store.was_lost(audit_id, audit_id_time(audit_id))
        except connection_errors():
            return False

    def list(self, limit: int = 20) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000")
        try:
            metas = self.store.list(limit)
        except connection_errors() as exc:
            raise ServiceUnavailable(f"cannot list audits: Redis unreachable ({type(exc).__name__})") from exc
        except redis.exceptions.ResponseError as exc:  # the list prunes expired ids: a write
            raise refused(exc) from exc
        return [
            {"audit_id": m["id"], "kind": m["kind"], "status": m["status"], "description": m.get("description", ""),
             **view_times(m)}
            for m in metas
        ]

    def wait(
        self,
        audit_id: str,
        timeout: float,
        *,
        poll_s: float = 0.1,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        submitted: bool = False,
        on_unreachable: Callable[[ServiceUnavailable], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the audit is done or failed; WaitTimeout at the deadline (never later than one read).

        The poll interval starts at 2 ms and doubles up to ``poll_s``: a quick audit is seen within milliseconds of
        finishing, and a long one costs one small Redis read per ``poll_s``.

        Redis unreachable or stalled while polling is not the end: the reads are retried (50 ms doubling to 1 s)
        until the deadline, then ServiceUnavailable (``on_unreachable`` hears of the first failure of each outage).
        An audit whose record disappears is :class:`AuditLost` once it is known to have existed (seen by this wait,
        or ``submitted`` by this caller); an id never seen stays InvalidInput (unknown or expired: the caller's
        input).
        """
        audit_id = validate_audit_id(audit_id)
        deadline = clock() + timeout
        interval = min(0.002, poll_s)
        known = submitted
        outage: ServiceUnavailable | None = None
        retry = RETRY_FIRST_S
        while True:
            try:
                view = self.get(audit_id)
            except InvalidInput:
                if not known:
                    raise  # never existed (or expired): the caller's input
                raise lost(audit_id) from None
            except (RedisRefused, AuditLost):
                raise
            except ServiceUnavailable as exc:
                if outage is None and on_unreachable is not None:
                    on_unreachable(exc)
                outage = exc
                remaining = deadline - clock()
                if remaining <= 0:
                    raise ServiceUnavailable(f"{exc}; still unreachable at the {timeout:g}s deadline") from exc
                sleep(min(retry, remaining))
                retry = min(retry * 2, RETRY_MAX_S)
                continue
            outage, retry, known = None, RETRY_FIRST_S, True
            if on_progress is not None:
                on_progress(view)
            if view["status"] in TERMINAL:
                return view
            remaining = deadline - clock()
            if remaining <= 0:
                raise WaitTimeout(f"audit {audit_id} still {view['status']} after {timeout:g}s")
            sleep(min(interval, remaining))
            interval = min(interval * 2, poll_s)


__all__ = ["AuditKind", "Nexus", "lost", "refused"]
