"""Lansweeper's published GraphQL contract judges Nexus: every document the client sends is validated by
graphql-core against the vendor-named schema (``nexus/sim/lansweeper_schema.graphql``, transcribed from Lansweeper's
generated types and its own MCP server's queries), its variables are coerced against the vendor's input types, its
filters use only the paths Lansweeper documents as filterable, and ``total`` travels only with ``page: FIRST``
(developer.lansweeper.com/docs/platform-api/guides/restrictions). The simulator answers a document the vendor would
refuse the way the vendor does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLSchema, OperationDefinitionNode, build_schema, parse, validate
from graphql.execution.values import get_variable_values

import clients.lansweeper as lansweeper_module
import nexus.sim
from clients.lansweeper import LansweeperClient
from nexus.errors import AuthError, BadRequestError
from nexus.settings import Settings
from nexus.sim.lansweeper import GRAPHQL_PATH, LansweeperSim
from nexus.testing.sims import SimHarness
from tests._org_factory_graph import make_org

URL_PATH = "/lansweeper" + GRAPHQL_PATH
#: The vendor-named schema: read from the file itself (the simulator loads the same file).
VENDOR_SCHEMA = Path(nexus.sim.__file__).parent / "lansweeper_schema.graphql"

#: The filter paths Lansweeper documents (developer.lansweeper.com/docs/platform-api/guides/restrictions/):
#: "The only available path values for filters are ...". ``assetBasicInfo.userDomain`` is not among them.
DOCUMENTED_FILTER_PATHS = frozenset({
    "key", "installKey", "assetBasicInfo.description", "assetBasicInfo.domain", "assetBasicInfo.firstSeen",
    "assetBasicInfo.ipAddress", "assetBasicInfo.lastSeen", "assetBasicInfo.mac", "assetBasicInfo.type",
    "assetBasicInfo.userName", "assetCustom.dnsName", "assetCustom.manufacturer", "assetCustom.model",
    "assetCustom.purchaseDate", "assetCustom.serialNumber", "assetCustom.stateName", "assetCustom.warrantyDate",
})
MAX_FIELDS = 30  # "A maximum of 30 element paths can be requested at the same time."


@pytest.fixture(scope="module")
def vendor_schema() -> GraphQLSchema:
    return build_schema(VENDOR_SCHEMA.read_text(encoding="utf-8"))


def _vendor_errors(schema: GraphQLSchema, body: dict[str, Any]) -> list[str]:
    """What a server holding the vendor's schema would refuse in ``body``: validation, then variable coercion."""
    document = parse(body["query"])
    errors = [e.message for e in validate(schema, document)]
    if errors:
        return errors
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1
    coerced = get_variable_values(schema, operations[0].variable_definitions or (), body.get("variables") or {})
    return [e.message for e in coerced] if isinstance(coerced, list) else []


def _offline_settings() -> Settings:
    return Settings(_env_file=None, LANSWEEPER_GRAPHQL_URL="http://127.0.0.1:9/lansweeper/api/v2/graphql",
                    LANSWEEPER_TOKEN="t", LANSWEEPER_SITE_ID="site-1")


