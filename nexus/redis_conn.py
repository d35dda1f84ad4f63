"""The process's Redis connections: the store's (audit store, snapshots) from ``REDIS_URL``, and one cached client
per URL for the breakers and rate budgets (:func:`redis_for`, usually ``NEXUS_BREAKER_REDIS_URL``).

``rediss://`` URLs (TLS) and passwords in the URL (``redis://:password@host:6379/0``) are supported by redis-py as
they are. The embedded demo and unit tests install a fakeredis client with :func:`use_redis`, and give
:func:`redis_for` the ``memory://`` URL.
"""

from __future__ import annotations

import contextlib
import threading

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nexus.settings import get_settings

#: ``redis_for(MEMORY_URL)`` (or ``memory://<name>``): a process-local fakeredis server (embedded demo, unit tests).
MEMORY_URL = "memory://"

_lock = threading.Lock()
_client: redis.Redis | None = None
_by_url_lock = threading.Lock()
_by_url: dict[str, redis.Redis] = {}


def get_redis() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            settings = get_settings()
            _client = redis.Redis.from_url(
                settings.redis_url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30,
                retry_on_timeout=False,
            )
        return _client


def use_redis(client: redis.Redis | None) -> None:
    """Install a client (fakeredis in the demo and unit tests); None goes back to ``REDIS_URL``."""
    global _client
    with _lock:
        _client = client


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


__all__ = ["MEMORY_URL", "clear_redis_clients", "get_redis", "redis_for", "use_redis"]
