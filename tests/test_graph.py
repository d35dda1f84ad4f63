"""Microsoft Graph (Entra ID users, Intune devices) and the Azure token endpoint: simulators and clients, over real
sockets. Clocks are injected; nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from clients._graph import odata_quote
from clients.entra import EntraClient
from clients.intune import IntuneClient
from nexus.errors import (
    AuthError,
    BadRequestError,
    MalformedResponseError,
    NotFoundError,
    ThrottledError,
    TransientError,
)
from nexus.models import DeviceRecord, PersonRecord
from nexus.sim import odata
from nexus.sim.faults import Fault
from nexus.sim.graph import graph_sims
from nexus.sim.graph_data import DEFAULT_USER_SELECT, iso
from nexus.sim.org_model import EntraUser, Org
from nexus.testing.clock import FakeClock
from nexus.testing.sims import SimHarness
from tests._org_factory_graph import CountingList, make_bulk_org, make_org


class Sim(SimHarness):
    """The Graph and Azure token simulators, plus Graph's own request helpers."""

    def token(self) -> str:
        creds = self.ctx.creds
        response = self.http.post(f"{self.url}/azure/{creds.azure_tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": creds.azure_client_id,
            "client_secret": creds.azure_client_secret, "scope": "https://graph.microsoft.com/.default"})
        return str(response.json()["access_token"])

    def get(self, path: str, params: dict[str, str] | None = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token()}"}
        return self.http.get(f"{self.url}/graph{path}", params=params, headers=headers)


def start_sim(org: Org) -> Sim:
    return Sim.start(graph_sims, org, seed=7, clock=FakeClock(1000.0), token_lifetime_s=3599)


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    running = start_sim(make_org())
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        running: Sim = request.getfixturevalue("sim")
        running.ctx.faults.clear()
        running.ctx.log.reset()


@pytest.fixture
def entra(sim: Sim) -> Iterator[EntraClient]:
    with EntraClient(sim.settings()) as client:
        yield client


@pytest.fixture
def intune(sim: Sim) -> Iterator[IntuneClient]:
    with IntuneClient(sim.settings()) as client:
        yield client


TOKEN_PATH = "/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token"


def expected_person(org: Org, user_id: str) -> PersonRecord:
    by_id = {u.id: u for u in org.entra}
    user = by_id[user_id]
    boss = by_id.get(user.manager_id) if user.manager_id else None
    return PersonRecord(
        system="entra", key=user.id, employee_id=user.employee_id, email=user.mail, upn=user.upn,
        display_name=user.display_name, first_name=user.given_name, last_name=user.surname, title=user.job_title,
        department=user.department, manager_ref=boss.id if boss else None,
        manager_employee_id=boss.employee_id if boss else None,
        manager_email=(boss.mail or boss.upn) if boss else None, enabled=user.account_enabled,
        aliases=tuple(user.other_mails),
        last_logon=iso(max((t for t in (user.last_sign_in, user.last_non_interactive_sign_in) if t is not None),
                           default=None)),
    )


def expected_device(org: Org, device_id: str) -> DeviceRecord:
    dev = next(d for d in org.intune if d.id == device_id)
    return DeviceRecord(system="intune", key=dev.id, serial=dev.serial, name=dev.device_name, owner=dev.upn,
                        last_seen=iso(dev.last_sync), compliance=dev.compliance_state, status=dev.management_state,
                        model=dev.model, manufacturer=dev.manufacturer)


# -- listing and paging ----------------------------------------------------------------------------------------------
def test_users_are_listed_over_several_pages_and_equal_the_org(sim: Sim, entra: EntraClient) -> None:
    pages = []
    cursor: str | None = None
    while True:
        page = entra.fetch_page(cursor, page_size=2)
        pages.append(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p.items) for p in pages] == [2, 2, 2, 1]
    people = [p for page in pages for p in page.items]
    assert people == [expected_person(sim.ctx.org, u.id) for u in sim.ctx.org.entra]
    assert sim.count("entra", "/v1.0/users") == 4
    assert list(entra.list_all()) == people  # one page of 999
    assert sim.count("entra", "/v1.0/users") == 5


def test_next_link_is_absolute_carries_the_options_and_is_followed_whole(sim: Sim, entra: EntraClient) -> None:
    first = entra.fetch_page(page_size=3)
    assert first.next_cursor is not None
    link = urlsplit(first.next_cursor)
    assert f"{link.scheme}://{link.netloc}" == sim.url and link.path == "/graph/v1.0/users"
    options = dict(parse_qsl(link.query))
    assert options["$top"] == "3" and "department" in options["$select"] and "$skiptoken" in options
    assert options["$expand"].startswith("manager(")
    entra.fetch_page(first.next_cursor)
    sent = sim.recent("entra")[-1]
    assert sent["path"] == "/v1.0/users" and dict(parse_qsl(sent["query"])) == options


