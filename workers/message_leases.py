"""Prompt takeover of a dead worker's messages on the Redis broker: every message a worker holds carries a lease.

The problem: kombu's Redis transport emulates acknowledgements. A message handed to a consumer moves to the
``unacked`` hash (and its ``unacked_index``) until it is acknowledged, and kombu puts it back on its queue only once
it is older than the visibility timeout (``NEXUS_VISIBILITY_TIMEOUT_S``, 3600 s by default, and it must stay above
the longest countdown: Redis would otherwise redeliver messages that are only waiting for their retry). A worker
killed outright (the OOM killer, a lost node, an evicted pod) acknowledges nothing and requeues nothing, so the
messages it held (running, prefetched, or waiting for a countdown) waited an hour.

The fix: the worker's main process keeps a lease on each message it holds. ``task_received`` takes the lease as
the message arrives; a keeper thread renews the leases of every request the worker still holds (reserved, active,
or scheduled for a countdown) every third of ``NEXUS_PART_LEASE_S`` (default 60 s), and every sixth of it sweeps:
a lease that expired belongs to a worker that stopped renewing, so its message, if it is still unacknowledged, is
put back on its queue with kombu's own ``restore_by_tag`` (the same restore kombu runs at the visibility timeout:
the same message, task id and all). Any live worker sweeps; claiming an expired lease is one Lua script (``ZREM``
wins once), so a message is restored once. Lease times come from Redis's clock (``TIME`` in the scripts), never a
worker's.

Idempotence: the restored message runs again under the same task id, as after a pool child's death (a snapshot
resumes from its checkpoint, a part's results are stored once, Celery's Redis chord counts a header task once by
its id, a dispatcher's marks stop a second publish, and the report is written once). A message acknowledged in the
meantime is no longer in ``unacked``: its expired lease is simply dropped.

Which mechanism covers which broker: RabbitMQ returns a dead consumer's unacknowledged messages itself the moment
its connection drops, so the keeper does not run there; on Redis it does, and the visibility timeout stays the
last resort (a worker that lost its broker connection for longer than a lease, then comes back, may find a message
it still holds restored: it then runs twice, idempotently, as above).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import redis

log = logging.getLogger("nexus.resilience")

#: The broker-side sorted set: delivery tag -> lease expiry (Redis time, ms).
LEASES_KEY = "nexus:message-leases"
#: Expired leases claimed per sweep call (a sweep loops until none is left).
CLAIM_BATCH = 200

_NOW_MS = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# KEYS[1] = leases. ARGV[1] = lease ms, ARGV[2..] = delivery tags. Every tag's lease runs from Redis's now.
_HOLD = _NOW_MS + """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
return #ARGV - 1
"""

# KEYS[1] = leases. ARGV[1] = batch size. Removes and returns up to that many expired leases: whoever removes a
# lease owns its restore.
_CLAIM = _NOW_MS + """
local tags = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, tag in ipairs(tags) do
  redis.call('ZREM', KEYS[1], tag)
end
return tags
"""


class MessageLeases:
    """The leases in the broker's Redis. ``restore(tag)`` puts an unacknowledged message back on its queue (kombu's
    ``QoS.restore_by_tag``) and says whether there was one."""

    def __init__(self, client: redis.Redis, lease_s: float, restore: Callable[[str], bool],
                 key: str = LEASES_KEY) -> None:
        self.client = client
        self.lease_ms = max(1000, int(lease_s * 1000))
        self.restore = restore
        self.key = key
        self._hold = client.register_script(_HOLD)
        self._claim = client.register_script(_CLAIM)

    def hold(self, tags: Iterable[str]) -> int:
        """Take or renew the leases of ``tags`` (one round trip)."""
        wanted = [t for t in dict.fromkeys(tags) if t]
        if not wanted:
            return 0
        return int(self._hold(keys=[self.key], args=[self.lease_ms, *wanted]))

    def sweep(self) -> list[str]:
        """Restore the messages whose lease expired; returns the tags restored."""
        restored: list[str] = []
        while True:
            claimed = [t.decode() if isinstance(t, bytes) else str(t)
                       for t in self._claim(keys=[self.key], args=[CLAIM_BATCH])]
            for tag in claimed:
                if self.restore(tag):
                    restored.append(tag)
            if len(claimed) < CLAIM_BATCH:
                return restored


def held_tags() -> list[str]:
    """The delivery tags of every request this worker holds: waiting for a pool slot, running, or waiting for its
    countdown (ETA) in the worker's timer."""
    from celery.worker import state

    tags = []
    for requests in (state.reserved_requests, state.active_requests, state.scheduled_requests):
        for request in list(requests):
            message = getattr(request, "message", None)
            tag = getattr(message, "delivery_tag", None)
            if tag:
                tags.append(str(tag))
    return tags


