"""What every HTTP simulator shares: its context (org, faults, request log, tokens, credentials, latency) and the
small interface the composed app uses to route, log, fault and answer errors in each system's own format.

A simulator module (``nexus/sim/<system>.py``) defines one :class:`SystemSim` subclass. The app
(:mod:`nexus.sim.http_app`) mounts it under its ``prefix``; before a request reaches the simulator's routes the app
records it, waits the configured latency and applies the system's fault (``down``, ``slow``, ``flaky``, ``throttle``,
``malformed``). ``expired_token`` and ``truncated`` are applied by the simulator itself (it knows its auth and paging).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from nexus.sim.faults import FaultBoard, RequestLog
from nexus.sim.org_model import Org
from nexus.sim.tokens import TokenCheck, TokenIssuer


@dataclass(slots=True)
class SimCredentials:
    """The credentials the simulators accept (written to the env file by `nexus sim`)."""

    workday_tenant: str = "acme"
    workday_client_id: str = "nexus-workday-client"
    workday_client_secret: str = "wd-secret-change-me"
    workday_refresh_token: str = "wd-refresh-change-me"
    azure_tenant_id: str = "11111111-2222-3333-4444-555555555555"
    azure_client_id: str = "nexus-graph-client"
    azure_client_secret: str = "graph-secret-change-me"
    lansweeper_token: str = "ls-token-change-me"
    lansweeper_site_id: str = "site-0001"
    helix_username: str = "svc-nexus"
    helix_password: str = "helix-password-change-me"
    fedex_client_id: str = "nexus-fedex-client"
    fedex_client_secret: str = "fedex-secret-change-me"
    ad_bind_dn: str = "CN=svc-nexus,OU=Service Accounts,DC=corp,DC=example"
    ad_bind_password: str = "ad-password-change-me"

    @classmethod
    def for_seed(cls, seed: int) -> SimCredentials:
        """The credentials of the simulators of ``seed``: the same for every start with that seed, so a restarted
        `nexus sim` accepts what running workers hold (their cached tokens are refused once and re-authentication
        succeeds). Each is a SHA-256 of the seed and the credential's name: distinct per credential and per seed,
        never one of the placeholders above, and (like every simulator credential) not a secret."""
        import hashlib

        def tok(prefix: str) -> str:
            digest = hashlib.sha256(f"nexus-sim/v1/{seed}/{prefix}".encode()).hexdigest()
            return f"{prefix}-{digest[:32]}"

        return cls(
            workday_client_secret=tok("wdsec"),
            workday_refresh_token=tok("wdref"),
            azure_client_secret=tok("azsec"),
            lansweeper_token=tok("lstok"),
            helix_password=tok("hxpw"),
            fedex_client_secret=tok("fxsec"),
            ad_bind_password=tok("adpw"),
        )

    @classmethod
    def random(cls, rng_seed: int | None = None) -> SimCredentials:
        """Fresh random secrets (so tests can grep for them and never match a constant by accident)."""
        import random
        import secrets

        def tok(prefix: str) -> str:
            if rng_seed is None:
                return f"{prefix}-{secrets.token_hex(12)}"
            return f"{prefix}-{random.Random(f'{rng_seed}-{prefix}').getrandbits(96):024x}"

        return cls(
            workday_client_secret=tok("wdsec"),
            workday_refresh_token=tok("wdref"),
            azure_client_secret=tok("azsec"),
            lansweeper_token=tok("lstok"),
            helix_password=tok("hxpw"),
            fedex_client_secret=tok("fxsec"),
            ad_bind_password=tok("adpw"),
        )


@dataclass(slots=True)
class SimContext:
    org: Org
    faults: FaultBoard = field(default_factory=FaultBoard)
    log: RequestLog = field(default_factory=RequestLog)
    tokens: TokenIssuer = field(default_factory=TokenIssuer)
    creds: SimCredentials = field(default_factory=SimCredentials)
    latency_ms: dict[str, int] = field(default_factory=dict)  # per system id
    extra: dict[str, Any] = field(default_factory=dict)


class SystemSim:
    """Base of one simulated HTTP system. Subclasses set ``prefix`` and ``system`` and implement ``routes``."""

    prefix: str = ""  # mount point, e.g. "/workday"; the client's base URL is http://host:port<prefix>
    system: str = ""  # lower-case system id used for faults and the request log

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def system_for(self, path: str) -> str:
        """The system a request under this prefix belongs to (Graph serves both Entra and Intune)."""
        return self.system

    def error(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None) -> Response:
        """An error in this system's own wire format. Subclasses override."""
        return JSONResponse({"error": code or str(status), "message": message}, status_code=status, headers=headers)

    def malformed(self) -> Response:
        """A 200 whose body is not this system's format (the ``malformed`` fault)."""
        return Response(b'{"unexpected": [1, 2', status_code=200, media_type="application/json")

    # -- helpers for subclasses -------------------------------------------------------------------------------
    def bearer(self, request: Request, scheme: str = "Bearer") -> str | None:
        header = request.headers.get("authorization", "")
        prefix = scheme + " "
        return header[len(prefix):].strip() if header.startswith(prefix) else None

    def check_token(self, system: str, token: str | None) -> TokenCheck:
        if token and self.ctx.faults.decide_peek(system) == "expired_token":
            return TokenCheck.EXPIRED
        return self.ctx.tokens.check(system, token)

    def truncated(self, system: str) -> bool:
        """True when the ``truncated`` fault is set: paging must stop early (a next link that leads to an error)."""
        return self.ctx.faults.decide_peek(system) == "truncated"
