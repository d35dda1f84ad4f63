"""Entra dormancy: Graph's ``signInActivity`` through the simulator and the Entra client, over real sockets.

What the vendor documents and the simulator must therefore do (sources in :mod:`nexus.sim.graph`): the property is
returned only when selected, pages that select it hold at most 120 users, a tenant without Entra ID P1/P2 answers 403
``Authentication_RequestFromNonPremiumTenantOrB2CTenant``, and a user addressed by UPN cannot select it. What the
client must do with it: the latest of the sign-in times, ``0001-01-01T00:00:00Z`` as "none", a clear error naming
``ENTRA_SIGN_IN_ACTIVITY`` when the tenant has no licence, and nothing read when the setting is off.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from clients.entra import EntraClient
from nexus.errors import AuthError, MalformedResponseError
from nexus.sim.graph import SIGN_IN_PAGE_CAP, graph_sims
from nexus.sim.graph_data import NEVER
from nexus.sim.org_model import Org
from nexus.testing.clock import FakeClock
from nexus.testing.sims import SimHarness
from tests._org_factory_graph import make_bulk_org, make_org

SIGNED_IN = datetime(2026, 4, 30, 9, 15, tzinfo=UTC)
REFRESHED = datetime(2026, 5, 2, 7, 0, tzinfo=UTC)


class Sim(SimHarness):
    def token(self) -> str:
        c = self.ctx.creds
        answer = self.http.post(f"{self.url}/azure/{c.azure_tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": c.azure_client_id,
            "client_secret": c.azure_client_secret, "scope": "https://graph.microsoft.com/.default"})
        return str(answer.json()["access_token"])

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self.http.get(f"{self.url}/graph{path}", params=params,
                             headers={"Authorization": f"Bearer {self.token()}"})


def _org() -> Org:
    org = make_org()
    org.entra[0].last_sign_in = SIGNED_IN
    org.entra[0].last_non_interactive_sign_in = REFRESHED  # later: the one that counts
    org.entra[1].last_sign_in = SIGNED_IN - timedelta(days=90)  # interactive only
    return org  # the others: never signed in (signInActivity null)


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    running = Sim.start(graph_sims, _org(), seed=7, clock=FakeClock(1000.0), token_lifetime_s=3599)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _premium(sim: Sim) -> Iterator[None]:
    sim.ctx.extra.pop("entra_premium", None)
    yield
    sim.ctx.extra.pop("entra_premium", None)


def test_sign_in_activity_is_returned_only_when_selected(sim: Sim) -> None:
    plain = sim.get("/v1.0/users").json()["value"]
    assert all("signInActivity" not in u for u in plain)
    chosen = sim.get("/v1.0/users", {"$select": "id,signInActivity"}).json()["value"]
    by_id = {u["id"]: u for u in chosen}
    first = by_id[sim.ctx.org.entra[0].id]["signInActivity"]
    assert first["lastSignInDateTime"] == "2026-04-30T09:15:00Z"
    assert first["lastNonInteractiveSignInDateTime"] == "2026-05-02T07:00:00Z"
    assert first["lastSuccessfulSignInDateTime"] == "2026-05-02T07:00:00Z"
    second = by_id[sim.ctx.org.entra[1].id]["signInActivity"]
    assert second["lastNonInteractiveSignInDateTime"] == NEVER and second["lastNonInteractiveSignInRequestId"] == ""
    assert by_id[sim.ctx.org.entra[2].id]["signInActivity"] is None


def test_pages_that_select_sign_ins_hold_at_most_120_users() -> None:
    running = Sim.start(graph_sims, make_bulk_org(users=300, devices=0), seed=7, clock=FakeClock(1000.0))
    try:
        without = running.get("/v1.0/users", {"$select": "id", "$top": "999"}).json()
        with_sign_ins = running.get("/v1.0/users", {"$select": "id,signInActivity", "$top": "999"}).json()
        assert len(without["value"]) == 300 and "@odata.nextLink" not in without
        assert len(with_sign_ins["value"]) == SIGN_IN_PAGE_CAP and "@odata.nextLink" in with_sign_ins
        running.ctx.log.reset()
        with EntraClient(running.settings()) as client:
            people = list(client.list_all())  # $expand=manager too: the lower cap (100) wins
        assert len(people) == 300
        assert sum(1 for r in running.ctx.log.recent() if r["path"].endswith("/v1.0/users")) == 3
    finally:
        running.stop()


def test_a_user_addressed_by_upn_cannot_select_sign_ins(sim: Sim) -> None:
    user = sim.ctx.org.entra[0]
    by_upn = sim.get(f"/v1.0/users/{user.upn}", {"$select": "id,signInActivity"})
    assert by_upn.status_code == 400 and by_upn.json()["error"]["code"] == "BadRequest"
    by_id = sim.get(f"/v1.0/users/{user.id}", {"$select": "id,signInActivity"})
    assert by_id.status_code == 200 and by_id.json()["signInActivity"]["lastSignInDateTime"] == "2026-04-30T09:15:00Z"
    with EntraClient(sim.settings()) as client:
        assert client.get_user(user.upn) is not None  # the client leaves signInActivity out by UPN
        record = client.get_user(user.id)
        assert record is not None and record.last_logon == "2026-05-02T07:00:00Z"


def test_the_client_reads_the_latest_sign_in(sim: Sim) -> None:
    org = sim.ctx.org
    with EntraClient(sim.settings()) as client:
        people = {p.key: p for p in client.list_all()}
        found = client.find_people(org.entra[1].mail or "")
    assert people[org.entra[0].id].last_logon == "2026-05-02T07:00:00Z"
    assert people[org.entra[1].id].last_logon == "2026-01-30T09:15:00Z"
    assert people[org.entra[2].id].last_logon is None
    assert [p.last_logon for p in found] == ["2026-01-30T09:15:00Z"]


def test_a_tenant_without_premium_gets_an_error_naming_the_setting(sim: Sim) -> None:
    sim.ctx.extra["entra_premium"] = False
    refused = sim.get("/v1.0/users", {"$select": "id,signInActivity"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    with EntraClient(sim.settings()) as client, pytest.raises(AuthError) as caught:
        list(client.list_all())
    assert "ENTRA_SIGN_IN_ACTIVITY=false" in str(caught.value) and caught.value.status == 403


def test_with_the_setting_off_nothing_is_selected_and_the_listing_works(sim: Sim) -> None:
    sim.ctx.extra["entra_premium"] = False
    sim.ctx.log.reset()
    with EntraClient(sim.settings(entra_sign_in_activity=False)) as client:
        assert not client.reads_sign_ins
        people = list(client.list_all())
        found = client.find_people(sim.ctx.org.entra[0].mail or "")
    assert len(people) == len(sim.ctx.org.entra) and all(p.last_logon is None for p in people)
    assert found and found[0].last_logon is None
    queries = [r["query"] for r in sim.ctx.log.recent() if "/users" in r["path"]]
    assert queries and all("signInActivity" not in q for q in queries)


def _member(activity: Any) -> dict[str, Any]:
    return {"id": "00000000-0000-4000-8000-000000000001", "userPrincipalName": "a@corp.example",
            "accountEnabled": True, "signInActivity": activity}


@pytest.mark.parametrize(("activity", "expected"), [
    (None, None),
    ({"lastSignInDateTime": NEVER, "lastNonInteractiveSignInDateTime": NEVER}, None),
    ({"lastSignInDateTime": "2026-03-01T10:00:00Z", "lastNonInteractiveSignInDateTime": NEVER},
     "2026-03-01T10:00:00Z"),
    ({"lastSignInDateTime": "2026-03-01T10:00:00Z", "lastNonInteractiveSignInDateTime": "2026-03-02T00:00:00+02:00",
      "lastSuccessfulSignInDateTime": None}, "2026-03-01T22:00:00Z"),
    ({"lastSuccessfulSignInDateTime": "2026-04-01T00:00:00.1234567Z"}, "2026-04-01T00:00:00Z"),
])
def test_to_person_takes_the_latest_time_and_ignores_never(sim: Sim, activity: Any, expected: str | None) -> None:
    with EntraClient(sim.settings()) as client:
        assert client.to_person(_member(activity)).last_logon == expected


@pytest.mark.parametrize("activity", ["yesterday", {"lastSignInDateTime": "not a date"}, [1]])
def test_a_malformed_sign_in_activity_is_an_error_not_a_guess(sim: Sim, activity: Any) -> None:
    with EntraClient(sim.settings()) as client, pytest.raises(MalformedResponseError):
        client.to_person(_member(activity))
