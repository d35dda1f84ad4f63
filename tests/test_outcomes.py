"""Outcomes a machine can act on: an audit in which no system could be read ends ``failed`` (every kind), a partial
one stays ``done`` and says which systems failed, and the metrics count each as what it is.

Unit tests build each kind's report with the real assembly code (from failure markers, as the chord bodies do),
finish it on fakeredis and read it back through the facade and the MCP tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import fakeredis
import pytest
import redis
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
from nexus.errors import AuditLost, InvalidInput, ServiceUnavailable
from nexus.facade import Nexus
from nexus.fleet.assess import Assessment, StreamInput, SystemStatus
from nexus.fleet.compare import Comparison
from nexus.fleet.report import FLEET_SYSTEMS, fleet_report
from nexus.mcp.server import build_server
from nexus.registry import STREAMS
from nexus.systems import DEVICE_INVENTORIES, USER_SYSTEMS, System
from nexus.testing.clock import FakeClock
from nexus.testing.cluster import Cluster
from nexus.testing.redis_server import redis_server

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


# -- --wait through a Redis stall; an audit lost with Redis ----------------------------------------------------------
class StallingRedis(fakeredis.FakeRedis):
    """fakeredis that times out (like a stalled server) while ``clock`` is inside ``[stall_from, stall_until)``."""

    def __init__(self, clock: FakeClock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.stall_from = self.stall_until = 0.0
        self.refused = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.stall_from <= self.clock.now < self.stall_until:
            self.refused += 1
            raise redis.exceptions.TimeoutError("Timeout reading from socket")
        return super().execute_command(*args, **options)


def stalled_audit(stall_s: float, finish_at: float) -> tuple[Nexus, FakeClock, StallingRedis, str]:
    clock = FakeClock(1000.0)
    client = StallingRedis(clock)
    store = AuditStore(client, ttl_s=600)
    request = AuditRequest.user("ann@corp.example")
    store.create(request)
    client.stall_from, client.stall_until = clock.now + 1.0, clock.now + 1.0 + stall_s
    done_at = clock.now + finish_at
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        real_sleep(seconds)
        if clock.now >= max(done_at, client.stall_until) and not store.is_finished(request.audit_id):
            store.finish_once(request.audit_id, {"email": "ann@corp.example", "discrepancies": []})

    clock.sleep = sleep  # type: ignore[method-assign]
    return Nexus(store=store), clock, client, request.audit_id


def test_wait_rides_out_a_12s_redis_stall_within_its_timeout() -> None:
    nx, clock, client, audit_id = stalled_audit(stall_s=12.0, finish_at=5.0)
    heard: list[str] = []
    view = nx.wait(audit_id, 90, clock=clock.monotonic, sleep=clock.sleep,
                   on_unreachable=lambda e: heard.append(str(e)))
    assert view["status"] == "done"
    assert client.refused > 1  # it did retry through the stall
    assert len(heard) == 1 and "Redis unreachable (TimeoutError)" in heard[0]  # told once per outage
    assert clock.now < 1000.0 + 1.0 + 12.0 + 1.5  # seen within a retry interval of Redis coming back
    assert max(clock.slept) <= 1.0


def test_wait_on_an_unreachable_redis_gives_up_at_its_deadline_not_before() -> None:
    nx, clock, _client, audit_id = stalled_audit(stall_s=1000.0, finish_at=5.0)
    with pytest.raises(ServiceUnavailable, match="still unreachable at the 30s deadline"):
        nx.wait(audit_id, 30, clock=clock.monotonic, sleep=clock.sleep)
    assert clock.now == pytest.approx(1030.0)


def test_an_audit_gone_from_redis_after_submit_is_lost_not_unknown() -> None:
    store = AuditStore(fakeredis.FakeRedis(), ttl_s=600)
    request = AuditRequest.user("ann@corp.example")
    store.create(request)
    store.r.flushall()  # Redis restarted without its data before the first poll
    nx = Nexus(store=store)
    clock = FakeClock()
    with pytest.raises(AuditLost) as caught:
        nx.wait(request.audit_id, 10, clock=clock.monotonic, sleep=clock.sleep, submitted=True)
    assert str(caught.value) == (f"audit {request.audit_id} was lost: its record is gone from Redis "
                                 "(restarted without its data?)")
    with pytest.raises(AuditLost):  # any caller: its id says it was made within the TTL, before Redis emptied
        nx.wait(request.audit_id, 10, clock=clock.monotonic, sleep=clock.sleep)
    with pytest.raises(InvalidInput, match="unknown or expired"):  # an id nobody made: the caller's input
        nx.wait("0123456789abcdef0123456789abcdef", 10, clock=clock.monotonic, sleep=clock.sleep)


# -- end to end: every credential refused (the simulator restarted), through the CLI ---------------------------------
def run_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cluster.env, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "nexus.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_cli_audits_with_every_system_refusing_end_failed_exit_1(rig: Cluster, tmp_path: Path) -> None:
    people = [e["subject"] for e in rig.truth["drift"] if "@" in e["subject"]][:3]
    rig.fault("workday", "expired_token")
    rig.fault("entra", "expired_token")
    rig.fault("ad", "down")
    emails = tmp_path / "people.txt"
    emails.write_text("\n".join(people[1:]) + "\n", encoding="utf-8")
    for subject in (["--email", people[0]], ["--emails-file", str(emails)]):
        proc = run_cli(rig, "audit", "submit", *subject, "--wait", "--timeout", "90", "--json")
        assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
        view = json.loads(proc.stdout)
        assert view["status"] == "failed"
        assert view["error"].startswith("no system could be read: ")
        for system in ("Workday", "ActiveDirectory", "Entra"):
            assert f"{system}: " in view["error"], view["error"]
        assert "AuthError" in view["error"]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"nexus: error: audit {view['audit_id']} failed: no system could be read: "), last


@pytest.mark.integration
def test_wait_rides_out_a_real_redis_stall() -> None:
    """A real redis-server blocked by ``DEBUG SLEEP`` (reads time out meanwhile), then the audit finishes."""
    import threading

    with redis_server(extra_args=("--enable-debug-command", "yes")) as url:
        client = redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)
        store = AuditStore(client, ttl_s=600)
        request = AuditRequest.user("ann@corp.example")
        store.create(request)
        stalled = threading.Event()

        def stall_then_finish() -> None:
            other = redis.Redis.from_url(url)
            stalled.set()
            other.execute_command("DEBUG", "SLEEP", "1.5")  # the server answers nobody meanwhile
            AuditStore(other, ttl_s=600).finish_once(request.audit_id, {"email": "ann@corp.example"})
            other.close()

        thread = threading.Thread(target=stall_then_finish)
        thread.start()
        stalled.wait(5)
        heard: list[str] = []
        try:
            view = Nexus(store=store).wait(request.audit_id, 20, submitted=True,
                                           on_unreachable=lambda e: heard.append(str(e)))
        finally:
            thread.join(10)
            client.close()
    assert view["status"] == "done"
    assert heard and "Redis unreachable (TimeoutError)" in heard[0]
