"""The shape every HTTP client shares: one ``httpx.Client``, bearer auth with a cached token and ONE
re-authentication on 401, and transport errors and statuses mapped into :mod:`nexus.errors` (by
:mod:`clients._http_errors`, the one mapping).

Subclasses set ``system`` and implement ``_fetch_token`` (return token and lifetime) and, if the system's error body
is special, ``_error_message``. Retries and the breaker are not decided here: each :meth:`HttpSystemClient.send`
(one request, its token and its one re-authentication included) goes through
:func:`clients.resilience.per_request`, which applies the guard the caller installed (the fetch tasks: the seed's
retries and one breaker outcome per request) or sends it once (no guard: fleet pages, retried by countdown; health
pings), so a request's attempts equal the configured maximum and are never multiplied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import httpx

from clients._http_errors import status_error, transport_error
from clients._tokens import TokenCache
from clients.ratelimit import NO_LIMIT, RateLimiter
from clients.resilience import per_request
from nexus.errors import AuthError, MalformedResponseError
from nexus.settings import Settings, get_settings


class HttpSystemClient:
    """Base of the HTTP clients. ``transport`` is the test seam (``httpx.MockTransport``)."""

    system: str = ""
    auth_scheme: str = "Bearer"
    #: The system's request budget (clients.ratelimit), acquired before every API request; the worker layer
    #: installs the shared bucket (nexus.runtime), so a client built alone is never paced.
    rate_limiter: RateLimiter = NO_LIMIT

    #: The Settings field holding this system's base URL (a service root, as in production).
    base_url_setting: ClassVar[str] = ""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or get_settings()
        base_url = str(getattr(self.settings, self.base_url_setting))
        timeout = httpx.Timeout(self.settings.http_timeout_s, connect=self.settings.http_connect_timeout_s)
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        self.tokens = TokenCache(self._fetch_token, margin_s=self.settings.token_refresh_margin_s, clock=clock)
        self._configure(self.settings)

    def _configure(self, settings: Settings) -> None:
        """Per-system set-up after the shared parts (API paths from the tenant, session state). Optional."""

    # -- to implement -----------------------------------------------------------------------------------------
    def _fetch_token(self) -> tuple[str, float]:
        raise NotImplementedError

    def _error_message(self, response: httpx.Response) -> str:
        """A readable message from the system's error body (never the request's credentials)."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:200] or response.reason_phrase
        return json.dumps(body)[:300]

    # -- shared behaviour ----------------------------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        not_found_ok: bool = False,
        read_timeout_s: float | None = None,
    ) -> httpx.Response:
        """Send one request; re-authenticate once on 401; map failures into the error tree. Under a request guard
        (:func:`clients.resilience.guarded`) each attempt is all of this, and the request is retried as a whole.
        ``read_timeout_s`` replaces ``NEXUS_HTTP_TIMEOUT_S`` for this request (a report that takes minutes)."""

        def attempt() -> httpx.Response:
            response = self._send_once(method, url, params=params, json_body=json_body, data=data, headers=headers,
                                       auth=auth, read_timeout_s=read_timeout_s)
            if auth and response.status_code == 401:
                self.tokens.invalidate()
                response = self._send_once(method, url, params=params, json_body=json_body, data=data,
                                           headers=headers, auth=auth, read_timeout_s=read_timeout_s)
            return self.check(response, not_found_ok=not_found_ok)

        return per_request(self.system, attempt)

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        auth: bool,
        read_timeout_s: float | None = None,
    ) -> httpx.Response:
        self.rate_limiter.acquire()
        all_headers = dict(headers or {})
        if auth:
            all_headers["Authorization"] = f"{self.auth_scheme} {self.tokens.get()}"
        timeout = self.http.timeout if read_timeout_s is None else httpx.Timeout(
            read_timeout_s, connect=self.settings.http_connect_timeout_s)
        try:
            return self.http.request(method, url, params=params, json=json_body, data=data, headers=all_headers,
                                     timeout=timeout)
        except httpx.TransportError as exc:
            raise transport_error(exc, system=self.system) from exc

    def check(self, response: httpx.Response, *, not_found_ok: bool = False) -> httpx.Response:
        """``response`` if it is a success (or a 404 with ``not_found_ok``); else its error from the tree."""
        status = response.status_code
        if status < 400 or (status == 404 and not_found_ok):
            return response
        raise status_error(status, f"HTTP {status}: {self._error_message(response)}", system=self.system,
                           headers=response.headers)

    def parse_json(self, response: httpx.Response) -> Any:
        """The body as JSON, or MalformedResponseError."""
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"{response.request.method} {response.request.url.path}: body is not JSON", system=self.system
            ) from exc

    def require(self, body: Any, *keys: str) -> Any:
        """``body[k1][k2]...`` or MalformedResponseError naming the missing key."""
        current = body
        for key in keys:
            if not isinstance(current, dict) or key not in current:
                raise MalformedResponseError(f"response lacks {'.'.join(keys)!r}", system=self.system)
            current = current[key]
        return current

    def token_request(self, url: str, data: Mapping[str, str], *, auth: httpx.Auth | None = None,
                      token_key: str = "access_token") -> tuple[str, float]:
        """POST a form to a token endpoint; a refusal (4xx) is AuthError. Returns (token, expires_in)."""
        try:
            response = self.http.post(url, data=data, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TransportError as exc:
            raise transport_error(exc, system=self.system, what="token endpoint ", detail=False) from exc
        if 400 <= response.status_code < 500 and response.status_code != 429:
            raise AuthError(f"token refused: HTTP {response.status_code}: {self._error_message(response)}",
                            system=self.system, status=response.status_code)
        self.check(response)
        body = self.parse_json(response)
        token = self.require(body, token_key)
        expires_in = body.get("expires_in", 3600) if isinstance(body, dict) else 3600
        try:
            return str(token), float(expires_in)
        except (TypeError, ValueError) as exc:
            raise MalformedResponseError("token response has a bad expires_in", system=self.system) from exc
