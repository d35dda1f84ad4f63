"""Retry and breaker policies: small immutable values built from :class:`nexus.settings.Settings`.

They hold numbers and the arithmetic on them, nothing else, so the same policy drives the in-process retry loop
(``clients.resilience``), the Celery countdowns (``tasks``) and the Redis-shared breaker (``clients.breaker``).
A core module: it imports only :mod:`nexus.errors` and :mod:`nexus.settings`.

``RetryPolicy.countdown`` is Celery's formula, ``min(backoff_max, backoff_base * 2**retries)``: with the defaults
(base 2, no jitter) retries 0, 1, 2 wait 2, 4, 8 seconds. With jitter on, the wait is drawn uniformly from
``0..countdown`` ("full jitter", as Celery's ``retry_jitter`` does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from nexus.errors import TransientError
from nexus.settings import Settings, get_settings

# 2**64 already exceeds any sane cap; clamping the exponent keeps the float finite for absurd retry counts.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    ``max_attempts`` counts every attempt, the first included (3 means one try and two retries).
    ``retry_after_max_s`` caps a system's Retry-After so a hostile or buggy header cannot park a worker for hours
    (and keeps Celery countdowns below the broker's visibility timeout). ``inline_wait_max_s`` is the longest wait
    a fetch task sleeps between a request's attempts; a longer one is handed to the task's countdown.
    """

    max_attempts: int = 3
    backoff_base_s: float = 2.0
    backoff_max_s: float = 60.0
    jitter: bool = False
    retry_after_max_s: float = 120.0
    inline_wait_max_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if min(self.backoff_base_s, self.backoff_max_s, self.retry_after_max_s, self.inline_wait_max_s) < 0:
            raise ValueError("backoff and retry-after bounds must be >= 0")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RetryPolicy:
        """The policy configured by ``NEXUS_RETRY_*`` (the process settings when ``settings`` is None)."""
        s = settings if settings is not None else get_settings()
        return cls(
            max_attempts=s.retry_max_attempts,
            backoff_base_s=s.retry_backoff_base_s,
            backoff_max_s=s.retry_backoff_max_s,
            jitter=s.retry_jitter,
            retry_after_max_s=s.retry_after_max_s,
            inline_wait_max_s=s.retry_inline_max_s,
        )

    def countdown(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retries + 1`` (``retries`` = retries already made, from 0)."""
        exponent = min(max(retries, 0), _MAX_EXPONENT)
        delay = float(min(self.backoff_max_s, self.backoff_base_s * 2.0**exponent))
        if self.jitter:
            delay = (rng or _RNG).uniform(0.0, delay)
        return delay

    def delay_for(self, exc: BaseException | None, retries: int, rng: random.Random | None = None) -> float:
        """The wait after ``exc``: the system's Retry-After (capped) when it gave one, else :meth:`countdown`.

        A Retry-After is honoured as given (no jitter, not lengthened to the backoff): the system named the moment
        it expects to be ready.
        """
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, TransientError) else None
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.retry_after_max_s))
        return self.countdown(retries, rng)

    def with_max_attempts(self, max_attempts: int) -> RetryPolicy:
        """A copy with another attempt budget (the seed's ``max_attempts=`` decorator argument)."""
        return RetryPolicy(
            max_attempts=max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            jitter=self.jitter,
            retry_after_max_s=self.retry_after_max_s,
            inline_wait_max_s=self.inline_wait_max_s,
        )


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a system's shared circuit opens and for how long.

    ``fail_max`` consecutive failed calls open the circuit; after ``reset_timeout_s`` one trial call is let through.
    The Redis keys live ``key_ttl_s`` after their last write (a few reset timeouts, at least a minute), so an idle
    closed breaker forgets old failures and an abandoned open one eventually closes by itself. A half-open trial
    holds its slot for ``trial_ttl_s``: if the trial's process dies, another caller may try after that.
    """

    fail_max: int = 5
    reset_timeout_s: float = 60.0
    enabled: bool = True
    key_ttl_s: float = field(default=0.0)
    trial_ttl_s: float = field(default=0.0)

    def __post_init__(self) -> None:
        if self.fail_max < 1:
            raise ValueError("fail_max must be >= 1")
        if self.reset_timeout_s <= 0:
            raise ValueError("reset_timeout_s must be > 0")
        # Derived defaults (0 = "derive"); frozen dataclass, so set through object.__setattr__.
        if self.key_ttl_s <= 0:
            object.__setattr__(self, "key_ttl_s", max(4.0 * self.reset_timeout_s, 60.0))
        if self.trial_ttl_s <= 0:
            object.__setattr__(self, "trial_ttl_s", max(self.reset_timeout_s, 30.0))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> BreakerPolicy:
        """The policy configured by ``NEXUS_BREAKER_*`` (the process settings when ``settings`` is None)."""
        s = settings if settings is not None else get_settings()
        return cls(
            fail_max=s.breaker_fail_max,
            reset_timeout_s=s.breaker_reset_timeout_s,
            enabled=s.breaker_enabled,
        )


_RNG = random.Random()


__all__ = ["BreakerPolicy", "RetryPolicy"]
