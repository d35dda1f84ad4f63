"""The process's Redis connection (audit store, breakers, snapshots), from ``REDIS_URL``.

``rediss://`` URLs (TLS) and passwords in the URL (``redis://:password@host:6379/0``) are supported by redis-py as
they are. The embedded demo and unit tests install a fakeredis client with :func:`use_redis`.
"""

from __future__ import annotations

import threading

import redis

from nexus.settings import get_settings

_lock = threading.Lock()
_client: redis.Redis | None = None


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
