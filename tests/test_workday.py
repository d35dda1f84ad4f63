"""Workday simulator and client over a real socket: the RaaS report (listing and lookups), the field mapping, the
public REST summary, tokens, errors, injection."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import fakeredis
import httpx
import pytest
from pydantic import ValidationError

from clients.workday import REPORT_CHUNK, ReportListing, WorkdayClient
from nexus.errors import (
    AuthError,
    ListingLost,
    MalformedResponseError,
    NotFoundError,
    ThrottledError,
    TransientError,
)
from nexus.fleet import codec
from nexus.fleet.runner import SnapshotRunner
from nexus.fleet.sources import Source, sources_for
from nexus.fleet.store import SnapshotStore
from nexus.models import PersonRecord
from nexus.policy import RetryPolicy
from nexus.settings import Settings
from nexus.sim.org_model import Org, WorkdayWorker
from nexus.sim.workday import WorkdaySim
from nexus.systems import System
from nexus.testing.sims import SimHarness
from nexus.workday_fields import parse_fields, report_fields
from tests._org_factory_wd import HOSTILE, TOKEN_LIFETIME_S, make_org, start_sim, system_fixtures

PEOPLE = 250
#: The public staffing v6 workerSummary (Workday REST API reference;
#: schemas.apis.io/schemas/workday/workday-workersummary)
PUBLIC_SUMMARY = {"id", "descriptor", "href", "businessTitle", "isManager", "primarySupervisoryOrganization",
                  "primaryWorkEmail", "primaryWorkPhone"}


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org(PEOPLE, seed=11)


harness, sim, client = system_fixtures(WorkdaySim, WorkdayClient)


def tenant_paths(sim: SimHarness) -> tuple[str, str, str]:
    t = sim.ctx.creds.workday_tenant
    return (f"/ccx/oauth2/{t}/token", f"/ccx/api/staffing/v6/{t}/workers",
            f"/ccx/service/customreport2/{t}/ISU_Nexus/Nexus_Workers")


def expected(w: WorkdayWorker, *, names: bool) -> PersonRecord:
    return PersonRecord(
        system="workday", key=w.employee_id, employee_id=w.employee_id, email=w.email,
        display_name=w.display_name, first_name=w.first_name if names else None,
        last_name=w.last_name if names else None, title=w.title, department=w.department,
        manager_ref=w.manager_id, manager_employee_id=w.manager_id, enabled=w.active,
        status="Active" if w.active else "Terminated", worker_type=w.worker_type,
        termination_date=w.termination_date.isoformat() if w.termination_date else None,
    )


# -- listing: the unprompted report ---------------------------------------------------------------------------------

def test_every_worker_is_listed_from_one_report_request_and_equals_the_org(sim: SimHarness, client: WorkdayClient,
                                                                          org: Org) -> None:
    records = client.list_workers()
    assert records == [expected(w, names=True) for w in org.workday]
    leavers = [r for r in records if not r.enabled]
    assert leavers and all(r.status == "Terminated" for r in leavers)  # terminated workers are listed, as such
    assert all(r.status == "Active" for r in records if r.enabled)
    _, workers_path, report_path = tenant_paths(sim)
    counts = sim.counts()
    assert counts[report_path] == 1 and workers_path not in counts
    assert sim.recent_params(report_path)[-1] == {"format": ["json"]}  # no prompt: the whole report
    assert list(client.list_all()) == records


def test_the_listing_hands_out_one_request_as_chunks(sim: SimHarness, client: WorkdayClient, org: Org) -> None:
    listing = ReportListing(client, 100)
    pages = []
    cursor = None
    while True:
        page = listing.fetch_page(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p.items) for p in pages] == [100, 100, 50] and [p.requests for p in pages] == [1, 0, 0]
    assert all(p.total == PEOPLE for p in pages)
    assert [r for p in pages for r in p.items] == [expected(w, names=True) for w in org.workday]
    *_, report_path = tenant_paths(sim)
    assert sim.counts()[report_path] == 1
    stale = pages[0].next_cursor
    assert stale is not None
    with pytest.raises(ListingLost):  # the listing is done: its records are gone, the chain restarts
        listing.fetch_page(stale)
    with pytest.raises(ListingLost):  # another process's cursor
        ReportListing(client, 100).fetch_page(stale)
    # the registry's stream: the client's own chunk size, one request
    first = client.fetch_page()
    assert len(first.items) == min(PEOPLE, REPORT_CHUNK) and first.next_cursor is None and first.requests == 1


def test_unprompted_report_gets_the_report_timeout() -> None:
    seen: list[tuple[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        seen.append((str(request.url.query, "ascii"), request.extensions["timeout"]["read"]))
        return httpx.Response(200, json={"Report_Entry": [
            {"Employee_ID": "1", "Active_Status": "1", "Email_-_Work": "a@corp.example"}]})

    settings = Settings(_env_file=None, workday_report_timeout_s=321.0, http_timeout_s=4.0)
    c = WorkdayClient(settings, transport=httpx.MockTransport(handler))
    assert [r.key for r in c.list_workers()] == ["1"]
    c.find_worker(employee_id="1")
    c.close()
    assert seen == [("format=json", 321.0), ("format=json&Employee_ID=1", 4.0)]


def test_rest_summary_carries_only_the_public_fields(sim: SimHarness, client: WorkdayClient, org: Org) -> None:
    _, workers_path, _ = tenant_paths(sim)
    body = client.send("GET", workers_path, params={"limit": 100, "offset": 0}).json()
    active = [w for w in org.workday if w.active]
    assert body["total"] == len(active)
    item = body["data"][1]
    w = active[1]
    assert set(item) <= PUBLIC_SUMMARY
    assert item["id"] == w.wid and item["descriptor"] == w.display_name
    assert item["primaryWorkEmail"] == w.email and item["businessTitle"] == w.title
    assert item["primarySupervisoryOrganization"]["descriptor"] == w.department
    assert item["href"].endswith(f"{workers_path}/{w.wid}") and item["href"].startswith(sim.base_url)
    assert isinstance(item["isManager"], bool)
    one = client.send("GET", f"{workers_path}/{w.wid}").json()
    assert one == item and set(one) <= PUBLIC_SUMMARY
    default = client.send("GET", workers_path).json()
    assert len(default["data"]) == 20  # Workday's default limit
    err = client.http.get(workers_path, params={"limit": 101},
                          headers={"Authorization": f"Bearer {client.tokens.get()}"})
    assert err.status_code == 400
    assert err.json()["errors"][0]["field"] == "limit" and "error" in err.json()
    missing = client.http.get(f"{workers_path}/{'0' * 32}", headers={"Authorization": f"Bearer {client.tokens.get()}"})
    assert missing.status_code == 404


def test_health_is_one_report_request_that_selects_nobody(sim: SimHarness, client: WorkdayClient) -> None:
    assert client.health() >= 0.0
    _, workers_path, report_path = tenant_paths(sim)
    assert sim.counts()[report_path] == 1 and workers_path not in sim.counts()  # the path the audits use
    assert sim.recent_params(report_path)[-1] == {"format": ["json"], "Employee_ID": ["NEXUS-HEALTH-0"]}


def test_a_report_that_ignores_its_prompts_is_an_error_not_somebody_else(
    client: WorkdayClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = client.report_entries()  # what a report that defines no Email prompt answers to any lookup
    monkeypatch.setattr(client, "report_entries", lambda prompts=None, **kw: whole[:3])
    with pytest.raises(MalformedResponseError, match="none matches them: does the report define these prompts"):
        client.find_worker(email="nobody.here@corp.example")


def test_two_workers_with_one_work_email_are_both_returned(client: WorkdayClient,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first = client.report_entries()[0]
    email = first["Email_-_Work"]
    converted = {**first, "Employee_ID": "C" + first["Employee_ID"]}  # a contingent worker hired as an employee
    monkeypatch.setattr(client, "report_entries", lambda prompts=None, **kw: [first, converted])
    assert [p.employee_id for p in client.find_people(email)] == [first["Employee_ID"], converted["Employee_ID"]]


# -- the field mapping -----------------------------------------------------------------------------------------------

RENAMED = "employee_id=Emp_Num,active=Is_Active,email=Work_Email,worker=Preferred_Name,manager_employee_id=Boss_ID"


def test_a_renamed_report_is_read_end_to_end_with_the_same_mapping(org: Org, tmp_path: Any) -> None:
    h_tmp = tmp_path
    fields = parse_fields(RENAMED)
    h = start_sim(lambda ctx: WorkdaySim(ctx, fields=fields), org)
    try:
        *_, report_path = tenant_paths(h)
        raw = h.http.get(f"{h.base_url}{report_path}", params={"format": "json"},
                         headers={"Authorization": f"Bearer {WorkdayClient(h.settings()).tokens.get()}"})
        entry = raw.json()["Report_Entry"][0]
        assert "Emp_Num" in entry and "Is_Active" in entry and "Employee_ID" not in entry
        c = WorkdayClient(h.settings(workday_fields=RENAMED), clock=h.clock)
        assert c.list_workers() == [expected(w, names=True) for w in org.workday]
        leaver = next(w for w in org.workday if not w.active)
        assert c.find_worker(email=leaver.email) == expected(leaver, names=True)
        # the default mapping against the renamed report: one clear line, not everyone active
        d = WorkdayClient(h.settings(), clock=h.clock)
        with pytest.raises(MalformedResponseError) as info:
            d.list_workers()
        message = info.value.message
        assert "'Email_-_Work'" in message and "ISU_Nexus/Nexus_Workers" in message
        assert "NEXUS_WORKDAY_FIELDS" in message and "\n" not in message
        c.close()
        d.close()
        # the same mapping kept in the findings policy file instead of the environment
        policy = h_tmp / "policy.toml"
        policy.write_text("[workday.fields]\n" + "".join(f'{kv.split("=")[0]} = "{kv.split("=")[1]}"\n'
                                                         for kv in RENAMED.split(",")))
        p = WorkdayClient(h.settings(policy_file=str(policy)), clock=h.clock)
        assert p.list_workers() == [expected(w, names=True) for w in org.workday]
        p.close()
        with pytest.raises(ValidationError, match="set twice"):
            h.settings(policy_file=str(policy), workday_fields=RENAMED)
    finally:
        h.stop()


@pytest.mark.parametrize(("mapping", "field"), [("employee_id=Emp_Num", "Emp_Num"),
                                                ("active=Is_Active", "Is_Active"),
                                                ("email=Work_Email", "Work_Email")])
def test_a_report_lacking_a_mapped_field_fails_in_one_line(sim: SimHarness, mapping: str, field: str) -> None:
    c = WorkdayClient(sim.settings(workday_fields=mapping), clock=sim.clock)
    with pytest.raises(MalformedResponseError) as info:
        c.list_workers()
    message = info.value.message
    assert f"field {field!r}" in message and "Workday report ISU_Nexus/Nexus_Workers" in message
    assert "\n" not in message and len(message) < 400
    c.close()


def test_report_answers_that_are_errors_not_workers(sim: SimHarness) -> None:
    answers: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json=answers.pop(0))

    c = WorkdayClient(sim.settings(), transport=httpx.MockTransport(handler))
    for answer, words in (({"Report_Entry": []}, "no entries"),
                          ({"entries": []}, "no Report_Entry"),
                          ({"Report_Entry": ["x"]}, "not a list of entries"),
                          ({"Report_Entry": [{"Employee_ID": "1", "Active_Status": "maybe",
                                              "Email_-_Work": "a@corp.example"}]}, "not a boolean")):
        answers.append(answer)
        with pytest.raises(MalformedResponseError) as info:
            c.list_workers()
        assert words in info.value.message
    answers.append({"Report_Entry": [{"Employee_ID": "7", "Active_Status": "0", "Email_-_Work": "a@corp.example",
                                      "Worker": {"Descriptor": "Ann Lee", "ID": "abc"},
                                      "Termination_Date": "2024-02-29-08:00"}]})
    (leaver,) = c.list_workers()
    assert leaver.status == "Terminated" and leaver.enabled is False and leaver.display_name == "Ann Lee"
    assert leaver.termination_date == "2024-02-29"
    c.close()


def test_bad_field_settings_are_clear_errors() -> None:
    for value, words in (("nope=X", "unknown role 'nope'"), ("employee_id", "is not role=Field"),
                         ("{bad", "not valid JSON"), ('["Employee_ID"]', "JSON object"),
                         ("employee_id=Has Space", "must name a report field"),
                         ("email=Worker", "both read report field 'Worker'")):
        with pytest.raises(ValidationError) as info:
            Settings(_env_file=None, workday_fields=value)
        assert words in str(info.value) and "NEXUS_WORKDAY_FIELDS" in str(info.value)
    assert report_fields(Settings(_env_file=None, workday_fields='{"active": "Is_Active"}'))["active"] == "Is_Active"
    assert report_fields(Settings(_env_file=None))["employee_id"] == "Employee_ID"


# -- RaaS lookups ----------------------------------------------------------------------------------------------------

def test_find_worker_by_email_and_employee_id(sim: SimHarness, client: WorkdayClient, org: Org) -> None:
    leaver = next(w for w in org.workday if not w.active)
    assert client.find_worker(email=leaver.email.upper()) == expected(leaver, names=True)
    assert client.find_worker(employee_id=leaver.employee_id) == expected(leaver, names=True)
    assert client.find_worker(email=leaver.email, employee_id=leaver.employee_id) == expected(leaver, names=True)
    assert client.find_worker(email="nobody@corp.example") is None
    assert client.find_worker(email=leaver.email, employee_id=org.workday[0].employee_id) is None
    with pytest.raises(ValueError):
        client.find_worker()


def test_raas_wire_shape(sim: SimHarness, client: WorkdayClient, org: Org) -> None:
    *_, report = tenant_paths(sim)
    leaver = next(w for w in org.workday if not w.active and w.termination_date)
    assert leaver.termination_date is not None
    entry = client.send("GET", report, params={"format": "json", "Employee_ID": leaver.employee_id}
                        ).json()["Report_Entry"][0]
    assert entry["Active_Status"] == "0" and entry["Worker"] == leaver.display_name
    assert entry["Termination_Date"].startswith(leaver.termination_date.isoformat())
    assert entry["Manager_Employee_ID"] == leaver.manager_id and entry["Email_-_Work"] == leaver.email
    top = next(w for w in org.workday if w.manager_id is None)
    top_entry = client.send("GET", report, params={"format": "json", "Employee_ID": top.employee_id}
                            ).json()["Report_Entry"][0]
    assert "Manager_Employee_ID" not in top_entry and "Termination_Date" not in top_entry  # empty fields omitted
    everyone = client.send("GET", report, params={"format": "json"}).json()["Report_Entry"]
    assert len(everyone) == PEOPLE


def test_unknown_report_is_raised_not_read_as_missing_worker(sim: SimHarness) -> None:
    c = WorkdayClient(sim.settings(workday_report_name="No_Such_Report"), clock=sim.clock)
    with pytest.raises(NotFoundError) as info:
        c.find_worker(email="a@corp.example")
    assert info.value.status == 404 and "not found" in info.value.message
    c.close()


# -- tokens ----------------------------------------------------------------------------------------------------------

def test_token_is_cached_and_refreshed_before_expiry(sim: SimHarness, client: WorkdayClient) -> None:
    token_path, _, report_path = tenant_paths(sim)
    client.find_worker(employee_id="1")
    client.find_worker(employee_id="1")
    assert sim.counts()[token_path] == 1
    sim.clock.advance(TOKEN_LIFETIME_S - 30)  # inside the refresh margin: renewed before the server refuses it
    client.find_worker(employee_id="1")
    counts = sim.counts()
    assert counts[token_path] == 2 and counts[report_path] == 3  # no 401 round trip


def test_server_side_expiry_gets_exactly_one_reauthentication(sim: SimHarness, client: WorkdayClient) -> None:
    token_path, _, report_path = tenant_paths(sim)
    client.find_worker(employee_id="1")
    sim.expire_tokens()
    assert len(client.list_workers()) == PEOPLE
    counts = sim.counts()
    assert counts[token_path] == 2 and counts[report_path] == 3  # ok, 401, ok


def test_expired_token_fault_is_auth_error_after_one_retry(sim: SimHarness, client: WorkdayClient) -> None:
    token_path, _, report_path = tenant_paths(sim)
    sim.fault("expired_token")
    with pytest.raises(AuthError) as info:
        client.list_workers()
    assert info.value.status == 401 and "invalid_token" in info.value.message
    counts = sim.counts()
    assert counts[token_path] == 2 and counts[report_path] == 2


def test_bad_credentials(sim: SimHarness) -> None:
    token_path, *_ = tenant_paths(sim)
    for overrides, error in (({"workday_client_secret": "wrong-secret-123"}, "invalid_client"),
                             ({"workday_refresh_token": "wrong-refresh-456"}, "invalid_grant")):
        c = WorkdayClient(sim.settings(**overrides), clock=sim.clock)
        with pytest.raises(AuthError) as info:
            c.list_workers()
        assert error in info.value.message
        assert "wrong-" not in info.value.message and sim.ctx.creds.workday_client_secret not in info.value.message
        c.close()
    raw = httpx.post(f"{sim.base_url}{token_path}", data={"grant_type": "refresh_token", "refresh_token": "x"},
                     auth=("nexus-workday-client", "nope"))
    assert raw.status_code == 401 and raw.json()["error"] == "invalid_client"
    assert sim.counts()[token_path] == 3


# -- faults ----------------------------------------------------------------------------------------------------------

def test_throttle_is_honoured(sim: SimHarness, client: WorkdayClient) -> None:
    client.find_worker(employee_id="1")
    sim.fault("throttle", retry_after=7)
    with pytest.raises(ThrottledError) as info:
        client.list_workers()
    assert info.value.retry_after == 7.0 and info.value.status == 429


def test_down_is_transient_in_workday_format(sim: SimHarness, client: WorkdayClient) -> None:
    sim.fault("down")
    with pytest.raises(TransientError) as info:
        client.find_worker(email="x@corp.example")
    assert info.value.status == 503
    _, workers_path, _ = tenant_paths(sim)
    raw = httpx.get(f"{sim.base_url}{workers_path}")
    assert raw.status_code == 503 and raw.json()["errors"][0]["error"]


def test_malformed_body(sim: SimHarness, client: WorkdayClient) -> None:
    client.find_worker(employee_id="1")
    sim.fault("malformed")
    with pytest.raises(MalformedResponseError):
        client.list_workers()
    sim.reset()
    fresh = WorkdayClient(sim.settings(), clock=sim.clock)
    sim.fault("malformed")
    with pytest.raises(MalformedResponseError):  # the token endpoint answers the HTML too
        fresh.list_workers()
    fresh.close()


def test_truncated_report_is_malformed_never_a_shorter_fleet(sim: SimHarness, client: WorkdayClient,
                                                              org: Org) -> None:
    sim.fault("truncated")
    with pytest.raises(MalformedResponseError) as info:
        client.list_workers()
    assert "not JSON" in info.value.message
    assert client.find_worker(employee_id=org.workday[0].employee_id) == expected(org.workday[0], names=True)


# -- injection -------------------------------------------------------------------------------------------------------

def test_hostile_values_reach_workday_only_as_literals(sim: SimHarness, client: WorkdayClient, org: Org) -> None:
    for value in HOSTILE:
        assert client.find_worker(email=value) is None
        assert client.find_worker(employee_id=value) is None
    *_, report = tenant_paths(sim)
    seen = sim.recent_params(report)
    assert [p["Email"] for p in seen if "Email" in p] == [[v] for v in HOSTILE]
    assert [p["Employee_ID"] for p in seen if "Employee_ID" in p] == [[v] for v in HOSTILE]
    assert all(p["format"] == ["json"] and len(p) == 2 for p in seen)


def test_apostrophe_email_is_found_exactly() -> None:
    base = make_org(12, seed=5)
    odd = replace(base.workday[-1], employee_id="424242", wid="f" * 32, email="o'brien\\\"x@corp.example")
    org = replace(base, workday=[*base.workday, odd])
    h = start_sim(WorkdaySim, org)
    try:
        c = WorkdayClient(h.settings(), clock=h.clock)
        found = c.find_worker(email="O'Brien\\\"X@corp.example")
        assert found is not None and found.employee_id == "424242"
        assert c.find_worker(email="o'brien") is None
        c.close()
    finally:
        h.stop()



# -- the fleet snapshot stream ---------------------------------------------------------------------------------------

def test_the_snapshot_stores_one_report_request_as_chunks_and_a_retried_task_restarts(
        sim: SimHarness, org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clients.workday.REPORT_CHUNK", 60)
    store = SnapshotStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=600)
    policy = RetryPolicy(max_attempts=3, backoff_base_s=0.25)
    *_, report_path = tenant_paths(sim)

    def source(client: WorkdayClient) -> Source:
        (only,) = sources_for(System.WORKDAY, client)
        return only

    c = WorkdayClient(sim.settings(), clock=sim.clock)
    result = SnapshotRunner(store, "a1", source(c), policy=policy).run()
    assert result.status == "ok"
    state = store.state("a1", "workday")
    assert sorted(state.pages.values()) == [10, 60, 60, 60, 60] and state.fetches == 1
    assert sim.counts()[report_path] == 1
    decoder = codec.Decoder(codec.PERSON, "workday")
    stored = [r for blob in store.iter_blobs("a1", "workday") for r in decoder.decode(blob)]
    assert stored == [expected(w, names=True) for w in org.workday]

    # a task that died after two chunks: its retry (another process) holds no report, restarts and reads it again
    first = source(c)
    page0 = first.fetch(None)
    store.begin("a2", "workday")
    store.save_page("a2", "workday", 0, codec.encode_page(codec.PERSON, page0.items), len(page0.items),
                    cursor=page0.next_cursor, advance=True)
    retried = SnapshotRunner(store, "a2", source(WorkdayClient(sim.settings(), clock=sim.clock)), policy=policy)
    assert retried.run().status == "ok"
    again = store.state("a2", "workday")
    assert again.records == PEOPLE and sim.counts()[report_path] == 3
    c.close()
