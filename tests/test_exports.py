"""Exports carry every section of a report (user, device, bulk, fleet), and values render alike in every format.

The reports below have the shapes of ``nexus.drift.engine`` (user, device), ``nexus.audits.assemble.bulk_report``
and ``nexus.fleet.report.fleet_report`` (see its docstring): counted, waived, resolved and unknown findings, history
and ``since``, failed, degraded, stale and skipped systems with their reasons, suppressed findings, remediation.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from typing import Any

import pytest
from rich.console import Console

from nexus.console import print_report_summary
from nexus.exports import CSV_COLUMNS, render, rows_of, text_of, to_csv, to_markdown

SINCE = "2026-11-26T03:00:00+00:00"
NOW = "2026-12-03T03:00:00+00:00"


def _d(subject: str, field: str, a: str, va: Any, b: str, vb: Any, severity: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "system_a": a, "value_a": va, "system_b": b, "value_b": vb, "severity": severity,
            "subject": subject, **extra}


def fleet_report() -> dict[str, Any]:
    counted = [
        _d("ann@corp.example", "account_enabled", "Workday", False, "ActiveDirectory", True, "critical",
           matched_on="employee_id", history="persisting", since=SINCE, control="CIS 6.2"),
        _d("C02X1", "compliance", "Intune", "noncompliant", "Lansweeper", None, "medium", history="new", since=NOW,
           changed_from={"value_a": "compliant"}),
    ]
    waived = [dict(_d("bob@corp.example", "job_title", "ActiveDirectory", "Eng", "Entra", "Engineer", "medium",
                      history="persisting", since=SINCE),
                   waiver={"id": "w-1f2e", "reason": "title change in flight (HR-1234)",
                           "expires_at": "2027-01-01T00:00:00+00:00"})]
    resolved = [_d("cy@corp.example", "department", "ActiveDirectory", "Sales", "Entra", "Marketing", "high",
                   history="resolved", since=SINCE, resolved_at=NOW)]
    unknown = [_d("dee@corp.example", "manager", "Workday", "x@corp.example", "Entra", "y@corp.example", "high",
                  history="unknown", since=SINCE, reason="not re-checked: Helix failed in this audit")]
    return {
        "audit_id": "f1e2d3", "kind": "fleet", "generated_at": NOW, "scope": "fleet",
        "systems_checked": ["Workday", "ActiveDirectory", "Entra", "Intune", "Lansweeper", "Helix"],
        "systems_available": ["Workday", "ActiveDirectory", "Entra", "Intune", "Lansweeper"],
        "systems_failed": ["Helix"], "systems_degraded": ["Intune"], "systems_stale": ["Lansweeper"],
        "systems": {
            "Workday": {"status": "ok", "records": 300, "pages": 3, "fetches": 3, "failed_attempts": 0, "retries": 0},
            "ActiveDirectory": {"status": "ok", "records": 310, "pages": 1, "fetches": 1, "failed_attempts": 0,
                                "retries": 0},
            "Entra": {"status": "ok", "records": 305, "pages": 4, "fetches": 4, "failed_attempts": 1, "retries": 1},
            "Intune": {"status": "degraded", "records": 120, "pages": 2, "fetches": 2, "failed_attempts": 0,
                       "retries": 0},
            "Lansweeper": {"status": "stale", "records": 280, "pages": 0, "fetches": 3, "failed_attempts": 3,
                           "retries": 2},
            "Helix": {"status": "failed", "records": 0, "pages": 0, "fetches": 3, "failed_attempts": 3, "retries": 2,
                      "tickets": 0},
        },
        "errors": {"Helix": {"type": "TransientError", "kind": "transient", "message": "HTTP 503 from Helix",
                             "attempts": 3},
                   "Lansweeper": {"type": "AuthError", "kind": "auth", "message": "HTTP 401 from Lansweeper"}},
        "degraded": {"Intune": {"records": 120, "last_good": 290, "reason": "shrank 59% since the last good audit"}},
        "stale": {"Lansweeper": {"age_s": 86400, "audit_id": "0ld1d", "taken_at": "2026-12-02T03:00:00+00:00"}},
        "people": 300, "devices": 280,
        "discrepancy_count": 2,
        "summary": {"by_severity": {"critical": 1, "medium": 1}, "by_field": {"account_enabled": 1, "compliance": 1},
                    "by_system": {"ActiveDirectory": 1, "Lansweeper": 1}},
        "discrepancies": counted,
        "waived": waived, "waived_count": 1,
        "history": {"previous_audit_id": "0ld1d", "new": 1, "persisting": 1, "resolved": 1, "unknown": 1},
        "resolved": resolved, "unknown": unknown,
        "suppressed": {"count": 7, "by_system": {"Intune": 7}},
        "remediation": {"status": "partial", "critical": 2, "created": 1, "existing": 0, "failed": 1, "skipped": 0,
                        "items": [{"key": "nexus-ab12", "subject": "ann@corp.example", "field": "account_enabled",
                                   "systems": ["Workday", "ActiveDirectory"], "action": "created",
                                   "incident": "INC000123"},
                                  {"key": "nexus-cd34", "subject": "eve@corp.example", "field": "account_enabled",
                                   "systems": ["Workday", "ActiveDirectory"], "action": "failed",
                                   "error": {"type": "TransientError", "message": "HTTP 503 from Helix"}}]},
        "stats": {"timings": {"people_s": 1.2}},
    }


def user_report() -> dict[str, Any]:
    return {
        "audit_id": "u1", "kind": "user", "generated_at": NOW, "email": "ann@corp.example",
        "systems_checked": ["Workday", "ActiveDirectory", "Entra"], "systems_available": ["ActiveDirectory", "Entra"],
        "systems_failed": ["Workday"], "workday_found": None, "ad_found": True, "entra_found": False,
        "discrepancy_count": 1,
        "discrepancies": [_d("ann@corp.example", "mfa_enabled", "ActiveDirectory", True, "Entra", False, "high")],
        "waived": [dict(_d("ann@corp.example", "job_title", "ActiveDirectory", "Eng", "Entra", "Engineer", "medium"),
                        waiver={"id": "w-9", "reason": "known", "expires_at": "2027-01-01T00:00:00+00:00"})],
        "errors": {"Workday": {"type": "BreakerOpenError", "kind": "breaker_open",
                               "message": "Workday circuit breaker is OPEN", "attempts": 1}},
    }


def device_report() -> dict[str, Any]:
    return {
        "audit_id": "d1", "kind": "device", "generated_at": NOW, "serial": "C02KG5EVGZRG",
        "systems_checked": ["Intune", "Lansweeper", "Helix", "FedEx"],
        "systems_available": ["Intune", "Lansweeper", "Helix"], "systems_failed": [],
        "systems_skipped": {"FedEx": "no return ticket for this device"},
        "intune_found": True, "lansweeper_found": True, "helix_found": True, "fedex_found": None,
        "discrepancy_count": 1,
        "discrepancies": [_d("C02KG5EVGZRG", "owner", "Intune", "ann@corp.example", "Lansweeper", "bob@corp.example",
                             "high")],
        "errors": {},
    }


def bulk_report() -> dict[str, Any]:
    one, two = user_report(), user_report()
    two.update(email="bob@corp.example", discrepancies=[], discrepancy_count=0, waived=[])
    for entry in (one, two):
        for k in ("audit_id", "kind", "generated_at"):
            entry.pop(k)
    for d in one["discrepancies"]:
        d.pop("subject")  # entries name their subject by email
    return {"audit_id": "b1", "kind": "bulk", "generated_at": NOW, "people": 2, "people_with_drift": 1,
            "systems_checked": ["Workday", "ActiveDirectory", "Entra"], "systems_failed": ["Workday"],
            "errors": {"Workday": {"type": "BreakerOpenError", "message": "Workday circuit breaker is OPEN",
                                   "people": 2}},
            "discrepancy_count": 1, "summary": {"by_severity": {"high": 1}, "by_field": {}, "by_system": {}},
            "entries": [one, two]}


def _csv(report: dict[str, Any]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(to_csv(report))))


# -- CSV -----------------------------------------------------------------------------------------------------------
def test_fleet_csv_has_a_row_for_every_finding_with_its_status_history_and_since() -> None:
    rows = _csv(fleet_report())
    by_status = {s: [r for r in rows if r["status"] == s] for s in ("counted", "waived", "resolved", "unknown")}
    assert {s: len(v) for s, v in by_status.items()} == {"counted": 2, "waived": 1, "resolved": 1, "unknown": 1}
    assert len(rows) == 5 and all(r["status"] for r in rows)
    ann = next(r for r in by_status["counted"] if r["subject"] == "ann@corp.example")
    assert (ann["history"], ann["since"], ann["control"], ann["matched_on"]) == ("persisting", SINCE, "CIS 6.2",
                                                                                   "employee_id")
    assert (ann["value_a"], ann["value_b"]) == ("false", "true")
    device = next(r for r in by_status["counted"] if r["subject"] == "C02X1")
    assert device["value_b"] == "" and json.loads(device["changed_from"]) == {"value_a": "compliant"}
    waived = by_status["waived"][0]
    assert (waived["waiver_id"], waived["waiver_reason"], waived["waiver_expires_at"]) == (
        "w-1f2e", "title change in flight (HR-1234)", "2027-01-01T00:00:00+00:00")
    assert waived["history"] == "persisting" and waived["since"] == SINCE
    assert by_status["resolved"][0]["resolved_at"] == NOW and by_status["resolved"][0]["since"] == SINCE
    assert by_status["unknown"][0]["reason"] == "not re-checked: Helix failed in this audit"


def test_csv_columns_start_with_the_stable_ones() -> None:
    header = to_csv(fleet_report()).splitlines()[0].split(",")
    assert tuple(header[:len(CSV_COLUMNS)]) == CSV_COLUMNS
    assert {"status", "history", "since", "resolved_at", "reason", "waiver_id"} <= set(CSV_COLUMNS)
    assert header[len(CSV_COLUMNS):] == sorted(header[len(CSV_COLUMNS):])  # the report's other fields, sorted
    assert "control" in header and "changed_from" in header


@pytest.mark.parametrize(("report", "expected"), [
    (user_report(), [("ann@corp.example", "mfa_enabled", "counted"), ("ann@corp.example", "job_title", "waived")]),
    (device_report(), [("C02KG5EVGZRG", "owner", "counted")]),
    (bulk_report(), [("ann@corp.example", "mfa_enabled", "counted"), ("ann@corp.example", "job_title", "waived")]),
])
def test_user_device_and_bulk_csv_carry_counted_and_waived_rows(report: dict[str, Any],
                                                                expected: list[tuple[str, str, str]]) -> None:
    assert [(r["subject"], r["field"], r["status"]) for r in _csv(report)] == expected


def test_a_finding_listed_twice_is_one_row() -> None:
    report = bulk_report()
    report["waived"] = copy.deepcopy(report["entries"][0]["waived"])  # a top-level list as well as per entry
    report["waived"][0]["subject"] = "ann@corp.example"
    assert [r["status"] for r in _csv(report)] == ["counted", "waived"]


def test_rows_keep_the_reports_values() -> None:
    rows = rows_of(fleet_report())
    assert [r["status"] for r in rows] == ["counted", "counted", "waived", "resolved", "unknown"]
    assert rows[0]["value_a"] is False and rows[2]["waiver"]["id"] == "w-1f2e"


# -- Markdown ------------------------------------------------------------------------------------------------------
def _section(md: str, title: str) -> str:
    head = f"## {title}\n"
    assert head in md, f"no section {title!r} in\n{md}"
    return md.split(head, 1)[1].split("\n## ", 1)[0]


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of every table in ``text`` (header and separator rows left out)."""
    rows, header_next = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            header_next = True
            continue
        if header_next or set(line) <= set("|- "):
            header_next = False
            continue
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_fleet_markdown_has_every_section() -> None:
    md = to_markdown(fleet_report())
    systems = {row[0]: row for row in _table_rows(_section(md, "Systems"))}
    assert list(systems) == ["Workday", "ActiveDirectory", "Entra", "Intune", "Lansweeper", "Helix"]
    assert systems["Workday"][1] == "ok" and systems["Workday"][2] == "300"
    assert systems["Helix"][1] == "failed" and "TransientError: HTTP 503 from Helix" in systems["Helix"][3]
    assert systems["Intune"][1] == "degraded" and "shrank 59%" in systems["Intune"][3] and "290" in \
        systems["Intune"][3]
    assert systems["Lansweeper"][1] == "stale" and "0ld1d" in systems["Lansweeper"][3]
    assert "HTTP 401 from Lansweeper" in systems["Lansweeper"][3]

    by_control = _section(md, "Discrepancies by control")
    counted = _table_rows(by_control)
    assert len(counted) == 2
    # grouped by the control each evidences, in safeguard order, each group with its remediation
    assert by_control.index("### CIS 4.1") < by_control.index("### CIS 6.2: Establish an Access Revoking Process (1)")
    assert "Remediation: Disable the account: its owner is terminated in Workday." in by_control
    assert counted[1][:9] == ["critical", "ann@corp.example", "account_enabled", "Workday", "false",
                              "ActiveDirectory", "true", "persisting", SINCE]
    waived = _table_rows(_section(md, "Waived (not counted)"))
    assert len(waived) == 1 and "w-1f2e" in waived[0][-1] and "HR-1234" in waived[0][-1]
    assert "2027-01-01T00:00:00+00:00" in waived[0][-1]
    resolved = _table_rows(_section(md, "Resolved since the previous audit"))
    assert len(resolved) == 1 and resolved[0][1] == "cy@corp.example" and NOW in resolved[0]
    unknown = _table_rows(_section(md, "Unknown (not re-checked)"))
    assert len(unknown) == 1 and "not re-checked: Helix failed in this audit" in unknown[0]
    remediation = _section(md, "Remediation")
    assert "partial" in remediation and "INC000123" in remediation and "HTTP 503 from Helix" in remediation
    summary = _section(md, "Summary")
    for text in ("Waived: 1", "Suppressed by the mass-drift guard: 7 (Intune 7)", "previous audit `0ld1d`",
                 "new 1", "persisting 1", "resolved 1", "unknown 1", "People: 300", "Devices: 280"):
        assert text in summary, (text, summary)


