"""Finishing an audit: the one public way a report is stored (every chord body ends here).

``finish_report`` stamps the report (id, kind, time), adds the pending remediation section when Helix remediation
is on, and stores it exactly once (:meth:`AuditStore.finish_once`): a redelivered chord body finds the audit
finished and does nothing. ``fail_audit`` is the other ending: the audit itself failed (an unexpected error while
building its report), with the error recorded instead of leaving it running forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from nexus.audits.store import AuditStore
from nexus.exports import discrepancies_of
from nexus.remediation import pending_section

log = logging.getLogger("nexus.tasks")


class FinishHooks(Protocol):
    def audit_finished(self, kind: str, status: str, duration_s: float, severities: Iterable[str]) -> None: ...
    def audit_failed(self, kind: str, duration_s: float) -> None: ...


def finish_report(
    store: AuditStore,
    audit_id: str,
    report: dict[str, Any],
    *,
    hooks: FinishHooks,
    remediate: bool = False,
    enqueue_remediation: Callable[[str], None] | None = None,
) -> bool:
    """Store ``report`` as the audit's final report, once. True for the one caller that stored it."""
    if store.is_finished(audit_id):
        return False
    meta = store.meta(audit_id)
    report = {"audit_id": audit_id, "kind": meta["kind"], "generated_at": datetime.now(UTC).isoformat(), **report}
    if remediate:
        report["remediation"] = pending_section(report)
    if not store.finish_once(audit_id, report):
        return False
    hooks.audit_finished(meta["kind"], "done", max(time.time() - meta["created_at"], 0.0),
                         [d["severity"] for d in discrepancies_of(report)])
    log.info("audit %s done: %s discrepancies", audit_id, report.get("discrepancy_count"),
             extra={"audit_id": audit_id})
    if remediate and enqueue_remediation is not None:
        enqueue_remediation(audit_id)
    return True


def fail_audit(store: AuditStore, audit_id: str, error: str, *, hooks: FinishHooks) -> bool:
    """Mark the audit failed with ``error``, once. True for the one caller that did."""
    meta = store.meta(audit_id)
    if not store.finish_once(audit_id, {}, status="failed", error=error):
        return False
    hooks.audit_failed(meta["kind"], max(time.time() - meta["created_at"], 0.0))
    return True


__all__ = ["FinishHooks", "fail_audit", "finish_report"]
