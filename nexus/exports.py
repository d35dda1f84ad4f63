"""Report exports: JSON (the report as stored), CSV (one row per finding) and Markdown (every section).

Every section of a report is exported, for every kind of audit (user, device, bulk, fleet):

* CSV: one row per finding with its ``status``: ``counted`` (the discrepancies), ``waived`` (with the waiver's id,
  reason and expiry), ``resolved`` (gone since the previous audit, with ``resolved_at``) and ``unknown`` (could not
  be re-checked, with the ``reason``); ``history`` and ``since`` for each. The columns of :data:`CSV_COLUMNS` come
  first, always; any other field the findings carry (``control``, ``changed_from``, ...) follows, sorted by name.
* Markdown: the systems (status per system: ok, failed, degraded, stale, skipped, each with its reason), a summary
  (counts, history, waived, suppressed, policy), then the findings grouped by the control they evidence (one
  table per control, with its remediation hints), then remediation.

Values render as JSON scalars in every text format (:func:`text_of`): ``true``/``false``, numbers as JSON writes
them, objects as JSON; an absent value (``null``) is an empty cell. Timestamps are the report's own ISO 8601 strings
with their time zone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from nexus.controls import CONTROL_TITLES, control_of, remediation_of
from nexus.systems import System

FORMATS = ("json", "csv", "md", "html")  # html: nexus.exports_html (it also reads the drift history)
#: The stable CSV columns, in order (a report's other finding fields follow them, sorted).
CSV_COLUMNS = ("subject", "field", "severity", "system_a", "value_a", "system_b", "value_b", "matched_on", "status",
               "history", "since", "resolved_at", "reason", "waiver_id", "waiver_reason", "waiver_expires_at")
#: Finding statuses, in the order rows are exported; the report section each comes from.
STATUSES = ("counted", "waived", "resolved", "unknown")
_SECTION = {"waived": "waived", "resolved": "resolved", "unknown": "unknown"}
_FOLDED = {"waiver", "subject"}  # written as waiver_* columns / always first


def text_of(value: Any) -> str:
    """A value as every text format shows it: JSON scalars (``true``, ``3``), JSON objects, empty for null."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _subject(report: Mapping[str, Any]) -> str:
    return str(report.get("email") or report.get("serial") or "")


def _with_subject(items: Iterable[Mapping[str, Any]], subject: str) -> list[dict[str, Any]]:
    return [dict(d, subject=d.get("subject") or subject) for d in items]


def _scopes(report: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str]]:
    """The report itself, then each entry of a bulk report, with the subject their findings belong to."""
    scopes: list[tuple[Mapping[str, Any], str]] = [(report, _subject(report))]
    return scopes + [(e, _subject(e)) for e in report.get("entries") or () if isinstance(e, Mapping)]


def discrepancies_of(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every counted discrepancy of a user, device, bulk or fleet report, each with its subject."""
    if "entries" in report:
        return [d for entry, subject in _scopes(report)[1:] for d in _with_subject(entry.get("discrepancies", []),
                                                                                      subject)]
    return _with_subject(report.get("discrepancies", []), _subject(report))


def findings_of(report: Mapping[str, Any], status: str) -> list[dict[str, Any]]:
    """The findings of one status (:data:`STATUSES`), from the report and from each entry of a bulk report."""
    if status == "counted":
        return discrepancies_of(report)
    key = _SECTION[status]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for scope, subject in _scopes(report):
        for d in _with_subject(scope.get(key) or (), subject):
            ident = json.dumps(d, sort_keys=True, default=str)
            if ident not in seen:  # a finding listed at the top and in its entry is one finding
                seen.add(ident)
                out.append(d)
    return out


def rows_of(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every finding of the report with its ``status``: counted, waived, resolved, unknown."""
    return [dict(d, status=status) for status in STATUSES for d in findings_of(report, status)]


# -- CSV -----------------------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    text = text_of(value)
    # Spreadsheet formula injection: a value from a remote system must never run as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k not in ("waiver",)}
    waiver = row.get("waiver")
    if isinstance(waiver, Mapping):
        flat.update(waiver_id=waiver.get("id"), waiver_reason=waiver.get("reason"),
                    waiver_expires_at=waiver.get("expires_at"))
    return flat


def to_csv(report: Mapping[str, Any]) -> str:
    rows = [_flat(r) for r in rows_of(report)]
    others = sorted({k for r in rows for k in r} - set(CSV_COLUMNS) - _FOLDED)
    columns = [*CSV_COLUMNS, *others]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(col)) for col in columns])
    return buf.getvalue()


# -- Markdown ------------------------------------------------------------------------------------------------------
def _md(value: Any) -> str:
    return text_of(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]


