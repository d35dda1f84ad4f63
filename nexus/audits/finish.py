"""Finishing an audit: the one public way a report is stored (every chord body ends here).

``finish_report`` stamps the report (id, kind, time), adds the pending remediation section when Helix remediation
is on, and stores it exactly once (:meth:`AuditStore.finish_once`): a redelivered chord body finds the audit
finished and does nothing. A report in which NO system could be read says nothing about drift: it is stored with
status ``failed`` and the error "no system could be read: <system>: <reason>; ..." (counted as failed by the
metrics, never remediated), so no reader takes "0 discrepancies" for a clean result. A partial report (some systems
answered) is ``done`` and lists the others in ``systems_failed`` / ``errors`` (:mod:`nexus.audits.outcome`).
``fail_audit`` is the other ending: the audit itself failed (an unexpected error while building its report), with
the error recorded instead of leaving it running forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from nexus.audits.outcome import counted_discrepancies, failure_text, nothing_read, systems_not_read
from nexus.audits.store import AuditStore
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
    policy: Mapping[str, Any] | None = None,
) -> bool:
    """Store ``report`` as the audit's final report, once. True for the one caller that stored it.

    ``policy``: the findings policy's stamp (``FindingsPolicy.stamp()``: hash and what differs from the defaults),
    recorded as the report's ``policy`` so two audits can be compared honestly.

    Status ``done``, or ``failed`` when no system could be read (the report is kept: it lists each system's error).
    """
    if store.is_finished(audit_id):
        return False
    meta = store.meta(audit_id)
    report = {"audit_id": audit_id, "kind": meta["kind"], "generated_at": datetime.now(UTC).isoformat(), **report}
    if policy is not None:
        report["policy"] = dict(policy)
    duration = max(time.time() - meta["created_at"], 0.0)
    if nothing_read(report):
        error = failure_text(report)
        if not store.finish_once(audit_id, report, status="failed", error=error):
            return False
        hooks.audit_failed(meta["kind"], duration)
        log.warning("audit %s failed: %s", audit_id, error, extra={"audit_id": audit_id})
        return True
    if remediate:
        report["remediation"] = pending_section(report)
    if not store.finish_once(audit_id, report):
        return False
    hooks.audit_finished(meta["kind"], "done", duration, [d["severity"] for d in counted_discrepancies(report)])
    not_read = systems_not_read(report)
    if not_read:
        log.warning("audit %s done, partial: %s discrepancies; not read: %s", audit_id,
                    report.get("discrepancy_count"), "; ".join(f"{k}: {v}" for k, v in not_read.items()),
                    extra={"audit_id": audit_id})
    else:
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
