"""Fleet audits (everyone and every device). Placeholder entry point until the snapshot pipeline lands."""

from __future__ import annotations

from typing import Any


def start_fleet(audit_id: str) -> dict[str, Any]:
    from nexus.audits.progress import get_store

    get_store().finish(audit_id, {}, status="failed", error="fleet audits are not available yet")
    return {"audit_id": audit_id, "error": "not available"}
