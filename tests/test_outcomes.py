"""Outcomes a machine can act on: an audit in which no system could be read ends ``failed`` (every kind), a partial
one stays ``done`` and says which systems failed, and the metrics count each as what it is.

Unit tests build each kind's report with the real assembly code (from failure markers, as the chord bodies do),
finish it on fakeredis and read it back through the facade and the MCP tools.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import fakeredis
import pytest
from fastmcp import Client
from prometheus_client import CollectorRegistry

from nexus import metrics
from nexus.audits.assemble import bulk_report, device_full_report, people_reports
from nexus.audits.finish import finish_report
from nexus.audits.outcome import (
    at_or_above,
    counted_discrepancies,
    failure_text,
    nothing_read,
    systems_answered,
    systems_not_read,
)
from nexus.audits.spec import AuditRequest
from nexus.audits.store import AuditStore
from nexus.facade import Nexus
from nexus.fleet.assess import Assessment, StreamInput, SystemStatus
from nexus.fleet.compare import Comparison
from nexus.fleet.report import FLEET_SYSTEMS, fleet_report
from nexus.mcp.server import build_server
from nexus.registry import STREAMS
from nexus.systems import DEVICE_INVENTORIES, USER_SYSTEMS, System

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def refused(system: System) -> dict[str, Any]:
    return {"system": system.value, "ok": False,
            "error": {"type": "AuthError", "kind": "auth", "message": f"{system.display} refused the credentials"}}


def answered(system: System, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"system": system.value, "ok": True, "data": data or {}}


class Hooks:
    def __init__(self) -> None:
        self.finished: list[tuple[str, str, list[str]]] = []
        self.failed: list[str] = []

    def audit_finished(self, kind: str, status: str, duration_s: float, severities: Any) -> None:
        self.finished.append((kind, status, list(severities)))

    def audit_failed(self, kind: str, duration_s: float) -> None:
        self.failed.append(kind)


@pytest.fixture()
def store() -> AuditStore:
    return AuditStore(fakeredis.FakeRedis(), ttl_s=600)


def finished(store: AuditStore, request: AuditRequest, report: dict[str, Any],
             hooks: Any = None) -> dict[str, Any]:
    store.create(request)
    remediated: list[str] = []
    assert finish_report(store, request.audit_id, report, hooks=hooks or Hooks(), remediate=True,
                         enqueue_remediation=remediated.append)
    view = Nexus(store=store).get(request.audit_id)
    assert (remediated == []) == (view["status"] == "failed")  # a failed audit is never remediated
    return view


# -- the report of each kind with every system failed --------------------------------------------------------------
def user_all_failed() -> dict[str, Any]:
    return people_reports(["ann@corp.example"], [refused(s) for s in USER_SYSTEMS])[0]


def bulk_all_failed() -> dict[str, Any]:
    emails = ["ann@corp.example", "bob@corp.example", "cy@corp.example"]
    part1 = people_reports(emails[:2], [refused(s) for s in USER_SYSTEMS])
    part2 = people_reports(emails[2:], [refused(s) for s in USER_SYSTEMS])
    return bulk_report(part1 + part2)


def device_all_failed() -> dict[str, Any]:
    return device_full_report("SER-0001", [refused(s) for s in DEVICE_INVENTORIES], [], NOW)


def fleet_of(statuses: dict[System, str]) -> dict[str, Any]:
    streams: dict[str, StreamInput] = {}
    systems: dict[System, SystemStatus] = {}
    for system in FLEET_SYSTEMS:
        status = statuses.get(system, "failed")
        error = None if status == "ok" else refused(system)["error"]
        for name in STREAMS[system]:
            streams[name] = StreamInput(name, status, "a" * 32, records=5 if status == "ok" else 0, error=error)
        systems[system] = SystemStatus(system, status, error=error)
    return fleet_report("a" * 32, Assessment(streams, systems), Comparison(), NOW)


KINDS = {
    "user": (lambda: AuditRequest.user("ann@corp.example"), user_all_failed),
    "bulk": (lambda: AuditRequest.bulk(["ann@corp.example", "bob@corp.example", "cy@corp.example"], 10),
             bulk_all_failed),
    "device": (lambda: AuditRequest.device("SER-0001"), device_all_failed),
    "fleet": (AuditRequest.fleet, lambda: fleet_of({})),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_audit_in_which_no_system_could_be_read_is_failed_with_each_reason(store: AuditStore, kind: str) -> None:
    make_request, make_report = KINDS[kind]
    report = make_report()
    assert nothing_read(report) and systems_answered(report) == []
    hooks = Hooks()
    view = finished(store, make_request(), report, hooks)
    assert view["status"] == "failed", view
    assert view["error"].startswith("no system could be read: ")
    for system in report["systems_failed"]:
        assert f"{system}: AuthError: {system} refused the credentials" in view["error"], (system, view["error"])
    assert view["report"]["systems_failed"] == report["systems_failed"]  # the report is kept, with its errors
    assert "remediation" not in view["report"]
    assert hooks.failed == [kind] and hooks.finished == []


def test_failed_audits_are_counted_failed_by_the_metric(store: AuditStore) -> None:
    registry = CollectorRegistry()
    metrics.use_metrics(metrics.NexusMetrics(registry))
    try:
        for make_request, make_report in KINDS.values():
            finished(store, make_request(), make_report(), hooks=metrics)
    finally:
        metrics.use_metrics(None)
    for kind in KINDS:
        labels = {"kind": kind}
        assert registry.get_sample_value("nexus_audits_finished_total", {**labels, "status": "failed"}) == 1, kind
        assert registry.get_sample_value("nexus_audits_finished_total", {**labels, "status": "done"}) is None, kind


# -- partial audits stay done and say which systems failed ---------------------------------------------------------
def test_a_partial_user_audit_is_done_and_names_the_failed_systems(store: AuditStore) -> None:
    results = [answered(System.WORKDAY), refused(System.AD), refused(System.ENTRA)]
    report = people_reports(["ann@corp.example"], results)[0]
    hooks = Hooks()
    view = finished(store, AuditRequest.user("ann@corp.example"), report, hooks)
    assert view["status"] == "done" and "error" not in view
    assert view["report"]["systems_failed"] == ["ActiveDirectory", "Entra"]
    assert set(systems_not_read(view["report"])) == {"ActiveDirectory", "Entra"}
    assert hooks.finished == [("user", "done", [])] and hooks.failed == []


def test_a_bulk_audit_with_one_part_read_is_done(store: AuditStore) -> None:
    part1 = people_reports(["ann@corp.example"], [refused(s) for s in USER_SYSTEMS])
    part2 = people_reports(["bob@corp.example"], [answered(System.WORKDAY), refused(System.AD),
                                                  refused(System.ENTRA)])
    report = bulk_report(part1 + part2)
    view = finished(store, AuditRequest.bulk(["ann@corp.example", "bob@corp.example"], 10), report)
    assert view["status"] == "done"
    assert systems_answered(view["report"]) == ["Workday"]
    assert systems_not_read(view["report"])["Workday"] == "AuthError: Workday refused the credentials (for 1 person)"


def test_a_device_audit_with_one_inventory_read_is_done(store: AuditStore) -> None:
    stage1 = [answered(System.INTUNE), refused(System.LANSWEEPER), refused(System.HELIX)]
    report = device_full_report("SER-0001", stage1, [], NOW)
    view = finished(store, AuditRequest.device("SER-0001"), report)
    assert view["status"] == "done"
    assert view["report"]["systems_failed"] == ["Lansweeper", "Helix"]


def test_a_fleet_audit_on_stale_snapshots_only_was_not_read() -> None:
    report = fleet_of(dict.fromkeys(FLEET_SYSTEMS, "stale"))
    assert report["systems_available"]  # the stand-ins were compared ...
    assert nothing_read(report)  # ... but no system was read this time
    assert "stale" in failure_text(report)
    partial = fleet_of({System.INTUNE: "ok"})
    assert not nothing_read(partial) and systems_answered(partial) == ["Intune"]
    assert "Intune" not in systems_not_read(partial) and "Workday" in systems_not_read(partial)


# -- MCP: status failed ----------------------------------------------------------------------------------------------
def test_mcp_get_audit_says_failed_with_the_reason(store: AuditStore) -> None:
    request = AuditRequest.user("ann@corp.example")
    finished(store, request, user_all_failed())
    server = build_server(nexus_factory=lambda: Nexus(store=store))

    async def body() -> dict[str, Any]:
        async with Client(server) as client:
            result = await client.call_tool("get_audit", {"audit_id": request.audit_id})
            assert isinstance(result.structured_content, dict)
            return result.structured_content

    view = anyio.run(body)
    assert view["status"] == "failed" and view["finished"] is True
    assert view["error"].startswith("no system could be read: Workday: AuthError")


# -- what counts ---------------------------------------------------------------------------------------------------
def test_waived_discrepancies_never_count_and_severity_is_at_or_above() -> None:
    def d(severity: str, **extra: Any) -> dict[str, Any]:
        return {"field": "job_title", "system_a": "Workday", "value_a": "a", "system_b": "Entra", "value_b": "b",
                "severity": severity, **extra}

    report = {"email": "ann@corp.example",
              "discrepancies": [d("critical", waiver={"id": "w1"}), d("high"), d("low"), d("medium", waived=True)]}
    counted = counted_discrepancies(report)
    assert [x["severity"] for x in counted] == ["high", "low"]
    assert [x["severity"] for x in at_or_above(counted, "critical")] == []
    assert [x["severity"] for x in at_or_above(counted, "high")] == ["high"]
    assert [x["severity"] for x in at_or_above(counted, "low")] == ["high", "low"]
