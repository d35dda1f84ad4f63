"""Microsoft's own Graph SDK (``msgraph-sdk``: kiota request builders, ``PageIterator``, ``ODataError``) judges the
Graph simulator: a client nobody here wrote lists users with ``$select`` across pages, reads a manager, lists
managed devices, and gets Graph's errors as its typed ``ODataError``. The property names the simulator serves are
checked against the SDK's generated ``User`` and ``ManagedDevice`` models (generated from Graph's v1.0 metadata).

The SDK is pointed at the simulator by its own seams: a request adapter whose ``base_url`` is the simulator's
``/graph/v1.0`` and kiota's Azure authentication provider (loopback allowed, as kiota allows) over an azure-core
``TokenCredential`` that runs the client-credentials grant against the simulator's token endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.device_management.managed_devices.managed_devices_request_builder import (
    ManagedDevicesRequestBuilder,
)
from msgraph.generated.models.managed_device import ManagedDevice
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.sign_in_activity import SignInActivity
from msgraph.generated.models.user import User
from msgraph.generated.models.user_collection_response import UserCollectionResponse
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core.tasks.page_iterator import PageIterator

from nexus.sim.graph import EXPAND_PAGE_CAP, SIGN_IN_PAGE_CAP, graph_sims
from nexus.sim.graph_data import DEVICE_PROPS, USER_PROPS
from nexus.sim.org_model import Org
from nexus.sim.orggen import generate_org
from nexus.testing.clock import FakeClock
from nexus.testing.sims import SimHarness
from tests._org_factory_graph import make_bulk_org

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
T = TypeVar("T")
#: the SDK's generated request builders warn about their own deprecated configuration classes on import
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")


class SimCredential:
    """An azure-core ``TokenCredential``: the client-credentials grant against the simulator's token endpoint."""

    def __init__(self, token_url: str, client_id: str, client_secret: str) -> None:
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.requests = 0

    def get_token(self, *scopes: str, **_kwargs: Any) -> AccessToken:
        self.requests += 1
        response = httpx.post(self.token_url, data={
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_secret": self.client_secret, "scope": " ".join(scopes)})
        response.raise_for_status()
        body = response.json()
        return AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))


def sdk_client(sim: SimHarness) -> tuple[GraphServiceClient, SimCredential]:
    creds = sim.ctx.creds
    credential = SimCredential(f"{sim.url}/azure/{creds.azure_tenant_id}/oauth2/v2.0/token",
                               creds.azure_client_id, creds.azure_client_secret)
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"])
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{sim.url}/graph/v1.0"
    return GraphServiceClient(request_adapter=adapter), credential


def run(make: Callable[[GraphServiceClient], Awaitable[T]], sim: SimHarness) -> T:
    """One SDK conversation on a fresh event loop (the SDK's httpx client belongs to the loop)."""
    async def main() -> T:
        client, _ = sdk_client(sim)
        return await make(client)

    return asyncio.run(main())


def start(org: Org) -> SimHarness:
    return SimHarness.start(graph_sims, org, seed=5, clock=FakeClock(1000.0))


@pytest.fixture(scope="module")
def org() -> Org:
    """A generated tenant (guests, members without mail or employeeId) WITHOUT its empty pages: the SDK's
    PageIterator ends a listing at the first empty page even when it has a nextLink (msgraph_core's
    ``PageIterator.enumerate`` returns False for an empty page), so the empty pages are checked on their own below."""
    org = generate_org(40, seed=21)
    org.graph_empty_pages = {}
    return org


@pytest.fixture(scope="module")
def sim(org: Org) -> Iterator[SimHarness]:
    running = start(org)
    yield running
    running.stop()


def users_config(**params: Any) -> RequestConfiguration[UsersRequestBuilder.UsersRequestBuilderGetQueryParameters]:
    return RequestConfiguration(query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**params))


async def iterate(client: GraphServiceClient, first: Any) -> tuple[list[Any], int]:
    """Every item PageIterator yields from ``first`` on, and how many pages it read."""
    items: list[Any] = []
    pages = {"n": 1}
    iterator = PageIterator(first, client.request_adapter)
    original = iterator.next

    async def counted() -> Any:
        page = await original()
        pages["n"] += page is not None
        return page

    iterator.next = counted  # type: ignore[method-assign,unused-ignore]

    def keep(item: Any) -> bool:
        items.append(item)
        return True

    await iterator.iterate(keep)
    return items, pages["n"]


# -- the contract: property names and types are Graph v1.0's ------------------------------------------------------
def test_every_served_property_is_a_property_of_the_sdk_models() -> None:
    assert set(USER_PROPS) <= set(User().get_field_deserializers())
    assert set(DEVICE_PROPS) <= set(ManagedDevice().get_field_deserializers())


