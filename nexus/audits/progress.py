"""Progress reports from the tasks: best effort, a Redis hiccup here must never fail a fetch."""

from __future__ import annotations

import logging
import time
from typing import Any

from nexus.audits.store import AuditStore
from nexus.systems import System

log = logging.getLogger("nexus.progress")


def report_fetch_progress(
    store: AuditStore, audit_id: str, system: System, status: str, attempt: int, *, error: Any = None,
    pages: int | None = None,
) -> None:
    info: dict[str, Any] = {"status": status, "attempt": attempt, "at": round(time.time(), 3)}
    if error is not None:
        info["error"] = error.to_dict() if hasattr(error, "to_dict") else error
    if pages is not None:
        info["pages"] = pages
    try:
        store.set_system_progress(audit_id, system.value, info)
    except Exception as exc:
        log.debug("progress not recorded for %s/%s: %s", audit_id, system.value, exc)
