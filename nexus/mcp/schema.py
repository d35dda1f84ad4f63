"""What the MCP tools accept and return: the constrained input types and the output models (both appear in each
tool's JSON schema), and the facade's audit dict turned into an :class:`AuditView` (long report lists shortened).
"""

# No `from __future__ import annotations`: pydantic and fastmcp read these annotations at runtime.
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from nexus.audits.spec import EMAIL_PATTERN, MAX_EMAIL_LENGTH, SERIAL_PATTERN
from nexus.audits.store import TERMINAL, iso_time
from nexus.drift.fields import SEVERITY_ORDER

MAX_WAIT_S = 30.0
DEFAULT_MAX_ENTRIES = 100
AUDIT_ID_PATTERN = r"^[0-9a-fA-F]{32}$"

# -- input types (their constraints appear in each tool's JSON schema) -------------------------------------------------
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_EMAIL_LENGTH, pattern=EMAIL_PATTERN)]
Serial = Annotated[str, StringConstraints(strip_whitespace=True, pattern=SERIAL_PATTERN)]
AuditId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=AUDIT_ID_PATTERN)]
WaitSeconds = Annotated[float, Field(
    ge=0, le=MAX_WAIT_S,
    description=f"Seconds to wait for the audit to finish before returning (0-{MAX_WAIT_S:g}; 0 = return at once). "
                "If it finishes in time, the report is included; otherwise poll get_audit.")]
MaxEntries = Annotated[int, Field(
    ge=0, le=10_000,
    description="The most items of any list in the report to include: bulk entries (people with drift first), "
                "fleet discrepancies (most severe first). Counts and summary always cover everything.")]


# -- outputs ---------------------------------------------------------------------------------------------------------
class Progress(BaseModel):
    total: int = Field(description="Subjects to audit (people or devices).")
    done: int = Field(description="Subjects finished so far.")
    systems: dict[str, Any] = Field(default_factory=dict, description="Per-system fetch state, by system id.")


class AuditView(BaseModel):
    """An audit as the assistant sees it: status, progress, and the report once it is done."""

    audit_id: str = Field(description="32 hex characters; pass it to get_audit.")
    kind: str = Field(description="user | device | bulk | fleet")
    status: str = Field(description="queued | running | done | failed")
    finished: bool = Field(description="True once status is done or failed (stop polling).")
    description: str
    created_at: str = Field(description="UTC, ISO 8601.")
    updated_at: str = Field(description="UTC, ISO 8601.")
    progress: Progress
    error: str | None = Field(None, description="Why the audit failed (status failed).")
    report: dict[str, Any] | None = Field(
        None, description="The drift report once status is done (null before). A user report has email, "
                          "systems_checked, systems_available, systems_failed, <system>_found, discrepancy_count, "
                          "discrepancies[{field, system_a, value_a, system_b, value_b, severity}] and errors; "
                          "waived[{..., waiver{id, reason, expires_at, created_by}}] and waived_count list the "
                          "findings an active waiver covers (never counted). A fleet report adds history (new, "
                          "persisting, resolved, unknown with since).")
    omitted: dict[str, int] = Field(
        default_factory=dict, description="Report lists shortened in this answer: list name -> items left out "
                                          "(see get_audit's max_entries). Empty when the report is complete.")
    next_step: str = Field(description="What to do next.")


class AuditSummary(BaseModel):
    audit_id: str
    kind: str
    status: str
    description: str
    created_at: str
    updated_at: str


class AuditList(BaseModel):
    audits: list[AuditSummary] = Field(description="Newest first.")
    count: int



# -- helpers ---------------------------------------------------------------------------------------------------------
def iso(moment: float | str) -> str:
    """The views already carry ISO strings (nexus.audits.store.view_times); an epoch is converted the same way."""
    return moment if isinstance(moment, str) else iso_time(moment)



def _has_drift(item: Any) -> bool:
    return isinstance(item, dict) and bool(item.get("discrepancy_count") or item.get("discrepancies"))


def _severity_rank(item: Any) -> int:
    severity = item.get("severity") if isinstance(item, dict) else None
    ranks = {s.value: rank for s, rank in SEVERITY_ORDER.items()}
    return ranks.get(str(severity), len(ranks))


def trim_report(report: dict[str, Any], max_items: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Shorten every top-level list of the report to ``max_items``, keeping what matters first and the order.

    Only lists of records are shortened: ``entries`` (bulk) people with drift first, ``discrepancies`` (fleet) most
    severe first, other lists the first ones. Returns the report (a copy when trimmed) and how many items each
    shortened list lost.
    """
    trimmed = dict(report)
    omitted: dict[str, int] = {}
    for key, value in report.items():
        if not isinstance(value, list) or len(value) <= max_items or not all(isinstance(v, dict) for v in value):
            continue  # short, or a list of names (systems_checked, ...): never shortened
        if key == "entries":
            ranked = [(int(not _has_drift(item)), i) for i, item in enumerate(value)]
        elif key == "discrepancies":
            ranked = [(_severity_rank(item), i) for i, item in enumerate(value)]
        else:
            ranked = [(0, i) for i in range(len(value))]
        keep = sorted(i for _, i in sorted(ranked)[:max_items])
        trimmed[key] = [value[i] for i in keep]
        omitted[key] = len(value) - len(keep)
    return (trimmed if omitted else report), omitted


def to_view(raw: dict[str, Any], max_entries: int = DEFAULT_MAX_ENTRIES) -> AuditView:
    """The facade's ``get`` dict as the tool's output model."""
    audit_id = raw["audit_id"]
    status = raw["status"]
    report = raw.get("report")
    omitted: dict[str, int] = {}
    if isinstance(report, dict):
        report, omitted = trim_report(report, max_entries)
    if status == "done":
        next_step = "Finished: the report is in `report`."
        if omitted:
            left_out = ", ".join(f"{n} {key}" for key, n in omitted.items())
            next_step += (f" Shortened here ({left_out} left out; counts and summary cover everything): raise "
                          f"max_entries, or run `nexus audit result {audit_id} --format json` for the whole report.")
    elif status == "failed":
        next_step = "The audit failed (see `error`). Run check_system_health, then retry the audit."
    else:
        next_step = f"The audit runs in the background. Call get_audit(audit_id=\"{audit_id}\") in a few seconds."
    progress = raw.get("progress") or {}
    return AuditView(
        audit_id=audit_id, kind=raw["kind"], status=status, finished=status in TERMINAL,
        description=raw.get("description", ""), created_at=iso(raw["created_at"]),
        updated_at=iso(raw["updated_at"]),
        progress=Progress(total=int(progress.get("total", 0)), done=int(progress.get("done", 0)),
                          systems=dict(progress.get("systems") or {})),
        error=raw.get("error") or None, report=report, omitted=omitted, next_step=next_step,
    )
