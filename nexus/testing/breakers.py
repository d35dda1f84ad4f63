"""Breakers for tests: a listener that records transitions, and a breaker on a given store and clock.

``Transitions.events`` holds ``(old, new)`` in pybreaker's spelling (``None`` for the first state);
``Transitions.arrows`` the same as ``"old->new"`` strings.
"""

from __future__ import annotations

from typing import Any

import pybreaker

from clients.breaker import NexusBreaker, RedisBreakerStorage
from nexus.policy import BreakerPolicy


class Transitions(pybreaker.CircuitBreakerListener):
    """Records state changes and counts failures and successes (each listener call once per event)."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.failures = 0
        self.successes = 0

    def state_change(self, cb: pybreaker.CircuitBreaker, old: pybreaker.CircuitBreakerState | None, new: Any) -> None:
        self.events.append((old.name if old else None, new.name))

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self.failures += 1

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self.successes += 1

    @property
    def arrows(self) -> list[str]:
        return [f"{old}->{new}" for old, new in self.events]


def make_breaker(system: str, store: Any, clock: Any, *listeners: pybreaker.CircuitBreakerListener,
                 **policy: Any) -> NexusBreaker:
    """A :class:`NexusBreaker` whose state lives in ``store`` (a Redis client, fakeredis in unit tests) and whose
    time is ``clock``; ``policy`` overrides :class:`BreakerPolicy` (default: 5 failures, 60 s)."""
    chosen = BreakerPolicy(**{"fail_max": 5, "reset_timeout_s": 60.0, **policy})
    storage = RedisBreakerStorage(system, store, key_ttl_s=chosen.key_ttl_s, trial_ttl_s=chosen.trial_ttl_s)
    return NexusBreaker(system, storage, policy=chosen, clock=clock, listeners=list(listeners))


__all__ = ["Transitions", "make_breaker"]
