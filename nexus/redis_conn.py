"""Redis connections: :func:`connect` builds the stores' client (audit store, snapshots, history; the runtime owns
one, from ``REDIS_URL``), and :func:`redis_for` keeps one cached client per URL for the breakers and rate budgets
(usually ``NEXUS_BREAKER_REDIS_URL``).

``rediss://`` URLs (TLS) and passwords in the URL (``redis://:password@host:6379/0``) are supported by redis-py as
they are. The embedded demo and unit tests give the runtime a fakeredis client, and :func:`redis_for` the
``memory://`` URL.
"""

from __future__ import annotations

import contextlib
import threading

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: ``redis_for(MEMORY_URL)`` (or ``memory://<name>``): a process-local fakeredis server (embedded demo, unit tests).
MEMORY_URL = "memory://"

_by_url_lock = threading.Lock()
_by_url: dict[str, redis.Redis] = {}


def connect(url: str) -> redis.Redis:
    """A new client for the stores at ``url`` (bounded socket waits: a dead Redis fails calls, it never hangs them)."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30,
                                retry_on_timeout=False)


def redis_for(url: str) -> redis.Redis:
    """A cached Redis client for ``url`` (short socket timeouts: a dead store must not stall calls).

    ``memory://`` (or ``memory://<name>``, one store per name) gives a fakeredis client on a fake server that lives
    in this process until :func:`clear_redis_clients` (the embedded demo, unit tests).
    """
    with _by_url_lock:
        client = _by_url.get(url)
        if client is None:
            if url.startswith(MEMORY_URL):
                import fakeredis

                client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
            else:
                # redis-py's default retries a refused connection with seconds of backoff; a breaker check must
                # not stall a call that long, so: one immediate retry (a stale pooled connection), then fail open.
                client = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=1.0,
                    socket_timeout=1.0,
                    health_check_interval=30,
                    retry=Retry(NoBackoff(), 1),
                )
            _by_url[url] = client
        return client


def clear_redis_clients() -> None:
    """Close and forget the clients :func:`redis_for` cached, and with them the in-memory stores."""
    with _by_url_lock:
        for client in _by_url.values():
            with contextlib.suppress(Exception):
                client.close()
        _by_url.clear()


__all__ = ["MEMORY_URL", "clear_redis_clients", "connect", "redis_for"]
