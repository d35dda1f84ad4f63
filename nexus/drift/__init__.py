"""The drift engine: pure functions from canonical records to discrepancies (no I/O, no Celery).

Rules: docs/drift-rules.md. Field names and severities: :mod:`nexus.drift.fields`.
"""

from nexus.drift.correlate import PersonIndex, PersonMatch, correlate_people
from nexus.drift.devices import compare_device
from nexus.drift.engine import (
    DevicesResult,
    PeopleResult,
    audit_devices,
    audit_people,
    device_report,
    sort_discrepancies,
    summarize,
    user_report,
)
from nexus.drift.normalize import OwnerKind, OwnerRef, norm_email, norm_serial, norm_text, parse_owner
from nexus.drift.people import compare_person

__all__ = [
    "DevicesResult",
    "OwnerKind",
    "OwnerRef",
    "PeopleResult",
    "PersonIndex",
    "PersonMatch",
    "audit_devices",
    "audit_people",
    "compare_device",
    "compare_person",
    "correlate_people",
    "device_report",
    "norm_email",
    "norm_serial",
    "norm_text",
    "parse_owner",
    "sort_discrepancies",
    "summarize",
    "user_report",
]