class Recorder:
    """A transport that records every body and answers like the API: two pages, then empty lookups."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if "assetResources" not in body["query"]:
            return httpx.Response(200, json={"data": {"site": {"id": "s", "name": "n"}}})
        cursor = (body["variables"].get("pagination") or {}).get("cursor")
        item = {"key": "K1", "assetBasicInfo": {"userName": "sam", "userDomain": "CORP"},
                "assetCustom": {"serialNumber": "SN1"}}
        resources: dict[str, Any] = {"items": [item], "pagination": {
            "limit": 1, "current": "c0", "next": None if cursor or body["variables"].get("filters") else "c1",
            "page": "NEXT" if cursor else "FIRST"}}
        if "total" in body["query"]:
            resources["total"] = 2
        return httpx.Response(200, json={"data": {"site": {"assetResources": resources}}})


@pytest.fixture
def recorded() -> Iterator[Recorder]:
    recorder = Recorder()
    with LansweeperClient(_offline_settings(), transport=httpx.MockTransport(recorder)) as client:
        first = client.fetch_page(page_size=1)
        assert first.next_cursor == "c1"
        client.fetch_page(first.next_cursor, page_size=1)
        client.find_device("SN1")
        client.assets_for_user("CORP\\sam")
        client.assets_for_user("sam")
        client.health()
    yield recorder


def test_every_document_nexus_sends_is_valid_against_the_vendor_schema(vendor_schema: GraphQLSchema,
                                                                       recorded: Recorder) -> None:
    assert len(recorded.bodies) == 6
    for body in recorded.bodies:
        assert _vendor_errors(vendor_schema, body) == [], body["query"]
    sent = {body["query"] for body in recorded.bodies}
    constants = {value for name, value in vars(lansweeper_module).items()
                 if name.endswith("_QUERY") and not name.startswith("_") and isinstance(value, str)}
    assert constants <= sent, "a query constant the client defines was never exercised here"


def test_filters_use_only_documented_paths_and_total_only_on_the_first_page(recorded: Recorder) -> None:
    for body in recorded.bodies:
        variables = body["variables"]
        filters = variables.get("filters") or {}
        paths = [c["path"] for c in filters.get("conditions") or ()]
        paths += [c["path"] for g in filters.get("groups") or () for c in g["conditions"]]
        assert set(paths) <= DOCUMENTED_FILTER_PATHS, paths
        assert len(variables.get("fields") or ()) <= MAX_FIELDS
        page = (variables.get("pagination") or {}).get("page", "FIRST")
        if page != "FIRST":
            assert "total" not in body["query"], "total is only allowed with page FIRST"


def test_the_old_spelling_is_refused_by_the_vendor_schema(vendor_schema: GraphQLSchema) -> None:
    old = {"query": "query Q($siteId: ID!, $filters: AssetsFilterGroupInput) { site(id: $siteId) { "
                    "assetResources(fields: [\"key\"], filters: $filters) { items } } }",
           "variables": {"siteId": "s"}}
    assert any("Unknown type 'AssetsFilterGroupInput'" in e for e in _vendor_errors(vendor_schema, old))


# -- the simulator holds every request to the same schema --------------------------------------------------------
class Sim(SimHarness):
    def post(self, body: Any) -> httpx.Response:
        headers = {"Authorization": f"Token {self.ctx.creds.lansweeper_token}"}
        return self.http.post(f"{self.url}{URL_PATH}", json=body, headers=headers)


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    running = Sim.start(lambda ctx: LansweeperSim(ctx), make_org(), seed=3)
    yield running
    running.stop()


VENDOR_STYLE = """
query GetAssetsResources($siteId: ID!, $fields: [String!]!, $assetPagination: AssetsPaginationInputValidated,
                         $filters: AssetsFilterGroupedInput) {
  site(id: $siteId) {
    assetResources(fields: $fields, assetPagination: $assetPagination, filters: $filters) {
      items
      pagination { limit current next page }
      total
    }
  }
}
"""


def test_the_simulator_serves_the_vendors_names(sim: Sim) -> None:
    body = sim.post({"query": VENDOR_STYLE, "variables": {
        "siteId": sim.ctx.creds.lansweeper_site_id, "fields": ["key", "assetCustom.serialNumber"],
        "assetPagination": {"limit": 2, "page": "FIRST"},
        "filters": {"conjunction": "OR", "groups": [
            {"conditions": [{"operator": "EQUAL", "path": "assetCustom.serialNumber", "value": "SN-0002"}]}]}}})
    assert body.status_code == 200
    answer = body.json()
    assert "errors" not in answer, answer
    resources = answer["data"]["site"]["assetResources"]
    assert resources["total"] == 1 and [i["key"] for i in resources["items"]] == ["KEY0001"]


def test_the_simulator_rejects_a_type_that_does_not_exist_like_the_vendor(sim: Sim) -> None:
    old = VENDOR_STYLE.replace("AssetsFilterGroupedInput", "AssetsFilterGroupInput")
    response = sim.post({"query": old, "variables": {"siteId": sim.ctx.creds.lansweeper_site_id,
                                                     "fields": ["key"]}})
    assert response.status_code == 200
    answer = response.json()
    assert "data" not in answer  # a document that fails validation is never executed
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "Unknown type 'AssetsFilterGroupInput'" in error["message"]


@pytest.mark.parametrize(("pagination", "fields", "filters", "needle"), [
    ({"limit": 2, "page": "NEXT", "cursor": "x"}, ["key"], None, "total"),
    ({"limit": 501, "page": "FIRST"}, ["key"], None, "limit"),
    ({"limit": 5, "page": "FIRST"}, ["key"],
     {"conditions": [{"operator": "EQUAL", "path": "assetBasicInfo.userDomain", "value": "CORP"}]},
     "assetBasicInfo.userDomain"),
    ({"limit": 5, "page": "FIRST"}, [f"f{i}" for i in range(31)], None, "30"),
])
def test_the_simulator_enforces_the_documented_restrictions(sim: Sim, pagination: dict[str, Any],
                                                            fields: list[str], filters: Any, needle: str) -> None:
    response = sim.post({"query": VENDOR_STYLE, "variables": {
        "siteId": sim.ctx.creds.lansweeper_site_id, "fields": fields, "assetPagination": pagination,
        "filters": filters}})
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and needle in error["message"], error


def test_pagination_per_the_vendor_contract(sim: Sim) -> None:
    """FIRST with ``total``, then NEXT with ``pagination.next`` (an ID) and no ``total``, until ``next`` is null."""
    with LansweeperClient(sim.settings()) as client:
        first = client.fetch_page(page_size=3)
        assert first.total == 7 and len(first.items) == 3 and first.next_cursor
        keys = [d.key for d in first.items]
        cursor: str | None = first.next_cursor
        while cursor:
            page = client.fetch_page(cursor, page_size=3)
            assert page.total is None  # the vendor refuses total on NEXT pages
            keys += [d.key for d in page.items]
            cursor = page.next_cursor
    assert keys == [a.key for a in sim.ctx.org.lansweeper]


def test_user_lookup_matches_the_domain_itself(sim: Sim) -> None:
    """``assetBasicInfo.userDomain`` is not filterable: the client filters on the name and checks the domain."""
    with LansweeperClient(sim.settings()) as client:
        assert [d.key for d in client.assets_for_user("CORP\\cobrien")] == ["KEY0001", "KEY0002"]
        assert [d.key for d in client.assets_for_user("corp\\COBRIEN")] == ["KEY0001", "KEY0002"]
        assert client.assets_for_user("OTHER\\cobrien") == []


def test_errors_in_any_status_are_classified_by_their_code() -> None:
    """The vendor does not publish which HTTP status carries which GraphQL error: the client reads the code."""
    answers = iter([
        httpx.Response(400, json={"errors": [{"message": "Unknown type", "extensions": {
            "code": "GRAPHQL_VALIDATION_FAILED"}}]}),
        httpx.Response(200, json={"errors": [{"message": "no", "extensions": {"code": "UNAUTHENTICATED"}}]}),
        httpx.Response(403, json={"errors": [{"message": "Forbidden", "extensions": {"code": "FORBIDDEN"}}]}),
    ])
    with LansweeperClient(_offline_settings(), transport=httpx.MockTransport(lambda _r: next(answers))) as client:
        with pytest.raises(BadRequestError, match=r"GRAPHQL_VALIDATION_FAILED.*Unknown type"):
            client.health()
        with pytest.raises(AuthError, match="UNAUTHENTICATED"):
            client.health()
        with pytest.raises(AuthError, match="FORBIDDEN"):
            client.health()
