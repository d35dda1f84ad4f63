"""FedEx simulator and client over a real socket: token, Track API chunks, in-200 errors, faults, injection."""

from __future__ import annotations

import json
from datetime import UTC

import httpx
import pytest

from clients.fedex import HEALTH_PROBE_NUMBER, MAX_PER_REQUEST, TRACK_PATH, FedexClient
from nexus.errors import AuthError, BadRequestError, MalformedResponseError, ThrottledError, TransientError
from nexus.models import ShipmentRecord
from nexus.sim.fedex import NOT_FOUND_CODE, FedexSim
from nexus.sim.org_model import FedexShipment, Org
from nexus.testing.sims import SimHarness
from tests._org_factory_wd import HOSTILE, TOKEN_LIFETIME_S, make_org, system_fixtures

TOKEN_PATH = "/oauth/token"


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org(300, seed=31)


harness, sim, client = system_fixtures(FedexSim, FedexClient)


def expected(s: FedexShipment) -> ShipmentRecord:
    return ShipmentRecord(
        tracking_number=s.tracking_number, found=True, delivered=s.status_code == "DL", status_code=s.status_code,
        status=s.description,
        delivered_at=s.delivered_at.astimezone(UTC).replace(microsecond=0).isoformat() if s.delivered_at else None,
    )


