"""Helix remediation (opt-in, ``NEXUS_HELIX_REMEDIATION=true``): one incident per critical discrepancy, never two.

After an audit's report is stored, the ``nexus.compare.remediate`` task (tasks/compare.py) calls
:func:`remediate_stored_report`. For each critical discrepancy of the report:

1. its **correlation key** is derived from (subject, field, systems) only: the same drift found by any later audit
   has the same key, whatever the values are now (:func:`correlation_key`);
2. a Redis lock (``SET NX PX``) on that key keeps two workers remediating the same drift at the same moment (two
   audits of the same person finishing together) from both creating an incident;
3. Helix is asked for an open incident carrying the key in ``Vendor Ticket Number`` (the key is also written into
   the incident's text as ``[nexus:<key>]`` for people): found -> ``existing``; else one is created -> ``created``.

Helix is the record of what exists, so a re-run, a redelivered task or a second Nexus deployment never files a
duplicate, and an incident someone closed while the drift persists is followed by a new one (only ``Closed`` and
``Cancelled`` incidents are not "open").

Failures never fail the audit: they are logged and written into the report's ``remediation`` section
(``status``: ``pending`` -> ``done`` | ``partial`` | ``failed``; one item per critical discrepancy). Helix unreachable,
throttling, an open breaker or refused credentials stop the run at the first failure (the rest are recorded as not
attempted: no point hammering a system that is down); a refused incident (HTTP 400) only fails that item.
At most ``NEXUS_HELIX_REMEDIATION_MAX_INCIDENTS`` items per audit are attempted; the rest are ``skipped``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from nexus.drift.fields import POLICY, Severity
from nexus.errors import BadRequestError, NotFoundError, error_dict

log = logging.getLogger("nexus.remediation")

KEY_PREFIX = "nexus-"
LOCK_PREFIX = "nexus:remediation:lock:"
CLOSED_STATUSES = frozenset({"closed", "cancelled"})
MAX_VALUE_CHARS = 500

# Compare-and-delete: release the lock only if it is still ours (it may have expired and been taken since).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LockBusy(RuntimeError):
    """Another worker kept the key's lock longer than ``lock_wait_s`` (that item fails; the others go on)."""


class HelixIncidents(Protocol):
    """What remediation needs from :class:`clients.helix.HelixClient`."""

    def find_incidents(self, correlation: str) -> list[dict[str, str | None]]: ...

    def create_incident(self, *, summary: str, details: str, first_name: str, last_name: str,
                        correlation: str | None = None) -> str: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """One critical discrepancy, as remediation sees it."""

    subject: str
    field: str
    systems: tuple[str, ...]
    values: tuple[tuple[str, Any], ...]  # (system, value) as the report has them
    key: str


@dataclass(frozen=True, slots=True)
class RemediationPolicy:
    first_name: str = "Nexus"
    last_name: str = "Audit"
    max_incidents: int = 50
    lock_ttl_s: float = 60.0
    lock_wait_s: float = 15.0  # how long to wait for another worker's lock on the same key


def correlation_key(subject: str, field: str, systems: Iterable[str]) -> str:
    """``nexus-`` + 24 hex digits from (subject case-insensitively, field, the systems in any order)."""
    names = sorted({s for s in systems if s and s != POLICY})
    text = "\x1f".join([subject.strip().casefold(), field, *names])
    return KEY_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:24]


def critical_findings(report: Mapping[str, Any]) -> list[Finding]:
    """The critical discrepancies of a user, device, bulk or fleet report, one per correlation key, in order."""
    from nexus.exports import discrepancies_of

    found: dict[str, Finding] = {}
    for d in discrepancies_of(dict(report)):
        if d.get("severity") != Severity.CRITICAL or not d.get("subject") or not d.get("field"):
            continue
        pairs = tuple((str(d.get(f"system_{s}") or ""), d.get(f"value_{s}")) for s in ("a", "b"))
        systems = tuple(sorted({name for name, _ in pairs if name and name != POLICY}))
        key = correlation_key(str(d["subject"]), str(d["field"]), systems)
        found.setdefault(key, Finding(str(d["subject"]), str(d["field"]), systems, pairs, key))
    return list(found.values())


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."


def incident_text(finding: Finding, audit_id: str) -> tuple[str, str]:
    """(summary, details) of the incident for ``finding``."""
    summary = f"Nexus: critical {finding.field} drift for {finding.subject}"
    lines = [
        f"Nexus audit {audit_id} found a critical discrepancy.",
        f"Subject: {finding.subject}",
        f"Field: {finding.field}",
        *(f"{system}: {_clip(value)}" for system, value in finding.values if system),
        "Severity: critical",
        f"[nexus:{finding.key}]",
    ]
    return summary[:100], "\n".join(lines)


def _error(exc: BaseException) -> dict[str, Any]:
    return dict(error_dict(exc))


