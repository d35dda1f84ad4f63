"""Tasks that celery beat sends (see :mod:`workers.beat`). They only submit audits (:mod:`nexus.audits.submit`, as
the facade does).

``nexus.audit.scheduled_fleet`` runs on the ``audit`` queue (routing ``nexus.audit.*``). Beat sends one message per
tick (celery-redbeat's lock keeps a second beat replica idle); a message redelivered after the worker died
(``acks_late``) carries the same task id, so a marker keyed by that id keeps it from submitting a second audit.
The marker is written after the submit: a crash in between can at worst submit one extra audit, never skip a week.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from nexus.audits.spec import AuditRequest
from nexus.audits.submit import submit_audit
from nexus.runtime import current
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")

MARKER_PREFIX = "nexus:scheduled:fleet:"
MARKER_TTL_S = 8 * 86400  # longer than the weekly period, so a late redelivery still finds it


@celery_app.task(name="nexus.audit.scheduled_fleet", bind=True, acks_late=True, reject_on_worker_lost=True)
def scheduled_fleet(self: Task) -> dict[str, Any]:
    """Submit a fleet audit (everyone, every device); returns its id. No arguments, so nothing secret to show."""
    rt = current()
    marker = f"{MARKER_PREFIX}{self.request.id}" if self.request.id else ""
    r = rt.redis
    if marker:
        previous = r.get(marker)
        if previous is not None:
            audit_id = previous.decode() if isinstance(previous, bytes) else str(previous)
            log.info("scheduled fleet audit already submitted for this tick: %s", audit_id)
            return {"audit_id": audit_id, "duplicate": True}
    audit_id = submit_audit(rt.audit_store(), AuditRequest.fleet(), bulk_max_emails=rt.settings.bulk_max_emails,
                            send_task=celery_app.send_task)
    if marker:
        r.set(marker, audit_id, ex=MARKER_TTL_S)
    log.info("scheduled fleet audit submitted: %s", audit_id)
    return {"audit_id": audit_id, "duplicate": False}
