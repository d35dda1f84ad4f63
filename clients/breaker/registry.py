"""The process's breakers: one :class:`~clients.breaker.breaker.NexusBreaker` per system, store, policy and clock.

Also the process-wide listeners (:func:`install_listener`), pybreaker listeners every breaker of this process
gets, in the spirit of dramatiq's middleware: the worker installs its metrics this way at start
(``workers.metrics_server.install`` -> ``nexus.metrics.install``), so the breaker never imports the metrics, and
a process that installs nothing (the CLI, a test) pays for nothing. The state is read per call from the shared
store; nothing here caches a state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pybreaker
from redis import Redis

from clients._log import system_id
from clients.breaker.breaker import Clock, NexusBreaker
from clients.breaker.storage import DEFAULT_NAMESPACE, RedisBreakerStorage
from nexus.policy import BreakerPolicy
from nexus.redis_conn import RedisTarget, clear_redis_clients, redis_for
from nexus.redis_sentinel import SentinelTarget
from nexus.settings import get_settings

_lock = threading.Lock()
_breakers: dict[tuple[object, ...], NexusBreaker] = {}
_installed: list[pybreaker.CircuitBreakerListener] = []


def install_listener(listener: pybreaker.CircuitBreakerListener) -> None:
    """Give ``listener`` to every breaker of this process, those built already and those to come (idempotent).

    Its ``state_change`` fires once per transition fleet-wide (in the process that made it); its other hooks run
    per call, so keep them cheap. :func:`clear_registry` keeps installed listeners.
    """
    with _lock:
        if any(known is listener for known in _installed):
            return
        _installed.append(listener)
        for breaker in _breakers.values():
            breaker.add_listener(listener)


def uninstall_listener(listener: pybreaker.CircuitBreakerListener) -> None:
    """Undo :func:`install_listener` (no error if it was not installed)."""
    with _lock:
        if not any(known is listener for known in _installed):
            return
        _installed[:] = [known for known in _installed if known is not listener]
        for breaker in _breakers.values():
            if listener in breaker.listeners:
                breaker.remove_listener(listener)


def _settings_url() -> RedisTarget:
    return get_settings().breaker_redis_target


def get_breaker(
    system: str,
    *,
    redis: Redis | RedisTarget | None = None,
    policy: BreakerPolicy | None = None,
    clock: Clock | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    listeners: Sequence[pybreaker.CircuitBreakerListener] = (),
) -> NexusBreaker:
    """The breaker for ``system`` (id or display name), cached per system, store, policy and clock.

    ``redis`` is a URL (``memory://``, :data:`nexus.redis_conn.MEMORY_URL`, for the in-process fake) or a
    Sentinel-managed master, None for the settings' ``NEXUS_BREAKER_REDIS_URL``/``REDIS_URL``/``REDIS_SENTINELS``
    (``Settings.breaker_redis_target``), or a client (give it short socket timeouts and no retry
    backoff, as :func:`nexus.redis_conn.redis_for` does, or a dead Redis stalls every call before failing open).
    ``policy`` defaults to ``BreakerPolicy.from_settings()``.
    Breakers built in different processes on the same store and namespace share one state. ``listeners`` are only
    attached when the breaker is first built (after the process's :func:`install_listener` ones).
    """
    policy = policy or BreakerPolicy.from_settings()
    if redis is None:
        redis = _settings_url()
    client = redis_for(redis) if isinstance(redis, str | SentinelTarget) else redis
    store_key: object = redis if isinstance(redis, str | SentinelTarget) else id(redis)
    key = (system_id(system), store_key, policy, clock, namespace)
    with _lock:
        breaker = _breakers.get(key)
        if breaker is None:
            storage = RedisBreakerStorage(
                system,
                client,
                namespace=namespace,
                key_ttl_s=policy.key_ttl_s,
                trial_ttl_s=policy.trial_ttl_s,
            )
            breaker = NexusBreaker(system, storage, policy=policy, clock=clock,
                                   listeners=[*_installed, *listeners])
            _breakers[key] = breaker
        return breaker


def breaker_state(system: str, *, redis: Redis | RedisTarget | None = None,
                  clock: Clock | None = None) -> dict[str, object]:
    """``{"state": "closed|open|half_open", "failures", "opened_at" (ISO 8601 or None), "retry_in_s",
    "storage_ok"}`` for the health check; an unreachable store reads as closed with ``storage_ok: false``."""
    return get_breaker(system, redis=redis, clock=clock).snapshot().to_dict()


def reset_breaker(system: str, *, redis: Redis | RedisTarget | None = None) -> None:
    """Close ``system``'s circuit and zero its failures, for every process sharing the store."""
    get_breaker(system, redis=redis).close()


def clear_registry() -> None:
    """Forget cached breakers and clients, and the in-memory stores (tests, or after changing settings)."""
    with _lock:
        _breakers.clear()
    clear_redis_clients()


__all__ = ["breaker_state", "clear_registry", "get_breaker", "install_listener", "reset_breaker", "uninstall_listener"]
