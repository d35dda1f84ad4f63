"""Embedded mode: the whole pipeline in one process, with no Redis and no servers to start.

The same Celery app is reconfigured for the ``memory://`` broker and the ``cache+memory://`` result backend (chords
work there), an in-thread worker consumes every queue, and fakeredis (with Lua) holds the breakers and the audit
store. ``task_always_eager`` is NOT used: it ignores countdowns and raises at the chord call.
Used by `nexus demo` and by unit tests; integration tests use a real Redis and real worker processes instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from workers.routing import ALL_QUEUES

if TYPE_CHECKING:
    from clients.ad import ConnectionFactory
    from nexus.settings import Settings


def reset_app_connections(app: Any) -> None:
    """Forget the app's cached broker pool, producer pool and result backend, so the next use follows ``app.conf``.

    Celery builds them on first use and keeps them (only its after-fork hooks reset them): without this, a process
    that ran in embedded mode would go on publishing (tasks and control broadcasts) to ``memory://`` after the
    configuration was restored. Pools are dropped, not closed: kombu's global registry may hand them out again.
    """
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    control = app.__dict__.get("control")
    if control is not None:
        with contextlib.suppress(AttributeError, KeyError):
            del control.mailbox.producer_pool
    app._backend_cache = None
    app._local = threading.local()


@contextlib.contextmanager
def embedded_worker(settings: Settings | None = None, concurrency: int = 4, *,
                    ad_connection_factory: ConnectionFactory | None = None) -> Iterator[Any]:
    """Configure the app for memory transport, run an in-thread worker on a runtime of its own; undo on exit.

    The runtime is built from ``settings`` (default: the process's) with its stores and breakers on one in-process
    fakeredis server; nothing in the environment is changed. ``ad_connection_factory``: the AD client's connection
    factory when AD is an in-process directory (``SimulatorStack.ad_connection_factory``); None for a directory
    reached over TCP.
    """
    import fakeredis
    from celery.contrib.testing.worker import start_worker

    import tasks.audit
    import tasks.compare
    import tasks.fetch  # noqa: F401
    from clients.breaker import clear_registry
    from nexus import runtime
    from nexus.redis_conn import MEMORY_URL
    from nexus.settings import get_settings
    from nexus.systems import System
    from workers.app import celery_app

    # kombu warns that memory:// has no hostname on every connection; that is expected here.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    saved = {k: celery_app.conf.get(k) for k in ("broker_url", "result_backend", "broker_transport_options",
                                                  "result_backend_transport_options")}
    # kombu's in-memory transport polls its queues every second by default: one second per hop of an audit.
    celery_app.conf.update(broker_url="memory://", result_backend="cache+memory://",
                           broker_transport_options={"polling_interval": 0.05}, result_backend_transport_options={})
    reset_app_connections(celery_app)
    server = fakeredis.FakeServer()
    # Breakers and rate budgets on the process-wide fake server (see nexus.redis_conn.redis_for).
    embedded_settings = (settings or get_settings()).model_copy(update={"breaker_redis_url": MEMORY_URL})
    clear_registry()
    options = {System.AD: {"connection_factory": ad_connection_factory}} if ad_connection_factory else {}
    embedded = runtime.Runtime(embedded_settings, redis_client=fakeredis.FakeRedis(server=server),
                               client_options=options)
    previous = runtime.install(embedded)
    try:
        with start_worker(celery_app, concurrency=concurrency, pool="threads", perform_ping_check=False,
                          queues=list(ALL_QUEUES), loglevel="WARNING", shutdown_timeout=5) as worker:
            yield worker
    finally:
        runtime.install(previous)
        embedded.close()
        clear_registry()
        celery_app.conf.update(saved)
        reset_app_connections(celery_app)