def test_the_client_never_sends_its_token_outside_graph(entra: EntraClient, sim: Sim) -> None:
    with pytest.raises(MalformedResponseError):
        entra.fetch_page("http://attacker.example/graph/v1.0/users?$skiptoken=abc")
    with pytest.raises(MalformedResponseError):
        entra.fetch_page(f"{sim.url}/other/v1.0/users?$skiptoken=abc")
    assert sim.requests("entra")["total"] == 0


def test_a_forged_skiptoken_is_a_bad_request(sim: Sim, entra: EntraClient) -> None:
    with pytest.raises(BadRequestError):
        entra.fetch_page(f"{sim.url}/graph/v1.0/users?$top=2&$skiptoken=RFNwdAEAAAACAAAAAAAAAAAAAAAA")


def test_every_generated_record_is_listed_through_the_clients() -> None:
    from nexus.sim.orggen import generate_org

    org = generate_org(150, seed=11)
    running = start_sim(org)
    try:
        with EntraClient(running.settings()) as entra, IntuneClient(running.settings()) as intune:
            people = _all(entra, 40)
            assert people == [expected_person(org, u.id) for u in org.entra if u.user_type == "Member"]
            devices = _all(intune, 50)
            assert devices == [expected_device(org, d.id) for d in org.intune]
            assert intune.fetch_page(page_size=50).total == len(org.intune)
    finally:
        running.stop()


def _all(client: EntraClient | IntuneClient, size: int) -> list[Any]:
    out: list[Any] = []
    cursor: str | None = None
    while True:
        page = client.fetch_page(cursor, page_size=size)
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


# -- real Graph behaviours -------------------------------------------------------------------------------------------
def test_default_select_leaves_out_department_employee_id_and_account_enabled(sim: Sim) -> None:
    body = sim.get("/v1.0/users", {"$top": "5"}).json()
    assert body["@odata.context"] == f"{sim.url}/graph/v1.0/$metadata#users"
    assert all(list(user) == list(DEFAULT_USER_SELECT) for user in body["value"])
    assert not any({"department", "employeeId", "accountEnabled", "otherMails"} & set(u) for u in body["value"])
    selected = sim.get("/v1.0/users", {"$top": "5", "$select": "id,department"}).json()
    assert all(set(user) == {"id", "department"} for user in selected["value"])
    assert selected["@odata.context"].endswith("#users(id,department)")


def test_expand_manager_with_nested_select(sim: Sim) -> None:
    conor = sim.get("/v1.0/users/conor.o'brien@corp.example",
                    {"$select": "id", "$expand": "manager($select=id,mail)"}).json()
    assert conor["manager"] == {"@odata.type": "#microsoft.graph.user", "id": sim.ctx.org.entra[0].id,
                                "mail": "ada.lovelace@corp.example"}
    ada = sim.get("/v1.0/users/ada.lovelace@corp.example", {"$expand": "manager"}).json()
    assert "manager" not in ada


