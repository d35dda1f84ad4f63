"""Test harness for the AD simulator and client: a small hand-built org with the awkward cases, slapd + the fault
proxy on free loopback ports, and settings pointing an :class:`ADClient` at them.

The org (``make_org``) has 25 people in four departments, two of whose names need escaping in a DN
(``Legal, Risk & Compliance``, ``R&D (Labs)``), non-ASCII names, disabled accounts, aliases, a person whose ``mail``
is an alias, a person with no mail and no employee id, a dangling manager DN, and managers listed AFTER their
reports (so the client's manager resolution has to wait for them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ldap3.utils.dn import escape_rdn

from nexus.settings import Settings
from nexus.sim import ldap_server
from nexus.sim.faults import Fault, FaultBoard, RequestLog
from nexus.sim.ldap_server import LdapSimulator
from nexus.sim.org_model import AdUser, Org

BASE_DN = "DC=corp,DC=example"
DEPARTMENTS = ("Engineering", "Sales", "Legal, Risk & Compliance", "R&D (Labs)")
PEOPLE = 25
DISABLED = frozenset({3, 11, 17})
NO_MAIL = 21  # no mail, no employee id, no proxy addresses
ALIAS_MAIL = 7  # mail is the alias flast@example.com, the UPN is the primary SMTP address
DANGLING = 23  # manager DN points at nobody
GHOST_DN = f"CN=Gone Person,OU=Users,OU=Sales,{BASE_DN}"
FIRST = ("José", "Zoë", "Ana", "Li", "Omar", "Ingrid", "Kwame", "Priya", "Sven", "Noor")
LAST = ("Núñez", "Smith", "O'Brien", "Nguyễn", "Müller", "Okafor", "Kowalski", "Tanaka", "Haddad", "Lund")
#: Values that would widen an LDAP filter if a client concatenated them.
HOSTILE = ("*)(mail=*", "*", ")(|(objectClass=*)", "a\\2a\\", "nul\x00byte", "x)(objectClass=user")


def person_name(i: int) -> tuple[str, str]:
    return FIRST[i % len(FIRST)], f"{LAST[i % len(LAST)]}{i}"


def make_users(people: int = PEOPLE) -> list[AdUser]:
    users: list[AdUser] = []
    for i in range(people):
        given, sn = person_name(i)
        cn = f"{given} {sn}"
        dept = DEPARTMENTS[i % len(DEPARTMENTS)]
        dn = f"CN={escape_rdn(cn)},OU=Users,OU={escape_rdn(dept)},{BASE_DN}"
        local = f"{given.lower()}.{sn.lower()}".replace("'", "")
        upn = f"{local}@corp.example"
        alias = f"{given[0].lower()}{sn.lower()}@example.com".replace("'", "")
        users.append(
            AdUser(
                dn=dn,
                cn=cn,
                sam=f"u{i:04d}",
                upn=upn,
                mail=None if i == NO_MAIL else (alias if i == ALIAS_MAIL else upn),
                display_name=cn,
                given_name=given,
                sn=sn,
                title=f"Title {i % 5}",
                department=dept,
                manager_dn=None,
                employee_id=None if i == NO_MAIL else str(100000 + i),
                enabled=i not in DISABLED,
                proxy_addresses=[] if i == NO_MAIL else [f"SMTP:{upn}", f"smtp:{alias}"],
                object_guid=f"{i:08x}-0000-4000-8000-000000000000",
            )
        )
    for i, user in enumerate(users):
        if i == DANGLING:
            user.manager_dn = GHOST_DN
        elif i > 0:
            user.manager_dn = users[(i - 1) // 4].dn
    # Managers after their reports: the listing meets a report before its manager.
    return list(reversed(users))


def make_org(people: int = PEOPLE) -> Org:
    return Org(
        seed=0,
        people=people,
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        domain="corp.example",
        base_dn=BASE_DN,
        workday=[],
        ad=make_users(people),
        entra=[],
        intune=[],
        lansweeper=[],
        helix_assets=[],
        helix_tickets=[],
        fedex=[],
        truth={},
    )


def user_by_index(org: Org, i: int) -> AdUser:
    return next(u for u in org.ad if u.sam == f"u{i:04d}")


def require_slapd() -> None:
    """Fail (never skip) when slapd is missing: CI installs it (.ci/run), so absence is a broken environment."""
    if not ldap_server.is_available():
        pytest.fail("OpenLDAP slapd/slapadd not installed: `apt-get install slapd ldap-utils` (CI: .ci/run)")


@dataclass
class AdSim:
    """A running simulator plus the fault board and request log it shares with the proxy."""

    org: Org
    sim: LdapSimulator
    faults: FaultBoard = field(default_factory=FaultBoard)
    log: RequestLog = field(default_factory=RequestLog)

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {**self.sim.env(), "NEXUS_HTTP_TIMEOUT_S": 5, "NEXUS_HTTP_CONNECT_TIMEOUT_S": 2}
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def fault(self, mode: str, **params: object) -> None:
        self.faults.set(Fault.parse({"system": "ad", "mode": mode, **params}))

    def reset(self) -> None:
        self.faults.clear()
        self.log.reset()

    def settle(self, quiet_s: float = 0.05, limit_s: float = 2.0) -> None:
        """Wait until the proxy has recorded what clients already sent (it reads an unbind on its own time, after
        the client closed): no new record for ``quiet_s``. A reset right after a close would otherwise let the late
        unbind land in the next test's counts."""
        deadline = time.monotonic() + limit_s
        last = self.log.snapshot()
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = self.log.snapshot()
            if now == last:
                return
            last = now

    def queries(self, path: str = "search") -> list[str]:
        return [r["query"] for r in self.log.recent("ad") if r["path"] == path]

    def count(self, path: str) -> int:
        return int(self.log.snapshot().get("ad", {}).get("paths", {}).get(path, 0))


def running_sim(org: Org | None = None) -> Iterator[AdSim]:
    """slapd + proxy for a module-scoped fixture (``yield from running_sim()``); stopped and removed after."""
    require_slapd()
    org = org or make_org()
    faults, log = FaultBoard(), RequestLog()
    sim = LdapSimulator(org, faults, log)
    sim.start()
    try:
        yield AdSim(org=org, sim=sim, faults=faults, log=log)
    finally:
        sim.stop()


@dataclass(frozen=True)
class Pki:
    """A CA made for one test run, and server certificates it signed (PEM files under ``directory``)."""

    directory: Path
    ca_file: Path
    right_cert: Path  # for 127.0.0.1 and localhost
    wrong_host_cert: Path  # signed by the CA, but for dc.wrong.example only
    key_file: Path
    other_ca_file: Path  # a CA that signed nothing slapd serves


def make_pki(directory: Path) -> Pki:
    """Generate a test CA, a server key, and certificates for the right and a wrong host name (cryptography)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("Nexus Test CA")
    _, other_cert = ca("Some Other CA")
    server_key = ec.generate_private_key(ec.SECP256R1())

    def server(cn: str, names: list[x509.GeneralName]) -> x509.Certificate:
        return (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
            .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

    def pem(path: Path, cert: x509.Certificate) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    key_file = directory / "server.key"
    key_file.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    right = server("localhost", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    wrong = server("dc.wrong.example", [x509.DNSName("dc.wrong.example")])
    return Pki(
        directory=directory,
        ca_file=pem(directory / "ca.pem", ca_cert),
        right_cert=pem(directory / "right.pem", right),
        wrong_host_cert=pem(directory / "wrong.pem", wrong),
        key_file=key_file,
        other_ca_file=pem(directory / "other-ca.pem", other_cert),
    )
