"""Helix remediation: the simulator's incident creation, the client, and nexus/remediation.py.

Unit tests run against the Helix simulator on a real socket and a private redis-server. The integration tests at the
end run real workers with ``NEXUS_HELIX_REMEDIATION`` on (their own cluster) and off (the shared ``rig``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from clients.helix import CORRELATION_FIELD, HelixClient, qual_eq
from nexus.audits.spec import AuditRequest
from nexus.audits.store import AuditStore
from nexus.errors import AuthError, BadRequestError, TransientError
from nexus.remediation import (
    RemediationPolicy,
    Remediator,
    correlation_key,
    critical_findings,
    incident_text,
    pending_section,
    remediate_stored_report,
)
from nexus.sim.helix import INCIDENT_CREATE_FORM, TICKET_FORM, HelixIncident, HelixSim
from nexus.sim.org_model import Org
from nexus.testing.cluster import Cluster
from nexus.testing.redis_server import redis_server_fixture
from nexus.testing.sims import SimHarness
from tests._org_factory_wd import make_org, start_sim

CREATE_PATH = f"/api/arsys/v1/entry/{INCIDENT_CREATE_FORM}"
TICKETS_PATH = "/api/arsys/v1/entry/HPD:Help Desk"
WAIT = 90.0

redis_url = redis_server_fixture(scope="module")


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org(120, seed=31)


@pytest.fixture(scope="module")
def harness(org: Org) -> Iterator[tuple[SimHarness, HelixSim]]:
    made: list[HelixSim] = []

    def make(ctx: Any) -> HelixSim:
        made.append(HelixSim(ctx))
        return made[0]

    h = start_sim(make, org)
    yield h, made[0]
    h.stop()


@pytest.fixture()
def sim(harness: tuple[SimHarness, HelixSim]) -> Iterator[SimHarness]:
    h, _ = harness
    h.reset()
    h.ctx.latency_ms.clear()
    yield h
    h.reset()
    h.ctx.latency_ms.clear()


@pytest.fixture()
def helix_sim(harness: tuple[SimHarness, HelixSim], sim: SimHarness) -> HelixSim:
    return harness[1]


@pytest.fixture()
def client(sim: SimHarness) -> Iterator[HelixClient]:
    c = HelixClient(sim.settings(), clock=sim.clock)
    yield c
    c.close()


@pytest.fixture()
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def _incidents(helix_sim: HelixSim, key: str | None = None) -> list[HelixIncident]:
    return [i for i in helix_sim.incidents() if key is None or i.values.get(CORRELATION_FIELD) == key]


def _discrepancy(field: str, a: str, va: Any, b: str, vb: Any, severity: str = "critical") -> dict[str, Any]:
    return {"field": field, "system_a": a, "value_a": va, "system_b": b, "value_b": vb, "severity": severity}


def _user_report(email: str, *discrepancies: dict[str, Any]) -> dict[str, Any]:
    return {"email": email, "discrepancy_count": len(discrepancies), "discrepancies": list(discrepancies)}


CRITICAL_AD = _discrepancy("account_enabled", "Workday", "Terminated", "ActiveDirectory", True)
CRITICAL_ENTRA = _discrepancy("account_enabled", "Workday", "Terminated", "Entra", True)
TITLE = _discrepancy("job_title", "Workday", "Engineer", "ActiveDirectory", "Senior Engineer", "medium")


# -- the simulator ---------------------------------------------------------------------------------------------------

def _values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "First_Name": "Nexus", "Last_Name": "Audit", "Description": "Nexus test", "Impact": "2-Significant/Large",
        "Urgency": "1-Critical", "Status": "Assigned", "Reported Source": "Systems Management",
        "Service_Type": "Infrastructure Event", "z1D_Action": "CREATE", CORRELATION_FIELD: "nexus-sim-test",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def test_sim_creates_an_incident_that_can_be_queried(sim: SimHarness, client: HelixClient, org: Org,
                                                     helix_sim: HelixSim) -> None:
    before = len(helix_sim.forms[TICKET_FORM].rows)
    response = client.send("POST", CREATE_PATH, json_body={"values": _values()})
    assert response.status_code == 201
    location = response.headers["location"]
    assert location.startswith(sim.base_url + "/api/arsys/v1/entry/HPD:IncidentInterface_Create/")
    assert response.json() == {}  # no fields asked: no values in the body
    entry = client.send("GET", location, params={"fields": "values(Incident Number)"}).json()["values"]
    number = entry["Incident Number"]
    assert number.startswith("INC") and len(number) == 15
    assert number > max(t.incident_number for t in org.helix_tickets)
    found = client.send("GET", TICKETS_PATH, params={"q": qual_eq(CORRELATION_FIELD, "nexus-sim-test")}).json()
    assert [e["values"]["Incident Number"] for e in found["entries"]] == [number]
    shown = found["entries"][0]["values"]
    assert (shown["Status"], shown["Urgency"], shown["Serial Number"]) == ("Assigned", "1-Critical", None)
    assert len(helix_sim.forms[TICKET_FORM].rows) == before + 1
    assert len(org.helix_tickets) == before  # the ground truth is not touched
    # Not a return ticket: listings of return tickets skip it.
    assert all(t.ticket_id != number for t in client.list_tickets())


def test_sim_returns_requested_values_on_create(sim: SimHarness, client: HelixClient) -> None:
    response = client.send("POST", CREATE_PATH, json_body={"values": _values()},
                           params={"fields": "values(Incident Number,Status)"})
    assert response.status_code == 201
    body = response.json()["values"]
    assert body["Status"] == "Assigned" and body["Incident Number"].startswith("INC")


@pytest.mark.parametrize(("overrides", "number", "appended"), [
    ({"Description": None}, 326, "Description"),
    ({"First_Name": "  "}, 326, "First_Name"),
    ({"Impact": "0-Apocalyptic"}, 306, "Impact"),
    ({"Urgency": "urgent"}, 306, "Urgency"),
    ({"z1D_Action": "MODIFY"}, 1291, "MODIFY"),
    ({"Description": "x" * 5000}, 306, "Description"),
])
def test_sim_validates_the_interface_form(sim: SimHarness, client: HelixClient, helix_sim: HelixSim,
                                          overrides: dict[str, Any], number: int, appended: str) -> None:
    before = len(helix_sim.incidents())
    with pytest.raises(BadRequestError) as info:
        client.send("POST", CREATE_PATH, json_body={"values": _values(**overrides)})
    assert f"ARERR {number}" in str(info.value) and appended in str(info.value)
    assert len(helix_sim.incidents()) == before


def test_sim_refuses_writes_elsewhere_and_without_a_token(sim: SimHarness, client: HelixClient) -> None:
    from nexus.errors import NotFoundError

    with pytest.raises(AuthError):  # AR answers 403 for a form without write access
        client.send("POST", "/api/arsys/v1/entry/AST:ComputerSystem", json_body={"values": {"Name": "x"}})
    with pytest.raises(NotFoundError):
        client.send("POST", "/api/arsys/v1/entry/NO:SuchForm", json_body={"values": {}})
    anonymous = httpx.post(sim.base_url + CREATE_PATH, json={"values": _values()})
    assert anonymous.status_code == 401 and anonymous.json()[0]["messageNumber"] == 623


# -- the client ------------------------------------------------------------------------------------------------------

def test_client_create_and_find_incidents(sim: SimHarness, client: HelixClient, helix_sim: HelixSim) -> None:
    number = client.create_incident(summary="s" * 300, details="d", first_name="Nexus", last_name="Audit",
                                    correlation="nexus-client-1")
    assert client.find_incidents("nexus-client-1") == [{"incident": number, "status": "Assigned"}]
    assert client.find_incidents("NEXUS-CLIENT-1") == [{"incident": number, "status": "Assigned"}]  # AR collation
    assert client.find_incidents('nexus-" OR \'Status\' != "') == []  # a hostile value is only a literal
    (incident,) = _incidents(helix_sim, "nexus-client-1")
    assert len(incident.values["Description"]) == 100  # Helix keeps 100 characters of the summary
    assert sim.counts()[CREATE_PATH] == 1


def test_client_reads_the_location_when_the_body_has_no_values() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.host}{request.url.path}")
        if request.url.path == "/api/jwt/login":
            return httpx.Response(200, text="tok-abcdefgh")
        if request.method == "POST":
            return httpx.Response(201, headers={"Location": "https://internal.lb/api/arsys/v1/entry/"
                                                            "HPD:IncidentInterface_Create/000000000000042"})
        return httpx.Response(200, json={"values": {"Incident Number": "INC000000000042"}})

    from nexus.settings import Settings

    settings = Settings(_env_file=None, use_mock=False, helix_base_url="https://helix.example", helix_username="u",
                        helix_password="p")
    with contextlib.closing(HelixClient(settings, transport=httpx.MockTransport(handler))) as c:
        assert c.create_incident(summary="s", details="d", first_name="a", last_name="b") == "INC000000000042"
    # The Location's host is never used: the GET went to the configured server.
    assert "GET helix.example/api/arsys/v1/entry/HPD:IncidentInterface_Create/000000000000042" in seen
    assert not any("internal.lb" in s for s in seen)


# -- correlation keys and findings -----------------------------------------------------------------------------------

def test_correlation_key_is_deterministic_and_ignores_case_order_and_policy() -> None:
    k = correlation_key("Jane.Doe@Corp.Example", "account_enabled", ["Workday", "ActiveDirectory"])
    assert k == correlation_key(" jane.doe@corp.example ", "account_enabled", ["ActiveDirectory", "Workday"])
    assert k.startswith("nexus-") and len(k) == 6 + 24
    assert k != correlation_key("jane.doe@corp.example", "account_enabled", ["Workday", "Entra"])
    assert k != correlation_key("jane.doe@corp.example", "job_title", ["Workday", "ActiveDirectory"])
    assert correlation_key("5CG1", "last_sync", ["Intune", "Policy"]) == correlation_key("5cg1", "last_sync",
                                                                                        ["Intune"])


def test_critical_findings_of_user_bulk_and_device_reports() -> None:
    user = _user_report("a@corp.example", CRITICAL_AD, CRITICAL_ENTRA, TITLE)
    assert [(f.subject, f.field, f.systems) for f in critical_findings(user)] == [
        ("a@corp.example", "account_enabled", ("ActiveDirectory", "Workday")),
        ("a@corp.example", "account_enabled", ("Entra", "Workday")),
    ]
    bulk = {"entries": [user, _user_report("b@corp.example", TITLE), user]}  # a repeated entry: one finding each
    assert len(critical_findings(bulk)) == 2
    device = {"serial": "5CG123", "discrepancies": [
        _discrepancy("return_shipment", "Helix", "INC1", "FedEx", "in transit")]}
    (finding,) = critical_findings(device)
    assert (finding.subject, finding.systems) == ("5CG123", ("FedEx", "Helix"))
    assert pending_section(user) == {"status": "pending", "critical": 2}
    summary, details = incident_text(finding, "a" * 32)
    assert len(summary) <= 100 and f"[nexus:{finding.key}]" in details and "FedEx: in transit" in details


# -- the remediator ----------------------------------------------------------------------------------------------------

def test_one_incident_per_critical_discrepancy_and_a_rerun_files_none(
        sim: SimHarness, client: HelixClient, helix_sim: HelixSim, r: redis.Redis) -> None:
    report = _user_report("rerun@corp.example", CRITICAL_AD, CRITICAL_ENTRA, TITLE)
    findings = critical_findings(report)
    first = Remediator(client, r).run(findings, "1" * 32)
    assert (first["status"], first["created"], first["existing"], first["critical"]) == ("done", 2, 0, 2)
    numbers = {i["incident"] for i in first["items"]}
    for f in findings:
        (incident,) = _incidents(helix_sim, f.key)
        assert incident.incident_number in numbers
        assert f"[nexus:{f.key}]" in incident.values["Detailed Decription"]
    again = Remediator(client, r).run(findings, "2" * 32)
    assert (again["status"], again["created"], again["existing"]) == ("done", 0, 2)
    assert {i["incident"] for i in again["items"]} == numbers
    assert sum(len(_incidents(helix_sim, f.key)) for f in findings) == 2
    assert not list(r.scan_iter("nexus:remediation:lock:*"))  # every lock released


def test_a_closed_incident_is_followed_by_a_new_one(sim: SimHarness, client: HelixClient, helix_sim: HelixSim,
                                                    r: redis.Redis) -> None:
    findings = critical_findings(_user_report("closed@corp.example", CRITICAL_AD))
    Remediator(client, r).run(findings, "1" * 32)
    (incident,) = _incidents(helix_sim, findings[0].key)
    incident.values["Status"] = "Closed"
    again = Remediator(client, r).run(findings, "2" * 32)
    assert again["created"] == 1
    assert len(_incidents(helix_sim, findings[0].key)) == 2


def test_two_workers_racing_file_one_incident(sim: SimHarness, helix_sim: HelixSim, redis_url: str,
                                              r: redis.Redis) -> None:
    """Both query Helix before either created anything: only the lock keeps them from filing two incidents."""
    sim.ctx.latency_ms["helix"] = 150  # widen the window between "not found" and "created"
    findings = critical_findings(_user_report("race@corp.example", CRITICAL_AD))
    results: list[dict[str, Any]] = []
    start = threading.Barrier(2)

    def worker() -> None:
        c = HelixClient(sim.settings(), clock=sim.clock)
        own = redis.Redis.from_url(redis_url)
        try:
            start.wait()
            results.append(Remediator(c, own).run(findings, "3" * 32))
        finally:
            c.close()
            own.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(res["items"][0]["action"] for res in results) == ["created", "existing"]
    assert len(_incidents(helix_sim, findings[0].key)) == 1


def test_a_lock_held_too_long_fails_that_item_only(sim: SimHarness, client: HelixClient, helix_sim: HelixSim,
                                                   r: redis.Redis) -> None:
    findings = critical_findings(_user_report("locked@corp.example", CRITICAL_AD, CRITICAL_ENTRA))
    r.set(f"nexus:remediation:lock:{findings[0].key}", "someone-else", px=60_000)
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    result = Remediator(client, r, RemediationPolicy(lock_wait_s=1.0), clock=lambda: now[0], sleep=sleep).run(
        findings, "4" * 32)
    assert [i["action"] for i in result["items"]] == ["failed", "created"]
    assert result["items"][0]["error"]["type"] == "LockBusy"
    assert result["status"] == "partial"
    assert r.get(f"nexus:remediation:lock:{findings[0].key}") == b"someone-else"  # never released someone's lock


def test_helix_down_stops_at_the_first_failure(sim: SimHarness, client: HelixClient, helix_sim: HelixSim,
                                               r: redis.Redis) -> None:
    sim.fault("down")
    findings = critical_findings(_user_report("down@corp.example", CRITICAL_AD, CRITICAL_ENTRA))
    result = Remediator(client, r).run(findings, "5" * 32)
    assert (result["status"], result["failed"], result["created"]) == ("failed", 2, 0)
    first, second = result["items"]
    assert first["error"]["type"] == TransientError.__name__ and first["error"]["status"] == 503
    assert second["error"]["message"].startswith("not attempted: ")
    assert sum(sim.counts().values()) == 1  # one request, then no more hammering
    assert _incidents(helix_sim, findings[0].key) == []


def test_a_refused_incident_fails_only_itself(sim: SimHarness, client: HelixClient, helix_sim: HelixSim,
                                              r: redis.Redis) -> None:
    findings = critical_findings(_user_report("refused@corp.example", CRITICAL_AD, CRITICAL_ENTRA))
    result = Remediator(client, r, RemediationPolicy(first_name="")).run(findings, "6" * 32)  # ARERR 326
    assert [i["action"] for i in result["items"]] == ["failed", "failed"]
    assert all(i["error"]["type"] == "BadRequestError" for i in result["items"])
    assert sim.counts()[CREATE_PATH] == 2  # the second one was still attempted


def test_the_incident_cap_skips_the_rest(sim: SimHarness, client: HelixClient, helix_sim: HelixSim,
                                         r: redis.Redis) -> None:
    report = {"entries": [_user_report(f"cap{i}@corp.example", CRITICAL_AD) for i in range(4)]}
    result = Remediator(client, r, RemediationPolicy(max_incidents=2)).run(critical_findings(report), "7" * 32)
    assert [i["action"] for i in result["items"]] == ["created", "created", "skipped", "skipped"]
    assert (result["status"], result["skipped"]) == ("done", 2)


def test_the_stored_report_gets_its_remediation_section(sim: SimHarness, client: HelixClient, r: redis.Redis) -> None:
    store = AuditStore(r, ttl_s=3600)
    request = AuditRequest.user("stored@corp.example")
    store.create(request)
    report = _user_report("stored@corp.example", CRITICAL_AD)
    store.finish(request.audit_id, {**report, "remediation": pending_section(report)})
    section = remediate_stored_report(request.audit_id, store, client, RemediationPolicy())
    stored = store.report(request.audit_id)
    assert stored is not None and stored["remediation"] == section and section["created"] == 1
    assert 3500 < r.ttl(store.key(request.audit_id, "report")) <= 3600  # the report keeps its expiry
    gone = remediate_stored_report("f" * 32, store, client, RemediationPolicy())
    assert gone["status"] == "failed" and not r.exists(store.key("f" * 32, "report"))


# -- end to end: real workers ------------------------------------------------------------------------------------------

def _critical_people(truth: dict[str, Any], n: int) -> list[str]:
    people = sorted({e["subject"] for e in truth["drift"] if e["severity"] == "critical" and "@" in e["subject"]})
    return people[:n]


def _created_incidents(cluster: Cluster) -> list[dict[str, Any]]:
    """Every incident Nexus created, read from the simulator over the Helix API (a fresh client)."""
    from nexus.settings import Settings

    with contextlib.closing(HelixClient(Settings(_env_file=None, **_settings_kwargs(cluster.env)))) as c:
        q = f"'{CORRELATION_FIELD}' LIKE \"nexus-%\""
        body = c.send("GET", TICKETS_PATH, params={"q": q, "fields": f"values(Incident Number,{CORRELATION_FIELD})",
                                                   "limit": 2000}).json()
    return [e["values"] for e in body["entries"]]


def _settings_kwargs(env: dict[str, str]) -> dict[str, Any]:
    return {"helix_base_url": env["HELIX_BASE_URL"], "helix_username": env["HELIX_USERNAME"],
            "helix_password": env["HELIX_PASSWORD"]}


def _wait_remediated(nx: Any, audit_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = nx.get(audit_id)
        section = (view.get("report") or {}).get("remediation") or {}
        if view["status"] == "done" and section.get("status") not in (None, "pending"):
            return view
        if time.monotonic() > deadline:
            pytest.fail(f"remediation of {audit_id} still {section.get('status')} after {timeout}s")
        time.sleep(0.1)


@pytest.mark.integration
def test_remediation_off_opens_no_incident(rig: Cluster) -> None:
    """Runs before the module's own cluster starts (file order), so the shared rig is the one in the environment."""
    nx = rig.nexus()
    person = _critical_people(rig.truth, 1)[0]
    view = nx.wait(nx.submit(nx.request_for(email=person)), timeout=WAIT)
    assert view["status"] == "done"
    assert any(d["severity"] == "critical" for d in view["report"]["discrepancies"])
    assert "remediation" not in view["report"]
    time.sleep(0.3)  # a remediation task, were one enqueued, would have reached Helix by now
    paths = rig.requests().get("helix", {}).get("paths", {})
    assert CREATE_PATH not in paths and not any("Help Desk" in p for p in paths)