class Remediator:
    """Runs the findings of one report against Helix, under per-key Redis locks."""

    def __init__(
        self,
        helix: HelixIncidents,
        r: redis.Redis,
        policy: RemediationPolicy | None = None,
        *,
        call: Callable[[Callable[[], Any]], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.helix = helix
        self.r = r
        self.policy = policy or RemediationPolicy()
        self.call = call or (lambda fn: fn())  # the Helix breaker's call, in the workers
        self.clock = clock
        self.sleep = sleep
        self._release = r.register_script(_RELEASE)

    def run(self, findings: list[Finding], audit_id: str) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        stopped: dict[str, Any] | None = None
        for index, finding in enumerate(findings):
            item: dict[str, Any] = {"key": finding.key, "subject": finding.subject, "field": finding.field,
                                    "systems": list(finding.systems)}
            if index >= self.policy.max_incidents:
                item.update(action="skipped", reason=f"more than {self.policy.max_incidents} critical discrepancies")
            elif stopped is not None:
                item.update(action="failed", error={**stopped, "message": "not attempted: " + stopped["message"]})
            else:
                try:
                    item.update(self._one(finding, audit_id))
                except Exception as exc:
                    item.update(action="failed", error=_error(exc))
                    log.warning("remediation of %s/%s for audit %s failed: %s", finding.subject, finding.field,
                                audit_id, item["error"]["message"], extra={"audit_id": audit_id, "system": "helix"})
                    if not isinstance(exc, BadRequestError | NotFoundError | LockBusy):
                        stopped = item["error"]  # Helix is down, throttling or refusing us: stop here
            items.append(item)
        return summarize(items)

    def _one(self, finding: Finding, audit_id: str) -> dict[str, Any]:
        lock = LOCK_PREFIX + finding.key
        token = uuid.uuid4().hex
        deadline = self.clock() + self.policy.lock_wait_s
        while not self.r.set(lock, token, nx=True, px=int(self.policy.lock_ttl_s * 1000)):
            if self.clock() >= deadline:
                raise LockBusy(f"another worker holds the remediation lock of {finding.key}")
            self.sleep(0.05)
        try:
            existing = [i for i in self.call(lambda: self.helix.find_incidents(finding.key))
                        if (i.get("status") or "").casefold() not in CLOSED_STATUSES]
            if existing:
                return {"action": "existing", "incident": existing[0]["incident"]}
            summary, details = incident_text(finding, audit_id)
            number = self.call(lambda: self.helix.create_incident(
                summary=summary, details=details, first_name=self.policy.first_name,
                last_name=self.policy.last_name, correlation=finding.key))
            log.info("remediation: opened Helix incident %s for %s/%s (audit %s)", number, finding.subject,
                     finding.field, audit_id, extra={"audit_id": audit_id, "system": "helix"})
            return {"action": "created", "incident": number}
        finally:
            self._release(keys=[lock], args=[token])


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's ``remediation`` section from its items."""
    failed = sum(1 for i in items if i["action"] == "failed")
    attempted = sum(1 for i in items if i["action"] != "skipped")
    status = "done" if not failed else "failed" if failed == attempted else "partial"
    counts = {action: sum(1 for i in items if i["action"] == action)
              for action in ("created", "existing", "failed", "skipped")}
    return {"status": status, "critical": len(items), **counts, "items": items}


def pending_section(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the report says while remediation has not run yet."""
    return {"status": "pending", "critical": len(critical_findings(report))}


def remediate_stored_report(
    audit_id: str,
    store: Any,
    helix: HelixIncidents,
    policy: RemediationPolicy,
    *,
    call: Callable[[Callable[[], Any]], Any] | None = None,
) -> dict[str, Any]:
    """Remediate the stored report of ``audit_id`` and write the outcome into its ``remediation`` section.

    ``store`` is the :class:`nexus.audits.store.AuditStore`. Never raises for a Helix failure (it is recorded);
    an audit without a report (expired, or never finished) is left alone.
    """
    report = store.report(audit_id)
    if report is None:
        return {"status": "failed", "error": {"type": "AuditNotFound", "message": "no report to remediate"}}
    findings = critical_findings(report)
    section = Remediator(helix, store.r, policy, call=call).run(findings, audit_id) if findings \
        else summarize([])
    write_section(store, audit_id, section)
    return section


def write_section(store: Any, audit_id: str, section: dict[str, Any]) -> None:
    """Replace the report's ``remediation`` section, keeping the report's expiry (nothing without a report)."""
    store.set_report_section(audit_id, "remediation", section)


def policy_from_settings(settings: Any) -> RemediationPolicy:
    return RemediationPolicy(first_name=settings.helix_remediation_first_name,
                             last_name=settings.helix_remediation_last_name,
                             max_incidents=settings.helix_remediation_max_incidents)


__all__ = [
    "Finding",
    "HelixIncidents",
    "LockBusy",
    "RemediationPolicy",
    "Remediator",
    "correlation_key",
    "critical_findings",
    "incident_text",
    "pending_section",
    "policy_from_settings",
    "remediate_stored_report",
    "summarize",
    "write_section",
]
