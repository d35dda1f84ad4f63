"""Bearer authentication for the MCP server over HTTP.

Two ways in, either or both (configured from the environment, see ``.env.example``):

- ``NEXUS_MCP_TOKEN``: one shared secret, sent as ``Authorization: Bearer <token>``; compared in constant time.
- ``NEXUS_MCP_JWT_JWKS_URI`` or ``NEXUS_MCP_JWT_PUBLIC_KEY``: JWTs from your identity provider, checked by fastmcp's
  ``JWTVerifier`` (signature, expiry, and ``NEXUS_MCP_JWT_ISSUER`` / ``NEXUS_MCP_JWT_AUDIENCE`` when set).

fastmcp's own ``StaticTokenVerifier`` looks tokens up in a dict (not constant time) and is documented as a testing
aid, hence :class:`SharedTokenVerifier`. A request without a valid token gets HTTP 401 from fastmcp's
``RequireAuthMiddleware`` before it reaches any tool. stdio has no HTTP layer: whoever starts the process is trusted.
"""

from __future__ import annotations

import hmac
import logging

from fastmcp.server.auth import TokenVerifier
from fastmcp.server.auth.auth import AccessToken

from nexus.settings import Settings

log = logging.getLogger("nexus.mcp")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SharedTokenVerifier(TokenVerifier):
    """Accepts exactly one static bearer token (constant-time comparison, no timing side channel)."""

    def __init__(self, token: str, client_id: str = "nexus-mcp-client") -> None:
        if not token:
            raise ValueError("the shared MCP token is empty")
        super().__init__()
        self._token = token.encode("utf-8")
        self.client_id = client_id

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode("utf-8"), self._token):
            return None
        return AccessToken(token=token, client_id=self.client_id, scopes=[], expires_at=None)


class AnyOfVerifier(TokenVerifier):
    """The first verifier that accepts the token wins (shared token first: it is cheap)."""

    def __init__(self, verifiers: list[TokenVerifier]) -> None:
        super().__init__()
        self.verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            access = await verifier.verify_token(token)
            if access is not None:
                return access
        return None


def build_verifier(settings: Settings) -> TokenVerifier | None:
    """The verifier the settings ask for, or None when no authentication is configured."""
    verifiers: list[TokenVerifier] = []
    token = settings.mcp_token.get_secret_value()
    if token:
        verifiers.append(SharedTokenVerifier(token))
    if settings.mcp_jwt_jwks_uri or settings.mcp_jwt_public_key:
        from fastmcp.server.auth.providers.jwt import JWTVerifier

        verifiers.append(JWTVerifier(
            jwks_uri=settings.mcp_jwt_jwks_uri or None,
            public_key=settings.mcp_jwt_public_key or None,
            issuer=settings.mcp_jwt_issuer or None,
            audience=settings.mcp_jwt_audience or None,
            algorithm=settings.mcp_jwt_algorithm or None,
        ))
    if not verifiers:
        return None
    return verifiers[0] if len(verifiers) == 1 else AnyOfVerifier(verifiers)


def warn_if_exposed(host: str, verifier: TokenVerifier | None) -> bool:
    """Log a loud warning when HTTP would serve a non-loopback address with no authentication; True if so."""
    if verifier is not None or host in LOOPBACK_HOSTS:
        return False
    log.warning("!!! nexus mcp: serving HTTP on %s WITHOUT authentication: anyone who can reach this port can run "
                "audits and read reports. Set NEXUS_MCP_TOKEN (or NEXUS_MCP_JWT_JWKS_URI) or bind 127.0.0.1. !!!",
                host)
    return True