def test_user_markdown_shows_found_failed_and_waived() -> None:
    md = to_markdown(user_report())
    systems = {row[0]: row for row in _table_rows(_section(md, "Systems"))}
    assert systems["Workday"][1] == "failed" and "circuit breaker is OPEN" in systems["Workday"][-1]
    assert systems["ActiveDirectory"][1] == "ok" and systems["Entra"][1] == "ok"
    assert "found: true" in systems["ActiveDirectory"][-1] and "found: false" in systems["Entra"][-1]
    assert _table_rows(_section(md, "Discrepancies by control"))[0][4:7] == ["true", "Entra", "false"]
    assert len(_table_rows(_section(md, "Waived (not counted)"))) == 1
    assert "True" not in md and "False" not in md and "None" not in md


def test_device_markdown_says_why_a_system_was_skipped() -> None:
    systems = {row[0]: row for row in _table_rows(_section(to_markdown(device_report()), "Systems"))}
    assert systems["FedEx"][1] == "skipped" and "no return ticket for this device" in systems["FedEx"][-1]


def test_bulk_markdown_says_for_how_many_people_a_system_failed() -> None:
    md = to_markdown(bulk_report())
    systems = {row[0]: row for row in _table_rows(_section(md, "Systems"))}
    assert systems["Workday"][1] == "failed" and "for 2 people" in systems["Workday"][-1]
    assert "People: 2 (1 with drift)" in _section(md, "Summary")
    assert len(_table_rows(_section(md, "Discrepancies by control"))) == 1
    assert len(_table_rows(_section(md, "Waived (not counted)"))) == 1


def test_a_report_without_findings_says_so() -> None:
    report = device_report()
    report.update(discrepancies=[], discrepancy_count=0)
    assert "No discrepancies." in _section(to_markdown(report), "Discrepancies by control")
    assert "## Waived" not in to_markdown(report)  # a section the report does not have is not invented


# -- the same value in every format ------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false"), (None, ""), (3, "3"), (1.5, "1.5"),
                                             ("Inés", "Inés"), ({"a": [1, None]}, '{"a": [1, null]}')])
def test_values_render_as_json_scalars(value: Any, text: str) -> None:
    assert text_of(value) == text


def test_console_renders_values_like_the_exports() -> None:
    out = io.StringIO()
    print_report_summary({"audit_id": "u1", "status": "done", "report": user_report()},
                         Console(file=out, width=200, color_system=None))
    printed = out.getvalue()
    assert "ad=true" in printed and "entra=false" in printed and "workday=n/a (failed)" in printed
    assert "True" not in printed and "False" not in printed


def test_every_format_renders_a_report() -> None:
    for report in (fleet_report(), user_report(), device_report(), bulk_report()):
        assert json.loads(render(report, "json")) == report
        assert render(report, "csv") == to_csv(report) and render(report, "md") == to_markdown(report)
