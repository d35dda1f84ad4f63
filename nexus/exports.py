"""Report exports: JSON (the report as stored), CSV (one row per discrepancy) and Markdown (summary + table)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

FORMATS = ("json", "csv", "md")
CSV_COLUMNS = ("subject", "field", "severity", "system_a", "value_a", "system_b", "value_b", "matched_on", "status")


def discrepancies_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every discrepancy of a user, device, bulk or fleet report, each with its subject."""
    subject = report.get("email") or report.get("serial") or ""
    if "entries" in report:
        return [dict(d, subject=d.get("subject") or e.get("email") or e.get("serial") or "")
                for e in report["entries"] for d in e.get("discrepancies", [])]
    return [dict(d, subject=d.get("subject") or subject) for d in report.get("discrepancies", [])]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # Spreadsheet formula injection: a value from a remote system must never run as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in discrepancies_of(report):
        writer.writerow([_cell(d.get(col)) for col in CSV_COLUMNS])
    return buf.getvalue()


def _md(value: Any) -> str:
    text = "" if value is None else (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(report: dict[str, Any]) -> str:
    title = report.get("email") or report.get("serial") or report.get("kind", "audit")
    lines = [f"# Nexus drift report: {_md(title)}", ""]
    if report.get("audit_id"):
        generated = report.get("generated_at", "")
        lines.append(f"- Audit: `{report['audit_id']}` ({report.get('kind', '')}), generated {generated}")
    lines.append(f"- Systems checked: {', '.join(report.get('systems_checked', []))}")
    failed = report.get("systems_failed") or []
    lines.append(f"- Systems failed: {', '.join(failed) if failed else 'none'}")
    for system, error in (report.get("errors") or {}).items():
        lines.append(f"  - {system}: {_md(error.get('type'))}: {_md(error.get('message'))}")
    discrepancies = discrepancies_of(report)
    lines.append(f"- Discrepancies: {len(discrepancies)}")
    summary = report.get("summary")
    if summary:
        sev = ", ".join(f"{k} {v}" for k, v in summary.get("by_severity", {}).items())
        lines += ["", "## Summary", "", f"- By severity: {sev}"]
        lines.append("- By field: " + ", ".join(f"{k} {v}" for k, v in summary.get("by_field", {}).items()))
        lines.append("- By system: " + ", ".join(f"{k} {v}" for k, v in summary.get("by_system", {}).items()))
    lines += ["", "## Discrepancies", ""]
    if not discrepancies:
        lines.append("No discrepancies.")
    else:
        lines.append("| Severity | Subject | Field | System A | Value A | System B | Value B |")
        lines.append("|---|---|---|---|---|---|---|")
        for d in discrepancies:
            lines.append("| " + " | ".join(_md(d.get(k)) for k in
                                             ("severity", "subject", "field", "system_a", "value_a", "system_b",
                                              "value_b")) + " |")
    return "\n".join(lines) + "\n"


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "md":
        return to_markdown(report)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
