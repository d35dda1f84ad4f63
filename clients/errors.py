"""The one error tree every client raises; retry, breaker, tasks and reports branch on its classes.

    NexusClientError                 base; ``system`` names the system (lower-case id)
    +-- TransientError               no usable answer, worth retrying: 5xx, timeout, connection refused/reset
    |   +-- ThrottledError           429 / busy; ``retry_after`` seconds (None when the system gave none)
    +-- MalformedResponseError       the system answered 2xx but the body cannot be understood: never retried
    |                                (the same request would get the same body), but counted by the breaker
    +-- AuthError                    401/403 after one re-authentication, or bad credentials at the token endpoint
    +-- NotFoundError                404 / no such subject (the seed's handle_404_gracefully turns it into None)
    +-- BadRequestError              any other 4xx: our request is wrong; never retried
    +-- CircuitOpenError             the shared breaker is OPEN: failed fast, nothing was sent

Classify with :func:`is_retryable`, never by parsing messages. ``CircuitBreakerOpenError`` is an alias kept for the
seed's name.
"""

from __future__ import annotations


class NexusClientError(Exception):
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
    return isinstance(exc, from_system) and getattr(exc, "local", False) is False


def counts_against_breaker(exc: BaseException) -> bool:
    """True when the failure says the system is unhealthy (not that our request or subject was wrong).

    Throttling is not a health failure: the system answered, and asked us to wait.
    """
    if isinstance(exc, ThrottledError):
        return False
    return isinstance(exc, TransientError | MalformedResponseError)


__all__ = [
    "AuthError",
    "BadRequestError",
    "CircuitBreakerOpenError",
    "CircuitOpenError",
    "MalformedResponseError",
    "NexusClientError",
    "NotFoundError",
    "ThrottledError",
    "TransientError",
    "counts_against_breaker",
    "error_dict",
    "error_text",
    "is_retryable",
    "is_system_answer",
]
