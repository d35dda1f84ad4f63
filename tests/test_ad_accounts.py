"""Which AD accounts are people, and whether they can sign in: built-in, bind and configured accounts are skipped;
``accountExpires`` and ``lastLogonTimestamp`` are read (Windows FILETIME), and an expired account counts as
disabled, so a terminated worker whose account expired (but was never disabled) is not a critical finding.

Runs against slapd (through the fault proxy) and ldap3's MOCK_SYNC directory alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from clients.ad import ADClient
from clients.ad.exclusions import Exclusions
from clients.ad.filetime import NEVER, from_filetime, to_filetime
from nexus.drift import fields as F
from nexus.drift.engine import audit_people
from nexus.errors import MalformedResponseError, NotFoundError
from nexus.models import PersonRecord
from nexus.settings import Settings
from nexus.sim.ldap_mock import MockDirectory
from nexus.sim.org_model import AdUser, Org
from tests._ad_fixtures import BASE_DN, PEOPLE, AdSim, make_org, running_sim, user_by_index

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
EXPIRED, LATER, LOGGED_ON, SERVICE = 4, 5, 6, 8
LAST_LOGON = datetime(2026, 5, 28, 8, 30, 15, tzinfo=UTC)


def accounts_org() -> Org:
    org = make_org()
    user_by_index(org, EXPIRED).account_expires = NOW - timedelta(days=30)  # still userAccountControl 512
    user_by_index(org, LATER).account_expires = NOW + timedelta(days=30)
    user_by_index(org, LOGGED_ON).last_logon = LAST_LOGON
    svc = user_by_index(org, SERVICE)
    svc.sam = "svc-backup"
    return org


@pytest.fixture(scope="module")
def ad() -> Iterator[AdSim]:
    yield from running_sim(accounts_org())


@pytest.fixture(scope="module")
def mock_dir() -> MockDirectory:
    return MockDirectory(accounts_org())


@pytest.fixture(params=[pytest.param("slapd", marks=pytest.mark.integration), "mock"])
def connect(request: pytest.FixtureRequest) -> Iterator[tuple[object, Org]]:
    """(a function settings-overrides -> ADClient, the org) for each backend."""
    if request.param == "slapd":
        sim: AdSim = request.getfixturevalue("ad")

        def make(**extra: object) -> ADClient:
            return ADClient(sim.settings(**extra), page_size=7, clock=lambda: NOW)

        yield make, sim.org
    else:
        directory: MockDirectory = request.getfixturevalue("mock_dir")

        def make(**extra: object) -> ADClient:
            values = {**directory.settings().model_dump(by_alias=True), **extra}
            return ADClient(Settings(**values), connection_factory=directory.connection_factory, page_size=7,
                            clock=lambda: NOW)

        yield make, accounts_org()


def listed(client: ADClient) -> dict[str, PersonRecord]:
    with client:
        return {r.username or "": r for r in client.list_users()}


def test_builtin_and_bind_accounts_are_never_people(connect: tuple[object, Org]) -> None:
    make, org = connect
    records = listed(make())  # type: ignore[operator]
    assert set(records) == {u.sam for u in org.ad}  # no Administrator, Guest, krbtgt, svc-nexus, computer
    client: ADClient = make()  # type: ignore[operator]
    with client:
        assert client.find_user(username="Administrator") is None
        assert client.find_user(username="krbtgt") is None
        assert client.find_user(username="svc-nexus") is None
        with pytest.raises(NotFoundError):
            client.get_user(f"CN=Administrator,CN=Users,{BASE_DN}")


def test_configured_name_patterns_and_ous_are_skipped(connect: tuple[object, Org]) -> None:
    make, org = connect
    records = listed(make(NEXUS_AD_EXCLUDE_ACCOUNTS="krbtgt,Guest,Administrator,SVC-*"))  # type: ignore[operator]
    assert "svc-backup" not in records and len(records) == PEOPLE - 1
    sales = f"OU=Sales,{BASE_DN}"
    records = listed(make(NEXUS_AD_EXCLUDE_OUS=f"OU=Nowhere,{BASE_DN}; {sales.upper()}"))  # type: ignore[operator]
    in_sales = {u.sam for u in org.ad if u.department == "Sales"}
    assert in_sales and not in_sales & set(records)
    assert len(records) == PEOPLE - len(in_sales)
    records = listed(make(NEXUS_AD_EXCLUDE_ACCOUNTS=""))  # type: ignore[operator]
    assert {"Administrator", "Guest", "krbtgt"} <= set(records)  # the defaults are what skips them
    assert "svc-nexus" not in records  # the bind account always is


def test_an_expired_account_is_not_enabled_and_its_dates_are_carried(connect: tuple[object, Org]) -> None:
    make, _ = connect
    records = listed(make())  # type: ignore[operator]
    expired, later, logged = records["u0004"], records["u0005"], records["u0006"]
    assert expired.enabled is False and expired.account_expires == "2026-05-02T12:00:00Z"
    assert later.enabled is True and later.account_expires == "2026-07-01T12:00:00Z"
    assert logged.last_logon == "2026-05-28T08:30:15Z" and logged.account_expires is None
    assert records["u0000"].last_logon is None and records["u0000"].enabled is True  # never logged on, never expires
    # the clock decides: the same entry before its expiry is enabled
    client: ADClient = make()  # type: ignore[operator]
    client.clock = lambda: NOW - timedelta(days=60)
    with client:
        found = client.find_user(username="u0004")
    assert found is not None and found.enabled is True


def test_a_terminated_worker_whose_account_expired_is_not_reported_enabled(connect: tuple[object, Org]) -> None:
    make, org = connect
    records = list(listed(make()).values())  # type: ignore[operator]
    expired_user, enabled_user = user_by_index(org, EXPIRED), user_by_index(org, 9)
    workday = [
        PersonRecord(system="workday", key=u.employee_id or "", employee_id=u.employee_id, email=u.mail,
                     status="Terminated", enabled=False, termination_date="2026-05-01")
        for u in (expired_user, enabled_user)
    ]
    found = audit_people(workday, records, None, {"workday", "ad"}).discrepancies
    enabled = {d.subject for d in found if d.field == F.ACCOUNT_ENABLED}
    assert enabled == {enabled_user.mail}  # the still-enabled one is critical; the expired one is not


def test_filetime_conversion() -> None:
    assert from_filetime(0) is None and from_filetime(NEVER) is None and from_filetime(None) is None
    assert from_filetime("") is None and from_filetime(str(NEVER)) is None
    assert from_filetime(116444736000000000) == datetime(1970, 1, 1, tzinfo=UTC)  # the Unix epoch
    assert from_filetime(to_filetime(LAST_LOGON)) == LAST_LOGON
    assert to_filetime(None) == 0
    with pytest.raises(ValueError):
        from_filetime("soon")


def test_an_undecodable_account_expires_is_a_malformed_answer() -> None:
    from clients.ad.records import entry_to_person

    entry = {"dn": f"CN=x,{BASE_DN}", "raw_attributes": {"accountexpires": [b"tomorrow"], "cn": [b"x"]}}
    with pytest.raises(MalformedResponseError, match="accountExpires"):
        entry_to_person(entry)


@pytest.mark.parametrize(
    "bind",
    ["CN=svc-nexus,OU=Service Accounts,DC=corp,DC=example", "cn=SVC-NEXUS,ou=service accounts,dc=corp,dc=example",
     "svc-nexus@corp.example", "CORP\\svc-nexus"],
)
def test_the_bind_account_is_recognised_in_every_form(bind: str) -> None:
    me = PersonRecord(system="ad", key="CN=svc-nexus,OU=Service Accounts,DC=corp,DC=example",
                      upn="svc-nexus@corp.example", username="svc-nexus")
    other = dataclasses.replace(me, key=f"CN=Ana,{BASE_DN}", upn="ana@corp.example", username="ana")
    exclusions = Exclusions.from_settings(Settings(AD_BIND_DN=bind, NEXUS_AD_EXCLUDE_ACCOUNTS=""))
    assert exclusions.excludes(me) and not exclusions.excludes(other)


def test_the_generated_org_has_expired_but_enabled_leavers() -> None:
    from nexus.sim.orggen import generate_org

    org = generate_org(200, seed=7, now=NOW)
    expired = [u for u in org.ad if u.enabled and u.account_expires is not None and u.account_expires <= NOW]
    assert expired
    leavers = {w.employee_id for w in org.workday if not w.active}
    assert all(u.employee_id in leavers for u in expired)
    assert not any(AdUser.can_sign_in(u, NOW) for u in expired)
