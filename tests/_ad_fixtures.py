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
from datetime import UTC, datetime

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
