"""One audit, one findings policy: the policy is pinned in the audit's record by the first task that judges
anything (the plan task), and every part, stage and finisher reads it from there.

Without it each part reads ``NEXUS_POLICY_FILE`` when it runs: a policy edited during a long bulk audit (or workers
on hosts with different files) would grade some people under one policy and others under another, and the report's
stamp would name only the finishing part's. The workers' policy is the one pinned, not the submitter's: findings are
judged where the workers run.
"""

from __future__ import annotations

from nexus.audits.store import AuditStore
from nexus.findings_policy import FindingsPolicy, load_policy
from nexus.settings import Settings


def audit_policy(store: AuditStore, audit_id: str, settings: Settings) -> FindingsPolicy:
    """The policy this audit is judged by: the one pinned for it, or (first caller) this process's, pinned now."""
    mine = load_policy(settings.policy_file)
    pinned = store.pin_policy(audit_id, mine.model_dump_json())
    if pinned is None:  # the audit is gone (lost or expired): its tasks write nothing anyway
        return mine
    return mine if pinned == mine.model_dump_json() else FindingsPolicy.model_validate_json(pinned)


__all__ = ["audit_policy"]
