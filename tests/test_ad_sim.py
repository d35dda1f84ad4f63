"""The AD simulator: slapd loaded from an org, and the fault proxy in front of it, seen through plain ldap3."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import BASE, NONE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from clients.ad import ad_dn, unescape_dn_value
from clients.ad.schema import PERSON_FILTER
from nexus.sim import ldap_server
from nexus.sim.ldap_entries import DEFAULT_BIND_DN, render_ldif, split_rdn
from nexus.sim.ldap_proxy import (
    BUSY,
    INVALID_CREDENTIALS,
    UNAVAILABLE,
    frame_length,
    garbage,
    ldap_result,
    parse_request,
)
from nexus.sim.ldap_server import SlapdError, SlapdServer
from nexus.sim.org_model import AdUser
from tests._ad_fixtures import (
    BASE_DN,
    DISABLED,
    PEOPLE,
    AdSim,
    make_org,
    require_slapd,
    running_sim,
    user_by_index,
)

PERSON = f"(&{PERSON_FILTER})"
PAGED = "1.2.840.113556.1.4.319"
#: User accounts in every simulated directory that are not people (a DC has them too).
NOT_PEOPLE = {"Administrator", "Guest", "krbtgt", "svc-nexus"}


def found(conn: Connection) -> list[dict[str, Any]]:
    """The entries of the last search (continuation references left out)."""
    return [e for e in conn.response if e["type"] == "searchResEntry"]


@pytest.fixture(scope="module")
def ad() -> Iterator[AdSim]:
    yield from running_sim()


@pytest.fixture(autouse=True)
def _clean(ad: AdSim) -> Iterator[None]:
    ad.reset()
    yield
    ad.reset()


def direct(ad: AdSim) -> Connection:
    """Bound straight to slapd (no proxy)."""
    slapd = ad.sim.slapd
    return Connection(
        Server(slapd.host, port=slapd.port, get_info=NONE), slapd.bind_dn, slapd.bind_password, auto_bind=True
    )


def via_proxy(ad: AdSim, *, bind: bool = True, timeout: int = 5) -> Connection:
    assert ad.sim.proxy is not None
    conn = Connection(
        Server("127.0.0.1", port=ad.sim.proxy.port, get_info=NONE, connect_timeout=2),
        ad.sim.slapd.bind_dn,
        ad.sim.slapd.bind_password,
        receive_timeout=timeout,
    )
    if bind:
        assert conn.bind(), conn.result
    return conn


def paged(conn: Connection, flt: str, size: int) -> tuple[list[dict[str, Any]], int]:
    entries: list[dict[str, Any]] = []
    pages, cookie = 0, None
    while True:
        assert conn.search(BASE_DN, flt, SUBTREE, attributes=["sAMAccountName"], paged_size=size, paged_cookie=cookie)
        pages += 1
        entries += [e for e in conn.response if e["type"] == "searchResEntry"]
        cookie = conn.result["controls"][PAGED]["value"]["cookie"]
        if not cookie:
            return entries, pages


# --- slapd -------------------------------------------------------------------------------------------------------


def test_slapd_is_installed() -> None:
    require_slapd()
    assert ldap_server.is_available()


def test_pages_every_entry_over_more_than_three_pages(ad: AdSim) -> None:
    entries, pages = paged(via_proxy(ad), PERSON, size=7)
    assert len(entries) == PEOPLE + len(NOT_PEOPLE)
    assert pages == 5
    sams = {e["raw_attributes"]["sAMAccountName"][0].decode() for e in entries}
    assert sams == {u.sam for u in ad.org.ad} | NOT_PEOPLE


def test_sizelimit_is_unlimited(ad: AdSim) -> None:
    conn = direct(ad)
    conn.search(BASE_DN, "(objectClass=*)", SUBTREE, attributes=["cn"])
    assert conn.result["result"] == 0
    # users + base + service account + OUs (one per department, one Users OU each, Service Accounts)
    # + CN=Users with the 3 built-in accounts + CN=Computers with one computer
    assert len(found(conn)) == PEOPLE + 2 + 4 * 2 + 1 + 4 + 2
    assert [e["type"] for e in conn.response].count("searchResRef") == 1  # DC=DomainDnsZones


def test_bitwise_rule_selects_disabled_accounts_natively(ad: AdSim) -> None:
    conn = via_proxy(ad)
    conn.search(BASE_DN, "(userAccountControl:1.2.840.113556.1.4.803:=2)", attributes=["sAMAccountName"])
    assert conn.result["result"] == 0
    disabled = {e["raw_attributes"]["sAMAccountName"][0].decode() for e in found(conn)}
    assert disabled == {f"u{i:04d}" for i in DISABLED} | {"Guest", "krbtgt"}
    conn.search(BASE_DN, f"(&{PERSON}(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", attributes=["cn"])
    assert len(found(conn)) == PEOPLE - len(DISABLED) + 2  # + Administrator, svc-nexus


def test_entries_round_trip_with_escaped_and_non_ascii_dns(ad: AdSim) -> None:
    conn = direct(ad)
    legal = user_by_index(ad.org, 2)  # OU=Legal\, Risk & Compliance, non-ASCII surname
    assert "Legal\\, Risk" in legal.dn
    conn.search(legal.dn, "(objectClass=*)", BASE, attributes=["*"])
    assert conn.result["result"] == 0, conn.result
    attrs = conn.response[0]["raw_attributes"]
    assert attrs["cn"][0].decode() == legal.cn
    assert attrs["userPrincipalName"][0].decode() == legal.upn
    assert attrs["manager"][0].decode() == legal.manager_dn
    assert {v.decode() for v in attrs["proxyAddresses"]} == set(legal.proxy_addresses)
    assert attrs["userAccountControl"][0] == b"512"
    # slapd spells DNs its own way (lower-case types, \\2C escapes); ad_dn() gives back the AD spelling.
    assert ad_dn(conn.response[0]["dn"]) == legal.dn  # slapd: "cn=...,ou=legal\\2C risk..."
    conn.search("OU=R&D (Labs),DC=corp,DC=example", "(objectClass=organizationalUnit)", BASE, attributes=["ou"])
    assert conn.response[0]["raw_attributes"]["ou"] == [b"R&D (Labs)"]


def test_lookups_are_case_insensitive_and_indexed_attributes_match(ad: AdSim) -> None:
    conn = direct(ad)
    user = user_by_index(ad.org, 5)
    for flt in (
        f"(mail={user.mail.upper()})",  # type: ignore[union-attr]
        f"(userPrincipalName={user.upn})",
        f"(proxyAddresses=SMTP:{user.upn})",
        f"(proxyAddresses={user.proxy_addresses[1].lower()})",
        f"(sAMAccountName={user.sam.upper()})",
        f"(employeeID={user.employee_id})",
    ):
        conn.search(BASE_DN, flt, attributes=["cn"])
        assert [e["dn"].lower() for e in found(conn)] == [user.dn.lower()], flt


def test_the_service_account_is_a_user_as_on_a_domain_controller(ad: AdSim) -> None:
    conn = direct(ad)
    conn.search(BASE_DN, f"(&{PERSON}(cn=svc-nexus))", attributes=["objectClass", "userPassword"])
    assert len(found(conn)) == 1  # the person filter finds it: the client must skip it (clients.ad.exclusions)
    assert b"user" in found(conn)[0]["raw_attributes"]["objectClass"]
    assert not found(conn)[0]["raw_attributes"].get("userPassword")  # auth-only attribute


def test_anonymous_reads_nothing(ad: AdSim) -> None:
    slapd = ad.sim.slapd
    conn = Connection(Server(slapd.host, port=slapd.port, get_info=NONE), auto_bind=True)
    conn.search(BASE_DN, PERSON, attributes=["cn"])
    assert not conn.response


def test_runtime_changes_modify_delete_add(ad: AdSim) -> None:
    slapd = ad.sim.slapd
    user = user_by_index(ad.org, 9)
    conn = direct(ad)

    def read() -> dict[str, list[bytes]]:
        conn.search(user.dn, "(objectClass=*)", BASE, attributes=["title", "userAccountControl", "department"])
        if not conn.response:
            return {}
        return {k: v for k, v in conn.response[0]["raw_attributes"].items() if v}

    try:
        slapd.modify(user.dn, {"title": "Changed Title", "department": None})
        slapd.set_enabled(user.dn, False)
        attrs = read()
        assert attrs["title"] == [b"Changed Title"]
        assert attrs["userAccountControl"] == [b"514"]
        assert not attrs.get("department")
        slapd.update_user(user)  # back to what the org says
        assert read()["title"] == [user.title.encode()]  # type: ignore[union-attr]
        assert read()["department"] == [user.department.encode()]  # type: ignore[union-attr]
        assert slapd.delete_users([user.dn]) == 1
        assert read() == {}
        with pytest.raises(SlapdError, match="noSuchObject"):
            slapd.delete_users([user.dn])
    finally:
        if not read():
            slapd.add_user(user)
    assert read()["userAccountControl"] == [b"512"]


def test_stop_kills_slapd_and_removes_its_files() -> None:
    require_slapd()
    server = SlapdServer(make_org(3))
    with server:
        pid, workdir = server.pid, server.workdir
        assert pid is not None and workdir is not None and workdir.exists()
        assert server.running
        assert server.load_seconds > 0 and server.start_seconds > 0
    assert not server.running
    assert not Path(workdir).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


def test_bad_data_fails_loudly_with_slapadds_words() -> None:
    require_slapd()
    stray = AdUser(
        dn="CN=Stray,OU=Users,DC=other,DC=example", cn="Stray", sam="stray", upn="stray@x", mail=None,
        display_name="Stray", given_name="S", sn="Tray", title=None, department=None, manager_dn=None,
        employee_id=None, enabled=True,
    )  # fmt: skip
    with pytest.raises(SlapdError, match="not under the base DN"):
        SlapdServer(users=[stray]).start()
    twin = user_by_index(make_org(), 1)
    with pytest.raises(SlapdError, match=r"slapadd failed.*already exists"):
        SlapdServer(users=[twin, twin]).start()  # two people with one DN: the org is wrong, say so


def test_ldif_escapes_what_ldif_cannot_carry_plainly() -> None:
    user = user_by_index(make_org(), 0)
    text = "".join(render_ldif([user], base_dn=BASE_DN, bind_dn=DEFAULT_BIND_DN, bind_password_hash="x"))
    assert "dn:: " in text  # the non-ASCII DN is base64
    assert "sAMAccountName: u0000\n" in text
    assert text.index("dn: DC=corp,DC=example") < text.index("dn: OU=Service Accounts")
    assert split_rdn("CN=a\\, b,OU=x,DC=y") == ("CN=a\\, b", "OU=x,DC=y")
    assert unescape_dn_value("Legal\\, Risk \\2B Co") == "Legal, Risk + Co"
    assert unescape_dn_value("Jos\\c3\\a9") == "José"


# --- the proxy: faults -------------------------------------------------------------------------------------------


def test_down_resets_new_connections(ad: AdSim) -> None:
    ad.fault("down")
    conn = via_proxy(ad, bind=False)
    with pytest.raises(LDAPException) as info:
        conn.bind()
    assert "Connection reset" in str(info.value) or "terminated" in str(info.value)
    assert ad.count("bind") == 0  # nothing reached slapd


def test_down_drops_an_open_connection_on_its_next_operation(ad: AdSim) -> None:
    conn = via_proxy(ad)
    ad.fault("down")
    with pytest.raises(LDAPException):
        conn.search(BASE_DN, PERSON, attributes=["cn"])


def test_flaky_drops_every_nth_operation(ad: AdSim) -> None:
    ad.fault("flaky", fail_every=2)
    for _ in range(2):
        conn = via_proxy(ad)  # odd operation: the bind passes
        with pytest.raises(LDAPException):  # even operation: the connection is dropped mid-call
            conn.search(BASE_DN, PERSON, attributes=["cn"])
    assert ad.count("bind") == 2 and ad.count("search") == 2


def test_throttle_answers_busy_with_the_same_message_id(ad: AdSim) -> None:
    conn = via_proxy(ad)
    ad.fault("throttle", retry_after=3)
    assert not conn.search(BASE_DN, PERSON, attributes=["cn"])
    assert conn.result["result"] == BUSY
    assert "retry after 3s" in conn.result["message"]
    fresh = via_proxy(ad, bind=False)
    assert not fresh.bind()
    assert fresh.result["result"] == BUSY
    assert ad.count("search") == 1 and ad.count("bind") == 2  # logged even though slapd never saw them


def test_expired_token_refuses_binds_as_invalid_credentials(ad: AdSim) -> None:
    ad.fault("expired_token")
    conn = via_proxy(ad, bind=False)
    assert not conn.bind()
    assert conn.result["result"] == INVALID_CREDENTIALS
    assert "data 532" in conn.result["message"]  # AD's "password expired"


def test_malformed_answers_cannot_be_decoded(ad: AdSim) -> None:
    ad.fault("malformed")
    conn = via_proxy(ad, bind=False)
    with pytest.raises(Exception) as info:  # ldap3 has no error of its own for it: whatever its decoder hits
        conn.bind()
    assert not isinstance(info.value, LDAPException) or "receiv" not in str(info.value)


def test_slow_delays_each_response(ad: AdSim) -> None:
    conn = via_proxy(ad)
    ad.fault("slow", delay_ms=250)
    started = time.perf_counter()
    assert conn.search(BASE_DN, "(sAMAccountName=u0001)", attributes=["cn"])
    assert conn.search(BASE_DN, "(sAMAccountName=u0002)", attributes=["cn"])
    assert time.perf_counter() - started >= 0.5


def test_truncated_breaks_paging_after_the_first_page(ad: AdSim) -> None:
    ad.fault("truncated")
    conn = via_proxy(ad)
    assert conn.search(BASE_DN, PERSON, attributes=["cn"], paged_size=7)
    assert len(found(conn)) == 7
    cookie = conn.result["controls"][PAGED]["value"]["cookie"]
    assert not conn.search(BASE_DN, PERSON, attributes=["cn"], paged_size=7, paged_cookie=cookie)
    assert conn.result["result"] == UNAVAILABLE


def test_clearing_faults_restores_service(ad: AdSim) -> None:
    ad.fault("down")
    ad.faults.clear()
    conn = via_proxy(ad)
    assert conn.search(BASE_DN, "(sAMAccountName=u0001)", attributes=["cn"])
    assert len(found(conn)) == 1


# --- the proxy: request log --------------------------------------------------------------------------------------


def test_request_log_counts_operations_and_records_filters(ad: AdSim) -> None:
    conn = via_proxy(ad)
    conn.search(BASE_DN, "(&(mail=a*b)(|(cn=x)(!(sn=y))))", attributes=["cn"])
    conn.search(BASE_DN, f"(mail={escape_filter_chars('*)(mail=*')})", attributes=["cn"])
    conn.search(BASE_DN, "(userAccountControl:1.2.840.113556.1.4.803:=2)", attributes=["cn"])
    conn.unbind()
    deadline = time.monotonic() + 5  # ldap3 does not wait for the unbind to be read: let the proxy record it
    while ad.log.snapshot()["ad"]["total"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    snapshot = ad.log.snapshot()["ad"]
    assert snapshot == {"total": 5, "paths": {"bind": 1, "search": 3, "unbind": 1}}
    assert ad.queries() == [
        "(&(mail=a*b)(|(cn=x)(!(sn=y))))",
        "(mail=\\2a\\29\\28mail=\\2a)",
        "(userAccountControl:1.2.840.113556.1.4.803:=2)",
    ]
    assert ad.queries("bind") == [ad.sim.slapd.bind_dn]
    assert all(ad.sim.slapd.bind_password not in r["query"] for r in ad.log.recent())


def test_flaky_rhythm_is_per_operation(ad: AdSim) -> None:
    ad.fault("flaky", fail_every=3)
    conn = via_proxy(ad)  # 1 bind
    conn.search(BASE_DN, "(cn=a)", attributes=["cn"])  # 2
    assert conn.result["result"] == 0
    with pytest.raises(LDAPException):  # 3: dropped
        conn.search(BASE_DN, "(cn=b)", attributes=["cn"])
    assert ad.count("bind") == 1 and ad.count("search") == 2


# --- the proxy: wire helpers -------------------------------------------------------------------------------------


def test_ber_framing_helpers() -> None:
    busy = ldap_result(300, 0x65, BUSY, "x")
    assert frame_length(busy) == len(busy)
    assert frame_length(busy[:1]) is None
    request = parse_request(busy)
    assert (request.message_id, request.op_tag) == (300, 0x65)
    junk = garbage(7)
    assert frame_length(junk) == len(junk) and parse_request(junk).op_tag == 0x04
    long = ldap_result(1, 0x61, 0, "m" * 300)
    assert long[1] == 0x82 and frame_length(long) == len(long)
    with pytest.raises(ValueError):
        frame_length(b"\x30\x80")  # indefinite length: never LDAP


# --- AD's shape, judged by stock tools -----------------------------------------------------------------------------


def test_user_entries_have_ads_object_shape(ad: AdSim) -> None:
    conn = direct(ad)
    user = user_by_index(ad.org, 1)
    conn.search(user.dn, "(objectClass=*)", BASE, attributes=["objectClass", "objectCategory", "sAMAccountType",
                                                              "accountExpires"])
    attrs = found(conn)[0]["raw_attributes"]
    assert [v.decode() for v in attrs["objectClass"]] == ["top", "person", "organizationalPerson", "user"]
    assert ad_dn(attrs["objectCategory"][0].decode()) == f"CN=Person,CN=Schema,CN=Configuration,{BASE_DN}"
    assert attrs["sAMAccountType"] == [b"805306368"]
    assert attrs["accountExpires"] == [b"9223372036854775807"]  # never, as AD writes a new account's


def test_root_dse_names_the_default_naming_context(ad: AdSim) -> None:
    conn = direct(ad)
    conn.search("", "(objectClass=*)", BASE, attributes=["defaultNamingContext", "schemaNamingContext"])
    attrs = found(conn)[0]["raw_attributes"]
    assert ad_dn(attrs["defaultNamingContext"][0].decode()) == BASE_DN
    assert ad_dn(attrs["schemaNamingContext"][0].decode()) == f"CN=Schema,CN=Configuration,{BASE_DN}"


def test_builtin_accounts_a_computer_and_a_continuation_reference_are_there(ad: AdSim) -> None:
    conn = direct(ad)
    conn.search(BASE_DN, "(|(sAMAccountName=Administrator)(sAMAccountName=Guest)(sAMAccountName=krbtgt))",
                attributes=["sAMAccountName"])
    assert len(found(conn)) == 3
    assert any(e["type"] == "searchResRef" for e in conn.response)  # DC=DomainDnsZones, as under an AD root
    conn.search(BASE_DN, "(objectClass=computer)", attributes=["sAMAccountType"])
    assert [e["raw_attributes"]["sAMAccountType"] for e in found(conn)] == [[b"805306369"]]
    conn.search(BASE_DN, f"(&{PERSON}(objectClass=computer))", attributes=["cn"])
    assert found(conn) == []  # the person filter skips computers


def test_stock_ldapsearch_pages_every_person(ad: AdSim) -> None:
    """Debian's ldapsearch (OpenLDAP's client, not ours) pages the simulator through the proxy, 5 a page."""
    import shutil
    import subprocess

    ldapsearch = shutil.which("ldapsearch")
    if ldapsearch is None:
        pytest.fail("ldapsearch not installed: `apt-get install ldap-utils` (CI: .ci/run)")
    slapd = ad.sim.slapd
    out = subprocess.run(
        [ldapsearch, "-x", "-LLL", "-o", "ldif-wrap=no", "-H", ad.sim.url, "-D", slapd.bind_dn, "-w",
         slapd.bind_password, "-b", BASE_DN, "-E", "pr=5/noprompt", PERSON, "sAMAccountName"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0, out.stderr
    sams = [line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("sAMAccountName: ")]
    assert set(sams) == {u.sam for u in ad.org.ad} | NOT_PEOPLE and len(sams) == len(set(sams))
    assert ad.count("search") == -(-(PEOPLE + len(NOT_PEOPLE)) // 5)  # one request per page of 5


@pytest.mark.parametrize("form", ["dn", "upn", "domain"])
def test_binds_by_dn_upn_or_domain_user_as_ad_accepts(ad: AdSim, form: str) -> None:
    slapd = ad.sim.slapd
    name = {"dn": slapd.bind_dn, "upn": "svc-nexus@corp.example", "domain": "CORP\\svc-nexus"}[form]
    assert ad.sim.proxy is not None
    conn = Connection(Server("127.0.0.1", port=ad.sim.proxy.port, get_info=NONE), name, slapd.bind_password)
    assert conn.bind(), conn.result
    whoami = str(conn.extend.standard.who_am_i())
    assert whoami.startswith("dn:") and ad_dn(whoami[3:]).lower() == slapd.bind_dn.lower()  # slapd saw the DN
    conn.search(BASE_DN, PERSON, attributes=["cn"], paged_size=5)
    assert found(conn)
    assert ad.queries("bind") == [name]  # logged as the client sent it
    wrong = Connection(Server("127.0.0.1", port=ad.sim.proxy.port, get_info=NONE), name, "not-the-password")
    assert not wrong.bind() and wrong.result["result"] == 49


def test_the_client_binds_with_a_upn_and_a_domain_user(ad: AdSim) -> None:
    from clients.ad import ADClient

    for name in ("svc-nexus@corp.example", "CORP\\svc-nexus"):
        with ADClient(ad.settings(AD_BIND_DN=name), page_size=7) as client:
            records = list(client.list_users())
        assert len(records) == PEOPLE and "svc-nexus" not in {r.username for r in records}


def test_a_dc_requiring_signing_refuses_plain_simple_binds_with_stronger_auth_required(ad: AdSim) -> None:
    from clients.ad import ADClient
    from nexus.errors import AuthError, is_retryable

    assert ad.sim.proxy is not None
    ad.sim.proxy.require_tls_binds = True
    try:
        with pytest.raises(AuthError) as caught, ADClient(ad.settings()) as client:
            client.health()
    finally:
        ad.sim.proxy.require_tls_binds = False
    message = str(caught.value)
    assert "strongerAuthRequired (8)" in message and "ldaps://" in message and "AD_START_TLS=true" in message
    assert not is_retryable(caught.value)
