"""Request budgets shared by every worker: one token bucket per system, kept in Redis and updated by one Lua script.

Why a budget at all: a fleet audit fans out over many worker processes, and each system publishes a request limit
for the whole application. Pacing against the budget keeps the fleet under it, instead of bouncing off 429s (whose
Retry-After can park a whole audit for minutes).

A budget (:class:`nexus.budgets.Budget`: ``N`` requests per window ``W``, parsed from ``NEXUS_RATE_BUDGETS`` by
:func:`nexus.budgets.parse_budgets`, whose docstring lists the published limits and their sources) becomes a bucket
of capacity ``B`` (one second's worth, at least 1) that refills at ``(N - B) / W`` tokens per second, so that no
window of length ``W`` ever sees more than ``B + (N - B) = N`` requests, whatever the phase of the system's own
window. Each :meth:`TokenBucket.acquire` *reserves* a token (the bucket may go negative) and sleeps until its slot:
one Redis round trip per request, first come first served, no polling. A reservation whose wait would exceed
``max_wait_s`` is not made; :class:`~nexus.errors.BudgetExceededError` (a :class:`~nexus.errors.ThrottledError` with
``retry_after``) is raised instead, so a Celery task can free its worker slot with a countdown rather than sleep.

One clock: the bucket's refill time is Redis's (the script reads ``TIME``), never a worker's. With each worker's
own clock, a refill time written by a host ahead lay in the future of a host behind, whose bucket then stopped
refilling until its clock caught up (it ran out of budget while pacing under it), and a host ahead took a free
refill. A test injects ``clock`` (epoch seconds): its reading is then passed into the script instead. Redis
unreachable: NO limiting (a broken budget store must never stop an audit; the systems' own 429s and Retry-After
still apply), a ``[resilience]`` warning at most once a minute, and Redis is tried again after a few seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from nexus.budgets import Budget, parse_budgets
from nexus.errors import BudgetExceededError
from nexus.redis_conn import redis_for
from nexus.settings import get_settings
from nexus.systems import System

log = logging.getLogger("nexus.resilience")

NAMESPACE = "nexus:rate"
_RETRY_REDIS_AFTER_S = 5.0
_WARN_EVERY_S = 60.0


class RateLimiter(Protocol):
    def acquire(self) -> float:
        """Block until one request may be sent; returns the seconds waited. May raise BudgetExceededError."""
        ...


class NoLimit:
    """No budget: :meth:`acquire` returns at once (the default of every client)."""

    def acquire(self) -> float:
        return 0.0

    def __repr__(self) -> str:
        return "NoLimit()"


NO_LIMIT = NoLimit()

# Reserve one token. KEYS[1] = the bucket hash {t: tokens, ts: last refill}; ARGV = now ('' = Redis TIME), rate, burst,
# max_wait, ttl_ms. Returns {reserved (1|0), wait seconds as a string} (Lua numbers would be truncated to integers on
# the way out).
_RESERVE = """
local now = tonumber(ARGV[1])
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
end
if wait > max_wait then
  return {0, string.format('%.17g', wait)}
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens - 1), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, string.format('%.17g', wait)}
"""


class TokenBucket:
    """One system's shared budget (see the module docstring). Thread-safe; one instance may serve many threads."""

    def __init__(
        self,
        budget: Budget,
        redis: Any,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = 30.0,
        namespace: str = NAMESPACE,
    ) -> None:
        self.budget = budget
        self.redis = redis
        self.clock = clock  # None: Redis's clock (see the module docstring)
        self.sleep = sleep
        self.max_wait_s = max_wait_s
        self.key = f"{namespace}:{budget.system}"
        self._script = redis.register_script(_RESERVE)
        # the key lives until the bucket would be full again, plus a margin
        self._ttl_ms = int((budget.burst / budget.rate + 60.0) * 1000) if budget.rate > 0 else 3_600_000
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._warned_at = -math.inf

    def __repr__(self) -> str:
        return f"TokenBucket({self.budget.system}, {self.budget.describe()})"

    def reserve(self) -> float:
        """Reserve the next slot; returns the seconds until it (0: now). BudgetExceededError past ``max_wait_s``."""
        now = self.clock() if self.clock is not None else time.monotonic()  # local: only for the store's back-off
        if now < self._skip_until:
            return 0.0
        b = self.budget
        at = repr(now) if self.clock is not None else ""
        try:
            reserved, wait_text = self._script(
                keys=[self.key], args=[at, repr(b.rate), b.burst, repr(self.max_wait_s), self._ttl_ms]
            )
        except Exception as exc:  # redis down, timeout, script error: never stop an audit for a budget
            self._unreachable(now, exc)
            return 0.0
        wait = float(wait_text.decode() if isinstance(wait_text, bytes) else wait_text)
        if not int(reserved):
            raise BudgetExceededError(
                f"{System.parse(b.system).display} request budget ({b.describe()}) is used up: the next slot is in "
                f"{wait:.1f}s, more than the {self.max_wait_s:g}s a caller may wait",
                system=b.system,
                status=None,
                retry_after=wait,
            )
        return wait

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            self.sleep(wait)
        return wait

    def _unreachable(self, now: float, exc: BaseException) -> None:
        with self._lock:
            self._skip_until = now + _RETRY_REDIS_AFTER_S
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning("[resilience] rate budget store unreachable (%s): %s requests are not paced",
                            type(exc).__name__, self.budget.system)


_registry_lock = threading.Lock()
_registry: dict[tuple[Any, ...], RateLimiter] = {}


def limiter_for(system: str, settings: Any = None) -> RateLimiter:
    """The process's limiter for ``system`` from the settings (``NO_LIMIT`` when it has no budget).

    Cached per (system, budget, store, max wait), so changed settings give a new limiter. The store is the
    breakers' Redis (``NEXUS_BREAKER_REDIS_URL`` or ``REDIS_URL``, or the Sentinel-managed master with
    ``REDIS_SENTINELS``; ``memory://`` in the embedded demo).
    """
    s = settings or get_settings()
    budget = parse_budgets(s.rate_budgets).get(system)
    if budget is None:
        return NO_LIMIT
    url = s.breaker_redis_target
    key = (system, budget, url, s.rate_max_wait_s)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = TokenBucket(budget, redis_for(url), max_wait_s=s.rate_max_wait_s)
        return limiter


def clear_limiters() -> None:
    """Forget cached limiters (tests, or after changing settings)."""
    with _registry_lock:
        _registry.clear()


__all__ = [
    "NAMESPACE",
    "NO_LIMIT",
    "NoLimit",
    "RateLimiter",
    "TokenBucket",
    "clear_limiters",
    "limiter_for",
]
