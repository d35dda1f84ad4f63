"""Workers survive Redis refusing writes: ``maxmemory`` reached under ``noeviction`` (``OutOfMemoryError``), a
read-only replica (``READONLY``) or a failed snapshot (``MISCONF``).

The failure this fixes (celery 5.7 / kombu 5.7, redis-server ``--maxmemory 2mb --maxmemory-policy noeviction``)::

    CRITICAL/MainProcess] Unrecoverable error: server:OutOfMemoryError

A full Redis refuses every write, and since Redis 7 every command inside MULTI as well. kombu acknowledges a
message with ``MULTI ZREM HDEL EXEC``, records a delivered message with ``MULTI ZADD HSET EXEC`` and requeues one
with a transaction that pushes it back: each raises a ``ResponseError`` in the worker's MAIN process, which Celery
treats as unrecoverable (only connection errors are retried), so every worker stops and the audits they carried
stay ``running`` for good. Tasks fail too: their progress, results, chord counters and publishes are all writes.

What happens instead (:func:`install`, called by ``workers.app``):

- **Acknowledging** falls back to plain ``ZREM`` / ``HDEL`` (deletes are allowed on a full Redis; they free memory).
- **Recording a delivery** that Redis refuses is logged and the message runs anyway: it is known to this worker
  (kombu's local ``_delivered``), only not to Redis's unacked index, so it is lost only if this worker dies before
  Redis accepts writes again.
- **A task that hits a refused write** (in its body, storing its result, counting its chord part) is rejected with
  requeue (:class:`RefusalAwareTask`, :func:`reject_refused_writes`): it runs again from the start once Redis takes
  writes (Nexus's tasks are idempotent: parts and reports are stored once).
- **A requeue that Redis refuses** keeps the message in this worker's memory (:class:`_Held`; it also stays in
  Redis's unacked index, for the case this worker dies) and pushes it back to the front of its queue as soon as
  Redis accepts it, tried before each ``BRPOP`` with a backoff from :data:`BACKOFF_START_S` doubling to
  :data:`BACKOFF_MAX_S`. The worker keeps consuming meanwhile. What is held belongs to the worker process, one list
  per broker (:func:`_held_for`), not to the consumer's channel: a consumer restart (a lost connection, a channel
  error) opens a new connection and channel, and their first ``BRPOP`` pushes the held messages back. A push back
  that fails for another reason than a refusal (``WRONGTYPE``, a lost connection) is raised, so the consumer treats
  it like any other channel or connection error; the messages stay held.
- A refusal anywhere else in the consumer restarts the consumer (``broker_channel_error_retry`` in
  :mod:`workers.config`) instead of stopping the worker.

Each process logs one line when Redis starts refusing (``Redis refused the write: out of memory (...)``) and one
when it accepts writes again (tests/test_worker_redis_oom.py). An audit whose tasks were refused stays ``running``
while Redis is full (nothing about it can be stored) and completes once memory is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions
from celery import Task
from celery.exceptions import Reject

log = logging.getLogger("nexus.workers")

_MARK = "_nexus_redis_refusal"
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 5.0


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def refusal_reason(exc: BaseException) -> str | None:
    """``"Redis refused the write: <why>"`` if ``exc`` (or what caused it) is Redis refusing a write, else None."""
    for err in _chain(exc):
        if isinstance(err, redis.exceptions.OutOfMemoryError):
            return "Redis refused the write: out of memory"
        if isinstance(err, redis.exceptions.ReadOnlyError):
            return "Redis refused the write: read-only replica"
        if isinstance(err, redis.exceptions.ResponseError) and str(err).startswith("MISCONF"):
            return "Redis refused the write: it cannot persist to disk (MISCONF)"
    return None


@dataclass
class _Episode:
    """One stretch of time during which Redis refused writes, as this process saw it (for one log line each way)."""

    refusing: bool = False

    def refused(self, reason: str, detail: str) -> None:
        if not self.refusing:
            self.refusing = True
            log.error("%s (%s); the worker keeps running, backs off and retries", reason, detail)

    def accepted(self, what: str) -> None:
        if self.refusing:
            self.refusing = False
            log.warning("Redis accepts writes again%s", what)


EPISODE = _Episode()


@dataclass
class _Held:
    """Messages whose requeue Redis refused, kept in this process until it can push them back.

    A held message also stays in Redis's unacked index (if it got there): should this worker die first, kombu
    restores it from there after ``visibility_timeout``; pushing it back removes that entry.
    """

    messages: list[tuple[Any, str, str, Any]] = field(default_factory=list)
    next_try: float = 0.0
    backoff_s: float = BACKOFF_START_S
    clock: Callable[[], float] = time.monotonic

    def hold(self, payload: Any, exchange: str, routing_key: str, tag: Any = None) -> None:
        self.messages.append((payload, exchange, routing_key, tag))
        self.next_try = self.clock() + self.backoff_s

    def due(self) -> bool:
        return bool(self.messages) and self.clock() >= self.next_try

    def push_back(self, channel: Any, unacked: tuple[str, str] | None = None) -> int:
        """Requeue what is held, at the front of its queue, and drop it from the unacked index and hash named by
        ``unacked``; returns how many went back (0 if Redis still refuses)."""
        done = 0
        try:
            with channel.conn_or_acquire() as client:
                while self.messages:
                    payload, exchange, routing_key, tag = self.messages[0]
                    pipe = client.pipeline(transaction=False)
                    channel._do_restore_message(payload, exchange, routing_key, pipe, True)
                    pipe.execute()
                    if tag is not None and unacked is not None:
                        client.zrem(unacked[0], tag)
                        client.hdel(unacked[1], tag)
                    self.messages.pop(0)
                    done += 1
        except redis.exceptions.RedisError as exc:
            self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)
            self.next_try = self.clock() + self.backoff_s
            reason = refusal_reason(exc)
            if reason is None:
                log.error("pushing %d held message(s) back to their queue failed (%s: %s); they stay held and are "
                          "tried again in %.1f s", len(self.messages), type(exc).__name__, exc, self.backoff_s)
                raise
            EPISODE.refused(reason, f"{len(self.messages)} message(s) held")
            return done
        self.backoff_s = BACKOFF_START_S
        return done


_HELD: dict[str, _Held] = {}  # per broker (its URL, password masked), for the life of this process


def _broker_key(channel: Any) -> str:
    return str(channel.connection.client.as_uri())


def _held_for(channel: Any) -> _Held:
    """This process's held messages for ``channel``'s broker: they outlive the channel, its QoS and its connection."""
    key = _broker_key(channel)
    held = _HELD.get(key)
    if held is None:
        held = _HELD[key] = _Held()
    return held


def _patch_qos(qos_cls: Any) -> None:
    original_append, original_ack, original_reject = qos_cls.append, qos_cls.ack, qos_cls.reject
    base_append = qos_cls.__mro__[1].append
    base_ack = qos_cls.__mro__[1].ack

    def append(self: Any, message: Any, delivery_tag: Any) -> None:
        try:
            original_append(self, message, delivery_tag)
        except redis.exceptions.ResponseError as exc:
            reason = refusal_reason(exc)
            if reason is None:
                raise
            EPISODE.refused(reason, "a delivered message runs without its unacked record")
            base_append(self, message, delivery_tag)

    def ack(self: Any, delivery_tag: Any) -> None:
        try:
            original_ack(self, delivery_tag)
        except redis.exceptions.ResponseError as exc:
            if refusal_reason(exc) is None:
                raise
            # Redis 7 refuses MULTI on a full server, not plain deletes: acknowledge without the transaction.
            with self.channel.conn_or_acquire() as client:
                client.zrem(self.unacked_index_key, delivery_tag)
                client.hdel(self.unacked_key, delivery_tag)
            base_ack(self, delivery_tag)

    def reject(self: Any, delivery_tag: Any, requeue: bool = False) -> None:
        message = self._delivered.get(delivery_tag)
        try:
            original_reject(self, delivery_tag, requeue=requeue)
        except redis.exceptions.ResponseError as exc:
            reason = refusal_reason(exc)
            if reason is None:
                raise
            if requeue and message is not None:
                delivery = message.delivery_info
                _held_for(self.channel).hold(message._raw, delivery["exchange"], delivery["routing_key"], delivery_tag)
                EPISODE.refused(reason, "a requeued message is held by this worker until Redis accepts it")
            else:
                with self.channel.conn_or_acquire() as client:
                    client.zrem(self.unacked_index_key, delivery_tag)
                    client.hdel(self.unacked_key, delivery_tag)
            base_ack(self, delivery_tag)  # no longer this consumer's: a held message is requeued, not acknowledged

    qos_cls.append, qos_cls.ack, qos_cls.reject = append, ack, reject


def _patch_channel(channel_cls: Any) -> None:
    original_start = channel_cls._brpop_start

    def _brpop_start(self: Any, timeout: Any = None) -> Any:
        held = _HELD.get(_broker_key(self))
        if held is not None and held.due():
            count = held.push_back(self, (self.unacked_index_key, self.unacked_key))
            if count and not held.messages:
                EPISODE.accepted(f": {count} held message(s) back in their queues")
        return original_start(self, timeout)

    channel_cls._brpop_start = _brpop_start


def reject_refused_writes(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """``fn``, with a refused write turned into ``Reject(requeue=True)`` (the task runs again later)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except Reject:
            raise
        except Exception as exc:
            reason = refusal_reason(exc)
            if reason is None:
                raise
            EPISODE.refused(reason, f"{what} goes back to its queue")
            raise Reject(reason, requeue=True) from exc
        EPISODE.accepted("")
        return result

    return wrapper


class RefusalAwareTask(Task):
    """The app's task class: a task whose body meets a refused Redis write is requeued, not failed."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = super().__call__
        return reject_refused_writes(call, f"task {self.name}")(*args, **kwargs)


def _patch_backend(backend_cls: Any) -> None:
    original = backend_cls.mark_as_done

    def mark_as_done(self: Any, *args: Any, **kwargs: Any) -> Any:
        return reject_refused_writes(original, "a task whose result Redis refused")(self, *args, **kwargs)

    backend_cls.mark_as_done = mark_as_done


def install() -> bool:
    """Patch kombu's Redis QoS and channel and celery's Redis backend once per process (False: already done)."""
    from celery.backends.redis import RedisBackend
    from kombu.transport import redis as kombu_redis

    qos_cls: Any = kombu_redis.QoS
    if getattr(qos_cls, _MARK, False):
        return False
    _patch_qos(qos_cls)
    _patch_channel(kombu_redis.Channel)
    _patch_backend(RedisBackend)
    setattr(qos_cls, _MARK, True)
    return True


__all__ = ["BACKOFF_MAX_S", "BACKOFF_START_S", "RefusalAwareTask", "install", "refusal_reason",
           "reject_refused_writes"]
