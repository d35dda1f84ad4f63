"""Every error Nexus raises, in one tree; retry, breaker, tasks, reports and front ends branch on its classes.

    NexusError                           root of everything Nexus raises
    +-- NexusClientError                 a call to a system failed; ``system`` is its lower-case id
    |   +-- TransientError               no usable answer, worth retrying: 5xx, timeout, connection refused/reset
    |   |   +-- ThrottledError           429 / busy; ``retry_after`` seconds (None when the system gave none)
    |   |       +-- BudgetExceededError  LOCAL: our own request budget is used up for longer than a caller may
    |   |                                wait; nothing was sent (the breaker treats it as neutral)
    |   +-- MalformedResponseError       the system answered 2xx but the body cannot be understood: never retried
    |   |                                (the same request would get the same body), but counted by the breaker
    |   +-- AuthError                    401/403 after one re-authentication, or bad credentials at the token endpoint
    |   +-- NotFoundError                404 / no such subject (the seed's handle_404_gracefully turns it into None)
    |   +-- BadRequestError              any other 4xx: our request is wrong; never retried
    |   +-- CircuitOpenError             the shared breaker is OPEN: failed fast, nothing was sent
    |   |   +-- BreakerOpenError         what the breaker raises; also a ``pybreaker.CircuitBreakerError``
    |   +-- SystemNotConfigured          the system's settings are missing here: nothing was sent, never retried
    |   +-- ListingLost                  a listing's server-side paging state is gone (an LDAP cookie lives on
    |                                    one connection): restart that listing from its first page
    +-- FrontDoorError                   the front door (facade, CLI, MCP, stores) refused or could not serve
        +-- InvalidInput                 bad operator input, one clear line (a ValueError): CLI exit 2, MCP ToolError
        |   +-- WaiverNotFound           no waiver with that id
        |   +-- NotConfigured            no system has its settings: "not configured: set ... or run `nexus sim`"
        +-- AuditNotFound                no audit with that id, never existed or expired (a KeyError)
        +-- ServiceUnavailable           Redis or the broker cannot be reached (a RuntimeError): CLI exit 1
        |   +-- AuditLost                the audit vanished while it was waited on (Redis restarted empty)
        |   +-- RedisRefused             Redis answered but refused the write (out of memory under noeviction,
        |                                a read-only replica): one line, CLI exit 1, MCP ToolError
        +-- WaitTimeout                  ``wait`` reached its deadline first (a TimeoutError): CLI exit 124

The extra built-in bases (``ValueError``, ``KeyError``, ``RuntimeError``, ``TimeoutError``, and pybreaker's error)
are part of the contract: ``except`` clauses written against them keep working.

Classify with :func:`is_retryable`, :func:`is_system_answer` and :func:`counts_against_breaker`, never by parsing
messages. ``CircuitBreakerOpenError`` is an alias kept for the seed's name. This is a core module: it imports
nothing from ``clients``, ``tasks`` or ``workers``.
"""

from __future__ import annotations

import pybreaker


class NexusError(Exception):
    """Root of every error Nexus raises."""


# -- the client branch ---------------------------------------------------------------------------------------------


class NexusClientError(NexusError):
    """Base of every client error. ``system`` is the lower-case system id, ``status`` the HTTP status if any."""

    kind = "error"

    def __init__(self, message: str, *, system: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.system = system
        self.status = status
        self.message = message

    def to_dict(self) -> dict[str, object]:
        """The shape reports and task results carry (JSON-safe, never a secret)."""
        out: dict[str, object] = {"type": type(self).__name__, "kind": self.kind, "message": self.message}
        if self.status is not None:
            out["status"] = self.status
        return out

    def __reduce__(self) -> tuple[object, ...]:  # keep pickling/copying working with keyword-only args
        return (_rebuild, (type(self), self.message, self.system, self.status, dict(self.__dict__)))


def _rebuild(
    cls: type[NexusClientError], message: str, system: str, status: int | None, state: dict[str, object]
) -> NexusClientError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, message)
    obj.__dict__.update(state)
    return obj


class TransientError(NexusClientError):
    """No usable answer this time (5xx, timeout, connection error); a later attempt may succeed.

    ``retry_after`` is set when the system said when to come back (a 503 with Retry-After): the retry honours it,
    and unlike throttling the failure still counts against the breaker (the system is not serving).
    """

    kind = "transient"
    retry_after: float | None = None


class ThrottledError(TransientError):
    """The system asked us to slow down (HTTP 429, LDAP busy). ``retry_after`` is in seconds."""

    kind = "throttled"

    def __init__(
        self, message: str, *, system: str = "", status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, system=system, status=status)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["retry_after"] = self.retry_after
        return out


class BudgetExceededError(ThrottledError):
    """Our own request budget for the system is used up for longer than the caller may wait (nothing was sent).

    Raised locally by the rate limiter (``clients.ratelimit``), not answered by the system: the breaker treats it
    as neutral (:func:`is_system_answer` is False), the retry waits its ``retry_after`` like a throttle.
    """


class MalformedResponseError(NexusClientError):
    """A 2xx answer whose body is not what the system's API returns (bad JSON, missing keys)."""

    kind = "malformed"