def _error_text(error: Mapping[str, Any]) -> str:
    text = f"{error.get('type') or 'Error'}: {error.get('message') or ''}"
    if isinstance(error.get("attempts"), int):
        text += f" ({error['attempts']} attempt{'s' if error['attempts'] != 1 else ''})"
    if isinstance(error.get("people"), int):
        text += f", for {error['people']} {'person' if error['people'] == 1 else 'people'}"
    return text


def _found_key(display: str) -> str:
    try:
        return f"{System.parse(display).value}_found"
    except ValueError:
        return f"{display.casefold()}_found"


def _system_rows(report: Mapping[str, Any]) -> list[list[Any]]:
    rows_by: Mapping[str, Any] = report.get("systems") or {}
    failed = set(report.get("systems_failed") or ())
    skipped: Mapping[str, Any] = report.get("systems_skipped") or {}
    errors: Mapping[str, Any] = report.get("errors") or {}
    degraded: Mapping[str, Any] = report.get("degraded") or {}
    stale: Mapping[str, Any] = report.get("stale") or {}
    names = list(dict.fromkeys([*(report.get("systems_checked") or ()), *rows_by]))
    out: list[list[Any]] = []
    for name in names:
        row = rows_by.get(name) or {}
        status = row.get("status") or ("failed" if name in failed else "skipped" if name in skipped else "ok")
        detail: list[str] = []
        found_key = _found_key(name)
        if found_key in report and report[found_key] is not None:
            detail.append(f"found: {text_of(report[found_key])}")
        if name in degraded:
            d = degraded[name]
            detail.append(f"degraded: {d.get('reason') or ''} ({text_of(d.get('records'))} records, last good "
                          f"{text_of(d.get('last_good'))}); absence findings suppressed")
        if name in stale:
            s = stale[name]
            detail.append(f"stale: last good snapshot of audit {text_of(s.get('audit_id'))}, taken "
                          f"{text_of(s.get('taken_at'))} ({text_of(s.get('age_s'))} s old)")
        if name in errors:
            detail.append(("not read: " if status in ("failed", "stale") else "") + _error_text(errors[name]))
        if name in skipped:
            detail.append(f"not read: {text_of(skipped[name])}")
        out.append([name, status, row.get("records"), "; ".join(detail)])
    return out


def _summary_lines(report: Mapping[str, Any]) -> list[str]:
    lines = [f"- Discrepancies (counted): {len(discrepancies_of(report))}"]
    summary = report.get("summary")
    if summary:
        for label, key in (("By severity", "by_severity"), ("By control", "by_control"), ("By field", "by_field"),
                           ("By system", "by_system")):
            lines.append(f"- {label}: " + ", ".join(f"{k} {_md(v)}" for k, v in (summary.get(key) or {}).items()))
    waived = findings_of(report, "waived")
    if waived or "waived_count" in report:
        lines.append(f"- Waived: {len(waived)}")
    history = report.get("history")
    if isinstance(history, Mapping):
        previous = history.get("previous_audit_id")
        counts = ", ".join(f"{k} {history.get(k, 0)}" for k in ("new", "persisting", "resolved", "unknown"))
        lines.append(f"- History: {counts}" + (f" (against the previous audit `{_md(previous)}`)" if previous
                                                else " (no previous audit)"))
    suppressed = report.get("suppressed")
    if isinstance(suppressed, Mapping):
        by = ", ".join(f"{k} {v}" for k, v in (suppressed.get("by_system") or {}).items())
        lines.append(f"- Suppressed by the mass-drift guard: {suppressed.get('count', 0)}" + (f" ({by})" if by else ""))
    if "people" in report and isinstance(report["people"], int):
        with_drift = report.get("people_with_drift")
        lines.append(f"- People: {report['people']}" + (f" ({with_drift} with drift)" if with_drift is not None
                                                         else ""))
    if isinstance(report.get("devices"), int):
        lines.append(f"- Devices: {report['devices']}")
    policy = report.get("policy")
    if isinstance(policy, Mapping):
        changed = policy.get("changed") or {}
        lines.append(f"- Findings policy: `{_md(policy.get('hash'))}` ("
                     + ("the defaults" if not changed else "changed: " + _md(json.dumps(changed, sort_keys=True)))
                     + ")")
    for kind, why in (report.get("not_judged") or {}).items():
        lines.append(f"- Not judged: {_md(kind)}: {_md(why)}")
    return lines


