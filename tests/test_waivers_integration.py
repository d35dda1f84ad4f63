"""Waivers on user, device and bulk audits through the real pipeline (issue 10, item 8): `nexus waiver add`, then
`nexus audit submit ... --wait --json`, `nexus audit result` and MCP `get_audit` against the integration rig."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from nexus.drift.fields import ACCOUNT_ENABLED, DEVICE_ACTIVE
from nexus.testing.cluster import Cluster
from nexus.waivers import WaiverStore
from tests.test_cli import one_json, run_cli

pytestmark = pytest.mark.integration

REASON = "accepted until the HR migration"


def subject_with(cluster: Cluster, field: str, person: bool) -> str:
    return str(next(e["subject"] for e in cluster.truth["drift"]
                    if e["field"] == field and ("@" in e["subject"]) == person))


@pytest.fixture()
def waivers(rig: Cluster) -> Iterator[list[str]]:
    """Ids of the waivers a test adds; removed afterwards (the rig is shared by the session)."""
    added: list[str] = []
    yield added
    store = WaiverStore(rig.redis())
    for waiver_id in added:
        store.remove(waiver_id)


def add_waiver(rig: Cluster, added: list[str], subject: str, field: str) -> str:
    proc = run_cli(rig, "waiver", "add", "--subject", subject, "--field", field, "--reason", REASON, "--days", "30",
                   "--by", "ciso", "--json")
    assert proc.returncode == 0, proc.stderr
    waiver_id = str(one_json(proc)["id"])
    added.append(waiver_id)
    return waiver_id


def submit(rig: Cluster, *args: str) -> dict[str, Any]:
    proc = run_cli(rig, "audit", "submit", *args, "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = one_json(proc)
    assert doc["status"] == "done", doc
    return dict(doc["report"])


def check_waived(report: dict[str, Any], waiver_id: str, subject: str, field: str) -> None:
    items = [d for d in report["waived"] if d["field"] == field]
    assert items and all(d["subject"].casefold() == subject.casefold() for d in items)
    assert all(d["waiver"]["id"] == waiver_id and d["waiver"]["reason"] == REASON
               and d["waiver"]["created_by"] == "ciso" for d in items)
    assert report["waived_count"] == len(report["waived"])


def test_user_audit_cli_and_mcp_show_the_waiver(rig: Cluster, waivers: list[str]) -> None:
    email = subject_with(rig, ACCOUNT_ENABLED, person=True)
    before = submit(rig, "--email", email)
    critical = [d for d in before["discrepancies"] if d["field"] == ACCOUNT_ENABLED]
    assert critical and before["waived"] == []

    waiver_id = add_waiver(rig, waivers, email, ACCOUNT_ENABLED)
    report = submit(rig, "--email", email)
    assert not [d for d in report["discrepancies"] if d["field"] == ACCOUNT_ENABLED]
    assert report["discrepancy_count"] == before["discrepancy_count"] - len(critical)
    check_waived(report, waiver_id, email, ACCOUNT_ENABLED)
    assert len(report["waived"]) == len(critical)

    result = run_cli(rig, "audit", "result", report["audit_id"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["waived"] == report["waived"]

    from nexus.mcp.server import build_server

    async def body() -> dict[str, Any]:
        async with Client(build_server()) as client:
            answer = await client.call_tool("get_audit", {"audit_id": report["audit_id"]})
            assert isinstance(answer.structured_content, dict)
            return answer.structured_content

    view = anyio.run(body)
    assert view["report"]["discrepancy_count"] == report["discrepancy_count"]
    check_waived(view["report"], waiver_id, email, ACCOUNT_ENABLED)


def test_device_and_bulk_audits_apply_the_waiver(rig: Cluster, waivers: list[str], tmp_path: Path) -> None:
    serial = subject_with(rig, DEVICE_ACTIVE, person=False)
    device_waiver = add_waiver(rig, waivers, serial, DEVICE_ACTIVE)
    device = submit(rig, "--device", serial)
    assert not [d for d in device["discrepancies"] if d["field"] == DEVICE_ACTIVE]
    check_waived(device, device_waiver, serial, DEVICE_ACTIVE)

    email = subject_with(rig, ACCOUNT_ENABLED, person=True)
    user_waiver = add_waiver(rig, waivers, email, ACCOUNT_ENABLED)
    other = next(e["subject"] for e in rig.truth["drift"] if "@" in e["subject"] and e["subject"] != email)
    path = tmp_path / "people.txt"
    path.write_text(f"{email}\n{other}\n", encoding="utf-8")
    bulk = submit(rig, "--emails-file", str(path))
    check_waived(bulk, user_waiver, email, ACCOUNT_ENABLED)
    counted = [d for e in bulk["entries"] for d in e["discrepancies"]]
    assert bulk["discrepancy_count"] == len(counted) == sum(bulk["summary"]["by_severity"].values())
    assert not [d for d in counted if d["field"] == ACCOUNT_ENABLED and d.get("subject", email) == email]
