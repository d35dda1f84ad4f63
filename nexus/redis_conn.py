"""Redis connections: :func:`connect` builds the stores' client (audit store, snapshots, history; the runtime owns
one, from ``REDIS_URL``), and :func:`redis_for` keeps one cached client per URL for the breakers and rate budgets
(usually ``NEXUS_BREAKER_REDIS_URL``).

``rediss://`` URLs (TLS) and passwords in the URL (``redis://:password@host:6379/0``) are supported by redis-py as
they are. The embedded demo and unit tests give the runtime a fakeredis client, and :func:`redis_for` the
``memory://`` URL.

Both also take a :class:`~nexus.redis_sentinel.SentinelTarget` (``Settings.redis_target`` with ``REDIS_SENTINELS``
set): the same options, on a client of the Sentinel-managed master that follows a failover by itself. The
stores' client then retries a lost master for ``NEXUS_REDIS_FAILOVER_WAIT_S``
(:func:`nexus.redis_sentinel.failover_retry`: a task's write waits out the failover instead of failing its system);
with a URL it retries nothing, as before (``from_url`` builds a pool without a retry: a dead Redis fails a call at
once). The breakers keep their single immediate retry and fail open meanwhile, as with any Redis outage.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nexus.redis_sentinel import SentinelTarget, failover_retry, master_client

#: Where a client connects: a URL, or the Sentinel-managed master.
RedisTarget = str | SentinelTarget

#: ``redis_for(MEMORY_URL)`` (or ``memory://<name>``): a process-local fakeredis server (embedded demo, unit tests).
MEMORY_URL = "memory://"

_by_url_lock = threading.Lock()
_by_url: dict[RedisTarget, redis.Redis] = {}


def _client(target: RedisTarget, **options: Any) -> redis.Redis:
    if isinstance(target, SentinelTarget):
        return master_client(target, **options)
    return redis.Redis.from_url(target, **options)


def connect(url: RedisTarget) -> redis.Redis:
    """A new client for the stores at ``url`` (bounded socket waits: a dead Redis fails calls, it never hangs them)."""
    options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 3, "health_check_interval": 30,
                               "retry_on_timeout": False}
    if isinstance(url, SentinelTarget):
        options["retry"] = failover_retry(url.failover_wait_s)
    return _client(url, **options)


def redis_for(url: RedisTarget) -> redis.Redis:
    """A cached Redis client for ``url`` (short socket timeouts: a dead store must not stall calls).

    ``memory://`` (or ``memory://<name>``, one store per name) gives a fakeredis client on a fake server that lives
    in this process until :func:`clear_redis_clients` (the embedded demo, unit tests).
    """
    with _by_url_lock:
        client = _by_url.get(url)
        if client is None:
            if isinstance(url, str) and url.startswith(MEMORY_URL):
                import fakeredis

                client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
            else:
                # redis-py's default retries a refused connection with seconds of backoff; a breaker check must
                # not stall a call that long, so: one immediate retry (a stale pooled connection), then fail open.
                client = _client(
                    url,
                    socket_connect_timeout=1.0,
                    socket_timeout=1.0,
                    health_check_interval=30,
                    retry=Retry(NoBackoff(), 1),
                )
            _by_url[url] = client
        return client


def close(client: redis.Redis) -> None:
    """Close ``client``'s pool, and for a Sentinel-managed master the connections to the sentinels too."""
    try:
        client.close()
    finally:
        manager = getattr(client.connection_pool, "sentinel_manager", None)
        if manager is not None:
            manager.close()


def clear_redis_clients() -> None:
    """Close and forget the clients :func:`redis_for` cached, and with them the in-memory stores."""
    with _by_url_lock:
        for client in _by_url.values():
            with contextlib.suppress(Exception):
                close(client)
        _by_url.clear()


__all__ = ["MEMORY_URL", "RedisTarget", "clear_redis_clients", "close", "connect", "redis_for"]