def test_graph_error_bodies(sim: Sim) -> None:
    response = sim.get("/v1.0/users", {"$top": "1000"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "Request_BadRequest"
    assert error["message"].startswith("Invalid value '1000' for query parameter $top")
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    bad = sim.get("/v1.0/users", {"$filter": "mail eq 'unterminated"})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("Invalid filter clause")
    unknown = sim.get("/v1.0/users", {"$filter": "shoeSize eq '9'"})
    assert unknown.status_code == 400 and "shoeSize" in unknown.json()["error"]["message"]
    missing = sim.get("/v1.0/users/nobody@corp.example")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"
    no_token = sim.http.get(f"{sim.url}/graph/v1.0/users")
    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_filters_on_indexed_and_other_properties(sim: Sim) -> None:
    def mails(flt: str) -> list[str]:
        body = sim.get("/v1.0/users", {"$filter": flt, "$select": "mail"}).json()
        return [u["mail"] for u in body["value"]]

    assert mails("mail eq 'ADA.LOVELACE@corp.example'") == ["ada.lovelace@corp.example"]  # the directory folds case
    assert mails("employeeId eq '100002' or userPrincipalName eq 'grace.hopper@corp.example'") == [
        "jose.mueller@example.com", "grace.hopper@corp.example"]
    assert mails("startswith(displayName,'Ed')") == ["edsger.dijkstra@corp.example"]
    assert mails("otherMails/any(x:x eq 'cobrien@example.com')") == ["conor.o'brien@corp.example"]
    assert mails("accountEnabled eq false") == ["grace.hopper@corp.example"]
    assert mails("department eq null and accountEnabled eq false") == ["grace.hopper@corp.example"]
    assert mails("mail eq 'conor.o''brien@corp.example'") == ["conor.o'brien@corp.example"]


# -- lookups ---------------------------------------------------------------------------------------------------------
def test_find_user_by_each_key(sim: Sim, entra: EntraClient) -> None:
    org = sim.ctx.org
    conor = expected_person(org, org.entra[1].id)
    assert entra.find_user(email="conor.o'brien@corp.example") == conor
    assert entra.find_user(email="COBRIEN@example.com") == conor  # an alias (otherMails)
    assert entra.find_user(upn="conor.o'brien@corp.example") == conor
    assert entra.find_user(employee_id="100001") == conor
    assert entra.find_user(email="nobody@corp.example", employee_id="100001") == conor
    assert entra.find_user(email="nobody@corp.example") is None
    # Two different users match different keys: the employee id wins, then the primary mail.
    assert entra.find_user(email="ada.lovelace@corp.example", employee_id="100003") == expected_person(
        org, org.entra[3].id)
    with pytest.raises(ValueError):
        entra.find_user()


def test_get_user_and_not_found(sim: Sim, entra: EntraClient) -> None:
    org = sim.ctx.org
    assert entra.get_user(org.entra[2].id) == expected_person(org, org.entra[2].id)
    assert entra.get_user("josé.müller@corp.example") == expected_person(org, org.entra[2].id)
    assert entra.get_user("nobody@corp.example") is None
    with pytest.raises(NotFoundError):
        entra.get_json("/v1.0/nothing-here")


@pytest.mark.parametrize("hostile", ["' or 1 eq 1", "x' or mail eq 'a@corp.example", "a@corp.example') or (1 eq 1"])
def test_filter_values_reach_graph_only_as_literals(sim: Sim, entra: EntraClient, hostile: str) -> None:
    assert entra.find_user(email=hostile) is None
    sent = sim.recent("entra")[-1]
    flt = dict(parse_qsl(sent["query"]))["$filter"]
    assert flt == f"mail eq {odata_quote(hostile)} or otherMails/any(m:m eq {odata_quote(hostile)})"
    assert odata.parse_filter(flt) == odata.Or((odata.Compare("mail", "eq", hostile), odata.AnyEq("otherMails",
                                                                                                    hostile)))


def test_intune_lookups(sim: Sim, intune: IntuneClient) -> None:
    org = sim.ctx.org
    assert intune.find_device("SN-0002") == expected_device(org, "dev-1")
    assert intune.find_device("sn-0002") == expected_device(org, "dev-1")
    assert intune.find_device("SN-9999") is None
    assert intune.find_device("SN'4\"})#") == expected_device(org, "dev-3")
    assert intune.find_device("' or serialNumber ne '") is None
    assert intune.devices_for_user("conor.o'brien@corp.example") == [expected_device(org, "dev-1"),
                                                                    expected_device(org, "dev-2")]
    assert intune.devices_for_user("nobody@corp.example") == []
    assert intune.get_device("dev-4") == expected_device(org, "dev-4")
    assert intune.get_device("dev-404") is None


def test_intune_pages_and_request_log(sim: Sim, intune: IntuneClient) -> None:
    devices = _all(intune, 2)
    assert devices == [expected_device(sim.ctx.org, d.id) for d in sim.ctx.org.intune]
    assert sim.count("intune", "/v1.0/deviceManagement/managedDevices") == 3
    assert sim.count("entra", TOKEN_PATH) == 1  # the token endpoint counts under entra
    assert sim.requests("entra")["total"] == 1


# -- tokens ----------------------------------------------------------------------------------------------------------
def test_token_is_cached_and_renewed_before_expiry(sim: Sim) -> None:
    clock = FakeClock(1000.0)
    with EntraClient(sim.settings(), clock=clock) as entra:
        entra.health()
        entra.health()
        assert sim.count("entra", TOKEN_PATH) == 1
        clock.now += 3599 - 30  # inside the refresh margin: a new token before the old one expires
        entra.health()
        assert sim.count("entra", TOKEN_PATH) == 2


def test_token_expired_on_the_server_means_one_reauthentication(sim: Sim, entra: EntraClient) -> None:
    entra.health()
    sim.ctx.tokens.expire_all("entra")
    assert entra.find_user(employee_id="100000") is not None
    assert sim.count("entra", TOKEN_PATH) == 2
    assert sim.count("entra", "/v1.0/users") == 3  # health, the refused lookup, its one repetition
    sim.clock.now += 4000  # real expiry on the simulator's clock works the same way
    assert entra.health() > 0
    assert sim.count("entra", TOKEN_PATH) == 3


def test_expired_token_fault_is_an_auth_error_after_one_retry(sim: Sim, entra: EntraClient) -> None:
    sim.ctx.faults.set(Fault(system="entra", mode="expired_token"))
    with pytest.raises(AuthError) as caught:
        entra.fetch_page()
    assert "InvalidAuthenticationToken" in str(caught.value) and "expired" in str(caught.value)
    assert sim.count("entra", "/v1.0/users") == 2
    assert sim.count("entra", TOKEN_PATH) == 2
    # Intune shares the token but not the fault.
    with IntuneClient(sim.settings()) as intune:
        assert intune.find_device("SN-0001") is not None


def test_token_endpoint_refusals(sim: Sim) -> None:
    secret = sim.ctx.creds.azure_client_secret
    with EntraClient(sim.settings(AZURE_CLIENT_SECRET="wrong")) as entra:
        with pytest.raises(AuthError) as caught:
            entra.health()
        assert "invalid_client" in str(caught.value) and "AADSTS7000215" in str(caught.value)
        assert secret not in str(caught.value) and "wrong" not in str(caught.value)
    with EntraClient(sim.settings(AZURE_TENANT_ID="no-such-tenant")) as entra, pytest.raises(AuthError) as caught:
        entra.health()
    assert "AADSTS90002" in str(caught.value)
    raw = sim.http.post(f"{sim.url}/azure/{sim.ctx.creds.azure_tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": sim.ctx.creds.azure_client_id, "client_secret": "nope",
        "scope": "https://graph.microsoft.com/.default"})
    body = raw.json()
    assert raw.status_code == 401 and body["error"] == "invalid_client" and body["error_codes"] == [7000215]
    good = sim.http.post(f"{sim.url}/azure/{sim.ctx.creds.azure_tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": sim.ctx.creds.azure_client_id, "client_secret": secret,
        "scope": "https://graph.microsoft.com/.default"}).json()
    assert good["token_type"] == "Bearer" and good["expires_in"] == 3599 and good["ext_expires_in"] == 3599


