"""The AD client over TLS against a real slapd with a certificate from a CA made for the test.

``ldaps://`` and StartTLS verify the server certificate by default (CA and host name): an unknown CA or a
certificate for another host is refused; turning verification off takes ``AD_TLS_VERIFY=false`` and is logged
loudly. A directory that requires TLS for simple binds (slapd ``security simple_bind=``, as a hardened DC does)
refuses a plain bind with a message that tells the operator what to set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import clients.ad.connection as ad_connection
from clients.ad import ADClient
from nexus.errors import AuthError, is_retryable
from nexus.settings import Settings
from nexus.sim.ldap_server import SlapdServer
from tests._ad_fixtures import PEOPLE, Pki, make_org, make_pki, require_slapd


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _slapd(pki: Pki, cert: Path, *, simple_bind_ssf: int = 0) -> Iterator[SlapdServer]:
    require_slapd()
    server = SlapdServer(make_org(), tls_cert=cert, tls_key=pki.key_file, simple_bind_ssf=simple_bind_ssf)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def strict(pki: Pki) -> Iterator[SlapdServer]:
    """slapd with the right certificate that refuses simple binds on connections without TLS."""
    yield from _slapd(pki, pki.right_cert, simple_bind_ssf=128)


@pytest.fixture(scope="module")
def wrong_host(pki: Pki) -> Iterator[SlapdServer]:
    yield from _slapd(pki, pki.wrong_host_cert)


def settings(server: SlapdServer, url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "AD_LDAP_URL": url, "AD_BIND_DN": server.bind_dn, "AD_BIND_PASSWORD": server.bind_password,
        "AD_BASE_DN": server.base_dn, "NEXUS_HTTP_TIMEOUT_S": 5, "NEXUS_HTTP_CONNECT_TIMEOUT_S": 2,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


def people(s: Settings) -> int:
    with ADClient(s, page_size=10) as client:
        return sum(1 for _ in client.list_users())


def test_ldaps_with_the_right_ca_lists_everyone(strict: SlapdServer, pki: Pki) -> None:
    assert people(settings(strict, strict.ldaps_url, AD_CA_FILE=str(pki.ca_file))) == PEOPLE


def test_start_tls_with_the_right_ca_lists_everyone(strict: SlapdServer, pki: Pki) -> None:
    assert people(settings(strict, strict.url, AD_START_TLS=True, AD_CA_FILE=str(pki.ca_file))) == PEOPLE


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_an_unknown_ca_is_refused(strict: SlapdServer, pki: Pki, start_tls: bool) -> None:
    url = strict.url if start_tls else strict.ldaps_url
    with pytest.raises(AuthError, match="AD_CA_FILE") as caught:
        people(settings(strict, url, AD_START_TLS=start_tls, AD_CA_FILE=str(pki.other_ca_file)))
    assert not is_retryable(caught.value)
    assert strict.bind_password not in str(caught.value)


def test_no_ca_file_means_the_system_cas_which_do_not_know_the_test_ca(strict: SlapdServer) -> None:
    with pytest.raises(AuthError):
        people(settings(strict, strict.ldaps_url))


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_a_certificate_for_another_host_is_refused(wrong_host: SlapdServer, pki: Pki, start_tls: bool) -> None:
    url = wrong_host.url if start_tls else wrong_host.ldaps_url
    with pytest.raises(AuthError, match="host"):
        people(settings(wrong_host, url, AD_START_TLS=start_tls, AD_CA_FILE=str(pki.ca_file)))


def test_verification_off_takes_an_explicit_setting_and_warns_once(
    wrong_host: SlapdServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ad_connection, "_warned_insecure", False)
    s = settings(wrong_host, wrong_host.ldaps_url, AD_TLS_VERIFY=False)
    with caplog.at_level(logging.WARNING, logger="clients.ad"):
        assert people(s) == PEOPLE
        assert people(s) == PEOPLE
    warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_plain_simple_bind_is_refused_with_a_message_naming_the_fix(strict: SlapdServer) -> None:
    with pytest.raises(AuthError) as caught:
        people(settings(strict, strict.url))
    message = str(caught.value)
    assert "ldaps://" in message and "AD_START_TLS=true" in message
    assert not is_retryable(caught.value)


def test_start_tls_with_an_ldaps_url_is_a_configuration_error(strict: SlapdServer, pki: Pki) -> None:
    from nexus.errors import BadRequestError

    with pytest.raises(BadRequestError, match="AD_START_TLS"):
        people(settings(strict, strict.ldaps_url, AD_START_TLS=True, AD_CA_FILE=str(pki.ca_file)))
