"""Everything `nexus sim` runs: the synthetic org, every HTTP simulator on one port, the LDAP directory for AD,
and the env file that points the clients at them (written only once every simulator accepts connections).

Also used in-process by `nexus demo`, the tests and the benchmarks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.fileutil import atomic_write
from nexus.settings import Settings
from nexus.sim.base import SimContext, SimCredentials, SystemSim
from nexus.sim.org_model import Org
from nexus.sim.tokens import TokenIssuer

log = logging.getLogger("nexus.sim")


def http_simulators(ctx: SimContext) -> list[SystemSim]:
    """One instance of every HTTP simulator, sharing ``ctx``."""
    from nexus.sim.fedex import FedexSim
    from nexus.sim.graph import GraphSim
    from nexus.sim.graph_token import AzureTokenSim
    from nexus.sim.helix import HelixSim
    from nexus.sim.lansweeper import LansweeperSim
    from nexus.sim.workday import WorkdaySim
    from nexus.workday_fields import parse_fields

    # The report's field names as the clients are told them (NEXUS_WORKDAY_FIELDS), so a renamed report is served
    # the way the client expects it.
    fields = parse_fields(os.environ.get("NEXUS_WORKDAY_FIELDS", ""))
    return [WorkdaySim(ctx, fields=fields), AzureTokenSim(ctx), GraphSim(ctx), LansweeperSim(ctx), HelixSim(ctx),
            FedexSim(ctx)]


def parse_latency(spec: str | int | None) -> dict[str, int]:
    """``30`` (every system) or ``workday=30,entra=50`` -> {system id: ms}."""
    from nexus.systems import System

    if spec is None or spec == "":
        return {}
    if isinstance(spec, int) or str(spec).strip().isdigit():
        return {s.value: int(spec) for s in System}
    out: dict[str, int] = {}
    for part in str(spec).split(","):
        name, _, value = part.partition("=")
        if not value.strip().isdigit():
            raise ValueError(f"bad latency {part!r}: expected <system>=<ms> or a number of ms")
        out[System.parse(name).value] = int(value)
    return out


@dataclass
class SimulatorStack:
    people: int = 200
    seed: int = 7
    host: str = "127.0.0.1"
    port: int = 0
    ldap_port: int = 0
    latency_ms: dict[str, int] = field(default_factory=dict)
    token_lifetime_s: float = 3599.0
    ldap_mode: str = "auto"  # "slapd" | "mock" | "auto" (slapd when installed, else the in-process directory) |
    # "samba" (a real Samba AD DC: nexus.sim.samba_dc)
    creds: SimCredentials | None = None
    org: Org | None = None

    def __post_init__(self) -> None:
        self._http: Any = None
        self._slapd: Any = None
        self._samba: Any = None  # ldap_mode "samba": the running nexus.sim.samba_dc.SambaDC
        self._samba_ctx: Any = None
        self._proxy: Any = None
        self.ctx: SimContext | None = None
        self.ldap_url = ""
        #: The in-process directory's connection factory when AD is served by it (``ldap_mode`` mock, or auto
        #: without slapd), else None: whoever builds an AD client for this stack passes it as the client's
        #: ``connection_factory`` (the ``mock://`` URL alone reaches nothing).
        self.ad_connection_factory: Callable[[Settings], Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> SimulatorStack:
        from nexus.sim.http_app import build_app
        from nexus.sim.http_server import serve_http
        from nexus.sim.orggen import generate_org

        if self.org is None:
            self.org = generate_org(self.people, self.seed)
        creds = self.creds = self.resolved_credentials()
        ctx = SimContext(org=self.org, creds=creds, tokens=TokenIssuer(self.token_lifetime_s),
                         latency_ms=dict(self.latency_ms))
        self.ctx = ctx
        try:
            self._start_ldap(ctx)
            self._http = serve_http(build_app(ctx, http_simulators(ctx)), self.host, self.port)
        except BaseException:
            self.stop()
            raise
        return self

    def resolved_credentials(self) -> SimCredentials:
        """The credentials given, else those of ``seed`` (stable across restarts: :meth:`SimCredentials.for_seed`);
        the bind account then lives in the org's domain (an imported org's base DN may be another than
        ``DC=corp,DC=example``)."""
        if self.creds is not None:
            return self.creds
        creds = SimCredentials.for_seed(self.seed)
        default_base = "DC=corp,DC=example"
        if self.org is not None and self.org.base_dn.casefold() != default_base.casefold() \
                and creds.ad_bind_dn.casefold().endswith(default_base.casefold()):
            creds.ad_bind_dn = creds.ad_bind_dn[: -len(default_base)] + self.org.base_dn
        return creds

    @property
    def ad_in_process(self) -> bool:
        """True when AD is the in-process directory (no slapd): other processes (workers) cannot reach it."""
        return self.ad_connection_factory is not None

    def _start_ldap(self, ctx: SimContext) -> None:
        from nexus.sim import ldap_server

        assert self.org is not None and self.creds is not None
        if self.ldap_mode == "samba":
            self._start_samba()
            return
        use_slapd = self.ldap_mode == "slapd" or (self.ldap_mode == "auto" and ldap_server.is_available())
        if not use_slapd:
            from nexus.sim.ldap_mock import mock_directory, mock_url

            directory = mock_directory(self.org, self.creds, faults=ctx.faults, log=ctx.log)
            self.ldap_url = mock_url()
            self.ad_connection_factory = directory.connection_factory
            # Fine in-process (the demo, tests); `nexus sim` tells the operator what it means for workers.
            log.debug("AD is served by an in-process directory (this process only)")
            return
        from nexus.sim.ldap_proxy import LdapProxy

        self._slapd = ldap_server.SlapdServer(self.org, bind_dn=self.creds.ad_bind_dn,
                                              bind_password=self.creds.ad_bind_password)
        self._slapd.start()
        self._proxy = LdapProxy(self._slapd.host, self._slapd.port, ctx.faults, ctx.log, host=self.host,
                                port=self.ldap_port)
        port = self._proxy.start()
        self.ldap_url = f"ldap://{self.host}:{port}"

    def _start_samba(self) -> None:
        """A real Samba AD DC with the org loaded (nexus.sim.samba_dc): LDAPS with a CA of its own, no fault
        injection (the LDAP proxy cannot see inside TLS)."""
        import contextlib

        from nexus.sim.samba_dc import SambaDC

        assert self.org is not None and self.creds is not None
        samba_ctx = contextlib.ExitStack()
        self._samba_ctx = samba_ctx
        dc = samba_ctx.enter_context(SambaDC.start(self.org, bind_password=self.creds.ad_bind_password))
        self._samba = dc
        self.ldap_url = dc.env()["AD_LDAP_URL"]

    def stop(self) -> None:
        samba_ctx = self._samba_ctx
        if samba_ctx is not None:
            self._samba_ctx = None
            self._samba = None
            samba_ctx.close()
        for part in (self._http, self._proxy, self._slapd):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # stopping is best effort; report and carry on
                    log.exception("error while stopping %s", type(part).__name__)
        self._http = self._proxy = self._slapd = None
        self.ad_connection_factory = None

    def __enter__(self) -> SimulatorStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._http is not None, "stack not started"
        return str(self._http.url)

    def env(self) -> dict[str, str]:
        """The connection settings that point every client at these simulators (the contract's names)."""
        assert self.creds is not None and self.org is not None
        c, base = self.creds, self.url
        return {
            "USE_MOCK": "true",
            "NEXUS_SIM_URL": base,
            "WORKDAY_BASE_URL": f"{base}/workday",
            "WORKDAY_TENANT": c.workday_tenant,
            "WORKDAY_CLIENT_ID": c.workday_client_id,
            "WORKDAY_CLIENT_SECRET": c.workday_client_secret,
            "WORKDAY_REFRESH_TOKEN": c.workday_refresh_token,
            "AZURE_AUTHORITY_URL": f"{base}/azure",
            "AZURE_TENANT_ID": c.azure_tenant_id,
            "AZURE_CLIENT_ID": c.azure_client_id,
            "AZURE_CLIENT_SECRET": c.azure_client_secret,
            "GRAPH_BASE_URL": f"{base}/graph",
            "AD_LDAP_URL": self.ldap_url,
            "AD_BIND_DN": c.ad_bind_dn,
            "AD_BIND_PASSWORD": c.ad_bind_password,
            "AD_BASE_DN": self.org.base_dn,
            **({"AD_CA_FILE": self._samba.env()["AD_CA_FILE"], "AD_BIND_DN": self._samba.bind_dn}
               if self._samba is not None else {}),
            "LANSWEEPER_GRAPHQL_URL": f"{base}/lansweeper/api/v2/graphql",
            "LANSWEEPER_TOKEN": c.lansweeper_token,
            "LANSWEEPER_SITE_ID": c.lansweeper_site_id,
            "HELIX_BASE_URL": f"{base}/helix",
            "HELIX_USERNAME": c.helix_username,
            "HELIX_PASSWORD": c.helix_password,
            "FEDEX_BASE_URL": f"{base}/fedex",
            "FEDEX_CLIENT_ID": c.fedex_client_id,
            "FEDEX_CLIENT_SECRET": c.fedex_client_secret,
        }

    def secrets(self) -> list[str]:
        """Every credential value in the env file (tests grep logs and reports for them)."""
        assert self.creds is not None
        c = self.creds
        return [c.workday_client_secret, c.workday_refresh_token, c.azure_client_secret, c.lansweeper_token,
                c.helix_password, c.fedex_client_secret, c.ad_bind_password]

    def write_env_file(self, path: str | os.PathLike[str], extra: dict[str, str] | None = None) -> Path:
        env = {**self.env(), **(extra or {})}
        text = "".join(f"{k}={_quote_env(v)}\n" for k, v in env.items())
        return atomic_write(Path(path), text, mode=0o600)

    def write_truth(self, path: str | os.PathLike[str]) -> Path:
        assert self.org is not None
        return atomic_write(Path(path), json.dumps(self.org.truth, indent=2, ensure_ascii=False) + "\n")


def _quote_env(value: str) -> str:
    if value and all(ch.isalnum() or ch in "-_./:@=,\\+" for ch in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"