class AuthError(NexusClientError):
    """Credentials refused, or still 401/403 after one fresh token."""

    kind = "auth"


class NotFoundError(NexusClientError):
    """The subject (or path) does not exist: HTTP 404 or an empty lookup."""

    kind = "not_found"


class BadRequestError(NexusClientError):
    """Any other 4xx: the request itself is wrong. Never retried."""

    kind = "bad_request"


class CircuitOpenError(NexusClientError):
    """The system's shared circuit breaker is OPEN; the call failed fast and nothing was sent."""

    kind = "breaker_open"


CircuitBreakerOpenError = CircuitOpenError


class SystemNotConfigured(NexusClientError):
    """The system has no connection settings here: nothing was sent (never dial a vendor with empty credentials)."""

    kind = "not_configured"


class ListingLost(NexusClientError):
    """A cursor names paging state the server no longer holds (AD's paging cookie died with its connection): the
    stream restarts from its first page. Raised before anything is sent; never counted by the breaker."""

    kind = "listing_lost"


class BreakerOpenError(CircuitOpenError, pybreaker.CircuitBreakerError):
    """The circuit is OPEN (or a half-open trial is in flight): failed fast, nothing was sent.

    Catchable as :class:`CircuitOpenError` (the Nexus tree) and as ``pybreaker.CircuitBreakerError``.
    ``retry_in_s`` is the time left before a trial may be admitted (0 when one is already running).
    """

    def __init__(self, message: str, *, system: str = "", status: int | None = None, retry_in_s: float = 0.0) -> None:
        super().__init__(message, system=system, status=status)
        self.retry_in_s = retry_in_s

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["retry_in_s"] = round(self.retry_in_s, 3)
        return out


# -- the front-door branch -----------------------------------------------------------------------------------------


class FrontDoorError(NexusError):
    """Base of the errors a front end shows an operator: bad input, an unknown audit, a store that is down."""


class InvalidInput(FrontDoorError, ValueError):
    """Bad input from an operator: CLI exit 2, MCP ToolError. The message is one clear line."""


class WaiverNotFound(InvalidInput):
    """No waiver with that id (never existed, removed, or pruned): an operator's input, CLI exit 2."""


class NotConfigured(InvalidInput):
    """No system has its connection settings: an audit would contact nothing (or production with no credentials)."""


class AuditNotFound(FrontDoorError, KeyError):
    """No audit with that id (never existed, or expired)."""


class ServiceUnavailable(FrontDoorError, RuntimeError):
    """Redis or the broker cannot be reached: the audit could not be stored or enqueued."""


class AuditLost(ServiceUnavailable):
    """The audit vanished while it was being waited on: Redis restarted without its data, or was flushed."""


class RedisRefused(ServiceUnavailable):
    """Redis is up but refused the command (``OOM command not allowed``, ``READONLY``): retrying at once is futile."""


class WaitTimeout(FrontDoorError, TimeoutError):
    """``wait`` reached its deadline before the audit finished (CLI exit 124)."""


# -- classification ------------------------------------------------------------------------------------------------


def error_text(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of any exception, bounded (for report errors and logs)."""
    message = getattr(exc, "message", None) or str(exc) or ""
    return f"{type(exc).__name__}: {message}"[:limit]


def error_dict(exc: BaseException) -> dict[str, object]:
    """The JSON shape of an error in reports and task markers: the tree's own ``to_dict``, or ``unexpected``."""
    if isinstance(exc, NexusClientError):
        return exc.to_dict()
    return {"type": type(exc).__name__, "kind": "unexpected", "message": str(exc)[:300]}


def is_retryable(exc: BaseException) -> bool:
    """True for failures another attempt may cure: transient and throttled errors only."""
    return isinstance(exc, TransientError)


def is_system_answer(exc: BaseException) -> bool:
    """True when the error is the system's own answer (a 4xx, a 429, a not-found): proof that it is alive.
    Errors raised before or without a request reaching the system (a local rate-budget refusal, a bug) are not."""
    from_system = (ThrottledError, AuthError, NotFoundError, BadRequestError)
    return isinstance(exc, from_system) and not isinstance(exc, BudgetExceededError)


def counts_against_breaker(exc: BaseException) -> bool:
    """True when the failure says the system is unhealthy (not that our request or subject was wrong).

    Throttling is not a health failure: the system answered, and asked us to wait.
    """
    if isinstance(exc, ThrottledError):
        return False
    return isinstance(exc, TransientError | MalformedResponseError)


__all__ = [
    "AuditLost",
    "AuditNotFound",
    "AuthError",
    "BadRequestError",
    "BreakerOpenError",
    "BudgetExceededError",
    "CircuitBreakerOpenError",
    "CircuitOpenError",
    "FrontDoorError",
    "InvalidInput",
    "ListingLost",
    "MalformedResponseError",
    "NexusClientError",
    "NexusError",
    "NotConfigured",
    "NotFoundError",
    "RedisRefused",
    "ServiceUnavailable",
    "SystemNotConfigured",
    "ThrottledError",
    "TransientError",
    "WaitTimeout",
    "WaiverNotFound",
    "counts_against_breaker",
    "error_dict",
    "error_text",
    "is_retryable",
    "is_system_answer",
]