def _by_control(items: Iterable[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Findings grouped by the control they evidence (safeguard order); kinds without one last."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for d in items:
        groups.setdefault(str(d.get("control") or control_of(str(d.get("field"))) or ""), []).append(d)

    def order(control: str) -> tuple[int, tuple[int, ...]]:
        numbers = tuple(int(p) for p in control.split()[-1].split(".") if p.isdigit()) if control else ()
        return (0 if control else 1, numbers)

    return [(c, groups[c]) for c in sorted(groups, key=order)]


_FINDING = ("Severity", "Subject", "Field", "System A", "Value A", "System B", "Value B")


def _finding(d: Mapping[str, Any]) -> list[Any]:
    return [d.get(k) for k in ("severity", "subject", "field", "system_a", "value_a", "system_b", "value_b")]


def _waiver_text(d: Mapping[str, Any]) -> str:
    w = d.get("waiver") or {}
    return f"{text_of(w.get('id'))}: {text_of(w.get('reason'))} (expires {text_of(w.get('expires_at'))})"


def _remediation_lines(section: Mapping[str, Any]) -> list[str]:
    counts = ", ".join(f"{k} {section[k]}" for k in ("created", "existing", "failed", "skipped") if k in section)
    lines = [f"- Status: {_md(section.get('status'))}; critical discrepancies: {_md(section.get('critical'))}"
             + (f" ({counts})" if counts else "")]
    items = section.get("items") or []
    if items:
        lines += ["", *_table(("Subject", "Field", "Action", "Incident or error"), (
            [i.get("subject"), i.get("field"), i.get("action"),
             i.get("incident") or (_error_text(i["error"]) if isinstance(i.get("error"), Mapping) else i.get("reason"))]
            for i in items))]
    return lines


def to_markdown(report: Mapping[str, Any]) -> str:
    title = _subject(report) or report.get("kind", "audit")
    lines = [f"# Nexus drift report: {_md(title)}", ""]
    if report.get("audit_id"):
        lines.append(f"- Audit: `{_md(report['audit_id'])}` ({_md(report.get('kind'))}), generated "
                     f"{_md(report.get('generated_at'))}")
    failed = report.get("systems_failed") or []
    lines.append(f"- Systems checked: {', '.join(report.get('systems_checked', []))}")
    lines.append(f"- Systems failed: {', '.join(failed) if failed else 'none'}")
    for key, label in (("systems_degraded", "degraded"), ("systems_stale", "stale")):
        if report.get(key):
            lines.append(f"- Systems {label}: {', '.join(report[key])}")
    systems = _system_rows(report)
    if any(row[2] is not None for row in systems):  # records are counted by fleet audits only
        lines += ["", "## Systems", "", *_table(("System", "Status", "Records", "Detail"), systems)]
    else:
        lines += ["", "## Systems", "", *_table(("System", "Status", "Detail"), ([r[0], r[1], r[3]] for r in systems))]
    lines += ["", "## Summary", "", *_summary_lines(report)]

    counted = discrepancies_of(report)
    with_history = any("history" in d or "since" in d for d in counted)
    lines += ["", "## Discrepancies by control", ""]
    if not counted:
        lines.append("No discrepancies.")
    else:
        header = [*_FINDING, *(("History", "Since") if with_history else ())]
        for control, items in _by_control(counted):
            title = f"{control}: {CONTROL_TITLES.get(control, '')}" if control else "No control"
            hints = sorted({str(d.get("remediation") or remediation_of(str(d.get("field"))) or "") for d in items}
                           - {""})
            lines += [f"### {_md(title)} ({len(items)})", ""]
            lines += [f"Remediation: {_md(h)}" for h in hints] + ([""] if hints else [])
            lines += _table(header, ([*_finding(d), *((d.get("history"), d.get("since")) if with_history else ())]
                                     for d in items))
            lines.append("")
        lines.pop()
    sections = (
        ("waived", "Waived (not counted)", ("History", "Since", "Waiver"),
         lambda d: [d.get("history"), d.get("since"), _waiver_text(d)]),
        ("resolved", "Resolved since the previous audit", ("Since", "Resolved at"),
         lambda d: [d.get("since"), d.get("resolved_at")]),
        ("unknown", "Unknown (not re-checked)", ("Since", "Reason"), lambda d: [d.get("since"), d.get("reason")]),
    )
    for status, heading, extra, cells in sections:
        present = status in report or any(status in e for e, _ in _scopes(report)[1:])
        if not present:
            continue
        found = findings_of(report, status)
        lines += ["", f"## {heading}", ""]
        lines += _table([*_FINDING, *extra], ([*_finding(d), *cells(d)] for d in found)) if found else ["None."]
    remediation = report.get("remediation")
    if isinstance(remediation, Mapping):
        lines += ["", "## Remediation", "", *_remediation_lines(remediation)]
    return "\n".join(lines) + "\n"


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "md":
        return to_markdown(report)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