# -- failures --------------------------------------------------------------------------------------------------------
def test_throttle_honours_retry_after(sim: Sim, entra: EntraClient) -> None:
    entra.health()
    sim.ctx.faults.set(Fault(system="entra", mode="throttle", retry_after=7))
    with pytest.raises(ThrottledError) as caught:
        entra.fetch_page()
    assert caught.value.retry_after == 7.0 and caught.value.status == 429
    raw = sim.get("/v1.0/users", token=entra.tokens.get())  # the token endpoint is throttled too: reuse one
    assert raw.headers["retry-after"] == "7" and raw.json()["error"]["code"] == "TooManyRequests"


def test_down_is_transient_and_bad_requests_are_not(sim: Sim, entra: EntraClient, intune: IntuneClient) -> None:
    intune.health()
    sim.ctx.faults.set(Fault(system="intune", mode="down"))
    with pytest.raises(TransientError) as caught:
        intune.fetch_page()
    assert caught.value.status == 503
    assert entra.find_user(employee_id="100000") is not None  # Entra unaffected
    with pytest.raises(BadRequestError) as bad:
        entra.get_collection("/v1.0/users", {"$top": "1000"})
    assert bad.value.status == 400 and "$top" in str(bad.value)
    sim.ctx.faults.set(Fault(system="entra", mode="down"))
    with IntuneClient(sim.settings()) as fresh, pytest.raises(TransientError):
        fresh.health()  # no token while Entra is down


def test_malformed_answers(sim: Sim, entra: EntraClient) -> None:
    entra.health()
    sim.ctx.faults.set(Fault(system="entra", mode="malformed"))
    with pytest.raises(MalformedResponseError):
        entra.fetch_page()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        if "$filter" in str(request.url):
            return httpx.Response(200, json={"value": [{"displayName": "no id"}]})
        return httpx.Response(200, json={"@odata.context": "x", "values": []})

    with EntraClient(sim.settings(), transport=httpx.MockTransport(handler)) as mocked:
        with pytest.raises(MalformedResponseError):
            mocked.fetch_page()
        with pytest.raises(MalformedResponseError):
            mocked.find_user(email="x@corp.example")


