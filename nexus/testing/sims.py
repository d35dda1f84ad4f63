"""A simulator harness: HTTP simulators of ``nexus.sim`` on a real loopback socket, for client tests.

    with start_sims(WorkdaySim, org) as sim:                  # a SystemSim factory (or one that builds several)
        client = WorkdayClient(sim.settings(), clock=sim.clock)
        sim.fault("throttle", retry_after=1)                  # POST /_sim/faults for the harness's system
        assert sim.counts()["/ccx/api/v1/acme/workers"] == 1  # GET /_sim/requests

The simulators share one :class:`~nexus.sim.base.SimContext` (org, faults, request log, credentials) whose token
issuer runs on the harness's :class:`~nexus.testing.clock.FakeClock`: pass the same clock to a client and token
expiry is a ``sim.clock.advance(...)`` away, with no sleeping. :meth:`SimHarness.settings` points every HTTP client
at the harness (nothing from the environment or a ``.env`` file is read). The whole stack of every simulator plus
slapd for AD, as ``nexus sim`` runs it, is :class:`nexus.sim.stack.SimulatorStack`; the cluster rig with worker
processes is :mod:`nexus.testing.cluster`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx

from nexus.settings import Settings
from nexus.sim.base import SimContext, SimCredentials, SystemSim
from nexus.sim.http_app import build_app
from nexus.sim.http_server import HttpServerHandle, serve_http
from nexus.sim.org_model import Org
from nexus.sim.tokens import TokenIssuer
from nexus.testing.clock import FakeClock

H = TypeVar("H", bound="SimHarness")
#: Builds the simulators to serve from their shared context: a ``SystemSim`` class, or e.g. ``graph_sims``.
SimFactory = Callable[[SimContext], SystemSim | Sequence[SystemSim]]


@dataclass
class SimHarness:
    """Simulators on one real socket, their context, the fake clock of their tokens, and the control API.

    Methods that take ``system`` default to the first simulator's system (the harness's own, when it serves one).
    """

    ctx: SimContext
    server: HttpServerHandle
    clock: FakeClock
    sims: list[SystemSim]
    http: httpx.Client  # one client: creating one per request costs more than the request
    defaults: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def system(self) -> str:
        return self.sims[0].system

    @property
    def prefix(self) -> str:
        return self.sims[0].prefix

    @property
    def base_url(self) -> str:
        """The first simulator's mount point: a client's base URL."""
        return self.url + self.prefix

    # -- settings ----------------------------------------------------------------------------------------------
    def settings(self, **overrides: Any) -> Settings:
        """Settings that point every HTTP client at this harness with the simulators' credentials, then the
        harness's ``defaults``, then ``overrides`` (field names or their environment names: ``workday_tenant`` or
        ``WORKDAY_TENANT``). Nothing is read from the environment or a ``.env`` file."""
        c, url = self.ctx.creds, self.url
        values: dict[str, Any] = {
            "workday_base_url": f"{url}/workday",
            "workday_tenant": c.workday_tenant,
            "workday_client_id": c.workday_client_id,
            "workday_client_secret": c.workday_client_secret,
            "workday_refresh_token": c.workday_refresh_token,
            "azure_authority_url": f"{url}/azure",
            "azure_tenant_id": c.azure_tenant_id,
            "azure_client_id": c.azure_client_id,
            "azure_client_secret": c.azure_client_secret,
            "graph_base_url": f"{url}/graph",
            "lansweeper_graphql_url": f"{url}/lansweeper/api/v2/graphql",
            "lansweeper_token": c.lansweeper_token,
            "lansweeper_site_id": c.lansweeper_site_id,
            "helix_base_url": f"{url}/helix",
            "helix_username": c.helix_username,
            "helix_password": c.helix_password,
            "fedex_base_url": f"{url}/fedex",
            "fedex_client_id": c.fedex_client_id,
            "fedex_client_secret": c.fedex_client_secret,
        }
        values.update(_by_field_name(self.defaults))
        values.update(_by_field_name(overrides))
        return Settings.model_validate(values)  # validation only: no environment, no .env

    # -- the control API (/_sim/*) -----------------------------------------------------------------------------
    def reset(self) -> None:
        """No faults, an empty request log."""
        self.ctx.faults.clear()
        self.ctx.log.reset()

    def fault(self, mode: str, system: str | None = None, **params: Any) -> None:
        body = {"system": system or self.system, "mode": mode, **params}
        self.http.post(f"{self.url}/_sim/faults", json=body).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete(f"{self.url}/_sim/faults").raise_for_status()

    def expire_tokens(self, system: str | None = None) -> None:
        self.http.delete(f"{self.url}/_sim/tokens", params={"system": system or self.system}).raise_for_status()

    def requests(self, system: str | None = None) -> dict[str, Any]:
        """The request log of ``system``: ``{"total": n, "paths": {sub-path: n}}``."""
        snapshot: dict[str, Any] = self.http.get(f"{self.url}/_sim/requests").json()
        entry: dict[str, Any] = snapshot.get(system or self.system, {"total": 0, "paths": {}})
        return entry

    def counts(self, system: str | None = None) -> dict[str, int]:
        """Requests per sub-path that reached ``system``."""
        paths: dict[str, int] = self.requests(system).get("paths", {})
        return paths

    def count(self, system: str, path: str) -> int:
        return int(self.counts(system).get(path, 0))

    def recent(self, system: str | None = None) -> list[dict[str, str]]:
        """The most recent requests to ``system`` (method, path, query), oldest first."""
        params = {"recent": "1", "system": system or self.system}
        recent: list[dict[str, str]] = self.http.get(f"{self.url}/_sim/requests", params=params).json()["recent"]
        return recent

    def recent_params(self, path_suffix: str, system: str | None = None) -> list[dict[str, list[str]]]:
        """The decoded query parameters of the recent requests whose path ends with ``path_suffix``."""
        return [parse_qs(r["query"], keep_blank_values=True) for r in self.recent(system)
                if r["path"].endswith(path_suffix)]

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @classmethod
    def start(cls: type[H], make: SimFactory, org: Org, *, seed: int = 3, clock: FakeClock | None = None,
              token_lifetime_s: float = 3599.0, settings: dict[str, Any] | None = None) -> H:
        """Serve the simulators ``make`` builds for ``org`` on a free loopback port; return their harness (an
        instance of ``cls``: a subclass may add a system's own request helpers).

        ``seed`` fixes the random credentials (``SimCredentials.random(seed)``); ``clock`` (default: a new
        :class:`FakeClock`) drives the token issuer; ``settings`` are defaults for :meth:`settings`.
        """
        clock = clock if clock is not None else FakeClock()
        ctx = SimContext(org=org, tokens=TokenIssuer(lifetime_s=token_lifetime_s, clock=clock),
                         creds=SimCredentials.random(seed))
        built = make(ctx)
        sims = [built] if isinstance(built, SystemSim) else list(built)
        if not sims:
            raise ValueError("no simulator to serve")
        server = serve_http(build_app(ctx, sims))
        return cls(ctx=ctx, server=server, clock=clock, sims=sims, http=httpx.Client(),
                   defaults=dict(settings or {}))

    def stop(self) -> None:
        self.http.close()
        self.server.stop()

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _by_field_name(values: dict[str, Any]) -> dict[str, Any]:
    """Settings keys by field name (an environment name such as ``WORKDAY_TENANT`` is mapped to its field), so an
    override always replaces the harness's value instead of competing with it."""
    by_alias = {f.alias: name for name, f in Settings.model_fields.items() if f.alias}
    return {by_alias.get(key, key): value for key, value in values.items()}


def start_sims(make: SimFactory, org: Org, **options: Any) -> SimHarness:
    """``SimHarness.start(make, org, **options)``."""
    return SimHarness.start(make, org, **options)


__all__ = ["SimFactory", "SimHarness", "start_sims"]