def raw_track(sim: SimHarness, client: FedexClient, numbers: list[str]) -> httpx.Response:
    payload = {"includeDetailedScans": False,
               "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in numbers]}
    return client.http.post(TRACK_PATH, json=payload, headers={"Authorization": f"Bearer {client.tokens.get()}"})


def test_every_shipment_is_tracked_in_chunks_of_30(sim: SimHarness, client: FedexClient, org: Org) -> None:
    numbers = [s.tracking_number for s in org.fedex]
    assert len(numbers) > 2 * MAX_PER_REQUEST or len(numbers) > MAX_PER_REQUEST
    result = client.track([*numbers, numbers[0], f"  {numbers[1]}  ", ""])  # duplicates, spaces, blanks
    assert result == {s.tracking_number: expected(s) for s in org.fedex}
    assert sim.counts()[TRACK_PATH] == -(-len(numbers) // MAX_PER_REQUEST)
    assert sim.counts()[TOKEN_PATH] == 1
    assert any(r.delivered and r.delivered_at for r in result.values())
    assert client.track([]) == {}


def test_many_numbers_over_three_chunks(sim: SimHarness, client: FedexClient, org: Org) -> None:
    known = [s.tracking_number for s in org.fedex]
    unknown = [f"7{i:011d}" for i in range(70)]
    result = client.track(unknown + known)
    assert sim.counts()[TRACK_PATH] == -(-(len(unknown) + len(known)) // MAX_PER_REQUEST) >= 3
    assert all(result[n] == ShipmentRecord(tracking_number=n, found=False, error=NOT_FOUND_CODE) for n in unknown)
    assert all(result[n].found for n in known)


def test_wire_shape(sim: SimHarness, client: FedexClient, org: Org) -> None:
    delivered = next(s for s in org.fedex if s.delivered_at)
    body = raw_track(sim, client, [delivered.tracking_number, "000000000000"]).json()
    assert body["transactionId"]
    found, missing = body["output"]["completeTrackResults"]
    result = found["trackResults"][0]
    assert result["latestStatusDetail"]["code"] == "DL" and result["latestStatusDetail"]["statusByLocale"]
    types = [d["type"] for d in result["dateAndTimes"]]
    assert types == ["ACTUAL_DELIVERY", "SHIP"]
    assert result["dateAndTimes"][0]["dateTime"].endswith("-06:00")  # local time, as FedEx reports scans
    assert missing["trackResults"][0]["error"]["code"] == NOT_FOUND_CODE
    token = httpx.post(f"{sim.base_url}{TOKEN_PATH}", data={
        "grant_type": "client_credentials", "client_id": sim.ctx.creds.fedex_client_id,
        "client_secret": sim.ctx.creds.fedex_client_secret}).json()
    assert token["token_type"] == "bearer" and token["scope"] == "CXS" and token["expires_in"] > 0


def test_more_than_30_numbers_is_a_bad_request(sim: SimHarness, client: FedexClient) -> None:
    response = raw_track(sim, client, [f"1{i:011d}" for i in range(31)])
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "TRACKING.TRACKINGNUMBER.LIMIT.EXCEEDED"
    with pytest.raises(BadRequestError) as info:
        client.send("POST", TRACK_PATH, json_body={"trackingInfo": [
            {"trackingNumberInfo": {"trackingNumber": str(i)}} for i in range(31)]})
    assert info.value.status == 400 and "LIMIT.EXCEEDED" in info.value.message
    with pytest.raises(BadRequestError):
        client.send("POST", TRACK_PATH, json_body={"trackingInfo": []})
    with pytest.raises(BadRequestError):
        client.send("POST", TRACK_PATH, json_body=["not", "an", "object"])


# -- tokens ----------------------------------------------------------------------------------------------------------

def test_token_refreshed_before_expiry(sim: SimHarness, client: FedexClient) -> None:
    client.health()
    client.health()
    assert sim.counts()[TOKEN_PATH] == 1
    sim.clock.advance(TOKEN_LIFETIME_S - 10)
    client.health()
    assert sim.counts()[TOKEN_PATH] == 2 and sim.counts()[TRACK_PATH] == 3


def test_server_side_expiry_gets_exactly_one_reauthentication(sim: SimHarness, client: FedexClient) -> None:
    client.health()
    sim.expire_tokens()
    assert client.track([HEALTH_PROBE_NUMBER])[HEALTH_PROBE_NUMBER].found is False
    assert sim.counts()[TOKEN_PATH] == 2 and sim.counts()[TRACK_PATH] == 3


def test_expired_token_fault_is_auth_error(sim: SimHarness, client: FedexClient) -> None:
    sim.fault("expired_token")
    with pytest.raises(AuthError) as info:
        client.track(["123"])
    assert "NOT.AUTHORIZED.ERROR" in info.value.message
    assert sim.counts()[TOKEN_PATH] == 2 and sim.counts()[TRACK_PATH] == 2


def test_bad_credentials(sim: SimHarness) -> None:
    c = FedexClient(sim.settings(fedex_client_secret="wrong-fedex-secret"), clock=sim.clock)
    with pytest.raises(AuthError) as info:
        c.health()
    assert "NOT.AUTHORIZED.ERROR" in info.value.message and "wrong-fedex-secret" not in info.value.message
    c.close()


# -- faults ------------------------------------------------------------------------------------------------------------

def test_throttle_down_and_malformed(sim: SimHarness, client: FedexClient) -> None:
    client.health()
    sim.fault("throttle", retry_after=11)
    with pytest.raises(ThrottledError) as throttled:
        client.track(["123"])
    assert throttled.value.retry_after == 11.0
    sim.fault("down")
    with pytest.raises(TransientError) as down:
        client.track(["123"])
    assert down.value.status == 503 and "SERVICE.UNAVAILABLE.ERROR" in down.value.message
    sim.fault("malformed")
    with pytest.raises(MalformedResponseError):
        client.track(["123"])
    fresh = FedexClient(sim.settings(), clock=sim.clock)
    with pytest.raises(MalformedResponseError):  # the token endpoint's answer lacks access_token
        fresh.health()
    fresh.close()


def test_answer_missing_a_number_is_malformed(sim: SimHarness) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        return httpx.Response(200, json={"output": {"completeTrackResults": []}})

    c = FedexClient(sim.settings(), transport=httpx.MockTransport(handler))
    with pytest.raises(MalformedResponseError):
        c.track(["123456789012"])
    c.close()


# -- injection -------------------------------------------------------------------------------------------------------

def test_hostile_numbers_reach_fedex_only_as_literals(sim: SimHarness, client: FedexClient) -> None:
    result = client.track(HOSTILE)
    assert {n: r.found for n, r in result.items()} == dict.fromkeys(HOSTILE, False)
    # the middleware records the (empty) URL query; the simulator notes the POSTed body beside it
    bodies = [json.loads(r["query"]) for r in sim.recent() if r["path"] == TRACK_PATH and r["query"]]
    sent = [i["trackingNumberInfo"]["trackingNumber"] for b in bodies for i in b["trackingInfo"]]
    assert sent == list(HOSTILE)
    assert sim.counts()[TRACK_PATH] == 1  # noted bodies are not counted twice


def test_health_returns_elapsed_ms(client: FedexClient) -> None:
    assert client.health() >= 0.0