def test_truncated_listing_fails_on_the_next_link_and_the_page_can_be_retried(sim: Sim, entra: EntraClient) -> None:
    sim.ctx.faults.set(Fault(system="entra", mode="truncated"))
    first = entra.fetch_page(page_size=3)
    assert first.next_cursor is not None and len(first.items) == 3
    with pytest.raises(TransientError) as caught:
        entra.fetch_page(first.next_cursor)
    assert caught.value.status == 400 and "Directory_ExpiredPageToken" in str(caught.value)
    sim.ctx.faults.clear()
    assert len(entra.fetch_page(first.next_cursor).items) == 3


# -- O(page size) (the OData parser itself: tests/test_odata.py) -----------------------------------------------------
def test_pages_and_lookups_cost_the_page_not_the_collection() -> None:
    org = make_bulk_org(users=5_000, devices=20_000)
    assert isinstance(org.entra, CountingList) and isinstance(org.intune, CountingList)
    running = start_sim(org)
    try:
        with IntuneClient(running.settings()) as intune, EntraClient(running.settings()) as entra:
            intune.health()
            org.intune.reads = 0
            page = intune.fetch_page(page_size=500)
            for _ in range(4):
                assert page.next_cursor is not None
                page = intune.fetch_page(page.next_cursor, page_size=500)
            assert page.items[0].serial == "BULK0002000"
            assert org.intune.reads == 5 * 500
            org.intune.reads = org.entra.reads = 0
            for n in range(0, 20_000, 1_000):
                assert intune.find_device(f"BULK{n:07d}") is not None
                assert entra.find_user(email=f"user{n // 4}.bulk@corp.example", employee_id="100000") is not None
            # each lookup reads its matches (twice: filter, render), never the other records
            assert org.intune.reads == 20 * 2
            assert org.entra.reads == 2 + 19 * 2 * 2  # two users match (one for n=0: user0 has id 100000)
    finally:
        running.stop()


# -- the $expand page cap (Graph's documented limitation; see nexus.sim.graph) --------------------------------------
def test_expand_caps_a_user_page_at_100_whatever_top_asks_and_pages_on() -> None:
    org = make_bulk_org(users=250, devices=0)
    running = start_sim(org)
    try:
        first = running.get("/v1.0/users", {"$top": "999", "$select": "id", "$expand": "manager($select=id)"})
        body = first.json()
        assert first.status_code == 200 and len(body["value"]) == 100
        link = dict(parse_qsl(urlsplit(body["@odata.nextLink"]).query))
        assert link["$top"] == "999" and "$skiptoken" in link  # the request's options, as Graph carries them
        second = running.http.get(body["@odata.nextLink"], headers={"Authorization": f"Bearer {running.token()}"})
        third = running.http.get(second.json()["@odata.nextLink"],
                                 headers={"Authorization": f"Bearer {running.token()}"}).json()
        assert len(second.json()["value"]) == 100 and len(third["value"]) == 50 and "@odata.nextLink" not in third
        assert [u["id"] for u in body["value"] + second.json()["value"] + third["value"]] == [u.id for u in org.entra]
        plain = running.get("/v1.0/users", {"$top": "999", "$select": "id"}).json()
        assert len(plain["value"]) == 250 and "@odata.nextLink" not in plain  # no $expand: no cap
        too_big = running.get("/v1.0/users", {"$top": "1000", "$expand": "manager"})
        assert too_big.status_code == 400  # $top is still validated first
    finally:
        running.stop()


def test_the_entra_client_plans_pages_of_the_expand_cap() -> None:
    from clients.entra import PAGE_SIZE
    from nexus.fleet.cost import PEOPLE_PAGE_SIZES
    from nexus.registry import STREAM_SPECS

    assert PAGE_SIZE == 100
    assert PEOPLE_PAGE_SIZES["entra"] == PAGE_SIZE and STREAM_SPECS["entra"].page_size == PAGE_SIZE
    org = make_bulk_org(users=250, devices=0)
    running = start_sim(org)
    try:
        with EntraClient(running.settings()) as entra:
            assert len(list(entra.list_all())) == 250
            assert running.count("entra", "/v1.0/users") == 3
            assert {p["$top"][0] for p in running.recent_params("/v1.0/users", "entra")} == {"100"}
    finally:
        running.stop()


