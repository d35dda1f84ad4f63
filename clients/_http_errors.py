"""The one mapping of ``httpx`` outcomes into :mod:`nexus.errors`, and the one Retry-After parser.

Both the HTTP clients (:mod:`clients._http`, which read the error body for the message) and the seed's decorator
(:mod:`clients.resilience`, which translates a raw ``httpx`` error escaping a function) classify through here, so
a status means the same thing whichever path saw it:

=====================  ===============================================================================
timeout                :class:`~nexus.errors.TransientError` (``timeout: <httpx class>``)
other transport error  :class:`~nexus.errors.TransientError` (``connection error: <httpx class>: <text>``)
undecodable body       :class:`~nexus.errors.MalformedResponseError`
429                    :class:`~nexus.errors.ThrottledError`, ``retry_after`` from the header
5xx                    :class:`~nexus.errors.TransientError`, ``retry_after`` from the header if any (a 503
                       in maintenance: wait as told, but it is an outage, the breaker counts it)
401, 403               :class:`~nexus.errors.AuthError`
404                    :class:`~nexus.errors.NotFoundError`
any other 4xx          :class:`~nexus.errors.BadRequestError`
=====================  ===============================================================================

Retry-After (RFC 9110 section 10.2.3) is either delay-seconds or an HTTP-date; see :func:`parse_retry_after`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx

from clients._log import system_id
from nexus.errors import (
    AuthError,
    BadRequestError,
    MalformedResponseError,
    NexusClientError,
    NotFoundError,
    ThrottledError,
    TransientError,
)


def parse_retry_after(value: str | None, *, clock: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header value, or None when there is no usable value.

    * delay-seconds: ``"120"`` -> 120.0 (a decimal such as ``"1.5"`` is accepted too, as some servers send it);
    * an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, also the obsolete RFC 850 and asctime forms): the seconds
      from ``clock()`` (epoch seconds) to that moment, 0.0 when it has passed; a date without a zone is GMT, as
      HTTP dates always are;
    * anything else (empty, garbage, a negative or non-finite number) -> None: the caller falls back to its backoff
      rather than retrying at once on a value the RFC does not allow.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - clock(), 0.0)


def status_error(
    status: int, message: str, *, system: str, headers: Mapping[str, str] | None = None
) -> NexusClientError:
    """The error for an HTTP ``status`` >= 400 (see the module table); ``headers`` give the Retry-After."""
    if status == 429 or status >= 500:
        retry_after = parse_retry_after((headers or {}).get("retry-after"))
        if status == 429:
            return ThrottledError(message, system=system, status=status, retry_after=retry_after)
        error = TransientError(message, system=system, status=status)
        error.retry_after = retry_after
        return error
    if status in (401, 403):
        return AuthError(message, system=system, status=status)
    if status == 404:
        return NotFoundError(message, system=system, status=status)
    return BadRequestError(message, system=system, status=status)


def transport_error(
    exc: httpx.TransportError, *, system: str, what: str = "", detail: bool = True
) -> TransientError:
    """A request that got no answer: a timeout, or a refused/reset/unresolvable connection.

    ``what`` prefixes the message (``"token endpoint "``) when the request was not an API call; ``detail=False``
    leaves the exception's own text out of a connection error's message (the token endpoint's, by choice).
    """
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{what}timeout: {type(exc).__name__}", system=system)
    text = f": {exc}" if detail else ""
    return TransientError(f"{what}connection error: {type(exc).__name__}{text}", system=system)


def translate_httpx_error(exc: httpx.HTTPError, system: str) -> NexusClientError | None:
    """The error-tree equivalent of a raw ``httpx`` error (``raise_for_status()``, a transport failure), or None
    when it has none (``TooManyRedirects``, ...). ``system`` is an id or a display name; the message uses the
    reason phrase (the body may be unread)."""
    system = system_id(system)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return status_error(response.status_code, f"HTTP {response.status_code}: {response.reason_phrase}",
                            system=system, headers=response.headers)
    if isinstance(exc, httpx.DecodingError):
        return MalformedResponseError(f"undecodable response: {exc}", system=system)
    if isinstance(exc, httpx.TransportError):
        return transport_error(exc, system=system)
    return None


__all__ = ["parse_retry_after", "status_error", "translate_httpx_error", "transport_error"]