class LeaseKeeper:
    """The worker main process's thread: renews the held messages' leases, and sweeps expired ones."""

    def __init__(self, leases: MessageLeases, held: Callable[[], list[str]] = held_tags) -> None:
        self.leases = leases
        self.held = held
        self.renew_every_s = leases.lease_ms / 3000
        self.sweep_every_s = leases.lease_ms / 6000
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nexus-message-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def tick(self, *, renew: bool = True) -> list[str]:
        """One renewal (when ``renew``) and one sweep; a Redis error is logged and waited out (a later tick
        retries; kombu's visibility timeout stays the last resort)."""
        try:
            if renew:
                self.leases.hold(self.held())
            restored = self.leases.sweep()
        except (redis.RedisError, OSError) as exc:
            log.warning("[resilience] message leases: %s: %s", type(exc).__name__, exc)
            return []
        for tag in restored:
            log.warning("[resilience] message %s: its worker stopped renewing the lease; put back on its queue", tag,
                        extra={"delivery_tag": tag})
        return restored

    def _run(self) -> None:
        next_renewal = 0.0
        elapsed = 0.0
        while not self._stop.is_set():
            self.tick(renew=elapsed >= next_renewal)
            if elapsed >= next_renewal:
                next_renewal = elapsed + self.renew_every_s
            self._stop.wait(self.sweep_every_s)
            elapsed += self.sweep_every_s


def kombu_restore(app: Any) -> Callable[[str], bool]:
    """``restore(tag)`` through kombu's own Redis QoS (its key names, priorities and bindings)."""
    lock = threading.Lock()
    state: dict[str, Any] = {}

    def restore(tag: str) -> bool:
        with lock:
            channel = state.get("channel")
            if channel is None:
                connection = app.connection_for_write()
                state["connection"] = connection
                state["channel"] = channel = connection.default_channel
            try:
                if not channel.client.hexists(channel.unacked_key, tag):
                    return False  # acknowledged meanwhile
                channel.qos.restore_by_tag(tag)
                return True
            except Exception:
                with contextlib.suppress(Exception):
                    state.pop("connection").release()
                state.pop("channel", None)
                raise

    return restore


def uses_redis_broker(broker_url: str) -> bool:
    """A Redis broker (direct, TLS or through Sentinel): kombu emulates acknowledgements there."""
    return broker_url.split("://", 1)[0] in ("redis", "rediss", "sentinel")


_KEEPER: dict[str, LeaseKeeper] = {}


def install(app: Any, lease_s: float) -> None:
    """Connect the keeper to the worker's signals (main process only: ``task_received`` and ``worker_ready`` fire
    there). Nothing happens unless the broker is Redis."""
    from celery import signals

    def ready(sender: Any = None, **_: Any) -> None:
        url = str(app.conf.broker_url or "")
        if not uses_redis_broker(url) or "keeper" in _KEEPER:
            return
        # kombu's own client of the broker: the same database and, with Sentinel, whichever server is the master
        client = app.connection_for_write().default_channel.client
        keeper = LeaseKeeper(MessageLeases(client, lease_s, kombu_restore(app)))
        _KEEPER["keeper"] = keeper
        keeper.start()

    def received(request: Any = None, **_: Any) -> None:
        keeper = _KEEPER.get("keeper")
        tag = getattr(getattr(request, "message", None), "delivery_tag", None)
        if keeper is not None and tag:
            with contextlib.suppress(redis.RedisError, OSError):
                keeper.leases.hold([str(tag)])

    def shutdown(**_: Any) -> None:
        keeper = _KEEPER.pop("keeper", None)
        if keeper is not None:
            keeper.stop()

    signals.worker_ready.connect(ready, weak=False, dispatch_uid="nexus.message_leases.ready")
    signals.task_received.connect(received, weak=False, dispatch_uid="nexus.message_leases.received")
    signals.worker_shutdown.connect(shutdown, weak=False, dispatch_uid="nexus.message_leases.shutdown")


__all__ = ["LEASES_KEY", "LeaseKeeper", "MessageLeases", "held_tags", "install", "kombu_restore",
           "uses_redis_broker"]
