"""The seed's decorators, on tenacity and the Redis-shared breaker: ``resilient_http_call`` and
``handle_404_gracefully``, for sync and ``async def`` functions alike.

``@resilient_http_call("Workday")``:

* retries :class:`~nexus.errors.TransientError` (5xx, timeouts, connection errors) up to
  ``RetryPolicy.max_attempts`` attempts in all, waiting ``RetryPolicy.countdown`` between them (2 s, 4 s, 8 s...);
  a :class:`~nexus.errors.ThrottledError` waits its ``retry_after`` instead (capped by the policy);
* never retries anything else: 4xx, not found, auth, malformed answers, an open circuit;
* puts the WHOLE call (all its attempts) behind the system's shared breaker: one failed call, after its retries,
  is one breaker failure. So with ``fail_max=5`` and 3 attempts, requests 1-5 each try 3 times, request 6 fails
  fast with :class:`~nexus.errors.CircuitOpenError` and no retry, and a dead system receives at most
  ``fail_max x max_attempts`` requests from sequential callers. A call that is still retrying when another caller
  opens the circuit stops retrying and raises its last error.

Functions written the seed's way (``resp.raise_for_status()``, raw ``httpx`` transport errors) work too: an
``httpx`` error escaping an attempt is translated into the error tree by the same mapping the HTTP clients use
(:mod:`clients._http_errors`: timeout/connection/5xx -> TransientError, 429 -> ThrottledError with its Retry-After,
404 -> NotFoundError, 401/403 -> AuthError, other 4xx -> BadRequestError), the original kept as ``__cause__``.
Clients built on ``clients._http`` raise the tree already.

Policies are read when the decorated function is CALLED (``RetryPolicy.from_settings()``,
``get_breaker(service_name)``), not when it is decorated, so settings loaded later still apply; pass ``policy=``,
``breaker=`` or ``sleep=`` to pin them (tests inject ``sleep`` and never wait).

Per request, inside a task (:class:`RequestGuard` and :func:`guarded`): the fetch tasks of user, device and bulk
audits run their lookup with a guard for the system installed; every request the system's client sends
(:meth:`clients._http.HttpSystemClient.send`, an AD search) then runs through :func:`per_request`, i.e. the seed's
contract for EACH request: up to ``max_attempts`` attempts with the policy's backoff (injected ``sleep``), no retry
on 4xx, and one breaker failure per request that failed all its attempts. A part of 25 people is 25+ requests: a
system that fails one request in two still answers all of them (each failed attempt is followed by a good one),
and only consecutive failed REQUESTS open the circuit. Our own request budget asking for a long wait
(:class:`~nexus.errors.BudgetExceededError`) is not retried here: nothing was sent, and the task waits for it with
a countdown instead of holding a worker slot; nor is a wait longer than ``RetryPolicy.inline_wait_max_s``
(``NEXUS_RETRY_INLINE_MAX_S``, 10 s: a 429 asking for a minute): the guard raises :class:`RetryLater` with the
wait, and the task saves what it read and comes back after that countdown. Without a guard installed (the fleet
snapshots, which retry pages by countdown; health pings, which bypass the breakers) a client sends each request
once.

Single attempts behind the breaker use :func:`call_with_breaker` / :func:`acall_with_breaker`, i.e.
``get_breaker(system).call(fn)``; ``with get_breaker(system).calling(count_failure=is_last_run): ...`` is for a
caller that retries by itself across runs (the fleet snapshot's pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception

from clients._http_errors import translate_httpx_error
from clients._log import log, system_id
from clients.breaker import NexusBreaker, get_breaker
from nexus.errors import (
    BudgetExceededError,
    CircuitOpenError,
    NotFoundError,
    TransientError,
    counts_against_breaker,
    is_retryable,
)
from nexus.policy import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Something that waits: ``time.sleep``-like, or an ``async`` function for coroutine callers.
Sleeper = Callable[[float], Any]


def _translating(func: Callable[..., Any], system: str) -> Callable[..., Any]:
    """``func`` with raw ``httpx`` errors raised as their error-tree equivalents (one attempt)."""
    if inspect.iscoroutinefunction(func):

        async def async_attempt(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except httpx.HTTPError as exc:
                mapped = translate_httpx_error(exc, system)
                if mapped is None:
                    raise
                raise mapped from exc

        return async_attempt

    def attempt(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except httpx.HTTPError as exc:
            mapped = translate_httpx_error(exc, system)
            if mapped is None:
                raise
            raise mapped from exc

    return attempt


def _retry_options(service_name: str, policy: RetryPolicy, breaker: NexusBreaker | None,
                   retryable: Callable[[BaseException], bool] = is_retryable,
                   on_retry: Callable[[BaseException, float], None] | None = None,
                   retry: Callable[[RetryCallState], bool] | None = None) -> dict[str, Any]:
    """tenacity arguments implementing ``policy`` for one call (``on_retry(error, wait_s)`` before each wait;
    ``retry`` replaces the ``retryable`` predicate when the decision needs the attempt number)."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.delay_for(exc, state.attempt_number - 1)

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        if breaker is None or not breaker.policy.enabled:
            return False
        circuit = breaker.snapshot().state
        if circuit == "closed":
            return False
        # OPEN: another caller opened it meanwhile. HALF_OPEN: this call is (part of) the trial, and a trial is one
        # test request, as the seed says: its failure re-opens the circuit at once instead of after more attempts.
        why = "Circuit opened by another caller" if circuit == "open" else "Circuit HALF_OPEN: a trial is one request"
        log(
            logging.WARNING,
            service_name,
            f"{why}; not retrying (attempt {state.attempt_number}/{policy.max_attempts})",
            attempt=state.attempt_number,
            max_attempts=policy.max_attempts,
        )
        return True

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait_s = state.upcoming_sleep
        error_type = type(exc).__name__
        log(
            logging.WARNING,
            service_name,
            f"Retry attempt {state.attempt_number}/{policy.max_attempts} after {error_type}: {exc} "
            f"(waiting {round(wait_s, 3)}s)",
            attempt=state.attempt_number,
            max_attempts=policy.max_attempts,
            wait_s=wait_s,
            error_type=error_type,
        )
        if on_retry is not None and exc is not None:
            on_retry(exc, wait_s)

    return {
        "stop": stop,
        "wait": wait,
        "retry": retry if retry is not None else retry_if_exception(retryable),
        "before_sleep": before_sleep,
        "reraise": True,
    }


