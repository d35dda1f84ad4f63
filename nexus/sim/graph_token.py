"""The Microsoft identity platform's v2 token endpoint, as the Graph simulators' clients reach it.

:class:`AzureTokenSim` (prefix ``/azure``, so ``AZURE_AUTHORITY_URL=http://host:port/azure``):
``POST /{tenant}/oauth2/v2.0/token`` with the client-credentials grant (``client_secret_post`` or
``client_secret_basic``), answering the v2 endpoint's JSON and its ``AADSTS`` errors. Entra ID issues the tokens, so
its requests are logged under ``entra`` AND entra's faults apply to it (``down``/``flaky``/``throttle``/``malformed``
answer in the token endpoint's own error format). A consequence worth knowing: with Entra down, Intune's API cannot
be authenticated either, exactly as in production. The Graph API itself is :mod:`nexus.sim.graph`.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nexus.sim.base import SystemSim

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's application id (a valid scope root too)
TOKEN_SYSTEM = "entra"  # Graph tokens are issued and checked under this id


class AzureTokenSim(SystemSim):
    """``login.microsoftonline.com``: the v2 token endpoint, client-credentials grant only."""

    prefix = "/azure"
    system = "entra"

    def routes(self) -> list[BaseRoute]:
        return [Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"])]

    def _aad_error(self, status: int, error: str, code: int, description: str,
                   headers: dict[str, str] | None = None) -> Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
                                 f"Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        }
        return JSONResponse(body, status_code=status, headers=headers)

    def error(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None) -> Response:
        if status == 429:
            return self._aad_error(429, "temporarily_unavailable", 50196, "Too many requests; retry later.",
                                   headers)
        return self._aad_error(status, "temporarily_unavailable", 90033,
                               "A transient error has occurred. Please try again.", headers)

    def malformed(self) -> Response:
        return Response(b'{"token_type":"Bearer","expires_in":3599,"ext_expi', status_code=200,
                        media_type="application/json")

    async def token(self, request: Request) -> Response:
        creds = self.ctx.creds
        tenant = request.path_params["tenant"]
        if tenant.lower() not in {creds.azure_tenant_id.lower(), self.ctx.org.domain.lower()}:
            return self._aad_error(
                400, "invalid_request", 90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
                "into the correct cloud. Check with your subscription administrator, this may happen if there are "
                "no active subscriptions for the tenant.")
        form = await request.form()
        fields = {k: str(v) for k, v in form.items()}
        client_id, client_secret = fields.get("client_id", ""), fields.get("client_secret", "")
        basic = _basic_credentials(request)
        if basic is not None:  # client_secret_basic is accepted as well as client_secret_post
            client_id, client_secret = basic
        grant = fields.get("grant_type", "")
        if not grant:
            return self._aad_error(400, "invalid_request", 900144,
                                   "The request body must contain the following parameter: 'grant_type'.")
        if grant != "client_credentials":
            return self._aad_error(400, "unsupported_grant_type", 70003,
                                   f"The app requested an unsupported grant type '{grant}'.")
        if not client_id:
            return self._aad_error(400, "invalid_request", 900144,
                                   "The request body must contain the following parameter: 'client_id'.")
        if client_id != creds.azure_client_id:
            return self._aad_error(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.")
        if not client_secret:
            return self._aad_error(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
        if not hmac.compare_digest(client_secret.encode(), creds.azure_client_secret.encode()):
            return self._aad_error(
                401, "invalid_client", 7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{client_id}'.")
        scope = fields.get("scope", "")
        if not scope:
            return self._aad_error(400, "invalid_request", 90014, "The required field 'scope' is missing.")
        if not _valid_graph_scope(scope):
            return self._aad_error(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).")
        token, expires_in = self.ctx.tokens.issue(TOKEN_SYSTEM)
        return JSONResponse({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                             "access_token": token})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(user), unquote_plus(password)


def _valid_graph_scope(scope: str) -> bool:
    scopes = scope.split()
    return len(scopes) == 1 and scopes[0].lower() in {GRAPH_SCOPE, f"{GRAPH_APP_ID}/.default"}


__all__ = ["GRAPH_APP_ID", "GRAPH_SCOPE", "TOKEN_SYSTEM", "AzureTokenSim"]
