"""What every chord body shares so that an audit always ends: the failure guard and the guarded remediation enqueue.

Both exist because a chord body that raises leaves its audit ``running`` forever (nobody else will finish it), and a
remediation that cannot be published must not undo a report that is already stored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from celery.exceptions import Retry

from nexus.audits.finish import fail_audit
from nexus.errors import error_text
from nexus.remediation import write_section
from nexus.runtime import current
from tasks.signatures import publish_remediation

log = logging.getLogger("nexus.tasks")


@contextlib.contextmanager
def audit_failure_guard(audit_id: str, step: str) -> Iterator[None]:
    """An unexpected error in a step that builds the report fails the AUDIT (status failed, with the error), instead
    of leaving it running forever. Failed fetches never get here: they are markers, and the report is built."""
    try:
        yield
    except Retry:
        raise
    except Exception as exc:
        log.exception("%s of audit %s failed", step, audit_id, extra={"audit_id": audit_id})
        try:
            rt = current()
            fail_audit(rt.audit_store(), audit_id, f"{step} failed: {error_text(exc)}", hooks=rt.hooks)
        except Exception as inner:  # Redis gone too: nothing more can be recorded
            log.warning("audit %s could not be marked failed: %s", audit_id, inner, extra={"audit_id": audit_id})


def enqueue_remediation(audit_id: str) -> None:
    """Remediation runs after the report is stored, in its own task: it never delays or fails the audit. A publish
    that fails is written as the report's remediation section (``failed``, with the reason), never raised."""
    try:
        publish_remediation(audit_id)
    except Exception as exc:
        log.warning("remediation of audit %s not enqueued: %s", audit_id, exc, extra={"audit_id": audit_id})
        with contextlib.suppress(Exception):  # the audit is done; a note that cannot be written is only logged
            write_section(current().audit_store(), audit_id, {"status": "failed", "error": {
                "type": type(exc).__name__, "kind": "unexpected", "message": f"not enqueued: {str(exc)[:200]}"}})


__all__ = ["audit_failure_guard", "enqueue_remediation"]
