"""Waivers on every kind of audit (issue 10, item 8): user, device and bulk reports, built by the real chord bodies
(tasks.compare) over fetch results, leave a waived finding out of the counts and list it under ``waived`` with its
waiver, in the fleet report's shape; ``nexus audit result`` and MCP ``get_audit`` show it (fakeredis runtime)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import fakeredis
import pytest
from fastmcp import Client
from typer.testing import CliRunner

from nexus import runtime
from nexus.audits.spec import AuditRequest
from nexus.audits.store import AuditStore
from nexus.cli import app
from nexus.drift.fields import ACCOUNT_ENABLED, DEVICE_ACTIVE, JOB_TITLE
from nexus.facade import Nexus
from nexus.mcp.server import build_server
from nexus.models import DeviceRecord, PersonRecord
from nexus.settings import Settings, get_settings
from nexus.waivers import Waiver, WaiverStore

ANN = "ann@corp.example"  # a leaver whose AD account is still enabled: critical account_enabled
BOB = "bob@corp.example"  # an active worker with another title in AD: medium job_title
SERIAL = "SER-7"  # Ann's laptop, still syncing after her last day: critical device_active
WAIVER_KEYS = {"id", "reason", "expires_at", "created_by"}


def _person(system: str, key: str, email: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"employee_id": key.split(",")[0].removeprefix("CN="), "email": email, "upn": email,
                              "display_name": email.split("@")[0], "title": "Engineer", "department": "R&D", **extra}
    return PersonRecord(system, key, **fields).to_dict()


def people_results() -> list[dict[str, Any]]:
    workday = {ANN: _person("workday", "E1", ANN, status="Terminated", enabled=False, termination_date="2026-03-01"),
               BOB: _person("workday", "E2", BOB, status="Active", enabled=True)}
    ad = {ANN: _person("ad", "CN=E1,DC=corp", ANN, enabled=True),
          BOB: _person("ad", "CN=E2,DC=corp", BOB, enabled=True, title="Intern")}
    entra = {ANN: _person("entra", "E1", ANN, enabled=False), BOB: _person("entra", "E2", BOB, enabled=True)}
    return [{"system": "workday", "ok": True, "data": workday}, {"system": "ad", "ok": True, "data": ad},
            {"system": "entra", "ok": True, "data": entra}]


def device_results() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def entry(system: str, **extra: Any) -> dict[str, Any]:
        device = DeviceRecord(system, f"{system}-1", SERIAL, owner=ANN, **extra).to_dict()
        return {"system": system, "ok": True, "data": {SERIAL: {"device": device, "tickets": []}}}

    stage1 = [entry("intune", last_seen="2026-04-01T08:00:00Z", compliance="compliant"), entry("lansweeper"),
              entry("helix", status="Deployed")]
    people = {r["system"]: {ANN: r["data"][ANN]} for r in people_results()}
    stage2 = [{"system": system, "ok": True, "data": data} for system, data in people.items()]
    return stage1, stage2


@pytest.fixture()
def fake() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    previous = runtime.install(runtime.Runtime(get_settings(), redis_client=client))
    yield client
    runtime.install(previous)


def waive(client: fakeredis.FakeRedis, subject: str, field: str) -> Waiver:
    return WaiverStore(client).add(subject, field, "accepted by the CISO until the migration",
                                   time.time() + 30 * 86400, created_by="ciso")


def stored(client: fakeredis.FakeRedis, audit_id: str) -> dict[str, Any]:
    report = AuditStore(client).report(audit_id)
    assert report is not None, "the audit did not finish"
    return report


def run_people(client: fakeredis.FakeRedis, request: AuditRequest) -> dict[str, Any]:
    from tasks.compare import compare_people

    AuditStore(client).create(request)
    compare_people(people_results(), request.audit_id, 0, 1)
    return stored(client, request.audit_id)


def run_device(client: fakeredis.FakeRedis) -> dict[str, Any]:
    from tasks.compare import compare_device

    request = AuditRequest.device(SERIAL)
    store = AuditStore(client)
    store.create(request, total=2)
    stage1, stage2 = device_results()
    store.save_part(request.audit_id, 0, {"stage1": stage1}, done_increment=1)
    compare_device(stage2, request.audit_id)
    return stored(client, request.audit_id)


def assert_waived(report: dict[str, Any], waiver: Waiver, subject: str, field: str) -> None:
    assert report["waived_count"] == 1
    (item,) = report["waived"]
    assert (item["subject"], item["field"], item["severity"]) == (subject, field, "critical")
    assert set(item["waiver"]) == WAIVER_KEYS
    assert item["waiver"]["id"] == waiver.id and item["waiver"]["created_by"] == "ciso"
    assert item["waiver"]["reason"] == "accepted by the CISO until the migration"
    assert item["waiver"]["expires_at"].endswith("+00:00")


def test_user_audit_does_not_count_a_waived_critical_finding(fake: fakeredis.FakeRedis) -> None:
    unwaived = run_people(fake, AuditRequest.user(ANN))
    assert unwaived["discrepancy_count"] == 1 and unwaived["waived"] == [] and unwaived["waived_count"] == 0

    waiver = waive(fake, ANN, ACCOUNT_ENABLED)
    report = run_people(fake, AuditRequest.user(ANN))
    assert report["discrepancy_count"] == 0 and report["discrepancies"] == []
    assert_waived(report, waiver, ANN, ACCOUNT_ENABLED)


def test_device_audit_does_not_count_a_waived_critical_finding(fake: fakeredis.FakeRedis) -> None:
    assert [d["field"] for d in run_device(fake)["discrepancies"]] == [DEVICE_ACTIVE]
    waiver = waive(fake, SERIAL.lower(), DEVICE_ACTIVE)  # subjects compare case-insensitively
    report = run_device(fake)
    assert report["discrepancy_count"] == 0 and report["discrepancies"] == []
    assert_waived(report, waiver, SERIAL, DEVICE_ACTIVE)


def test_bulk_audit_does_not_count_a_waived_critical_finding(fake: fakeredis.FakeRedis) -> None:
    waiver = waive(fake, ANN, ACCOUNT_ENABLED)
    report = run_people(fake, AuditRequest.bulk([ANN, BOB], 100))
    assert report["discrepancy_count"] == 1 and report["people_with_drift"] == 1
    assert report["summary"]["by_severity"] == {"critical": 0, "high": 0, "medium": 1, "low": 0}
    assert report["summary"]["by_field"] == {JOB_TITLE: 1}
    assert_waived(report, waiver, ANN, ACCOUNT_ENABLED)
    ann, bob = report["entries"]
    assert (ann["discrepancy_count"], ann["waived_count"], bob["discrepancy_count"]) == (0, 1, 1)
    assert ann["waived"] == report["waived"]


def test_an_expired_or_other_subjects_waiver_does_not_apply(fake: fakeredis.FakeRedis) -> None:
    WaiverStore(fake).add(BOB, ACCOUNT_ENABLED, "another person", time.time() + 86400)
    WaiverStore(fake, clock=lambda: time.time() - 2 * 86400).add(ANN, ACCOUNT_ENABLED, "expired yesterday",
                                                                 time.time() - 86400)
    report = run_people(fake, AuditRequest.user(ANN))
    assert report["discrepancy_count"] == 1 and report["waived"] == []


def test_cli_result_and_mcp_get_audit_show_the_waiver(fake: fakeredis.FakeRedis) -> None:
    waiver = waive(fake, ANN, ACCOUNT_ENABLED)
    report = run_people(fake, AuditRequest.user(ANN))
    audit_id = report["audit_id"]

    out = CliRunner().invoke(app, ["audit", "result", audit_id], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    shown = json.loads(out.stdout)
    assert shown["discrepancy_count"] == 0
    assert_waived(shown, waiver, ANN, ACCOUNT_ENABLED)

    server = build_server(nexus_factory=lambda: Nexus(store=AuditStore(fake), settings=Settings()))

    async def body() -> dict[str, Any]:
        async with Client(server) as client:
            result = await client.call_tool("get_audit", {"audit_id": audit_id})
            assert isinstance(result.structured_content, dict)
            return result.structured_content

    view = anyio.run(body)
    assert view["status"] == "done" and view["report"]["discrepancy_count"] == 0
    assert_waived(view["report"], waiver, ANN, ACCOUNT_ENABLED)


def test_bulk_audit_answered_from_snapshots_applies_waivers(fake: fakeredis.FakeRedis) -> None:
    from nexus.fleet.conclude import conclude
    from nexus.fleet.context import FleetContext
    from nexus.fleet.store import SnapshotStore
    from nexus.sim.records import OrgRecords
    from tests._fleet_unit import UnitFleet

    rt = runtime.current()
    waiver = waive(fake, ANN, ACCOUNT_ENABLED)
    request = AuditRequest.bulk([ANN, BOB], 100)
    store = AuditStore(fake)
    store.create(request)
    people = {r["system"]: [PersonRecord.from_dict(p) for p in r["data"].values()] for r in people_results()}
    UnitFleet(fake).write(request.audit_id, OrgRecords(workday=people["workday"], ad=people["ad"],
                                                       entra=people["entra"]))
    ctx = FleetContext(settings=rt.settings, store=store, snaps=SnapshotStore(fake, ttl_s=3600),
                       client=rt.client, gate=rt.breaker, hooks=rt.hooks)
    conclude(ctx, request.audit_id)
    report = stored(fake, request.audit_id)
    assert report["path"] == "snapshot"
    assert report["discrepancy_count"] == 1 and report["summary"]["by_field"] == {JOB_TITLE: 1}
    assert_waived(report, waiver, ANN, ACCOUNT_ENABLED)