@pytest.fixture(scope="module")
def remediating() -> Iterator[Cluster]:
    with Cluster.start(people=80, seed=13, workers=1, concurrency=3,
                       extra_env={"NEXUS_HELIX_REMEDIATION": "true"}) as c:
        yield c


@pytest.mark.integration
def test_workers_open_one_incident_per_critical_discrepancy_idempotently(remediating: Cluster) -> None:
    c = remediating
    c.reset()
    nx = c.nexus()
    people = _critical_people(c.truth, 3)
    assert people, "the generated org plants critical drift"
    view = _wait_remediated(nx, nx.wait(nx.submit(nx.request_for(emails=people)), timeout=WAIT)["audit_id"])
    report = view["report"]
    critical = [d for e in report["entries"] for d in e["discrepancies"] if d["severity"] == "critical"]
    section = report["remediation"]
    assert critical and section["status"] == "done"
    assert (section["critical"], section["created"]) == (len(critical), len(critical))
    incidents = _created_incidents(c)
    assert len(incidents) == len(critical)
    assert {i[CORRELATION_FIELD] for i in incidents} == {i["key"] for i in section["items"]}

    # The same audit again (and a single-person audit of the first one): nothing new is filed.
    again = _wait_remediated(nx, nx.wait(nx.submit(nx.request_for(emails=people)), timeout=WAIT)["audit_id"])
    assert (again["report"]["remediation"]["existing"], again["report"]["remediation"]["created"]) == (
        len(critical), 0)
    single = _wait_remediated(nx, nx.wait(nx.submit(nx.request_for(email=people[0])), timeout=WAIT)["audit_id"])
    assert single["report"]["remediation"]["created"] == 0
    assert len(_created_incidents(c)) == len(critical)


@pytest.mark.integration
def test_helix_down_the_audit_is_done_and_remediation_is_noted_failed(remediating: Cluster) -> None:
    c = remediating
    c.reset()
    nx = c.nexus()
    person = _critical_people(c.truth, 4)[-1]
    before = len(_created_incidents(c))
    c.fault("helix", "down")
    try:
        view = _wait_remediated(nx, nx.wait(nx.submit(nx.request_for(email=person)), timeout=WAIT)["audit_id"])
    finally:
        c.clear_faults()
    assert view["status"] == "done"
    report = view["report"]
    assert report["systems_failed"] == []  # a user audit does not read Helix: the audit itself is whole
    section = report["remediation"]
    assert section["status"] == "failed" and section["created"] == 0 and section["failed"] == section["critical"] > 0
    assert section["items"][0]["error"]["type"] in ("TransientError", "BreakerOpenError")
    assert len(_created_incidents(c)) == before
    assert "remediation of" in c.worker_logs()
