"""The process's runtime: settings, Redis, stores, breakers, rate limiters, clients and hooks, built once.

Every entry point has one: a worker process (built on first use in each pool child), the CLI (its callback), the MCP
server, the embedded demo. Code below the entry points is handed what it needs (a store, a client, a context)
instead of reaching for process globals; the tasks ask :func:`current` once per run.

An entry point that builds its own settings (the demo, the embedded worker, the test rig) installs a runtime built
from them (:func:`install`): while it is installed, :func:`nexus.settings.get_settings` returns its settings too,
so nothing has to edit the environment. Without one installed, :func:`current` builds a runtime from the
environment's settings, and a new one (closing the old one's clients) when those change
(``get_settings.cache_clear()``), so a test never talks to stale clients.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import redis

from clients.breaker import NexusBreaker, get_breaker
from clients.ratelimit import RateLimiter, limiter_for
from nexus import metrics
from nexus.audits.store import AuditStore
from nexus.errors import SystemNotConfigured
from nexus.fleet.store import SnapshotStore
from nexus.policy import BreakerPolicy, RetryPolicy
from nexus.redis_conn import close as close_redis
from nexus.redis_conn import connect
from nexus.registry import SPECS
from nexus.settings import Settings, get_settings, missing_settings
from nexus.systems import System

log = logging.getLogger("nexus.runtime")


class Runtime:
    """What one process uses to reach the systems and the stores. Thread-safe; clients are built lazily."""

    def __init__(self, settings: Settings, *, redis_client: redis.Redis | None = None, hooks: Any = None,
                 client_options: Mapping[System, Mapping[str, Any]] | None = None) -> None:
        """``client_options``: extra constructor arguments per system (the embedded demo's in-process AD directory:
        ``{System.AD: {"connection_factory": ...}}``)."""
        self.settings = settings
        self.client_options = dict(client_options or {})
        self._redis = redis_client
        self._own_redis = False
        self.hooks: Any = hooks if hooks is not None else metrics
        self._lock = threading.Lock()
        self._clients: dict[System, Any] = {}
        self.closed = False
        self.pid = os.getpid()  # the process that built it: a forked child must not close the parent's sockets
        self.pinned = False  # installed by an entry point: kept whatever the settings cache hands out

    # -- stores ------------------------------------------------------------------------------------------------------
    @property
    def redis(self) -> redis.Redis:
        """The Redis of the stores: the one given, else one connection pool to ``REDIS_URL`` (or to the master the
        sentinels name, ``REDIS_SENTINELS``), made on first use."""
        if self.closed:  # held past its close (a long task across a reset): the process's live runtime serves
            return current().redis
        with self._lock:
            if self._redis is None:
                self._redis = connect(self.settings.redis_target)
                self._own_redis = True
            return self._redis

    def audit_store(self) -> AuditStore:
        return AuditStore(self.redis, ttl_s=self.settings.report_ttl_s)

    def snapshot_store(self) -> SnapshotStore:
        return SnapshotStore(self.redis, ttl_s=self.settings.fleet_snapshot_ttl_s)

    # -- systems -----------------------------------------------------------------------------------------------------
    def breaker(self, system: System) -> NexusBreaker:
        """The system's breaker (this runtime's policy and store), its state shared through Redis by every
        process."""
        return get_breaker(system.value, redis=self.settings.breaker_redis_target,
                           policy=BreakerPolicy.from_settings(self.settings))

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_settings(self.settings)

    def limiter(self, system: System) -> RateLimiter:
        """The system's request budget, shared through Redis by every process."""
        return limiter_for(system.value, self.settings)

    def client(self, system: System) -> Any:
        """The runtime's client for ``system``, paced by its shared request budget (tokens cached inside)."""
        if self.closed:  # a closed runtime builds nothing it could no longer close
            return current().client(system)
        with self._lock:
            client = self._clients.get(system)
            if client is None:
                missing = missing_settings(self.settings).get(system)
                if missing:  # never dial a vendor with empty credentials: the fetch fails naming what to set
                    raise SystemNotConfigured(f"{system.display} is not configured: set {', '.join(missing)}",
                                              system=system.value)
                options = self.client_options.get(system, {})
                client = self._clients[system] = SPECS[system].build(self.settings, **options)
                client.rate_limiter = self.limiter(system)
            return client

    def drop_clients(self) -> None:
        """Close the clients built so far; the next use builds new ones (fresh tokens and connections)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        _close_all(clients)

    def close(self) -> None:
        """Close every client and this runtime's own Redis pool (idempotent)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            own = self._redis if self._own_redis else None
            self.closed = True
        if own is not None:
            close_redis(own)
        _close_all(clients)


def _close_all(clients: list[Any]) -> None:
    for client in clients:
        try:
            client.close()
        except Exception:  # closing a dead connection must not stop the others
            log.debug("client close failed", exc_info=True)


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """This process's runtime (built from the current settings on first use)."""
    global _current
    with _lock:
        if _current is not None and _current.pinned and not _current.closed:
            return _current
    settings = get_settings()
    with _lock:
        runtime = _current
        if runtime is None or runtime.closed or (not runtime.pinned and runtime.settings is not settings):
            old, runtime = runtime, Runtime(settings)
            _current = runtime
        else:
            old = None
    if old is not None and not old.closed:
        old.close()
    return runtime


def install(runtime: Runtime | None) -> Runtime | None:
    """Make ``runtime`` the process's (None: build from the settings on next use); returns the previous one."""
    global _current
    if runtime is not None:
        runtime.pinned = True
    with _lock:
        previous, _current = _current, runtime
        get_settings.install(runtime.settings if runtime is not None else None)
    return previous


def reset() -> None:
    """Close and forget the process's runtime (after the settings changed: tests, the demo)."""
    previous = install(None)
    if previous is not None:
        previous.close()


__all__ = ["Runtime", "current", "install", "reset"]
