"""BMC Helix simulator and client over a real socket: JWT login, entries, qualifications, paging, errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from clients.helix import SERIALS_PER_QUERY, HelixClient, qual_eq
from nexus.errors import AuthError, BadRequestError, MalformedResponseError, ThrottledError, TransientError
from nexus.models import DeviceRecord, ReturnTicket
from nexus.sim.helix import ASSET_FORM, TICKET_FORM, HelixSim
from nexus.sim.helix_qualification import parse_qualification
from nexus.sim.org_model import HelixAsset, HelixReturnTicket, Org
from nexus.testing.sims import SimHarness
from tests._org_factory_wd import HOSTILE, make_org, system_fixtures

ODD_SERIAL = 'Q"7\\X\'Z'  # a serial with a double quote, a backslash and a single quote
ODD_OWNER = "o'brien@corp.example"
ASSETS_PATH = "/api/arsys/v1/entry/AST:ComputerSystem"
TICKETS_PATH = "/api/arsys/v1/entry/HPD:Help Desk"


@pytest.fixture(scope="module")
def org() -> Org:
    base = make_org(300, seed=21)
    odd = HelixAsset(reconciliation_id="RE00ODD0000000000000000001", name="CORP-ODD", serial=ODD_SERIAL,
                     owner_email=ODD_OWNER, status="In Inventory", model="MacBook Pro 14", manufacturer="Apple")
    odd_ticket = HelixReturnTicket(incident_number="INC000009999999", serial=ODD_SERIAL,
                                   customer_email=ODD_OWNER, tracking_number="999999999999", status="Assigned",
                                   submit_date=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    return replace(base, helix_assets=[*base.helix_assets, odd], helix_tickets=[*base.helix_tickets, odd_ticket])


harness, sim, client = system_fixtures(HelixSim, HelixClient)


def asset_record(a: HelixAsset) -> DeviceRecord:
    return DeviceRecord(system="helix", key=a.reconciliation_id, serial=a.serial, name=a.name, owner=a.owner_email,
                        status=a.status, model=a.model, manufacturer=a.manufacturer)


def ticket_record(t: HelixReturnTicket) -> ReturnTicket:
    return ReturnTicket(ticket_id=t.incident_number, serial=t.serial, customer_email=t.customer_email,
                        tracking_number=t.tracking_number, status=t.status,
                        opened_at=t.submit_date.astimezone(UTC).replace(microsecond=0).isoformat())


# -- listing ---------------------------------------------------------------------------------------------------------

def test_every_asset_is_listed_over_pages_and_equals_the_org(sim: SimHarness, client: HelixClient,
                                                             org: Org) -> None:
    pages = []
    cursor = None
    while True:
        page = client.fetch_page(cursor, page_size=50)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert cursor.startswith(sim.base_url + ASSETS_PATH.replace(" ", "%20"))
    assert len(pages) == -(-len(org.helix_assets) // 50) >= 3
    assert [r for p in pages for r in p.items] == [asset_record(a) for a in org.helix_assets]
    assert sim.counts()[ASSETS_PATH] == len(pages)
    assert sim.counts()["/api/jwt/login"] == 1
    assert list(client.list_all()) == [asset_record(a) for a in org.helix_assets]


def test_every_ticket_is_listed_over_pages(sim: SimHarness, client: HelixClient, org: Org) -> None:
    pages = []
    cursor = None
    while True:
        page = client.fetch_ticket_page(cursor, page_size=10)
        pages.append(page)
        if (cursor := page.next_cursor) is None:
            break
    assert len(pages) >= 3
    assert [t for p in pages for t in p.items] == [ticket_record(t) for t in org.helix_tickets]
    assert list(client.list_tickets()) == [ticket_record(t) for t in org.helix_tickets]


def test_offset_cursor_and_wire_shape(sim: SimHarness, client: HelixClient, org: Org) -> None:
    page = client.fetch_page("5", page_size=3)
    assert page.items == [asset_record(a) for a in org.helix_assets[5:8]]
    body = client.send("GET", ASSETS_PATH, params={"limit": 2, "fields": "values(Serial Number,Name)"}).json()
    assert body["entries"][0]["values"] == {"Serial Number": org.helix_assets[0].serial,
                                            "Name": org.helix_assets[0].name}
    self_href = body["entries"][0]["_links"]["self"][0]["href"]
    assert self_href.endswith(f"/AST:ComputerSystem/{org.helix_assets[0].reconciliation_id}")
    assert "offset=2" in body["_links"]["next"][0]["href"]
    ticket = client.send("GET", TICKETS_PATH, params={"limit": 1}).json()["entries"][0]["values"]
    assert ticket["Submit Date"].endswith("+0000") and ".000" in ticket["Submit Date"]
    assert set(ticket) >= {"Incident Number", "Description", "Status", "Internet E-mail", "Tracking Number"}
    last = client.send("GET", ASSETS_PATH, params={"offset": len(org.helix_assets) - 1}).json()
    assert len(last["entries"]) == 1 and "next" not in last["_links"]


# -- lookups ---------------------------------------------------------------------------------------------------------

def test_find_asset_and_owner_lookups(sim: SimHarness, client: HelixClient, org: Org) -> None:
    a = org.helix_assets[7]
    assert client.find_device(a.serial.lower()) == asset_record(a)
    assert client.find_device("NO-SUCH-SERIAL") is None
    owner = a.owner_email
    assert owner is not None
    mine = [asset_record(x) for x in org.helix_assets if x.owner_email and x.owner_email.lower() == owner.lower()]
    assert client.assets_for_owner(owner.upper()) == mine
    assert client.assets_for_owner("nobody@corp.example") == []
    assert client.find_device(ODD_SERIAL) == asset_record(org.helix_assets[-1])
    assert client.assets_for_owner(ODD_OWNER) == [asset_record(org.helix_assets[-1])]


def test_get_asset_by_entry_id_and_404_is_none(sim: SimHarness, client: HelixClient, org: Org) -> None:
    a = org.helix_assets[2]
    assert client.get_asset(a.reconciliation_id) == asset_record(a)
    assert client.get_asset("RE-NOPE") is None
    raw = client.http.get(f"{ASSETS_PATH}/RE-NOPE", headers={"Authorization": f"AR-JWT {client.tokens.get()}"})
    assert raw.status_code == 404 and raw.json()[0]["messageNumber"] == 302


def test_tickets_for_serial_and_batched_serials(sim: SimHarness, client: HelixClient, org: Org) -> None:
    t = org.helix_tickets[0]
    assert client.tickets_for_serial(t.serial) == [ticket_record(x) for x in org.helix_tickets if x.serial == t.serial]
    assert client.tickets_for_serial("NO-SUCH-SERIAL") == []
    serials = [x.serial for x in org.helix_tickets] + ["UNKNOWN-1", ODD_SERIAL, t.serial.lower()]
    sim.reset()
    result = client.tickets_for_serials(serials)
    unique = {s.upper() for s in serials}
    assert sim.counts()[TICKETS_PATH] == -(-len(unique) // SERIALS_PER_QUERY)  # OR-ed, not one request per serial
    assert result["UNKNOWN-1"] == []
    for x in org.helix_tickets:
        assert ticket_record(x) in result[x.serial]
    assert result[t.serial.lower()] == result[t.serial]
    assert client.tickets_for_serials([]) == {}


# -- auth --------------------------------------------------------------------------------------------------------------

def test_login_returns_bare_token_and_logout_kills_it(sim: SimHarness) -> None:
    c = sim.ctx.creds
    login = httpx.post(f"{sim.base_url}/api/jwt/login", data={"username": c.helix_username,
                                                              "password": c.helix_password})
    assert login.status_code == 200 and login.headers["content-type"].startswith("text/plain")
    token = login.text
    headers = {"Authorization": f"AR-JWT {token}"}
    assert httpx.get(f"{sim.base_url}{ASSETS_PATH}", params={"limit": 1}, headers=headers).status_code == 200
    bearer = httpx.get(f"{sim.base_url}{ASSETS_PATH}", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401
    assert httpx.post(f"{sim.base_url}/api/jwt/logout", headers=headers).status_code == 204
    after = httpx.get(f"{sim.base_url}{ASSETS_PATH}", headers=headers)
    assert after.status_code == 401 and after.json()[0]["messageNumber"] == 623


def test_client_close_logs_out(sim: SimHarness) -> None:
    c = HelixClient(sim.settings(), clock=sim.clock)
    c.health()
    c.close()
    assert sim.counts()["/api/jwt/logout"] == 1


def test_bad_password_is_auth_error_without_the_secret(sim: SimHarness) -> None:
    c = HelixClient(sim.settings(helix_password="wrong-password-xyz"), clock=sim.clock)
    with pytest.raises(AuthError) as info:
        c.find_device("X")
    assert "623" in info.value.message and "wrong-password-xyz" not in info.value.message
    c.close()


def test_token_expiry_gets_exactly_one_relogin(sim: SimHarness, client: HelixClient) -> None:
    client.health()
    sim.expire_tokens()
    client.health()
    counts = sim.counts()
    assert counts["/api/jwt/login"] == 2 and counts[ASSETS_PATH] == 3


def test_expired_token_fault_is_auth_error(sim: SimHarness, client: HelixClient) -> None:
    sim.fault("expired_token")
    with pytest.raises(AuthError) as info:
        client.find_device("X")
    assert "ARERR 623" in info.value.message
    assert sim.counts()["/api/jwt/login"] == 2


# -- faults ------------------------------------------------------------------------------------------------------------

def test_throttle_down_and_bad_qualification(sim: SimHarness, client: HelixClient) -> None:
    client.health()
    sim.fault("throttle", retry_after=3)
    with pytest.raises(ThrottledError) as throttled:
        client.find_device("X")
    assert throttled.value.retry_after == 3.0
    sim.fault("down")
    with pytest.raises(TransientError) as down:
        client.fetch_page()
    assert down.value.status == 503 and "ARERR 90" in down.value.message
    sim.reset()
    for q in ("'Serial Number' = ", "Serial = \"x\"", "('Name' = \"a\"", "'No Such Field' = \"x\""):
        with pytest.raises(BadRequestError) as bad:
            client.send("GET", ASSETS_PATH, params={"q": q})
        assert bad.value.status == 400 and ("ARERR 1587" in bad.value.message or "ARERR 314" in bad.value.message)
    with pytest.raises(BadRequestError):
        client.send("GET", ASSETS_PATH, params={"fields": "values(Password)"})
    raw = client.http.get("/api/arsys/v1/entry/NO:Form", headers={"Authorization": f"AR-JWT {client.tokens.get()}"})
    assert raw.status_code == 404 and raw.json()[0]["messageNumber"] == 303


def test_malformed_bodies(sim: SimHarness, client: HelixClient) -> None:
    client.health()
    sim.fault("malformed")
    with pytest.raises(MalformedResponseError):
        client.fetch_page()
    fresh = HelixClient(sim.settings(), clock=sim.clock)
    with pytest.raises(MalformedResponseError):  # the login answers an HTML page: not a token
        fresh.health()
    fresh.close()


def test_truncated_listing_next_link_fails(sim: SimHarness, client: HelixClient) -> None:
    sim.fault("truncated")
    first = client.fetch_page(None, page_size=50)
    assert len(first.items) == 50 and first.next_cursor
    with pytest.raises(TransientError) as info:
        client.fetch_page(first.next_cursor)
    assert info.value.status == 500 and "ARERR 552" in info.value.message


def test_next_link_is_rerooted_on_the_configured_server(sim: SimHarness, client: HelixClient, org: Org) -> None:
    # Helix behind a load balancer writes links with its internal host name: follow the path on our root only.
    first = client.fetch_page(None, page_size=5)
    assert first.next_cursor is not None
    internal = first.next_cursor.replace(sim.url, "https://helix-internal.corp:8443")
    assert client.fetch_page(internal).items == [asset_record(a) for a in org.helix_assets[5:10]]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "127.0.0.1"  # our token never leaves the configured server
        if request.url.path.endswith("/login"):
            return httpx.Response(200, text="tok.en.value")
        return httpx.Response(200, json={"entries": [], "_links": {"next": [{"href": "https://evil.example/x"}]}})

    c = HelixClient(sim.settings(), transport=httpx.MockTransport(handler))
    with pytest.raises(MalformedResponseError):
        c.fetch_page()
    with pytest.raises(MalformedResponseError):
        c.fetch_page("https://evil.example/api/arsys/v1/entry/AST:ComputerSystem")
    c.close()


# -- injection ---------------------------------------------------------------------------------------------------------

def test_hostile_values_reach_helix_only_as_literals(sim: SimHarness, client: HelixClient) -> None:
    for value in HOSTILE:
        assert client.find_device(value) is None
        assert client.assets_for_owner(value) == []
        assert client.tickets_for_serial(value) == []
    seen = [p["q"][0] for p in sim.recent_params(ASSETS_PATH) + sim.recent_params(TICKETS_PATH)]
    assert len(seen) == 3 * len(HOSTILE)
    for value in HOSTILE:
        literal = '"' + value.replace('"', '""') + '"'
        assert f"'Serial Number' = {literal}" in seen and f"'Owner Email' = {literal}" in seen
    for q in seen:  # each parses to ONE comparison: the value never became syntax
        node = parse_qualification(q)
        assert type(node).__name__ == "Compare"


def test_qual_eq_quotes() -> None:
    assert qual_eq("Serial Number", 'a"b') == "'Serial Number' = \"a\"\"b\""


def test_forms_are_the_documented_ones() -> None:
    assert ASSET_FORM == "AST:ComputerSystem" and TICKET_FORM == "HPD:Help Desk"
