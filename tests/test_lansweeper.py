"""Lansweeper Data API (GraphQL): simulator and client over real sockets. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clients.lansweeper import ASSETS_FIRST_QUERY, ASSETS_NEXT_QUERY, LansweeperClient
from nexus.errors import AuthError, BadRequestError, MalformedResponseError, ThrottledError, TransientError
from nexus.models import DeviceRecord
from nexus.sim.faults import Fault
from nexus.sim.lansweeper import GRAPHQL_PATH, LansweeperSim
from nexus.sim.org_model import LansweeperAsset, Org
from nexus.testing.clock import FakeClock
from nexus.testing.sims import SimHarness
from tests._org_factory_graph import CountingList, make_bulk_org, make_org

URL_PATH = "/lansweeper" + GRAPHQL_PATH


class Sim(SimHarness):
    """The Lansweeper simulator, plus its own request helpers (GraphQL posts and the bodies it received)."""

    def post(self, body: Any, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Token {token or self.ctx.creds.lansweeper_token}"}
        return self.http.post(f"{self.url}{URL_PATH}", json=body, headers=headers)

    def count(self, system: str = "lansweeper", path: str = GRAPHQL_PATH) -> int:
        return super().count(system, path)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["query"]) for r in self.recent() if r["query"].startswith("{")]


def start_sim(org: Org, **kwargs: Any) -> Sim:
    return Sim.start(lambda ctx: LansweeperSim(ctx, **kwargs), org, seed=3)


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
def client(sim: Sim) -> Iterator[LansweeperClient]:
    with LansweeperClient(sim.settings()) as c:
        yield c


def expected(asset: LansweeperAsset) -> DeviceRecord:
    seen = asset.last_seen
    return DeviceRecord(
        system="lansweeper", key=asset.key, serial=asset.serial, name=asset.name, owner=asset.user_name,
        last_seen=seen.strftime("%Y-%m-%dT%H:%M:%S.") + f"{seen.microsecond // 1000:03d}Z",
        model=asset.model, manufacturer=asset.manufacturer,
    )


def _all(client: LansweeperClient, size: int) -> list[DeviceRecord]:
    out: list[DeviceRecord] = []
    cursor: str | None = None
    while True:
        page = client.fetch_page(cursor, page_size=size)
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


# -- listing -----------------------------------------------------------------------------------------------------
def test_assets_are_listed_over_several_pages_and_equal_the_org(sim: Sim, client: LansweeperClient) -> None:
    first = client.fetch_page(page_size=2)
    assert first.total == 7 and len(first.items) == 2
    assert _all(client, 2) == [expected(a) for a in sim.ctx.org.lansweeper]
    assert sim.count() == 1 + 4
    assert list(client.list_all()) == [expected(a) for a in sim.ctx.org.lansweeper]
    sent = sim.bodies()
    assert [b["query"] for b in sent[:5]] == [ASSETS_FIRST_QUERY] * 2 + [ASSETS_NEXT_QUERY] * 3  # constants
    assert sent[-1]["query"] == ASSETS_FIRST_QUERY
    assert sent[-1]["variables"]["pagination"] == {"limit": 500, "page": "FIRST", "cursor": None}


def test_every_generated_asset_is_listed() -> None:
    from nexus.sim.orggen import generate_org

    org = generate_org(120, seed=5)
    running = start_sim(org)
    try:
        with LansweeperClient(running.settings()) as client:
            assert _all(client, 37) == [expected(a) for a in org.lansweeper]
            some = org.lansweeper[len(org.lansweeper) // 2]
            assert client.find_device(some.serial) == expected(some)
    finally:
        running.stop()


def test_prev_last_and_items_shaped_by_fields(sim: Sim) -> None:
    query = """query($site: ID!, $p: AssetsPaginationInputValidated) {
      site(id: $site) { assetResources(assetPagination: $p, fields: ["assetBasicInfo.userName", "assetCustom.model"])
        { pagination { limit current next page } items } } }"""
    site = sim.ctx.creds.lansweeper_site_id

    def run(pagination: dict[str, Any]) -> dict[str, Any]:
        body = sim.post({"query": query, "variables": {"site": site, "p": pagination}}).json()
        assert "errors" not in body, body
        return dict(body["data"]["site"]["assetResources"])

    last = run({"limit": 3, "page": "LAST"})
    assert [i["key"] for i in last["items"]] == ["KEY0006"] and last["pagination"]["next"] is None
    assert last["items"][0] == {"_id": "KEY0006", "key": "KEY0006", "assetBasicInfo": {"userName": "cobrien"},
                                "assetCustom": {"model": "Latitude 7440"}}
    prev = run({"limit": 3, "page": "PREV", "cursor": last["pagination"]["current"]})
    assert [i["key"] for i in prev["items"]] == ["KEY0003", "KEY0004", "KEY0005"]
    assert prev["pagination"]["next"] == last["pagination"]["current"]


# -- lookups and injection -----------------------------------------------------------------------------------------
def test_find_asset_and_assets_for_user(sim: Sim, client: LansweeperClient) -> None:
    org = sim.ctx.org
    assert client.find_device("SN-0002") == expected(org.lansweeper[1])
    assert client.find_device("sn-0002") == expected(org.lansweeper[1])
    assert client.find_device("SN-9999") is None
    assert client.find_device('SN\'4"})#') == expected(org.lansweeper[3])
    assert client.assets_for_user("CORP\\cobrien") == [expected(org.lansweeper[1]), expected(org.lansweeper[2])]
    assert client.assets_for_user("cobrien") == [expected(org.lansweeper[i]) for i in (1, 2, 5, 6)]
    assert client.assets_for_user("CORP\\nobody") == []


@pytest.mark.parametrize("hostile", ['"}) { items } #', 'x" } } ] ) { site(id: "other") { id } } #',
                                     "SN-0001\" OR \"1\"=\"1", "SN-0001' or '1'='1"])
def test_values_reach_lansweeper_only_as_variables(sim: Sim, client: LansweeperClient, hostile: str) -> None:
    assert client.find_device(hostile) is None
    assert client.assets_for_user(hostile) == []
    sent = sim.bodies()
    assert [b["query"] for b in sent] == [ASSETS_FIRST_QUERY, ASSETS_FIRST_QUERY]
    assert sent[0]["variables"]["filters"] == {"conjunction": "AND", "conditions": [
        {"operator": "EQUAL", "path": "assetCustom.serialNumber", "value": hostile}]}
    assert sent[1]["variables"]["filters"]["conditions"][0]["value"] == hostile


# -- auth ------------------------------------------------------------------------------------------------------------
def test_bad_token_is_auth_error_after_one_retry(sim: Sim) -> None:
    with LansweeperClient(sim.settings(LANSWEEPER_TOKEN="not-the-token")) as bad, pytest.raises(AuthError) as caught:
        bad.fetch_page()
    assert caught.value.status == 401 and "not-the-token" not in str(caught.value)
    assert sim.count() == 2
    raw = sim.post({"query": "{ me { username } }"}, token="nope")
    assert raw.status_code == 401 and raw.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    no_scheme = sim.http.post(f"{sim.url}{URL_PATH}", json={"query": "{ me { username } }"},
                              headers={"Authorization": f"Bearer {sim.ctx.creds.lansweeper_token}"})
    assert no_scheme.status_code == 401


def test_revoked_token_fault(sim: Sim, client: LansweeperClient) -> None:
    sim.ctx.faults.set(Fault(system="lansweeper", mode="expired_token"))
    with pytest.raises(AuthError):
        client.find_device("SN-0001")
    raw = sim.post({"query": "{ me { username } }"})
    assert raw.status_code == 401 and "revoked" in raw.json()["errors"][0]["message"]


def test_unknown_site_is_refused(sim: Sim) -> None:
    with LansweeperClient(sim.settings(LANSWEEPER_SITE_ID="someone-elses-site")) as other, \
            pytest.raises(AuthError) as caught:
        other.health()
    assert "FORBIDDEN" in str(caught.value)


# -- errors ----------------------------------------------------------------------------------------------------------
def test_graphql_errors_are_bad_requests_with_http_200(sim: Sim, client: LansweeperClient) -> None:
    with pytest.raises(BadRequestError):
        client.gql("query { site(id: ", {})
    with pytest.raises(BadRequestError):
        client.gql(ASSETS_FIRST_QUERY, {"siteId": sim.ctx.creds.lansweeper_site_id, "fields": ["key"],
                                  "pagination": {"limit": 501, "page": "FIRST"}})
    with pytest.raises(BadRequestError, match="Invalid cursor"):
        client.fetch_page("bm90LWEtY3Vyc29y")
    raw = sim.post({"query": "{ site(id: \"x\") { nope } }"})
    assert raw.status_code == 200 and raw.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    bad_field = sim.post({"query": ASSETS_FIRST_QUERY, "variables": {
        "siteId": sim.ctx.creds.lansweeper_site_id, "fields": ["assetBasicInfo.password"],
        "pagination": {"limit": 5, "page": "FIRST"}}})
    assert bad_field.status_code == 200 and "Invalid field path" in bad_field.json()["errors"][0]["message"]
    assert sim.post("not an object").status_code == 400


def test_throttle_down_and_malformed(sim: Sim, client: LansweeperClient) -> None:
    sim.ctx.faults.set(Fault(system="lansweeper", mode="throttle", retry_after=12))
    with pytest.raises(ThrottledError) as throttled:
        client.fetch_page()
    assert throttled.value.retry_after == 12.0
    sim.ctx.faults.set(Fault(system="lansweeper", mode="down"))
    with pytest.raises(TransientError) as down:
        client.health()
    assert down.value.status == 503
    sim.ctx.faults.set(Fault(system="lansweeper", mode="malformed"))
    with pytest.raises(MalformedResponseError):
        client.fetch_page()


def test_answers_without_data_are_malformed(sim: Sim) -> None:
    answers = iter([{"foo": 1}, {"data": None}, {"data": {"site": {"assetResources": {"items": "x"}}}}, [1, 2]])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    with LansweeperClient(sim.settings(), transport=httpx.MockTransport(handler)) as mocked:
        for _ in range(4):
            with pytest.raises(MalformedResponseError):
                mocked.fetch_page()


def test_truncated_cursor_fails_transiently_and_recovers(sim: Sim, client: LansweeperClient) -> None:
    sim.ctx.faults.set(Fault(system="lansweeper", mode="truncated"))
    first = client.fetch_page(page_size=3)
    assert first.next_cursor is not None
    with pytest.raises(TransientError, match="INTERNAL_SERVER_ERROR"):
        client.fetch_page(first.next_cursor, page_size=3)
    sim.ctx.faults.clear()
    assert [d.key for d in client.fetch_page(first.next_cursor, page_size=3).items] == ["KEY0003", "KEY0004",
                                                                                         "KEY0005"]


def test_optional_rate_limit_answers_429_with_retry_after() -> None:
    clock = FakeClock(5000.0)
    running = start_sim(make_org(), rate_limit_per_min=3, clock=clock)
    try:
        with LansweeperClient(running.settings()) as client:
            for _ in range(3):
                client.health()
            clock.now += 20
            with pytest.raises(ThrottledError) as caught:
                client.health()
            assert caught.value.retry_after == 40.0
            clock.now += 40
            assert client.health() > 0
    finally:
        running.stop()


def test_a_page_costs_the_page_not_the_fleet() -> None:
    org = make_bulk_org(users=1, devices=20_000)
    assert isinstance(org.lansweeper, CountingList)
    running = start_sim(org)
    try:
        with LansweeperClient(running.settings()) as client:
            client.health()
            org.lansweeper.reads = 0
            page = client.fetch_page(page_size=500)
            for _ in range(4):
                assert page.next_cursor is not None
                page = client.fetch_page(page.next_cursor, page_size=500)
            assert page.items[0].serial == "BULK0002000"
            assert org.lansweeper.reads == 5 * 500
            org.lansweeper.reads = 0
            for n in range(0, 20_000, 1_000):
                assert client.find_device(f"BULK{n:07d}") is not None
                assert len(client.assets_for_user(f"CORP\\u{n}")) == 1
            # each lookup reads its match twice (filter, render) and nothing else
            assert org.lansweeper.reads == 20 * 2 * 2
    finally:
        running.stop()
