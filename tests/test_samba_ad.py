"""A real Active Directory judges the AD client and the slapd simulator: a Samba 4 AD DC (nexus.sim.samba_dc).

Behind the drill marker (CI runs `make drill`): the first run provisions the domain (~10-50 s, then cached).
The same org is loaded into Samba and served by the slapd simulator; Nexus's AD client must read the same people
from both, and stock ``ldapsearch`` must page the real DC.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from clients.ad.client import ADClient
from nexus.errors import AuthError
from nexus.settings import Settings
from nexus.sim import samba_dc
from nexus.sim.org_model import Org
from nexus.sim.samba_dc import SambaDC
from tests._ad_fixtures import AdSim, make_org, running_sim

pytestmark = pytest.mark.drill

BUILT_INS = {"administrator", "guest", "krbtgt", "svc-nexus"}


@pytest.fixture(scope="module")
def org() -> Org:
    return make_org()


@pytest.fixture(scope="module")
def dc(org: Org) -> Iterator[SambaDC]:
    if not samba_dc.is_available():
        pytest.fail("Samba is not installed: `apt-get install -y samba` (CI: scripts/test-prerequisites.sh)")
    with SambaDC.start(org) as running:
        yield running


@pytest.fixture(scope="module")
def slapd(org: Org) -> Iterator[AdSim]:
    yield from running_sim(org)


def _settings(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]  # the environment's names (aliases)


def test_a_real_dc_refuses_a_plain_simple_bind_and_says_why(dc: SambaDC) -> None:
    plain = {**dc.env(), "AD_LDAP_URL": f"ldap://{samba_dc.HOST}:{samba_dc.LDAP_PORT}"}
    with pytest.raises(AuthError, match="strongerAuthRequired"), ADClient(_settings(plain)) as client:
        client.health()


def test_stock_ldapsearch_pages_the_real_dc_with_its_ca(dc: SambaDC, org: Org) -> None:
    env = {**os.environ, "LDAPTLS_CACERT": str(dc.ca.ca_file), "LDAPTLS_REQCERT": "demand"}
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldaps://{samba_dc.HOST}", "-x",
         "-D", f"{samba_dc.DOMAIN}\\Administrator", "-w", samba_dc.ADMIN_PASSWORD, "-b", dc.base_dn,
         "-E", "pr=7/noprompt", "(&(objectCategory=person)(objectClass=user))", "sAMAccountName"],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    names = {line.split(":", 1)[1].strip().lower() for line in done.stdout.splitlines()
             if line.startswith("sAMAccountName:")}
    assert {u.sam.lower() for u in org.ad} <= names
    assert names >= BUILT_INS  # a real DC has them: the client must not take them for people


def test_the_client_reads_the_same_people_from_samba_as_from_the_simulator(dc: SambaDC, slapd: AdSim,
                                                                          org: Org) -> None:
    ours = {u.sam.lower() for u in org.ad}
    with ADClient(_settings(dc.env())) as real, ADClient(slapd.settings()) as simulated:
        from_dc = {(p.username or "").lower(): p for p in real.list_users() if (p.username or "").lower() in ours}
        from_sim = {(p.username or "").lower(): p for p in simulated.list_users()}
    assert set(from_dc) == set(from_sim) == ours
    # every field the drift rules read; a manager the org names but does not hold cannot exist in AD (links must
    # resolve): those are compared as absent
    dangling = {u.sam.lower() for u in org.ad if u.manager_dn
                and u.manager_dn.lower() not in {v.dn.lower() for v in org.ad}}
    compared = ("key", "employee_id", "email", "upn", "username", "display_name", "first_name", "last_name",
                "title", "department", "enabled", "aliases")
    for name, want in from_sim.items():
        got = from_dc[name]
        for attr in compared:
            assert getattr(got, attr) == getattr(want, attr), (name, attr)
        if name not in dangling:
            for attr in ("manager_ref", "manager_employee_id", "manager_email"):
                assert getattr(got, attr) == getattr(want, attr), (name, attr)
    assert any(p.manager_email for p in from_dc.values()) and any(p.enabled is False for p in from_dc.values())
    assert dc.dangling_managers == len(dangling)
