"""The AD client against slapd behind the fault proxy, and against the in-process mock directory.

The contract tests run on both backends (real LDAP over TCP and ldap3 MOCK_SYNC); fault and wire-level tests need
the proxy, so they run on slapd only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator

import pytest
from ldap3 import Connection

from clients.ad import (
    ADClient,
    ad_dn,
    default_connection,
    dn_key,
    escape_dn_value,
    map_result,
    tcp_connection,
    unescape_dn_value,
)
from clients.ad.schema import PERSON_FILTER
from clients.paging import Page
from nexus.errors import (
    AuthError,
    BadRequestError,
    ListingLost,
    MalformedResponseError,
    NotFoundError,
    ThrottledError,
    TransientError,
    counts_against_breaker,
    is_retryable,
)
from nexus.models import PersonRecord
from nexus.settings import Settings
from nexus.sim.faults import Fault, FaultBoard, RequestLog
from nexus.sim.ldap_mock import MockDirectory, mock_directory, mock_url
from nexus.sim.org_model import AdUser, Org
from tests._ad_fixtures import (
    ALIAS_MAIL,
    BASE_DN,
    DANGLING,
    DISABLED,
    GHOST_DN,
    HOSTILE,
    NO_MAIL,
    PEOPLE,
    AdSim,
    make_org,
    running_sim,
    user_by_index,
)

PAGE = 7  # 25 people + the bind account -> 4 pages
#: User objects (sAMAccountType 805306368) the listing's filter still returns and the client drops: the bind account
#: (named by its DN, which no filter can exclude). Administrator, Guest and krbtgt are excluded in the filter.
NOT_PEOPLE = 1

# --- backends ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ad() -> Iterator[AdSim]:
    yield from running_sim()


@pytest.fixture(scope="module")
def mock_dir() -> MockDirectory:
    return MockDirectory(make_org())


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    sims = [request.getfixturevalue("ad")] if "ad" in request.fixturenames else []
    for sim in sims:
        sim.reset()
    yield
    for sim in sims:
        sim.settle()  # connections the test closed are recorded before the reset, not in the next test
        sim.reset()


@pytest.fixture(params=[pytest.param("slapd", marks=pytest.mark.integration), "mock"])  # slapd: a real server
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[ADClient, Org]]:
    """The same client calls against both directories."""
    if request.param == "slapd":
        sim: AdSim = request.getfixturevalue("ad")
        client = ADClient(sim.settings(), page_size=PAGE)
        org = sim.org
    else:
        directory: MockDirectory = request.getfixturevalue("mock_dir")
        client = ADClient(directory.settings(), connection_factory=directory.connection_factory, page_size=PAGE)
        org = make_org()
    yield client, org
    client.close()


def expected(user: AdUser, org: Org) -> PersonRecord:
    managers = {u.dn: u for u in org.ad}
    manager = managers.get(user.manager_dn or "")
    primary = [p[5:] for p in user.proxy_addresses if p[5:].lower() != (user.mail or "").lower()]
    return PersonRecord(
        system="ad",
        key=user.dn,
        employee_id=user.employee_id,
        email=user.mail,
        upn=user.upn,
        username=user.sam,
        display_name=user.display_name,
        first_name=user.given_name,
        last_name=user.sn,
        title=user.title,
        department=user.department,
        manager_ref=user.manager_dn,
        manager_employee_id=manager.employee_id if manager else None,
        manager_email=manager.mail if manager else None,
        enabled=user.enabled,
        aliases=tuple(primary),
    )


# --- the contract, on both backends ------------------------------------------------------------------------------


def test_list_users_returns_everyone_exactly_as_the_org_holds_them(backend: tuple[ADClient, Org]) -> None:
    client, org = backend
    records = list(client.list_users())
    assert len(records) == PEOPLE
    assert {r.key: r for r in records} == {u.dn: expected(u, org) for u in org.ad}


def test_list_users_resolves_managers_listed_after_their_reports(backend: tuple[ADClient, Org]) -> None:
    client, org = backend
    records = {r.username: r for r in client.list_users()}
    report = records["u0005"]  # manager u0001 comes later in the directory's order
    assert report.manager_employee_id == "100001"
    assert report.manager_email == user_by_index(org, 1).mail
    dangling = records[f"u{DANGLING:04d}"]
    assert dangling.manager_ref == GHOST_DN
    assert dangling.manager_employee_id is None and dangling.manager_email is None
    assert records["u0000"].manager_ref is None


def test_disabled_flag_comes_from_bit_0x2(backend: tuple[ADClient, Org]) -> None:
    client, _ = backend
    records = list(client.list_users())
    assert {r.username for r in records if r.enabled is False} == {f"u{i:04d}" for i in DISABLED}


@pytest.mark.parametrize(
    "lookup",
    [
        {"email": "kwame.kowalski6@corp.example"},
        {"email": "KWAME.KOWALSKI6@corp.example"},  # AD compares case-insensitively
        {"upn": "kwame.kowalski6@corp.example"},
        {"employee_id": "100006"},
        {"email": "kkowalski6@example.com"},  # an smtp: alias
        {"username": "u0006"},
        {"email": "nobody@corp.example", "employee_id": "100006"},  # any identifier may match
    ],
)
def test_find_user_by_any_identifier(backend: tuple[ADClient, Org], lookup: dict[str, str]) -> None:
    client, org = backend
    found = client.find_user(**lookup)
    assert found == expected(user_by_index(org, 6), org)
    assert found is not None and found.manager_employee_id == "100001"  # resolved by a base read


def test_find_user_whose_mail_is_an_alias(backend: tuple[ADClient, Org]) -> None:
    client, org = backend
    user = user_by_index(org, ALIAS_MAIL)
    by_upn_as_email = client.find_user(email=user.upn)  # the Workday-style primary address
    by_mail = client.find_user(email=user.mail)
    assert by_upn_as_email == by_mail == expected(user, org)
    assert by_mail is not None and by_mail.email != by_mail.upn


def test_find_user_with_few_attributes(backend: tuple[ADClient, Org]) -> None:
    client, org = backend
    found = client.find_user(username=f"u{NO_MAIL:04d}")
    assert found == expected(user_by_index(org, NO_MAIL), org)
    assert found is not None and found.email is None and found.employee_id is None and found.aliases == ()


def test_not_found_is_none(backend: tuple[ADClient, Org]) -> None:
    client, _ = backend
    assert client.find_user(email="nobody@corp.example") is None
    assert client.find_user(employee_id="999999") is None


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_match_nothing(backend: tuple[ADClient, Org], value: str) -> None:
    client, _ = backend
    assert client.find_user(email=value) is None
    assert client.find_user(employee_id=value, username=value, upn=value) is None


def test_find_user_needs_an_identifier(backend: tuple[ADClient, Org]) -> None:
    client, _ = backend
    with pytest.raises(ValueError):
        client.find_user()


def test_find_users_in_batches(backend: tuple[ADClient, Org]) -> None:
    client, org = backend
    wanted = [u.mail for u in org.ad if u.mail] + ["nobody@corp.example", "*"]
    found = client.find_users(wanted)
    assert list(found) == wanted
    assert found["nobody@corp.example"] is None and found["*"] is None
    for user in org.ad:
        if user.mail:
            assert found[user.mail] == expected(user, org)


def test_get_user_and_its_not_found(backend: tuple[ADClient, Org]) -> None:
    client, org = backend
    user = user_by_index(org, 2)
    assert client.get_user(user.dn) == expected(user, org)
    with pytest.raises(NotFoundError):
        client.get_user(GHOST_DN)


def test_health_measures_milliseconds(backend: tuple[ADClient, Org]) -> None:
    client, _ = backend
    assert client.health() > 0


def test_fetch_page_pages_through_everyone_with_managers_unresolved(backend: tuple[ADClient, Org]) -> None:
    client, org = backend
    pages: list[Page[PersonRecord]] = []
    cursor: str | None = None
    while True:
        page = client.fetch_page(cursor)
        pages.append(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # Pages hold up to PAGE entries, of which the bind account is dropped (never a person).
    assert len(pages) == -(-(PEOPLE + NOT_PEOPLE) // PAGE) and all(len(p.items) <= PAGE for p in pages)
    assert sum(len(p.items) for p in pages) == PEOPLE
    records = {r.key: r for p in pages for r in p.items}
    unresolved = {u.dn: dataclasses.replace(expected(u, org), manager_employee_id=None, manager_email=None)
                  for u in org.ad}
    assert records == unresolved  # the same records as list_users, before the managers are resolved


def test_a_cursor_of_a_closed_or_foreign_listing_is_lost(backend: tuple[ADClient, Org]) -> None:
    client, _ = backend
    first = client.fetch_page(None)
    assert first.next_cursor is not None
    other = client.listing()  # another listing (another task, another process): another connection
    with pytest.raises(ListingLost):
        other.fetch_page(first.next_cursor)
    other.close()
    second = client.fetch_page(first.next_cursor)  # the client's own listing goes on
    assert 0 < len(second.items) <= PAGE and second.next_cursor is not None
    client.close_listing()  # the listing's connection only
    with pytest.raises(ListingLost):
        client.fetch_page(second.next_cursor)
    assert client.find_user(username=second.items[0].username) is not None
    first = client.fetch_page(None)
    assert first.next_cursor is not None
    client.close()  # releases the listing's connection with the lookup one
    with pytest.raises(ListingLost):
        client.fetch_page(first.next_cursor)
    restarted = client.fetch_page(None)  # a new first page always works
    assert [r.key for r in restarted.items] == [r.key for r in first.items]


def test_a_failed_page_closes_the_listing(ad: AdSim) -> None:
    with ADClient(ad.settings(), page_size=PAGE) as client:
        first = client.fetch_page(None)
        ad.fault("truncated")
        with pytest.raises(TransientError, match="unavailable"):
            client.fetch_page(first.next_cursor)
        deadline = time.monotonic() + 5  # the proxy records the listing's unbind on its own time
        while ad.count("unbind") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ad.count("unbind") == 1
        ad.reset()
        with pytest.raises(ListingLost):  # the cookie died with the connection: restart from the first page
            client.fetch_page(first.next_cursor)


# --- wire-level proof (slapd + proxy) ----------------------------------------------------------------------------


def test_lean_entry_decoding_matches_ldap3s_own(ad: AdSim) -> None:
    def ldap3_decoding(settings: Settings) -> Connection:
        conn = tcp_connection(settings)
        del conn.strategy.decode_response_fast  # back to the class's method
        return conn

    lean = list(ADClient(ad.settings(), page_size=PAGE).list_users())
    plain = list(ADClient(ad.settings(), connection_factory=ldap3_decoding, page_size=PAGE).list_users())
    assert lean == plain and len(lean) == PEOPLE


def test_listing_pages_through_the_proxy(ad: AdSim) -> None:
    with ADClient(ad.settings(), page_size=PAGE) as client:
        assert len(list(client.list_users())) == PEOPLE
    assert ad.count("search") == 4  # 25 people + the bind account, 7 a page
    assert ad.count("bind") == 1
    # Its own connection, closed at the end: the client does not wait for the proxy to read the unbind, so give
    # the proxy's event loop a moment to record it.
    deadline = time.monotonic() + 5
    while ad.count("unbind") < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ad.count("unbind") == 1
    skip = "".join(f"(!(sAMAccountName={n}))" for n in ("krbtgt", "guest", "administrator", "defaultaccount",
                                                         "wdagutilityaccount", "dns-*"))
    assert set(ad.queries()) == {f"(&{PERSON_FILTER}{skip})"}  # the default exclusions, in the filter


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("*)(mail=*", "\\2a\\29\\28mail=\\2a"),
        ("*", "\\2a"),
        (")(|(objectClass=*)", "\\29\\28|\\28objectClass=\\2a\\29"),
        ("a\\2a\\", "a\\5c2a\\5c"),
        ("nul\x00byte", "nul\\00byte"),
    ],
)
def test_hostile_values_reach_the_server_only_as_escaped_literals(ad: AdSim, value: str, escaped: str) -> None:
    with ADClient(ad.settings()) as client:
        assert client.find_user(email=value) is None
        assert client.find_user(employee_id=value) is None
    assert ad.queries() == [
        f"(&{PERSON_FILTER}"
        f"(|(mail={escaped})(userPrincipalName={escaped})(proxyAddresses=smtp:{escaped})))",
        f"(&{PERSON_FILTER}(|(employeeID={escaped})))",
    ]


def test_one_search_per_lookup_plus_one_manager_read(ad: AdSim) -> None:
    with ADClient(ad.settings()) as client:
        client.find_user(email="kwame.kowalski6@corp.example")
        client.find_user(email="kwame.kowalski6@corp.example")
    assert ad.count("bind") == 1  # the lookup connection is kept
    assert ad.count("search") == 4
    assert ad.queries()[1] == "(objectClass=*)"  # base read of the manager DN


# --- error mapping -----------------------------------------------------------------------------------------------


def test_down_is_transient(ad: AdSim) -> None:
    ad.fault("down")
    with ADClient(ad.settings()) as client:
        with pytest.raises(TransientError) as info:
            client.find_user(email="kwame.kowalski6@corp.example")
        with pytest.raises(TransientError):
            client.health()
        with pytest.raises(TransientError):
            list(client.list_users())
    assert is_retryable(info.value) and counts_against_breaker(info.value)
    assert info.value.system == "ad"


def test_refused_connection_is_transient(ad: AdSim) -> None:
    from nexus.sim.ldap_server import free_port

    settings = ad.settings(AD_LDAP_URL=f"ldap://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError, match="bind"):
        ADClient(settings).health()


def test_busy_is_throttled(ad: AdSim) -> None:
    ad.fault("throttle", retry_after=2)
    with ADClient(ad.settings()) as client, pytest.raises(ThrottledError) as info:
        client.find_user(email="x@corp.example")
    assert info.value.retry_after is None  # LDAP has no Retry-After; the message is for people only
    assert info.value.status is None
    assert not counts_against_breaker(info.value) and is_retryable(info.value)


def test_busy_mid_session_is_throttled(ad: AdSim) -> None:
    with ADClient(ad.settings()) as client:
        client.find_user(username="u0001")
        ad.fault("throttle")
        with pytest.raises(ThrottledError):
            client.find_user(username="u0001")


def test_expired_credentials_are_auth_errors(ad: AdSim) -> None:
    ad.fault("expired_token")
    with ADClient(ad.settings()) as client, pytest.raises(AuthError, match="invalidCredentials"):
        client.find_user(email="x@corp.example")
    assert ad.count("bind") == 1  # refused binds are not retried here


def test_wrong_password_is_an_auth_error_and_never_shows_the_password(
    ad: AdSim, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-password-\u00e9-1234"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        ADClient(ad.settings(AD_BIND_PASSWORD=secret)).health()
    assert secret not in str(info.value) and secret not in repr(info.value.to_dict())
    assert secret not in caplog.text
    assert ad.sim.slapd.bind_password not in caplog.text


def test_malformed_answer_is_malformed(ad: AdSim) -> None:
    ad.fault("malformed")
    with ADClient(ad.settings()) as client, pytest.raises(MalformedResponseError):
        client.find_user(email="x@corp.example")


def test_malformed_answer_mid_session_is_malformed_and_the_connection_is_replaced(ad: AdSim) -> None:
    with ADClient(ad.settings()) as client:
        client.find_user(username="u0001")
        ad.fault("malformed")
        with pytest.raises(MalformedResponseError):
            client.find_user(username="u0001")
        ad.faults.clear()
        assert client.find_user(username="u0001") is not None
    assert ad.count("bind") == 2


def test_dropped_connection_is_reopened_once(ad: AdSim) -> None:
    with ADClient(ad.settings()) as client:
        client.find_user(username="u0001")  # bind + search + manager read, before the fault
        ad.fault("flaky", fail_every=3)
        assert client.find_user(username="u0000") is not None  # op 1 (no manager)
        assert client.find_user(username="u0000") is not None  # op 2
        # op 3 is dropped; the client reopens (bind = op 4) and repeats the search (op 5): the caller sees nothing
        assert client.find_user(username="u0000") is not None
    assert ad.count("bind") == 2


def test_a_connection_dropped_again_after_reopening_is_transient(ad: AdSim) -> None:
    with ADClient(ad.settings()) as client:
        client.find_user(username="u0000")
        ad.fault("flaky", fail_every=2)
        assert client.find_user(username="u0000") is not None  # op 1
        with pytest.raises(TransientError):  # op 2 dropped, bind op 3, search op 4 dropped
            client.find_user(username="u0000")
    assert ad.count("bind") == 2


def test_a_fresh_connection_dropped_is_not_reopened(ad: AdSim) -> None:
    ad.fault("flaky", fail_every=2)
    with ADClient(ad.settings()) as client, pytest.raises(TransientError):
        client.find_user(username="u0000")  # bind op 1, search op 2 dropped
    assert ad.count("bind") == 1


def test_timeout_is_transient_and_not_retried(ad: AdSim) -> None:
    with ADClient(ad.settings(NEXUS_HTTP_TIMEOUT_S=0.2)) as client:  # ldap3 rounds it up to 1 s
        client.find_user(username="u0000")
        ad.fault("slow", delay_ms=1600)
        with pytest.raises(TransientError, match="timed out"):
            client.find_user(username="u0000")
    assert ad.count("bind") == 1  # a timeout is not a dropped connection: no reopen


def test_paging_interrupted_is_transient(ad: AdSim) -> None:
    ad.fault("truncated")
    seen: list[PersonRecord] = []
    with ADClient(ad.settings(), page_size=PAGE) as client, pytest.raises(TransientError, match="unavailable"):
        seen.extend(client.list_users())
    assert len(seen) <= PAGE  # never a silent partial listing


def test_missing_base_dn_is_a_bad_request(ad: AdSim) -> None:
    settings = ad.settings(AD_BASE_DN="OU=Nowhere,DC=corp,DC=example")
    with ADClient(settings) as client, pytest.raises(BadRequestError, match="noSuchObject"):
        client.find_user(email="x@corp.example")


@pytest.mark.parametrize(
    ("code", "name", "error"),
    [
        (49, "invalidCredentials", AuthError),
        (50, "insufficientAccessRights", AuthError),
        (51, "busy", ThrottledError),
        (52, "unavailable", TransientError),
        (3, "timeLimitExceeded", TransientError),
        (32, "noSuchObject", BadRequestError),
        (34, "invalidDNSyntax", BadRequestError),
        (87, "filterError", BadRequestError),
    ],
)
def test_result_code_mapping(code: int, name: str, error: type[Exception]) -> None:
    mapped = map_result({"result": code, "description": name, "message": "m"}, "find user")
    assert type(mapped) is error
    assert f"({code})" in str(mapped)


def test_no_such_object_on_a_base_read_is_not_found() -> None:
    assert isinstance(map_result({"result": 32, "description": "noSuchObject"}, "read", base_read=True), NotFoundError)


# --- the mock fallback -------------------------------------------------------------------------------------------


def test_injected_mock_directory_with_faults_and_log() -> None:
    faults, log = FaultBoard(), RequestLog()

    class Creds:
        ad_bind_dn = "CN=svc-nexus,OU=Service Accounts,DC=corp,DC=example"
        ad_bind_password = "mock-secret"

    directory = mock_directory(make_org(), Creds(), faults=faults, log=log)
    factory = directory.connection_factory
    settings = Settings(
        AD_LDAP_URL=mock_url(), AD_BIND_DN=Creds.ad_bind_dn, AD_BIND_PASSWORD=Creds.ad_bind_password, AD_BASE_DN=BASE_DN
    )
    client = ADClient(settings, connection_factory=factory, page_size=PAGE)
    assert client.find_user(email="kkowalski6@example.com") is not None
    assert len(list(client.list_users())) == PEOPLE
    assert log.snapshot()["ad"]["paths"]["search"] == 2 + 4  # lookup + manager read, 4 pages
    for mode, error in [
        ("down", TransientError),
        ("throttle", ThrottledError),
        ("expired_token", AuthError),
        ("malformed", MalformedResponseError),
    ]:
        faults.set(Fault.parse({"system": "ad", "mode": mode}))
        with pytest.raises(error):
            ADClient(settings, connection_factory=factory).find_user(email="kkowalski6@example.com")
    faults.clear()
    bad = settings.model_copy(update={"ad_bind_password": type(settings.ad_bind_password)("nope")})
    with pytest.raises(AuthError):
        ADClient(bad, connection_factory=factory).health()


def test_a_mock_url_without_its_directory_is_refused() -> None:
    """No directory is looked up by URL: a client built from settings alone cannot reach an in-process one."""
    settings = Settings(AD_LDAP_URL=mock_url(), AD_BASE_DN=BASE_DN)
    with pytest.raises(BadRequestError, match="in-process"):
        default_connection(settings)
    with pytest.raises(BadRequestError, match="in-process"):
        ADClient(settings).health()


def test_mock_logs_escaped_filters_like_the_proxy() -> None:
    log = RequestLog()
    directory = MockDirectory(make_org(), log=log)
    client = ADClient(directory.settings(), connection_factory=directory.connection_factory)
    assert client.find_user(email="*)(mail=*") is None
    assert log.recent()[-1]["query"] == (
        f"(&{PERSON_FILTER}"
        "(|(mail=\\2a\\29\\28mail=\\2a)(userPrincipalName=\\2a\\29\\28mail=\\2a)(proxyAddresses=smtp:\\2a\\29\\28mail=\\2a)))"
    )


# --- DN spelling -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "spelled"),
    [
        ("cn=a b,ou=users,dc=corp,dc=example", "CN=a b,OU=users,DC=corp,DC=example"),
        ("cn=x,ou=legal\\2C risk & compliance,dc=y", "CN=x,OU=legal\\, risk & compliance,DC=y"),
        ("CN=Jos\\C3\\A9,DC=x", "CN=José,DC=x"),
        ("cn=a\\2Bb+sn=c,dc=x", "CN=a\\+b+SN=c,DC=x"),
        ("CN=\\#x\\ ,DC=y", "CN=\\#x\\ ,DC=y"),
        ("CN=Smith\\, John,DC=x", "CN=Smith\\, John,DC=x"),
    ],
)
def test_ad_dn_spelling(given: str, spelled: str) -> None:
    assert ad_dn(given) == spelled
    assert dn_key(given) == spelled.lower()


def test_dn_value_escaping_round_trips() -> None:
    for value in ("Legal, Risk & Compliance", "a+b", '"q"', "#lead", " pad ", "back\\slash", "José", "nul\x00"):
        assert unescape_dn_value(escape_dn_value(value)) == value