# -- users -----------------------------------------------------------------------------------------------------------
def test_the_sdk_lists_users_with_select_across_pages(sim: SimHarness, org: Org) -> None:
    async def listing(client: GraphServiceClient) -> tuple[list[Any], int]:
        first = await client.users.get(users_config(select=["id", "displayName", "mail", "employeeId",
                                                            "accountEnabled", "department", "userPrincipalName"],
                                                    top=7))
        assert isinstance(first, UserCollectionResponse) and first.odata_next_link
        return await iterate(client, first)

    users, pages = run(listing, sim)
    assert pages == -(-len(org.entra) // 7) and pages > 3
    assert all(isinstance(u, User) for u in users)
    assert [(u.id, u.display_name, u.mail, u.employee_id, u.account_enabled, u.department,
             u.user_principal_name) for u in users] == [
        (e.id, e.display_name, e.mail, e.employee_id, e.account_enabled, e.department, e.upn) for e in org.entra]
    assert all(u.job_title is None for u in users)  # not selected: not sent


def test_the_sdk_reads_a_users_manager(sim: SimHarness, org: Org) -> None:
    by_id = {u.id: u for u in org.entra}
    report = next(u for u in org.entra if u.manager_id in by_id)
    boss = by_id[report.manager_id or ""]

    async def manager(client: GraphServiceClient) -> Any:
        return await client.users.by_user_id(report.upn).manager.get()

    got = run(manager, sim)
    assert isinstance(got, User)  # Graph's "@odata.type": "#microsoft.graph.user" picks the derived type
    assert (got.id, got.mail, got.user_principal_name) == (boss.id, boss.mail, boss.upn)


def test_the_sdk_sees_the_expand_page_cap() -> None:
    running = start(make_bulk_org(users=230, devices=0))
    try:
        async def listing(client: GraphServiceClient) -> tuple[int, list[Any], int]:
            first = await client.users.get(users_config(select=["id"], expand=["manager($select=id)"], top=999))
            assert first is not None and first.value is not None
            items, pages = await iterate(client, first)
            return len(first.value), items, pages

        size, users, pages = run(listing, running)
        assert size == EXPAND_PAGE_CAP and pages == 3 and len(users) == 230
        assert all(u.manager is not None for u in users[1:])
    finally:
        running.stop()


def test_the_sdk_reads_sign_in_activity_and_sees_its_page_cap() -> None:
    org = make_bulk_org(users=250, devices=0)
    base = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    for n, user in enumerate(org.entra):
        user.last_sign_in = base - timedelta(days=n) if n % 5 else None
        user.last_non_interactive_sign_in = base + timedelta(hours=n) if n % 3 == 0 else None
    running = start(org)
    try:
        async def listing(client: GraphServiceClient) -> tuple[int, list[Any], int]:
            first = await client.users.get(users_config(select=["id", "signInActivity"], top=999))
            assert first is not None and first.value is not None
            items, pages = await iterate(client, first)
            return len(first.value), items, pages

        size, users, pages = run(listing, running)
        assert size == SIGN_IN_PAGE_CAP and pages == 3 and len(users) == 250
        for got, want in zip(users, org.entra, strict=True):
            activity = got.sign_in_activity
            if want.last_sign_in is None and want.last_non_interactive_sign_in is None:
                assert activity is None
                continue
            assert isinstance(activity, SignInActivity)
            interactive = activity.last_sign_in_date_time
            assert interactive == (want.last_sign_in or datetime(1, 1, 1, tzinfo=UTC))
            other = activity.last_non_interactive_sign_in_date_time
            assert other == (want.last_non_interactive_sign_in or datetime(1, 1, 1, tzinfo=UTC))
    finally:
        running.stop()


# -- managed devices -------------------------------------------------------------------------------------------------
def test_the_sdk_lists_managed_devices(sim: SimHarness, org: Org) -> None:
    async def listing(client: GraphServiceClient) -> tuple[list[Any], int]:
        config = RequestConfiguration(query_parameters=(
            ManagedDevicesRequestBuilder.ManagedDevicesRequestBuilderGetQueryParameters(
                select=["id", "serialNumber", "userPrincipalName", "complianceState", "lastSyncDateTime",
                        "managementState"], top=25)))
        first = await client.device_management.managed_devices.get(config)
        assert first is not None and first.odata_count == len(org.intune)
        return await iterate(client, first)

    devices, pages = run(listing, sim)
    assert pages == -(-len(org.intune) // 25) and pages > 1
    assert all(isinstance(d, ManagedDevice) for d in devices)
    assert [(d.id, d.serial_number, d.user_principal_name, d.compliance_state.value if d.compliance_state else None,
             d.management_state.value if d.management_state else None, d.last_sync_date_time)
            for d in devices] == [(d.id, d.serial, d.upn, d.compliance_state, d.management_state, d.last_sync.replace(
                microsecond=0)) for d in org.intune]


# -- errors ----------------------------------------------------------------------------------------------------------
def test_graph_errors_are_the_sdks_odata_error(sim: SimHarness) -> None:
    async def missing(client: GraphServiceClient) -> Any:
        return await client.users.by_user_id("nobody@corp.example").get()

    with pytest.raises(ODataError) as caught:
        run(missing, sim)
    err = caught.value
    assert err.response_status_code == 404 and err.error is not None
    assert err.error.code == "Request_ResourceNotFound" and "nobody@corp.example" in (err.error.message or "")
    assert err.error.inner_error is not None and err.error.inner_error.request_id

    async def too_big(client: GraphServiceClient) -> Any:
        return await client.users.get(users_config(top=1000))

    with pytest.raises(ODataError) as bad:
        run(too_big, sim)
    assert bad.value.response_status_code == 400 and bad.value.error is not None
    assert bad.value.error.code == "Request_BadRequest" and "$top" in (bad.value.error.message or "")


def test_the_sdk_deserializes_an_empty_page_that_still_has_a_next_link() -> None:
    tenant = generate_org(40, seed=21)
    assert tenant.graph_empty_pages["users"][0] == 0
    running = start(tenant)
    try:
        async def walk(client: GraphServiceClient) -> tuple[list[int], list[str]]:
            sizes: list[int] = []
            ids: list[str] = []
            page = await client.users.get(users_config(select=["id"], top=10))
            while page is not None:
                assert page.value is not None
                sizes.append(len(page.value))
                ids += [u.id or "" for u in page.value]
                if not page.odata_next_link:
                    break
                page = await client.users.with_url(page.odata_next_link).get()
            return sizes, ids

        sizes, ids = run(walk, running)
        assert sizes[0] == 0 and 0 in sizes[1:-1]  # opens empty, and one more empty page mid-listing
        assert ids == [u.id for u in tenant.entra]
    finally:
        running.stop()
