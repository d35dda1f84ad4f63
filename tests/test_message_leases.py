"""Message leases on the Redis broker (workers/message_leases.py), against a real redis-server and kombu's own Redis
transport: a message whose holder stopped renewing its lease goes back on its queue once, through kombu's restore;
a renewed lease, an acknowledged message and a second sweeper leave everything alone.

Expiry is set in Redis's own time (the lease's score moved into the past), so nothing here waits for a lease to run
out. The whole-worker drills (tests/test_worker_death.py, ``make drill``) kill real workers with the defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Queue

from nexus.testing.redis_server import redis_server_fixture
from workers.message_leases import LEASES_KEY, LeaseKeeper, MessageLeases, kombu_restore, uses_redis_broker

redis_url = redis_server_fixture(scope="module")
QUEUE = "leases-test"
_OPEN: list[Connection] = []


@pytest.fixture()
def broker(redis_url: str) -> Iterator[tuple[redis.Redis, Celery]]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    app = Celery("leases-test", broker=redis_url, set_as_current=False)  # never the process's current app
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    yield client, app
    for conn in _OPEN:
        conn.release()
    _OPEN.clear()
    app.close()
    client.close()


def _take_unacked(app: Celery) -> tuple[Connection, Any, str]:
    """Publish one message and receive it without acknowledging it: it sits in kombu's ``unacked`` hash, as the
    messages of a worker that was killed do. Returns the consumer's connection, the message and its tag."""
    conn = app.connection_for_write()
    queue = Queue(QUEUE, Exchange(QUEUE), routing_key=QUEUE)
    with conn.Producer() as producer:
        producer.publish({"task": "x", "n": 1}, exchange=queue.exchange, routing_key=QUEUE, declare=[queue],
                         serializer="json")
    consumer_conn = app.connection_for_read()
    _OPEN.extend((conn, consumer_conn))
    simple = consumer_conn.SimpleQueue(queue)
    message = simple.get(timeout=5)
    return consumer_conn, message, str(message.delivery_tag)


def _expire(client: redis.Redis, tag: str) -> None:
    client.zadd(LEASES_KEY, {tag: 0})


def _queued(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(QUEUE, 0, -1)]


def test_an_expired_lease_puts_its_unacknowledged_message_back_on_its_queue_once(
    broker: tuple[redis.Redis, Celery],
) -> None:
    client, app = broker
    _conn, message, tag = _take_unacked(app)
    assert client.hexists("unacked", tag) and client.llen(QUEUE) == 0
    leases = MessageLeases(client, 60, kombu_restore(app))
    assert leases.hold([tag]) == 1
    assert leases.sweep() == []  # held: nothing happens
    assert client.hexists("unacked", tag)
    _expire(client, tag)  # its holder stopped renewing
    other = MessageLeases(client, 60, kombu_restore(app))
    assert leases.sweep() == [tag]
    assert other.sweep() == []  # a second sweeper finds nothing left to claim: restored once
    assert not client.hexists("unacked", tag) and client.zscore("unacked_index", tag) is None
    (restored,) = _queued(client)
    assert restored["properties"]["delivery_tag"] == tag and restored["headers"]["redelivered"] is True
    assert client.zcard(LEASES_KEY) == 0
    # the same message is delivered again
    reader = app.connection_for_read()
    _OPEN.append(reader)
    again = reader.SimpleQueue(QUEUE).get(timeout=5)
    assert again.payload == message.payload


def test_an_acknowledged_message_is_not_restored_and_its_lease_is_dropped(broker: tuple[redis.Redis, Celery]) -> None:
    client, app = broker
    _conn, message, tag = _take_unacked(app)
    leases = MessageLeases(client, 60, kombu_restore(app))
    leases.hold([tag])
    message.ack()
    assert not client.hexists("unacked", tag)
    _expire(client, tag)
    assert leases.sweep() == []
    assert client.llen(QUEUE) == 0 and client.zcard(LEASES_KEY) == 0


def test_the_keeper_renews_what_its_worker_holds_and_takes_over_the_rest(broker: tuple[redis.Redis, Celery]) -> None:
    client, app = broker
    _c1, _m1, mine = _take_unacked(app)
    _c2, _m2, theirs = _take_unacked(app)
    keeper = LeaseKeeper(MessageLeases(client, 60, kombu_restore(app)), held=lambda: [mine])
    other = MessageLeases(client, 60, kombu_restore(app))
    other.hold([theirs])  # another worker's message
    _expire(client, mine)
    _expire(client, theirs)  # both leases ran out, but this worker is alive and still holds ``mine``
    assert keeper.tick() == [theirs]
    assert client.hexists("unacked", mine) and not client.hexists("unacked", theirs)
    assert client.zscore(LEASES_KEY, mine) is not None and client.zscore(LEASES_KEY, theirs) is None
    assert keeper.renew_every_s == 20.0 and keeper.sweep_every_s == 10.0


def test_lease_times_are_redis_time(broker: tuple[redis.Redis, Celery]) -> None:
    client, _app = broker
    leases = MessageLeases(client, 60, lambda _tag: False)
    leases.hold(["t1"])
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    score = client.zscore(LEASES_KEY, "t1")
    assert score is not None and now_ms + 59_000 <= score <= now_ms + 60_000


def test_a_redis_error_is_logged_and_waited_out(caplog: pytest.LogCaptureFixture) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    keeper = LeaseKeeper(MessageLeases(dead, 60, lambda _tag: False), held=lambda: ["t"])
    with caplog.at_level("WARNING", logger="nexus.resilience"):
        assert keeper.tick() == []
    assert "[resilience] message leases" in caplog.text


def test_only_a_redis_broker_gets_leases() -> None:
    assert uses_redis_broker("redis://127.0.0.1:6379/0") and uses_redis_broker("rediss://h:6380/0")
    assert uses_redis_broker("sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380")
    assert not uses_redis_broker("amqp://guest:guest@127.0.0.1:5672//")
    assert not uses_redis_broker("memory://")
