"""The Workday, Helix and FedEx simulator tests' harness (``nexus.testing.sims``) with their defaults: a generated
org served over a real socket, a fake clock shared by the simulator's token issuer and the client, short tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

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


def system_fixtures(make: Callable[[SimContext], SystemSim], client_cls: Callable[..., Any]) -> tuple[Any, Any, Any]:
    """The three fixtures every HTTP system's tests share, given the module's own ``org`` fixture:
    ``harness`` (one simulator for the module), ``sim`` (the harness reset around each test: faults, request log,
    tokens) and ``client`` (the system's client on the harness's settings and clock). Bind them by these names:
    ``harness, sim, client = system_fixtures(FedexSim, FedexClient)``."""

    @pytest.fixture(scope="module")
    def harness(org: Org) -> Iterator[SimHarness]:
        h = start_sim(make, org)
        yield h
        h.stop()

    @pytest.fixture()
    def sim(harness: SimHarness) -> Iterator[SimHarness]:
        harness.reset()
        yield harness
        harness.reset()

    @pytest.fixture()
    def client(sim: SimHarness) -> Iterator[Any]:
        c = client_cls(sim.settings(), clock=sim.clock)
        yield c
        c.close()

    return harness, sim, client
