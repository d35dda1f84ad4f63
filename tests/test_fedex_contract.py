"""FedEx's published contract (``nexus/sim/fedex_track_contract.json``) judges the simulator and the client.

The contract file is a JSON Schema fragment of FedEx's own OpenAPI documents (cited in its ``$comment``). These
tests validate, with the independent ``jsonschema`` library: every request the client sends (token form, track
body, headers), every answer the simulator gives (found, unknown, errors, token), and that the simulator refuses
exactly the requests the vendor's request schema refuses.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from jsonschema import Draft202012Validator

from clients.fedex import MAX_PER_REQUEST, TRACK_PATH, FedexClient
from nexus.sim.contracts import contract, problems
from nexus.sim.fedex import FedexSim
from nexus.sim.org_model import Org
from nexus.testing.sims import SimHarness
from tests._org_factory_wd import make_org, system_fixtures

TOKEN_PATH = "/oauth/token"
DOC = "fedex_track"


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org(120, seed=41)


harness, sim, client = system_fixtures(FedexSim, FedexClient)


def strict(definition: str) -> Draft202012Validator:
    """The definition with no property beyond the vendor's, anywhere: the client sends exactly the schema's names."""
    doc = json.loads(json.dumps(contract(DOC)))
    for schema in doc["$defs"].values():
        if schema.get("type") == "object":
            schema["additionalProperties"] = False
    return Draft202012Validator({"$defs": doc["$defs"], "$ref": f"#/$defs/{definition}"})


def conforms(definition: str, instance: Any) -> None:
    assert problems(DOC, definition, instance) == [], json.dumps(instance)[:400]


def test_the_contract_is_a_valid_schema_with_the_vendor_limits() -> None:
    doc = contract(DOC)
    Draft202012Validator.check_schema(doc)
    info = doc["$defs"]["TrackRequest"]["properties"]["trackingInfo"]
    assert (info["minItems"], info["maxItems"]) == (1, 30) and MAX_PER_REQUEST == 30
    assert "FedEx" in doc["$comment"] and "developer.fedex.com" in doc["$comment"]


def test_every_client_request_is_the_vendors_request(sim: SimHarness, client: FedexClient, org: Org) -> None:
    sent: list[httpx.Request] = []
    client.http.event_hooks["request"].append(sent.append)
    known = [s.tracking_number for s in org.fedex[:10]]
    numbers = known + [f"9{i:011d}" for i in range(46 - len(known))]
    client.track(numbers)
    client.health()
    tokens = [r for r in sent if r.url.path.endswith(TOKEN_PATH)]
    tracks = [r for r in sent if r.url.path.endswith(TRACK_PATH)]
    assert len(tokens) == 1 and len(tracks) == 3  # 46 numbers in chunks of 30, plus the health probe
    form = {k: v[0] for k, v in parse_qs(tokens[0].content.decode()).items()}
    assert strict("TokenRequest").is_valid(form) and form["grant_type"] == "client_credentials"
    for request in tracks:
        assert request.method == "POST"
        assert request.headers["content-type"].startswith("application/json")
        assert request.headers["authorization"].startswith("Bearer ")
        body = json.loads(request.content)
        errors = [e.message for e in strict("TrackRequest").iter_errors(body)]
        assert errors == [], errors


def test_the_simulators_answers_are_the_vendors_responses(sim: SimHarness, client: FedexClient, org: Org) -> None:
    delivered = next(s for s in org.fedex if s.delivered_at)
    moving = next(s for s in org.fedex if not s.delivered_at)
    token = client.tokens.get()
    payload = {"includeDetailedScans": False, "trackingInfo": [
        {"trackingNumberInfo": {"trackingNumber": n}} for n in (delivered.tracking_number, moving.tracking_number,
                                                                "000000000000")]}
    answer = client.http.post(TRACK_PATH, json=payload, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    conforms("TrackResponse", answer.json())
    results = answer.json()["output"]["completeTrackResults"]
    assert [r["trackingNumber"] for r in results] == [delivered.tracking_number, moving.tracking_number,
                                                      "000000000000"]
    assert "error" in results[2]["trackResults"][0] and "latestStatusDetail" in results[0]["trackResults"][0]
    granted = httpx.post(f"{sim.base_url}{TOKEN_PATH}", data={
        "grant_type": "client_credentials", "client_id": sim.ctx.creds.fedex_client_id,
        "client_secret": sim.ctx.creds.fedex_client_secret})
    conforms("TokenResponse", granted.json())
    refused = httpx.post(f"{sim.base_url}{TOKEN_PATH}", data={
        "grant_type": "client_credentials", "client_id": "nobody", "client_secret": "wrong"})
    assert refused.status_code == 401
    conforms("ErrorResponse", refused.json())
    unauthorised = client.http.post(TRACK_PATH, json=payload, headers={"Authorization": "Bearer not-a-token"})
    assert unauthorised.status_code == 401
    conforms("ErrorResponse", unauthorised.json())


def test_every_fault_answer_is_the_vendors_error_body(sim: SimHarness, client: FedexClient) -> None:
    token = client.tokens.get()
    payload = {"includeDetailedScans": False, "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": "1"}}]}
    for mode, status in (("down", 503), ("throttle", 429)):
        sim.fault(mode)
        answer = client.http.post(TRACK_PATH, json=payload, headers={"Authorization": f"Bearer {token}"})
        sim.clear_faults()
        assert answer.status_code == status
        conforms("ErrorResponse", answer.json())


def _number(n: str) -> dict[str, Any]:
    return {"trackingNumberInfo": {"trackingNumber": n}}


#: Requests the vendor's request schema refuses, and the error code the simulator answers each with.
DEVIANT: list[tuple[str, Any, str]] = [
    ("no includeDetailedScans", {"trackingInfo": [_number("1")]}, "INVALID.INPUT.EXCEPTION"),
    ("includeDetailedScans not a boolean", {"includeDetailedScans": "false", "trackingInfo": [_number("1")]},
     "INVALID.INPUT.EXCEPTION"),
    ("no trackingInfo", {"includeDetailedScans": False}, "INVALID.INPUT.EXCEPTION"),
    ("trackingInfo not an array", {"includeDetailedScans": False, "trackingInfo": _number("1")},
     "INVALID.INPUT.EXCEPTION"),
    ("empty trackingInfo", {"includeDetailedScans": False, "trackingInfo": []}, "TRACKING.TRACKINGNUMBER.EMPTY"),
    ("31 numbers", {"includeDetailedScans": False, "trackingInfo": [_number(str(i)) for i in range(31)]},
     "TRACKING.TRACKINGNUMBER.LIMIT.EXCEEDED"),
    ("flat trackingNumber", {"includeDetailedScans": False, "trackingInfo": [{"trackingNumber": "1"}]},
     "INVALID.INPUT.EXCEPTION"),
    ("numeric trackingNumber", {"includeDetailedScans": False, "trackingInfo": [_number(123)]},  # type: ignore[arg-type]
     "INVALID.INPUT.EXCEPTION"),
    ("carrierCode outside the enum", {"includeDetailedScans": False, "trackingInfo": [
        {"trackingNumberInfo": {"trackingNumber": "1", "carrierCode": "UPS"}}]}, "INVALID.INPUT.EXCEPTION"),
    ("body is an array", [_number("1")], "INVALID.INPUT.EXCEPTION"),
]


@pytest.mark.parametrize(("why", "body", "code"), DEVIANT, ids=[d[0] for d in DEVIANT])
def test_the_simulator_refuses_what_the_vendor_schema_refuses(sim: SimHarness, client: FedexClient, why: str,
                                                                body: Any, code: str) -> None:
    assert problems(DOC, "TrackRequest", body), f"the vendor schema accepts {why}"
    answer = client.http.post(TRACK_PATH, json=body, headers={"Authorization": f"Bearer {client.tokens.get()}"})
    assert answer.status_code == 400
    conforms("ErrorResponse", answer.json())
    assert answer.json()["errors"][0]["code"] == code


def test_the_simulator_accepts_what_the_vendor_schema_accepts(sim: SimHarness, client: FedexClient) -> None:
    body = {"includeDetailedScans": True, "trackingInfo": [
        {"shipDateBegin": "2024-01-01", "shipDateEnd": "2024-02-01",
         "trackingNumberInfo": {"trackingNumber": "1", "carrierCode": "FDXG", "trackingNumberUniqueId": "x"}}]}
    conforms("TrackRequest", body)
    answer = client.http.post(TRACK_PATH, json=body, headers={"Authorization": f"Bearer {client.tokens.get()}"})
    assert answer.status_code == 200
    conforms("TrackResponse", answer.json())


def test_a_body_that_is_not_json_content_is_refused(sim: SimHarness, client: FedexClient) -> None:
    body = json.dumps({"includeDetailedScans": False, "trackingInfo": [_number("1")]})
    answer = client.http.post(TRACK_PATH, content=body, headers={
        "Authorization": f"Bearer {client.tokens.get()}", "Content-Type": "text/plain"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "INVALID.INPUT.EXCEPTION"