def _async_sleeper(sleep: Sleeper | None) -> Callable[[float], Awaitable[None]]:
    if sleep is None:
        return asyncio.sleep

    async def _sleep(seconds: float) -> None:
        result = sleep(seconds)
        if inspect.isawaitable(result):
            await result

    return _sleep


def resilient_http_call(
    service_name: str,
    max_attempts: int | None = None,
    enable_circuit_breaker: bool = True,
    *,
    policy: RetryPolicy | None = None,
    breaker: NexusBreaker | None = None,
    sleep: Sleeper | None = None,
) -> Callable[[F], F]:
    """Retry transient failures of the decorated function and guard it with ``service_name``'s shared breaker.

    ``service_name`` is a system id or display name (``"workday"``/``"Workday"``); ``max_attempts`` overrides the
    policy's attempt budget (None: ``NEXUS_RETRY_MAX_ATTEMPTS``, default 3); ``enable_circuit_breaker=False``
    retries without a breaker. ``sleep`` replaces ``time.sleep``/``asyncio.sleep`` (it may be sync or async for a
    coroutine function; it must be sync for a plain one).
    """

    def resolve() -> tuple[RetryPolicy, NexusBreaker | None]:
        retry_policy = policy or RetryPolicy.from_settings()
        if max_attempts is not None:
            retry_policy = retry_policy.with_max_attempts(max_attempts)
        guard = None
        if enable_circuit_breaker:
            guard = breaker if breaker is not None else get_breaker(service_name)
        return retry_policy, guard

    def decorate(func: F) -> F:
        attempt = _translating(func, service_name)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                retry_policy, guard = resolve()
                retrying = AsyncRetrying(
                    sleep=_async_sleeper(sleep), **_retry_options(service_name, retry_policy, guard)
                )

                async def attempts() -> Any:
                    return await retrying(attempt, *args, **kwargs)

                if guard is None:
                    return await attempts()
                return await guard.call_async(attempts)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            retry_policy, guard = resolve()
            retrying = Retrying(sleep=sleep or time.sleep, **_retry_options(service_name, retry_policy, guard))
            if guard is None:
                return retrying(attempt, *args, **kwargs)
            return guard.call(retrying, attempt, *args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _is_404(exc: BaseException) -> bool:
    if isinstance(exc, NotFoundError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 404


def handle_404_gracefully(func: F) -> F:
    """Return None instead of raising when the subject does not exist (:class:`NotFoundError`, or an
    ``httpx.HTTPStatusError`` with status 404 from code that still calls ``raise_for_status``); other errors pass."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except (NotFoundError, httpx.HTTPStatusError) as exc:
                if _is_404(exc):
                    return None
                raise

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (NotFoundError, httpx.HTTPStatusError) as exc:
            if _is_404(exc):
                return None
            raise

    return cast(F, wrapper)


def call_with_breaker(system: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One attempt of ``func`` behind ``system``'s shared breaker (no retry): ``get_breaker(system).call(...)``.

    Raises :class:`~nexus.errors.BreakerOpenError` (a ``CircuitOpenError``) at once when the circuit is open;
    otherwise returns or raises what ``func`` did, after recording the outcome.
    """
    return get_breaker(system).call(func, *args, **kwargs)


async def acall_with_breaker(system: str, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """The ``async`` form of :func:`call_with_breaker`."""
    return await get_breaker(system).call_async(func, *args, **kwargs)


def _retry_per_request(exc: BaseException) -> bool:
    """Retried within a request: what :func:`is_retryable` says, except our own budget's long wait (nothing was sent;
    the task waits for it with a countdown rather than a sleeping worker slot)."""
    return is_retryable(exc) and not isinstance(exc, BudgetExceededError)


class RetryLater(TransientError):
    """A request's next attempt must wait longer than a fetch task sleeps in-process (``RetryPolicy.
    inline_wait_max_s``): typically a 429 whose Retry-After is a minute. Raised by :meth:`RequestGuard.run` after
    the breaker recorded the request's real outcome (``__cause__``); the task saves the answers it has and comes
    back in ``retry_after`` seconds (a countdown), so a few throttled people cannot run a part past its time limit
    while a worker slot sleeps."""

    def __init__(self, cause: TransientError, wait_s: float) -> None:
        super().__init__(cause.message, system=cause.system, status=cause.status)
        self.kind = cause.kind
        self.retry_after = wait_s
        self.cause = cause


@dataclass(slots=True)
class RequestGuard:
    """The seed's contract for each request to ``system``: retries with backoff, then one breaker outcome.

    ``breaker`` None retries without a breaker. ``sleep`` waits between attempts (tests inject a recorder);
    ``on_retry(error, wait_s)`` is told of each retry (the task's metrics and progress). ``attempts`` is the attempt
    count of the last request that ran (what a failure marker reports; 0 when the breaker refused it),
    ``most_attempts`` the most any request took (what a successful fetch reports).
    """

    system: str
    breaker: NexusBreaker | None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[BaseException, float], None] | None = None
    attempts: int = 0
    most_attempts: int = 0  # the most attempts any request took so far
    _last_error: BaseException | None = None  # the last error a guarded request raised (the breaker saw it)

    def __post_init__(self) -> None:
        self.system = system_id(self.system)

    def run(self, request: Callable[[], T]) -> T:
        """Send one request (``request()`` is one attempt) under the policy and the breaker."""
        self.attempts = 0  # refused by the breaker: nothing was sent
        later: list[float] = []  # the wait that was too long to sleep here, if any

        def retry(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if exc is None or not _retry_per_request(exc):
                return False
            if state.attempt_number >= self.policy.max_attempts:
                return True  # out of attempts: ``stop`` ends it with this error
            wait_s = self.policy.delay_for(exc, state.attempt_number - 1)
            if wait_s > self.policy.inline_wait_max_s:
                later.append(wait_s)
                return False
            return True

        options = _retry_options(self.system, self.policy, self.breaker, on_retry=self.on_retry, retry=retry)
        retrying = Retrying(sleep=self.sleep, **options)

        def attempts() -> T:
            try:
                return cast(T, retrying(request))
            finally:
                self.attempts = retrying.statistics.get("attempt_number", 1)
                self.most_attempts = max(self.most_attempts, self.attempts)

        try:
            if self.breaker is None:
                return attempts()
            return self.breaker.call(attempts)
        except BaseException as exc:
            self._last_error = exc
            if later and isinstance(exc, TransientError):  # the breaker saw the real outcome (a 429: alive)
                deferred = RetryLater(exc, later[0])
                self._last_error = deferred
                raise deferred from exc
            raise

    def settle(self, exc: BaseException) -> None:
        """Count ``exc`` against the breaker if no request did: an answer found malformed only after its request
        returned (the body is parsed outside :meth:`run`) is a failed request all the same, as the seed's decorator
        around ``get()`` (which parses) counted it.

        Call it INSIDE the unit of work the requests ran in: while the circuit is HALF_OPEN, the failure is then
        the unit's trial outcome (it re-opens), not a fresh trial of its own nor refused as "another trial". Only a
        refusal by the breaker (:class:`~nexus.errors.CircuitOpenError`) is swallowed, and ``exc`` itself (the
        caller reports it)."""
        if self.breaker is None or exc is self._last_error or not counts_against_breaker(exc):
            return
        try:
            with self.breaker.calling():
                raise exc
        except CircuitOpenError:
            return  # refused (another unit's trial decides, or the circuit is open): nothing to count
        except BaseException as raised:
            if raised is not exc:
                raise


_GUARD: ContextVar[RequestGuard | None] = ContextVar("nexus_request_guard", default=None)


@contextlib.contextmanager
def guarded(guard: RequestGuard) -> Iterator[RequestGuard]:
    """Run the block with ``guard`` applied to every request its code sends to ``guard.system``."""
    token = _GUARD.set(guard)
    try:
        yield guard
    finally:
        _GUARD.reset(token)


def per_request(system: str, request: Callable[[], T]) -> T:
    """What a client calls around each request it sends: the installed guard for ``system`` (retries and breaker),
    or one plain attempt when none is installed."""
    guard = _GUARD.get()
    if guard is None or guard.system != system:
        return request()
    return guard.run(request)


__all__ = [
    "RequestGuard",
    "RetryLater",
    "Sleeper",
    "acall_with_breaker",
    "call_with_breaker",
    "guarded",
    "handle_404_gracefully",
    "per_request",
    "resilient_http_call",
    "translate_httpx_error",
]
