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

Single attempts (the Celery fetch tasks: one attempt per task run, Celery's countdown between runs) use
:func:`call_with_breaker` / :func:`acall_with_breaker`, i.e. ``get_breaker(system).call(fn)``: each failed task run
is then one breaker failure, and the task decides with ``RetryPolicy.delay_for`` when to run again. A task that
wants "one failure per task, after its last run" (the decorator's semantics) uses
``with get_breaker(system).calling(count_failure=is_last_run): ...`` instead.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception

from clients._http_errors import translate_httpx_error
from clients._log import log
from clients.breaker import NexusBreaker, get_breaker
from nexus.errors import NotFoundError, is_retryable
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


def _retry_options(service_name: str, policy: RetryPolicy, breaker: NexusBreaker | None) -> dict[str, Any]:
    """tenacity arguments implementing ``policy`` for one call."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.delay_for(exc, state.attempt_number - 1)

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        if breaker is not None and breaker.policy.enabled and breaker.is_open():
            log(
                logging.WARNING,
                service_name,
                f"Circuit opened by another caller; not retrying (attempt {state.attempt_number}"
                f"/{policy.max_attempts})",
                attempt=state.attempt_number,
                max_attempts=policy.max_attempts,
            )
            return True
        return False

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

    return {
        "stop": stop,
        "wait": wait,
        "retry": retry_if_exception(is_retryable),
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


__all__ = [
    "Sleeper",
    "acall_with_breaker",
    "call_with_breaker",
    "handle_404_gracefully",
    "resilient_http_call",
    "translate_httpx_error",
]
