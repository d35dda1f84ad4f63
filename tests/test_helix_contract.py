"""BMC's AR System REST contract (``nexus/sim/helix_rest_contract.json``) judges the Helix simulator and client.

The contract file is a JSON Schema fragment of BMC's published REST API (sources in its ``$comment``). These tests
validate, with the independent ``jsonschema`` library: every request the client makes (login form, AR-JWT header,
entry paths, query parameters, qualification syntax, the incident body, logout), every answer the simulator gives
(entry lists and their links, single entries, the 201 of a create, and the error array for every error it has),
and that the forms' field names are the contract's.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import pytest
from jsonschema import Draft202012Validator

from clients.helix import ASSET_FIELDS, CORRELATION_FIELD, TICKET_FIELDS, HelixClient, qual_eq
from nexus.sim.contracts import contract, problems
from nexus.sim.helix import ASSET_FORM, INCIDENT_CREATE_FORM, TICKET_FORM, HelixSim
from nexus.sim.org_model import Org
from nexus.testing.sims import SimHarness
from tests._org_factory_wd import HOSTILE, make_org, system_fixtures

DOC = "helix_rest"
ENTRY_ROOT = "/api/arsys/v1/entry/"
ASSETS_PATH = ENTRY_ROOT + ASSET_FORM
TICKETS_PATH = ENTRY_ROOT + TICKET_FORM


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org(120, seed=23)


harness, sim, client = system_fixtures(HelixSim, HelixClient)


def conforms(definition: str, instance: Any) -> None:
    assert problems(DOC, definition, instance) == [], json.dumps(instance)[:400]


def auth(client: HelixClient) -> dict[str, str]:
    return {"Authorization": f"AR-JWT {client.tokens.get()}"}


def test_the_contract_is_a_valid_schema_citing_bmc() -> None:
    doc = contract(DOC)
    Draft202012Validator.check_schema(doc)
    assert "docs.bmc.com" in doc["$comment"] and "splunk-soar-connectors/bmcremedy" in doc["$comment"]


def test_the_forms_fields_are_the_contracts(sim: SimHarness) -> None:
    forms = contract(DOC)["forms"]
    served = HelixSim(sim.ctx).forms  # a simulator over the same organisation
    for name in (ASSET_FORM, TICKET_FORM):
        allowed = set(forms[name]["vendor"]) | set(forms[name]["site_custom"])
        assert set(served[name].fields) == allowed, name
    assert set(ASSET_FIELDS) <= set(forms[ASSET_FORM]["vendor"]) | set(forms[ASSET_FORM]["site_custom"])
    assert set(TICKET_FIELDS) | {CORRELATION_FIELD} <= (set(forms[TICKET_FORM]["vendor"])
                                                        | set(forms[TICKET_FORM]["site_custom"]))


def test_every_client_request_is_the_documented_one(sim: SimHarness, org: Org) -> None:
    sent: list[httpx.Request] = []
    client = HelixClient(sim.settings(), clock=sim.clock)
    client.http.event_hooks["request"].append(sent.append)
    serials = [a.serial for a in org.helix_assets[:3]]
    list(client.list_all())
    list(client.list_tickets())
    client.find_device(serials[0])
    client.get_asset(org.helix_assets[1].reconciliation_id)
    client.assets_for_owner(org.helix_assets[2].owner_email or "x@corp.example")
    client.tickets_for_serials([*serials, *HOSTILE])
    client.find_incidents("nexus-abc")
    client.create_incident(summary="Device drift", details="details", first_name="Nexus", last_name="Audit",
                           correlation="nexus-abc")
    client.health()
    client.close()
    login = [r for r in sent if r.url.path.endswith("/api/jwt/login")]
    logout = [r for r in sent if r.url.path.endswith("/api/jwt/logout")]
    entries = [r for r in sent if ENTRY_ROOT in r.url.path]
    assert len(login) == 1 and len(logout) == 1 and len(entries) >= 8
    assert login[0].method == "POST"
    assert login[0].headers["content-type"] == "application/x-www-form-urlencoded"
    conforms("LoginForm", {k: v[0] for k, v in parse_qs(login[0].content.decode()).items()})
    token = logout[0].headers["authorization"].removeprefix("AR-JWT ")
    assert logout[0].method == "POST" and token and logout[0].headers["authorization"] == f"AR-JWT {token}"
    qualifications = 0
    for request in entries:
        assert request.headers["authorization"] == f"AR-JWT {token}"
        form = unquote(request.url.path.split(ENTRY_ROOT, 1)[1]).split("/")[0]
        assert form in (ASSET_FORM, TICKET_FORM, INCIDENT_CREATE_FORM)
        params = {k: v[0] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        conforms("ListQuery", params)
        if "q" in params:
            qualifications += 1
            conforms("Qualification", params["q"])
        if request.method == "POST":
            assert form == INCIDENT_CREATE_FORM
            conforms("IncidentCreate", json.loads(request.content))
    assert qualifications >= 4  # find_device, assets_for_owner, tickets_for_serials, find_incidents


@pytest.mark.parametrize("value", ['plain', 'a"b', '""', "o'brien", *HOSTILE])
def test_qualifications_are_ar_syntax_for_any_value(value: str) -> None:
    q = qual_eq("Serial Number", value)
    conforms("Qualification", q)
    assert q == "'Serial Number' = \"" + value.replace('"', '""') + '"'


def test_the_qualification_definition_refuses_what_ar_would_misread() -> None:
    for bad in ('\'Serial Number\' = "a"b"', "'Serial Number' = 'x'", 'Serial Number = "x"', "'a' = \"x\" OR"):
        assert problems(DOC, "Qualification", bad), bad


def test_listing_answers_are_the_documented_shape(sim: SimHarness, client: HelixClient, org: Org) -> None:
    page = client.send("GET", ASSETS_PATH, params={"limit": 5, "fields": "values(Serial Number,Name)"}).json()
    conforms("EntryList", page)
    assert "next" in page["_links"]
    nxt = client.send("GET", client._own_link(page["_links"]["next"][0]["href"])).json()
    conforms("EntryList", nxt)
    everything = client.send("GET", TICKETS_PATH, params={"limit": 3}).json()
    conforms("EntryList", everything)
    last = client.send("GET", ASSETS_PATH, params={"offset": len(org.helix_assets) - 1}).json()
    conforms("EntryList", last)
    assert "next" not in last["_links"]
    one = client.send("GET", f"{ASSETS_PATH}/{org.helix_assets[0].reconciliation_id}").json()
    conforms("Entry", one)


def test_a_create_answers_201_with_location_and_the_documented_entry(sim: SimHarness, client: HelixClient) -> None:
    body = {"values": {"First_Name": "Nexus", "Last_Name": "Audit", "Description": "x", "Impact": "4-Minor/Localized",
                       "Urgency": "4-Low", "Status": "Assigned", "Reported Source": "Systems Management",
                       "Service_Type": "Infrastructure Event", "z1D_Action": "CREATE"}}
    conforms("IncidentCreate", body)
    created = client.http.post(ENTRY_ROOT + INCIDENT_CREATE_FORM, json=body, headers=auth(client),
                               params={"fields": "values(Incident Number)"})
    assert created.status_code == 201 and created.headers["location"].startswith("http")
    conforms("Entry", created.json())
    bare = client.http.post(ENTRY_ROOT + INCIDENT_CREATE_FORM, json=body, headers=auth(client))
    assert bare.status_code == 201 and bare.headers["location"]
    fetched = client.http.get(client._own_link(bare.headers["location"]), headers=auth(client))
    conforms("Entry", fetched.json())


def test_every_error_is_the_documented_message_array(sim: SimHarness, client: HelixClient) -> None:
    answers: list[httpx.Response] = [
        httpx.post(f"{sim.base_url}/api/jwt/login", data={"username": "nobody", "password": "wrong"}),
        client.http.get(ASSETS_PATH, headers={"Authorization": "AR-JWT not-a-token"}),
        client.http.get(ENTRY_ROOT + "NO:SuchForm", headers=auth(client)),
        client.http.get(ASSETS_PATH, params={"q": "'Serial Number' = "}, headers=auth(client)),
        client.http.get(ASSETS_PATH, params={"q": "'No Such Field' = \"x\""}, headers=auth(client)),
        client.http.get(ASSETS_PATH, params={"fields": "Serial Number"}, headers=auth(client)),
        client.http.get(ASSETS_PATH, params={"limit": "-1"}, headers=auth(client)),
        client.http.get(f"{ASSETS_PATH}/RE-NOPE", headers=auth(client)),
        client.http.post(ASSETS_PATH, json={"values": {}}, headers=auth(client)),
        client.http.post(ENTRY_ROOT + INCIDENT_CREATE_FORM, json={"values": {}}, headers=auth(client)),
    ]
    for mode in ("down", "throttle", "truncated"):
        sim.fault(mode)
        answers.append(client.http.get(ASSETS_PATH, params={"offset": 1, "limit": 1}, headers=auth(client)))
        sim.clear_faults()
    for answer in answers:
        assert answer.status_code >= 400, answer.request.url
        conforms("ErrorBody", answer.json())


def test_sort_is_applied_or_refused_never_ignored(sim: SimHarness, client: HelixClient, org: Org) -> None:
    body = client.send("GET", ASSETS_PATH, params={"sort": "Serial Number.desc", "limit": 2000,
                                                  "fields": "values(Serial Number)"}).json()
    conforms("EntryList", body)
    got = [e["values"]["Serial Number"] for e in body["entries"]]
    assert got == sorted((a.serial for a in org.helix_assets), key=str.casefold, reverse=True)
    for bad, number in (("Serial Number", 9000), ("No Such.asc", 314), ("Name.sideways", 9000)):
        answer = client.http.get(ASSETS_PATH, params={"sort": bad}, headers=auth(client))
        assert answer.status_code == 400, bad
        conforms("ErrorBody", answer.json())
        assert answer.json()[0]["messageNumber"] == number


def test_a_summary_over_100_characters_is_refused(sim: SimHarness, client: HelixClient) -> None:
    body = {"values": {"First_Name": "Nexus", "Last_Name": "Audit", "Description": "x" * 101,
                       "Impact": "4-Minor/Localized", "Urgency": "4-Low", "Status": "Assigned",
                       "Reported Source": "Systems Management", "Service_Type": "Infrastructure Event",
                       "z1D_Action": "CREATE"}}
    assert problems(DOC, "IncidentCreate", body)
    answer = client.http.post(ENTRY_ROOT + INCIDENT_CREATE_FORM, json=body, headers=auth(client))
    assert answer.status_code == 400 and answer.json()[0]["messageNumber"] == 306
    conforms("ErrorBody", answer.json())
