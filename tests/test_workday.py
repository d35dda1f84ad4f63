"""Workday simulator and client over a real socket: wire shapes, paging, tokens, errors, injection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from clients.workday import WorkdayClient
from nexus.errors import (
    AuthError,
    BadRequestError,
    MalformedResponseError,
    NotFoundError,
    ThrottledError,
    TransientError,
)
from nexus.models import PersonRecord
from nexus.sim.org_model import Org, WorkdayWorker
from nexus.sim.workday import WorkdaySim
from nexus.testing.sims import SimHarness
from tests._org_factory_wd import HOSTILE, TOKEN_LIFETIME_S, make_org, start_sim

PEOPLE = 250


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org(PEOPLE, seed=11)


@pytest.fixture(scope="module")
def harness(org: Org) -> Iterator[SimHarness]:
    h = start_sim(WorkdaySim, org)
    yield h
    h.stop()


@pytest.fixture()
def sim(harness: SimHarness) -> Iterator[SimHarness]:
    harness.reset()
    yield harness
    harness.reset()


@pytest.fixture()
def client(sim: SimHarness) -> Iterator[WorkdayClient]:
    c = WorkdayClient(sim.settings(), clock=sim.clock)
    yield c
    c.close()


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


# -- listing ---------------------------------------------------------------------------------------------------------

def test_every_worker_is_listed_over_pages_and_equals_the_org(sim: SimHarness, client: WorkdayClient,
                                                              org: Org) -> None:
    pages = []
    cursor = None
    while True:
        page = client.fetch_page(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(pages) == 3 and [len(p.items) for p in pages] == [100, 100, 50]
    assert all(p.total == PEOPLE for p in pages)
    records = [r for p in pages for r in p.items]
    assert records == [expected(w, names=False) for w in org.workday]
    assert any(not w.active for w in org.workday)  # terminated workers are part of the listing
    _, workers_path, _ = tenant_paths(sim)
    assert sim.counts()[workers_path] == 3
    assert list(client.list_all()) == records


def test_small_pages_and_limit_cap(sim: SimHarness, client: WorkdayClient) -> None:
    page = client.fetch_page("240", page_size=7)
    assert len(page.items) == 7 and page.next_cursor == "247"
    last = client.fetch_page("247", page_size=7)
    assert len(last.items) == 3 and last.next_cursor is None
    with pytest.raises(BadRequestError) as info:
        client.fetch_page(None, page_size=101)
    assert info.value.status == 400 and "limit" in info.value.message


def test_rest_wire_shape(sim: SimHarness, client: WorkdayClient, org: Org) -> None:
    _, workers_path, _ = tenant_paths(sim)
    body = client.send("GET", workers_path, params={"limit": 100, "offset": 0}).json()
    active = [w for w in org.workday if w.active]
    assert body["total"] == len(active)  # like Workday: terminated workers only on request
    item = body["data"][1]
    w = active[1]
    assert item["id"] == w.wid and item["descriptor"] == w.display_name and item["workerId"] == w.employee_id
    assert item["primaryWorkEmail"] == w.email and item["businessTitle"] == w.title
    assert item["workerType"]["descriptor"] == w.worker_type
    assert item["primarySupervisoryOrganization"]["descriptor"] == w.department
    assert item["primaryJob"]["location"]["descriptor"] == w.location
    assert item["href"].endswith(f"{workers_path}/{w.wid}") and item["href"].startswith(sim.base_url)
    assert item["manager"]["workerId"] == w.manager_id and item["isActive"] is True
    assert "terminationDate" not in item
    default = client.send("GET", workers_path).json()
    assert len(default["data"]) == 20  # Workday's default limit
    err = client.http.get(workers_path, params={"limit": 101},
                          headers={"Authorization": f"Bearer {client.tokens.get()}"})
    assert err.status_code == 400
    assert err.json()["errors"][0]["field"] == "limit" and "error" in err.json()


def test_get_worker_by_wid_and_404_is_none(client: WorkdayClient, org: Org) -> None:
    w = org.workday[3]
    assert client.get_worker(w.wid) == expected(w, names=False)
    assert client.get_worker("0" * 32) is None
    assert client.get_worker("../../token") is None


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
    token_path, workers_path, _ = tenant_paths(sim)
    client.fetch_page(None, page_size=1)
    client.fetch_page(None, page_size=1)
    assert sim.counts()[token_path] == 1
    sim.clock.advance(TOKEN_LIFETIME_S - 30)  # inside the refresh margin: renewed before the server refuses it
    client.fetch_page(None, page_size=1)
    counts = sim.counts()
    assert counts[token_path] == 2 and counts[workers_path] == 3  # no 401 round trip


def test_server_side_expiry_gets_exactly_one_reauthentication(sim: SimHarness, client: WorkdayClient) -> None:
    token_path, workers_path, _ = tenant_paths(sim)
    client.fetch_page(None, page_size=1)
    sim.expire_tokens()
    page = client.fetch_page(None, page_size=1)
    assert len(page.items) == 1
    counts = sim.counts()
    assert counts[token_path] == 2 and counts[workers_path] == 3  # ok, 401, ok


def test_expired_token_fault_is_auth_error_after_one_retry(sim: SimHarness, client: WorkdayClient) -> None:
    token_path, workers_path, _ = tenant_paths(sim)
    sim.fault("expired_token")
    with pytest.raises(AuthError) as info:
        client.fetch_page()
    assert info.value.status == 401 and "invalid_token" in info.value.message
    counts = sim.counts()
    assert counts[token_path] == 2 and counts[workers_path] == 2


def test_bad_credentials(sim: SimHarness) -> None:
    token_path, *_ = tenant_paths(sim)
    for overrides, error in (({"workday_client_secret": "wrong-secret-123"}, "invalid_client"),
                             ({"workday_refresh_token": "wrong-refresh-456"}, "invalid_grant")):
        c = WorkdayClient(sim.settings(**overrides), clock=sim.clock)
        with pytest.raises(AuthError) as info:
            c.fetch_page()
        assert error in info.value.message
        assert "wrong-" not in info.value.message and sim.ctx.creds.workday_client_secret not in info.value.message
        c.close()
    raw = httpx.post(f"{sim.base_url}{token_path}", data={"grant_type": "refresh_token", "refresh_token": "x"},
                     auth=("nexus-workday-client", "nope"))
    assert raw.status_code == 401 and raw.json()["error"] == "invalid_client"
    assert sim.counts()[token_path] == 3


# -- faults ----------------------------------------------------------------------------------------------------------

def test_throttle_is_honoured(sim: SimHarness, client: WorkdayClient) -> None:
    client.fetch_page(None, page_size=1)
    sim.fault("throttle", retry_after=7)
    with pytest.raises(ThrottledError) as info:
        client.fetch_page()
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
    client.fetch_page(None, page_size=1)
    sim.fault("malformed")
    with pytest.raises(MalformedResponseError):
        client.fetch_page()
    sim.reset()
    fresh = WorkdayClient(sim.settings(), clock=sim.clock)
    sim.fault("malformed")
    with pytest.raises(MalformedResponseError):  # the token endpoint answers the HTML too
        fresh.fetch_page()
    fresh.close()


def test_truncated_listing_is_detected(sim: SimHarness, client: WorkdayClient) -> None:
    sim.fault("truncated")
    first = client.fetch_page()
    assert len(first.items) == 100 and first.total == PEOPLE
    with pytest.raises(MalformedResponseError) as info:
        list(client.list_all())
    assert "incomplete listing" in info.value.message


def test_malformed_worker_summary(sim: SimHarness) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={"total": 1, "data": [{"descriptor": "No Id"}]})

    c = WorkdayClient(sim.settings(), transport=httpx.MockTransport(handler))
    with pytest.raises(MalformedResponseError):
        c.fetch_page()
    c.close()


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


def test_health_returns_elapsed_ms(client: WorkdayClient) -> None:
    assert client.health() >= 0.0