# -- the synthetic tenant's rough edges: empty pages with a nextLink, guests, users without mail or employeeId ------
def test_an_empty_page_with_a_next_link_is_served_and_walked_past() -> None:
    org = make_org()
    org.graph_empty_pages = {"users": [0, 3], "deviceManagement/managedDevices": [2]}
    running = start_sim(org)
    try:
        sizes, cursor = [], None
        with EntraClient(running.settings()) as entra, IntuneClient(running.settings()) as intune:
            while True:
                page = entra.fetch_page(cursor, page_size=2)
                sizes.append(len(page.items))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert sizes == [0, 2, 1, 0, 2, 2]  # empty first page; a page stops short of the next empty one
            assert [p.key for p in entra.list_all()] == [u.id for u in org.entra]
            assert [d.key for d in intune.list_all()] == [d.id for d in org.intune]
            assert entra.find_user(email="ada.lovelace@corp.example") is not None  # filtered queries: no gaps
        first = running.get("/v1.0/users", {"$top": "2"}).json()
        assert first["value"] == [] and "@odata.nextLink" in first
    finally:
        running.stop()


def _guest(n: int, mail: str) -> EntraUser:
    local, _, domain = mail.partition("@")
    return EntraUser(id=f"00000000-0000-4000-9000-{n:012d}", upn=f"{local}_{domain}#EXT#@corpexample.onmicrosoft.com",
                     mail=mail, display_name=f"{local} (Guest)", given_name=local, surname="", job_title=None,
                     department=None, employee_id=None, account_enabled=True, manager_id=None, user_type="Guest")


def test_guests_are_not_people_of_the_organisation() -> None:
    from nexus.drift.engine import audit_people

    org = make_org()
    ada = org.entra[0]
    # a B2B guest that carries a worker's address (invited before the member account existed, say)
    org.entra += [_guest(1, "partner.pat@fabrikam.example"), _guest(2, ada.mail or "")]
    running = start_sim(org)
    try:
        with EntraClient(running.settings()) as entra:
            listed = list(entra.list_all())
            assert [p.key for p in listed] == [u.id for u in org.entra if u.user_type == "Member"]
            assert entra.find_user(email="partner.pat@fabrikam.example") is None
            assert entra.find_user(email=ada.mail).key == ada.id  # type: ignore[union-attr]
            assert entra.get_user(org.entra[-1].upn) is None
        worker = PersonRecord(system="workday", key="100000", employee_id="100000", email=ada.mail,
                              display_name=ada.display_name, first_name=ada.given_name, last_name=ada.surname,
                              title=ada.job_title, department=ada.department, enabled=True, status="Active")
        result = audit_people([worker], None, listed, {"workday", "entra"})
        # the other members are nobody's in this one-worker Workday: orphans; the guests are no one's at all
        assert {d.field for d in result.discrepancies} <= {"orphaned_account"}
        orphans = {d.subject for d in result.discrepancies}
        assert orphans == {u.upn.lower() for u in org.entra[1:] if u.user_type == "Member" and u.account_enabled}
        assert [r.key for r in result.matches[0].entra] == [ada.id]
    finally:
        running.stop()


def test_the_generated_tenant_has_the_rough_edges_and_the_clients_cope() -> None:
    from nexus.sim.orggen import generate_org

    org = generate_org(120, seed=13)
    members = [u for u in org.entra if u.user_type == "Member"]
    guests = [u for u in org.entra if u.user_type == "Guest"]
    assert guests and all("#EXT#@" in g.upn and g.employee_id is None and g.mail for g in guests)
    assert any(u.mail is None and u.employee_id for u in members)
    assert any(u.employee_id is None and u.mail for u in members)
    assert any(u.mail is None and u.employee_id is None for u in members)
    assert org.graph_empty_pages["users"][0] == 0 and org.graph_empty_pages["deviceManagement/managedDevices"]
    running = start_sim(org)
    try:
        with EntraClient(running.settings()) as entra, IntuneClient(running.settings()) as intune:
            first = entra.fetch_page()
            assert first.items == [] and first.next_cursor is not None  # the tenant opens with an empty page
            assert [p.key for p in entra.list_all()] == [u.id for u in members]
            assert [d.key for d in intune.list_all()] == [d.id for d in org.intune]
            no_mail = next(u for u in members if u.mail is None)
            found = entra.find_person(no_mail.upn)
            assert found is not None and found.key == no_mail.id and found.email is None
    finally:
        running.stop()
