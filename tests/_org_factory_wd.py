"""Test harness for the Workday, Helix and FedEx simulators: a generated org served over a real socket, a fake
clock shared by the simulator's token issuer and the client, and helpers for the `/_sim/*` control API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx

from nexus.settings import Settings
from nexus.sim.base import SimContext, SimCredentials, SystemSim
from nexus.sim.http_app import build_app
from nexus.sim.http_server import HttpServerHandle, serve_http
from nexus.sim.org_model import Org
from nexus.sim.orggen import generate_org
from nexus.sim.tokens import TokenIssuer

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


class FakeClock:
    """Seconds that only move when a test says so (shared by the simulator's tokens and the client's cache)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_org(people: int = 250, seed: int = 11) -> Org:
    return generate_org(people, seed)


@dataclass
class SimHarness:
    """One simulator on a real socket, plus its context and control helpers."""

    ctx: SimContext
    server: HttpServerHandle
    clock: FakeClock
    system: str
    prefix: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.url + self.prefix

    def settings(self, **overrides: Any) -> Settings:
        c = self.ctx.creds
        values: dict[str, Any] = {
            "workday_base_url": f"{self.url}/workday",
            "workday_tenant": c.workday_tenant,
            "workday_client_id": c.workday_client_id,
            "workday_client_secret": c.workday_client_secret,
            "workday_refresh_token": c.workday_refresh_token,
            "helix_base_url": f"{self.url}/helix",
            "helix_username": c.helix_username,
            "helix_password": c.helix_password,
            "fedex_base_url": f"{self.url}/fedex",
            "fedex_client_id": c.fedex_client_id,
            "fedex_client_secret": c.fedex_client_secret,
            "http_timeout_s": 5.0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def reset(self) -> None:
        self.ctx.faults.clear()
        self.ctx.log.reset()

    def fault(self, mode: str, **params: Any) -> None:
        response = httpx.post(f"{self.url}/_sim/faults", json={"system": self.system, "mode": mode, **params})
        response.raise_for_status()

    def expire_tokens(self) -> None:
        httpx.delete(f"{self.url}/_sim/tokens", params={"system": self.system}).raise_for_status()

    def counts(self) -> dict[str, int]:
        """Requests per sub-path that reached this system (from `GET /_sim/requests`)."""
        body = httpx.get(f"{self.url}/_sim/requests").json()
        paths: dict[str, int] = body.get(self.system, {}).get("paths", {})
        return paths

    def recent(self) -> list[dict[str, str]]:
        response = httpx.get(f"{self.url}/_sim/requests", params={"recent": "1", "system": self.system})
        recent: list[dict[str, str]] = response.json()["recent"]
        return recent

    def recent_params(self, path_suffix: str) -> list[dict[str, list[str]]]:
        """The decoded query parameters of the recent requests whose path ends with ``path_suffix``."""
        return [parse_qs(r["query"], keep_blank_values=True) for r in self.recent() if r["path"].endswith(path_suffix)]

    def stop(self) -> None:
        self.server.stop()


def start_sim(make: Callable[[SimContext], SystemSim], org: Org, *, seed: int = 3) -> SimHarness:
    clock = FakeClock()
    ctx = SimContext(org=org, tokens=TokenIssuer(lifetime_s=TOKEN_LIFETIME_S, clock=clock),
                     creds=SimCredentials.random(seed))
    sim = make(ctx)
    server = serve_http(build_app(ctx, [sim]))
    return SimHarness(ctx=ctx, server=server, clock=clock, system=sim.system, prefix=sim.prefix)
