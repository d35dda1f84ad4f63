"""The Workday, Helix and FedEx simulator tests' harness (``nexus.testing.sims``) with their defaults: a generated
org served over a real socket, a fake clock shared by the simulator's token issuer and the client, short tokens."""

from __future__ import annotations

from collections.abc import Callable

from nexus.sim.base import SimContext, SystemSim
from nexus.sim.org_model import Org
from nexus.sim.orggen import generate_org
from nexus.testing.clock import FakeClock
from nexus.testing.sims import SimHarness

T0 = 1_700_000_000.0
TOKEN_LIFETIME_S = 300.0

#: Values that would widen a query if a client concatenated them into OData, LDAP, AR qualifications or SQL.
HOSTILE = (
    "' or 1 eq 1",
    "\" OR 'Status' != \"",
    "*)(mail=*",
    "a\"b'c\\d",
    "%",
    "x' OR '1'='1",
)


def make_org(people: int = 250, seed: int = 11) -> Org:
    return generate_org(people, seed)


def start_sim(make: Callable[[SimContext], SystemSim], org: Org, *, seed: int = 3) -> SimHarness:
    """One simulator on a real socket; its tokens live ``TOKEN_LIFETIME_S`` on the harness's fake clock."""
    return SimHarness.start(make, org, seed=seed, token_lifetime_s=TOKEN_LIFETIME_S, clock=FakeClock(T0),
                            settings={"http_timeout_s": 5.0})
