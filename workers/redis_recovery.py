"""Workers survive a Redis restart: a lost broker connection must not take the worker process down with it.

The failure this fixes (measured with celery 5.7.0 / kombu 5.7.0, redis-server SIGKILLed while a task with
``acks_late`` runs, so the worker holds an unacknowledged message)::

    consumer: Connection to broker lost. Trying to re-establish the connection...
    CRITICAL/MainProcess] Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")

Celery's ``Consumer.on_connection_error_after_connected`` first ``collect()``\\ s the dead connection (which detaches
its transport: ``transport.client = None``), then ``close()``\\ s it. Closing the Redis channel restores the
unacknowledged messages, which needs a new Redis connection pool, built from ``transport.client``: an
``AttributeError``, which ``ignore_errors`` does not catch (it expects connection errors), so the worker stops.
The same happens when the task finishes later and its message is acknowledged on the old channel.

The fix: a Redis channel whose connection is gone raises a *connection error* when asked for a new pool, which is
what every caller on that path already handles (``ignore_errors``, ``maybe_close_channel``, ``ack_log_error``).
The unacknowledged messages then stay in Redis's unacked index (restored after ``visibility_timeout`` if Redis kept
its data; lost with it otherwise, and the audit is reported lost to its callers) and the consumer reconnects
with ``broker_connection_retry``.
"""

from __future__ import annotations

from typing import Any

_MARK = "_nexus_redis_recovery"


def install() -> bool:
    """Patch kombu's Redis channel once per process; returns False when it was already patched."""
    import redis.exceptions
    from kombu.transport import redis as kombu_redis

    channel_cls: Any = kombu_redis.Channel
    original = channel_cls._connparams
    if getattr(original, _MARK, False):
        return False

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = getattr(self, "connection", None)
        if transport is None or getattr(transport, "client", None) is None:
            raise redis.exceptions.ConnectionError("the broker connection of this channel is already closed")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _MARK, True)
    channel_cls._connparams = _connparams
    return True


__all__ = ["install"]
